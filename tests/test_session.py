"""The pure parts of signing in (`relay.http.session`): the cookie, its expiry and
tampering, the CSRF token, the cross-site check and the limit on failed sign-ins."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.http.session import (
    MAX_CLIENTS,
    MAX_FAILURES,
    SESSION_LIFETIME,
    WINDOW,
    Session,
    SignedOut,
    SignInLimiter,
    cookie_value,
    cross_site_reason,
    csrf_ok,
    csrf_token,
    new_session,
    read_session,
    session_key,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
TOKEN = "admin-TOKEN-9f8e7d6c5b4a39281706f5e4"
KEY = session_key(TOKEN)


def signed(nonce: str = "bm9uY2Utb25l") -> tuple[Session, str]:
    session = new_session(now=NOW, nonce=nonce)
    return session, cookie_value(session, key=KEY)


def test_a_cookie_names_its_session_until_it_expires() -> None:
    session, value = signed()
    assert session.expires_at == NOW + SESSION_LIFETIME
    assert read_session(value, key=KEY, now=NOW) == session
    almost = NOW + SESSION_LIFETIME - timedelta(seconds=1)
    assert read_session(value, key=KEY, now=almost) == session
    assert read_session(value, key=KEY, now=NOW + SESSION_LIFETIME) is None
    assert read_session(value, key=KEY, now=NOW + timedelta(days=2)) is None


def test_the_cookie_holds_neither_the_token_nor_the_key() -> None:
    _, value = signed()
    assert TOKEN not in value
    assert KEY.hex() not in value
    assert TOKEN.encode() != KEY


def test_new_sessions_get_distinct_random_nonces() -> None:
    nonces = {new_session(now=NOW).nonce for _ in range(50)}
    assert len(nonces) == 50
    assert all(len(n) >= 21 for n in nonces)  # 16 random bytes, base64url


def test_rotating_the_admin_token_signs_everyone_out() -> None:
    _, value = signed()
    assert read_session(value, key=session_key(TOKEN + "-rotated"), now=NOW) is None


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "1.2",
        "..",
        "notdigits.bm9uY2U.c2ln",
        "1772442000.bm9uY2U.",
        ".bm9uY2U.c2ln",
        "9" * 40 + ".bm9uY2U.c2ln",
        "x" * 300,
    ],
)
def test_malformed_cookies_are_no_session(value: str | None) -> None:
    assert read_session(value, key=KEY, now=NOW) is None


def test_a_longer_expiry_signed_with_the_key_is_still_refused() -> None:
    # Even a correctly signed cookie may not live longer than a session does.
    far = Session(nonce="bm9uY2U", expires_at=NOW + SESSION_LIFETIME + timedelta(hours=1))
    assert read_session(cookie_value(far, key=KEY), key=KEY, now=NOW) is None


def test_a_changed_expiry_breaks_the_signature() -> None:
    _session, value = signed()
    expiry, nonce, signature = value.split(".")
    later = str(int(expiry) + 3600)
    assert read_session(f"{later}.{nonce}.{signature}", key=KEY, now=NOW) is None
    assert read_session(f"{expiry}.other{nonce}.{signature}", key=KEY, now=NOW) is None


@given(position=st.integers(min_value=0), replacement=st.characters(codec="ascii"))
def test_any_changed_character_is_refused(position: int, replacement: str) -> None:
    _, value = signed()
    index = position % len(value)
    if value[index] == replacement:
        return
    tampered = value[:index] + replacement + value[index + 1 :]
    assert read_session(tampered, key=KEY, now=NOW) is None


def test_a_signed_out_session_is_no_session_any_more() -> None:
    session, value = signed()
    other, other_value = signed("b3RoZXItbm9uY2U")
    signed_out = SignedOut()
    signed_out.add(session, now=NOW)
    assert read_session(value, key=KEY, now=NOW, signed_out=signed_out) is None
    assert read_session(other_value, key=KEY, now=NOW, signed_out=signed_out) == other


def test_signed_out_forgets_what_expired_and_stays_bounded() -> None:
    signed_out = SignedOut(capacity=3)
    old, _ = signed("b2xk")
    signed_out.add(old, now=NOW)
    later = NOW + SESSION_LIFETIME + timedelta(seconds=1)
    fresh = [new_session(now=later) for _ in range(4)]
    for session in fresh:
        signed_out.add(session, now=later)
    assert not signed_out.contains(old.nonce, now=later)
    assert [signed_out.contains(s.nonce, now=later) for s in fresh] == [False, True, True, True]


def test_the_csrf_token_belongs_to_its_session_and_key() -> None:
    session, _ = signed()
    other, _ = signed("b3RoZXI")
    token = csrf_token(session, key=KEY)
    assert csrf_ok(session, token, key=KEY)
    assert not csrf_ok(other, token, key=KEY)
    assert not csrf_ok(session, None, key=KEY)
    assert not csrf_ok(session, "", key=KEY)
    assert not csrf_ok(session, token + "x", key=KEY)
    assert not csrf_ok(session, token, key=session_key(TOKEN + "-rotated"))
    assert token not in cookie_value(session, key=KEY)


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({}, False),  # curl, an old browser: the session and CSRF checks decide
        ({"Host": "127.0.0.1:8080"}, False),
        ({"Sec-Fetch-Site": "same-origin", "Host": "relay:8080"}, False),
        ({"Sec-Fetch-Site": "none"}, False),  # typed or bookmarked
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "same-site"}, True),  # a sibling subdomain is another site here
        ({"Origin": "http://127.0.0.1:8080", "Host": "127.0.0.1:8080"}, False),
        ({"Origin": "https://relay.example", "Host": "relay.example"}, False),
        ({"Origin": "https://relay.example", "Host": "relay.example:443"}, False),
        ({"Origin": "https://RELAY.example", "Host": "relay.example"}, False),
        ({"Origin": "https://evil.example", "Host": "relay.example"}, True),
        ({"Origin": "http://127.0.0.1:9999", "Host": "127.0.0.1:8080"}, True),
        ({"Origin": "null", "Host": "relay.example"}, True),
        ({"Origin": "", "Host": "relay.example"}, True),
        (
            {
                "Origin": "http://relay.example",
                "Host": "relay.example",
                "Sec-Fetch-Site": "cross-site",
            },
            True,
        ),
    ],
)
def test_cross_site_posts_are_recognised(headers: dict[str, str], refused: bool) -> None:
    assert (cross_site_reason(headers) is not None) == refused


def test_failed_sign_ins_are_limited_per_client_within_a_window() -> None:
    limiter = SignInLimiter()
    for n in range(MAX_FAILURES):
        assert limiter.retry_after_s("10.0.0.1", now=NOW + timedelta(seconds=n)) is None
        limiter.failed("10.0.0.1", now=NOW + timedelta(seconds=n))
    wait = limiter.retry_after_s("10.0.0.1", now=NOW + timedelta(seconds=10))
    assert wait == (WINDOW - timedelta(seconds=10)).total_seconds()
    assert limiter.retry_after_s("10.0.0.2", now=NOW) is None  # another client
    # Once the first failure leaves the window, one more attempt is allowed.
    assert limiter.retry_after_s("10.0.0.1", now=NOW + WINDOW) is None
    limiter.failed("10.0.0.1", now=NOW + WINDOW)
    assert limiter.retry_after_s("10.0.0.1", now=NOW + WINDOW) is not None


def test_a_flood_from_many_addresses_never_refuses_a_first_attempt() -> None:
    limiter = SignInLimiter(max_failures=10, max_total=100)
    for n in range(100):  # 100 addresses, one guess each: the ceiling
        assert limiter.retry_after_s(f"10.0.{n}.1", now=NOW) is None
        limiter.failed(f"10.0.{n}.1", now=NOW)
    # Past the ceiling, an address that failed in the window waits...
    assert limiter.retry_after_s("10.0.7.1", now=NOW) == WINDOW.total_seconds()
    # ...but an address without a recent failure (the operator) is still checked.
    assert limiter.retry_after_s("192.0.2.44", now=NOW) is None
    limiter.failed("192.0.2.44", now=NOW + timedelta(seconds=1))  # a typo: one failure
    assert limiter.retry_after_s("192.0.2.44", now=NOW + timedelta(seconds=2)) is not None
    # The flood's failures leave the window: the ordinary per-client limit again.
    later = NOW + WINDOW + timedelta(seconds=1)
    assert limiter.retry_after_s("10.0.7.1", now=later) is None
    assert limiter.retry_after_s("192.0.2.44", now=later) is None


def test_a_successful_sign_in_clears_the_failures() -> None:
    limiter = SignInLimiter(max_failures=2)
    limiter.failed("c", now=NOW)
    limiter.succeeded("c")
    limiter.failed("c", now=NOW)
    assert limiter.retry_after_s("c", now=NOW) is None


def test_the_limiter_remembers_a_bounded_number_of_clients() -> None:
    limiter = SignInLimiter(max_failures=1)
    limiter.failed("first", now=NOW)
    for n in range(MAX_CLIENTS):
        limiter.failed(f"flood-{n}", now=NOW)
    assert limiter.retry_after_s("flood-0", now=NOW) is not None
    assert limiter.retry_after_s("first", now=NOW) is None  # forgotten first
