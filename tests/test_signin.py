"""Signing in to the status page on the real HTTP server (`relay.http.signin`): the
cookie, `next`, wrong tokens and their limit, signing out, token changes, read
protection."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from relay.http.common import CONTEXT
from relay.http.session import MAX_FAILURES, SESSION_LIFETIME, WINDOW
from tests.http_rig import ADMIN_TOKEN, READ_TOKEN, http_rig, make_settings
from tests.operator_kit import an_alert, form_to, forms, post, sign_in


async def test_signing_in_sets_a_signed_http_only_strict_cookie(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        form = form_to((await rig.client.get("/signin?next=/alerts/x")).text, "/signin")
        assert form.fields == {"next": "/alerts/x", "token": ""}
        response = await rig.client.post(
            "/signin", data={"token": ADMIN_TOKEN, "next": "/alerts/x"}
        )
        assert response.status_code == 303
        assert response.headers["Location"] == "/alerts/x?flash=signed_in"
        cookie = response.headers["Set-Cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "max-age", "path"} <= attributes
        assert "samesite=strict" in cookie.lower()
        assert f"Max-Age={int(SESSION_LIFETIME.total_seconds())}" in cookie
        assert "secure" not in attributes  # plain http on loopback keeps working
        assert ADMIN_TOKEN not in cookie


@pytest.mark.parametrize(
    ("server", "headers"),
    [({}, {"X-Forwarded-Proto": "https"}), ({"secure_cookies": True}, {})],
)
async def test_the_cookie_is_secure_behind_https_or_when_configured(
    tmp_path: Path, server: dict[str, object], headers: dict[str, str]
) -> None:
    async with http_rig(tmp_path, server=server) as rig:
        response = await rig.client.post("/signin", data={"token": ADMIN_TOKEN}, headers=headers)
        assert response.status_code == 303
        parts = [p.strip().lower() for p in response.headers["Set-Cookie"].split(";")]
        assert "secure" in parts


async def test_signing_in_replaces_the_flash_of_the_page_it_returns_to(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        response = await rig.client.post(
            "/signin", data={"token": ADMIN_TOKEN, "next": "/alerts/a?flash=silenced&x=1#h-s"}
        )
        assert response.headers["Location"] == "/alerts/a?x=1&flash=signed_in#h-s"


async def test_next_never_leaves_the_relay(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "x"):
            response = await rig.client.post("/signin", data={"token": ADMIN_TOKEN, "next": target})
            assert response.headers["Location"] == "/?flash=signed_in", target


async def test_a_wrong_token_is_refused_and_logged_without_the_attempt(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        attempt = "guess-" + ADMIN_TOKEN[::-1]
        with capture_logs() as logs:
            response = await rig.client.post("/signin", data={"token": attempt})
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
        assert "not the admin token" in response.text
        assert attempt not in response.text
        failed = [e for e in logs if e["event"] == "http.signin_failed"]
        assert failed == [
            {"event": "http.signin_failed", "client": "127.0.0.1", "log_level": "warning"}
        ]
        assert attempt not in repr(logs)


async def test_failed_sign_ins_are_rate_limited_per_client(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        for _ in range(MAX_FAILURES):
            assert (await rig.client.post("/signin", data={"token": "wrong"})).status_code == 401
        # Now even the right token is not compared: the client waits.
        blocked = await rig.client.post("/signin", data={"token": ADMIN_TOKEN})
        assert blocked.status_code == 429
        assert int(blocked.headers["Retry-After"]) == int(WINDOW.total_seconds())
        assert "set-cookie" not in blocked.headers
        rig.clock.advance(WINDOW)
        assert (await rig.client.post("/signin", data={"token": ADMIN_TOKEN})).status_code == 303


async def test_behind_a_trusted_proxy_a_guesser_locks_out_only_itself(tmp_path: Path) -> None:
    # The test client connects from 127.0.0.1: here the ingress controller.
    async with http_rig(tmp_path, server={"trusted_proxies": ["127.0.0.0/8"]}) as rig:
        guesser = {"X-Forwarded-For": "198.51.100.7, 127.0.0.5"}
        for _ in range(MAX_FAILURES):
            wrong = await rig.client.post("/signin", data={"token": "wrong"}, headers=guesser)
            assert wrong.status_code == 401
        blocked = await rig.client.post("/signin", data={"token": "wrong"}, headers=guesser)
        assert blocked.status_code == 429
        # What the guesser puts left of the proxy's entry is never believed.
        spoofed = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7"}
        assert (
            await rig.client.post("/signin", data={"token": "x"}, headers=spoofed)
        ).status_code == 429
        operator = {"X-Forwarded-For": "192.0.2.44"}
        signed_in = await rig.client.post("/signin", data={"token": ADMIN_TOKEN}, headers=operator)
        assert signed_in.status_code == 303


async def test_without_trusted_proxies_x_forwarded_for_is_ignored(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        for n in range(MAX_FAILURES):
            headers = {"X-Forwarded-For": f"198.51.100.{n}"}  # a new "client" each time
            await rig.client.post("/signin", data={"token": "wrong"}, headers=headers)
        answer = await rig.client.post(
            "/signin", data={"token": ADMIN_TOKEN}, headers={"X-Forwarded-For": "192.0.2.44"}
        )
        assert answer.status_code == 429, "the peer, 127.0.0.1, is the client"


def test_trusted_proxies_must_be_addresses_or_cidrs(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"(?s)server\.trusted_proxies.*'ingress' is not an address"
    ):
        make_settings(tmp_path, server={"trusted_proxies": ["10.0.0.0/8", "ingress"]})
    settings = make_settings(tmp_path, server={"trusted_proxies": [" 10.1.2.0/24 ", "fd00::1"]})
    assert settings.server.trusted_proxies == ["10.1.2.0/24", "fd00::1"]


async def test_signing_out_ends_the_session_for_good(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        operator = await sign_in(rig)
        response = await post(rig, "/signout", operator)
        assert response.status_code == 303
        assert response.headers["Location"] == "/?flash=signed_out"
        assert 'relay_session=""' in response.headers["Set-Cookie"]
        # The old cookie, replayed, is no session any more.
        page = await rig.client.get("/", headers=operator.headers)
        assert [f.action for f in forms(page.text)] == []
        alert_id = await an_alert(rig)
        refused = await post(rig, f"/alerts/{alert_id}/ack", operator)
        assert refused.status_code == 303
        assert refused.headers["Location"].startswith("/signin")


async def test_changing_the_admin_token_signs_everyone_out(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        alert_id = await an_alert(rig)
        operator = await sign_in(rig)
        assert rig.app is not None
        context = rig.app[CONTEXT]
        # What a reload with a new token does: the settings are replaced as a whole.
        context.settings = make_settings(tmp_path, admin_token=ADMIN_TOKEN[::-1])
        page = await rig.client.get("/", headers=operator.headers)
        assert [f.action for f in forms(page.text)] == []
        refused = await post(rig, f"/alerts/{alert_id}/ack", operator)
        assert refused.headers["Location"].startswith("/signin")
        stored = await rig.store.get_alert(alert_id)
        assert stored is not None
        assert stored.acknowledgement is None


async def test_without_an_admin_token_nobody_signs_in(tmp_path: Path) -> None:
    async with http_rig(tmp_path, admin_token=None) as rig:
        assert 'id="signin-disabled"' in (await rig.client.get("/signin")).text
        response = await rig.client.post("/signin", data={"token": ADMIN_TOKEN})
        assert response.status_code == 403
        assert "set-cookie" not in response.headers
        assert 'id="signin-link"' not in (await rig.client.get("/")).text


async def test_with_protected_reads_a_session_reads_and_signin_stays_open(tmp_path: Path) -> None:
    async with http_rig(tmp_path, server={"read_token": READ_TOKEN}) as rig:
        assert (await rig.client.get("/signin")).status_code == 200
        assert (await rig.client.get("/")).status_code == 401
        operator = await sign_in(rig)
        assert (await rig.client.get("/", headers=operator.headers)).status_code == 200
        assert (await rig.client.get("/api/v1/alerts", headers=operator.headers)).status_code == 200
