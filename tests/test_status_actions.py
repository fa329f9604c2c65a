"""Acting from the status page on the real HTTP server (`relay.http.signin`,
`relay.http.status_actions`): the forms on the pages, every action and every refusal."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from relay.domain.actions import silence_matchers
from relay.http.common import CONTEXT
from relay.http.session import SESSION_LIFETIME
from relay.http.status_actions import OPERATOR
from tests.http_rig import (
    ADMIN_TOKEN,
    SECRETS,
    HttpRig,
    http_rig,
)
from tests.operator_kit import SAME_ORIGIN, an_alert, form_to, forms, post, sign_in
from tests.test_server_api import make_dead_letters

# --- the pages, signed out and signed in ------------------------------------------------


async def test_signed_out_the_pages_show_no_forms(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        alert_id = await an_alert(rig)
        await make_dead_letters(rig, 1)
        page = (await rig.client.get("/")).text
        alert_page = (await rig.client.get(f"/alerts/{alert_id}")).text
        for html in (page, alert_page):
            assert forms(html) == []
            assert 'id="signin-link"' in html
        assert "sign in to act" in alert_page
        assert page.count("sign in to act") >= 2  # the dead letter and its sink


async def test_signed_in_every_form_carries_the_csrf_token(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        alert_id = await an_alert(rig)
        await make_dead_letters(rig, 1)
        operator = await sign_in(rig)
        await post(rig, f"/alerts/{alert_id}/silence", operator, duration="1h")
        page = (await rig.client.get("/", headers=operator.headers)).text
        alert_page = (await rig.client.get(f"/alerts/{alert_id}", headers=operator.headers)).text
        actions = {f.action for f in forms(page)} | {f.action for f in forms(alert_page)}
        assert {
            "/signout",
            "/deliveries/replay",
            f"/alerts/{alert_id}/silence",
            f"/alerts/{alert_id}/ack",
        } <= actions
        assert any(a.startswith("/silences/") and a.endswith("/expire") for a in actions)
        for form in [*forms(page), *forms(alert_page)]:
            assert form.fields["csrf"] == operator.csrf, form.action
        for secret in SECRETS:
            assert secret not in page
            assert secret not in alert_page
        assert "<script" not in page
        assert "<script" not in alert_page


# --- the actions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "length"),
    [
        ({"duration": "1h"}, timedelta(hours=1)),
        ({"duration": "24h"}, timedelta(hours=24)),
        ({"duration": "custom", "custom": "90m", "comment": "deploy"}, timedelta(minutes=90)),
    ],
)
async def test_silencing_an_alert_from_its_page(
    tmp_path: Path, data: dict[str, str], length: timedelta
) -> None:
    async with http_rig(tmp_path) as rig:
        alert_id = await an_alert(rig)
        operator = await sign_in(rig)
        response = await post(rig, f"/alerts/{alert_id}/silence", operator, **data)
        assert response.status_code == 303
        assert response.headers["Location"] == f"/alerts/{alert_id}?flash=silenced"
        [silence] = await rig.store.list_silences(now=rig.clock())
        stored = await rig.store.get_alert(alert_id)
        assert stored is not None
        assert list(silence.matchers) == silence_matchers(stored.alert)  # as Slack's button
        assert silence.ends_at == rig.clock() + length
        assert silence.creator == OPERATOR
        assert silence.comment == data.get(
            "comment", f"from the status page: silence of alert {alert_id}"
        )
        flashed = await rig.client.get(response.headers["Location"], headers=operator.headers)
        assert 'id="flash"' in flashed.text
        # The alert's page shows the silence that now holds it back.
        assert 'id="silence-now"' in flashed.text
        assert f'data-silence="{silence.id}"' in flashed.text
        page = await rig.client.get("/", headers=operator.headers)
        assert f'data-silence="{silence.id}"' in page.text
        form_to(page.text, f"/silences/{silence.id}/expire")


@pytest.mark.parametrize(
    "data",
    [
        {"duration": "custom", "custom": "soon"},
        {"duration": "custom", "custom": "0s"},
        {"duration": "2h"},
        {"duration": "custom", "custom": "366d"},  # longer than MAX_SILENCE_LENGTH
        {"duration": "custom", "custom": "3000000d"},  # past the year 9999
        {"duration": "custom", "custom": "99999999999999999999s"},  # past timedelta
        {"duration": "custom", "custom": "9" * 400 + "s"},  # a float's infinity
    ],
)
async def test_a_bad_duration_silences_nothing(tmp_path: Path, data: dict[str, str]) -> None:
    async with http_rig(tmp_path) as rig:
        alert_id = await an_alert(rig)
        operator = await sign_in(rig)
        response = await post(rig, f"/alerts/{alert_id}/silence", operator, **data)
        assert response.headers["Location"] == f"/alerts/{alert_id}?flash=bad_duration"
        assert await rig.store.list_silences(now=rig.clock(), include_expired=True) == []


async def test_acknowledging_keeps_the_first_acknowledgement(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        alert_id = await an_alert(rig)
        operator = await sign_in(rig)
        first = await post(rig, f"/alerts/{alert_id}/ack", operator)
        assert first.headers["Location"] == f"/alerts/{alert_id}?flash=acknowledged"
        stored = await rig.store.get_alert(alert_id)
        assert stored is not None
        assert stored.acknowledgement is not None
        assert stored.acknowledgement.by == OPERATOR
        assert stored.acknowledgement.at == rig.clock()
        rig.clock.advance(timedelta(minutes=1))
        again = await post(rig, f"/alerts/{alert_id}/ack", operator)
        assert again.headers["Location"] == f"/alerts/{alert_id}?flash=already_acknowledged"
        later = await rig.store.get_alert(alert_id)
        assert later is not None
        assert later.acknowledgement == stored.acknowledgement
        page = (await rig.client.get(f"/alerts/{alert_id}", headers=operator.headers)).text
        assert 'id="ack-form"' not in page
        assert 'id="acknowledged"' in page


async def test_unknown_alerts_are_404(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        operator = await sign_in(rig)
        for action in ("ack", "silence"):
            response = await post(rig, f"/alerts/nope/{action}", operator, duration="1h")
            assert response.status_code == 404, action
            assert 'id="missing"' in response.text
        assert await rig.store.list_silences(now=rig.clock(), include_expired=True) == []


async def test_expiring_silences(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        alert_id = await an_alert(rig)
        operator = await sign_in(rig)
        await post(rig, f"/alerts/{alert_id}/silence", operator, duration="1h")
        [silence] = await rig.store.list_silences(now=rig.clock())
        response = await post(rig, f"/silences/{silence.id}/expire", operator)
        assert response.headers["Location"] == "/?flash=expired#h-silences"
        assert await rig.store.list_silences(now=rig.clock()) == []
        again = await post(rig, f"/silences/{silence.id}/expire", operator)
        assert again.headers["Location"] == "/?flash=already_ended#h-silences"
        unknown = await post(rig, "/silences/sil_nope/expire", operator)
        assert unknown.headers["Location"] == "/?flash=unknown_silence#h-silences"
        assert rig.app is not None
        config_id = rig.app[CONTEXT].config_silences[0].id
        configured = await post(rig, f"/silences/{config_id}/expire", operator)
        assert configured.headers["Location"] == "/?flash=config_silence#h-silences"


async def test_replaying_one_or_all_dead_letters_of_a_sink(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        ids = await make_dead_letters(rig, 3)
        operator = await sign_in(rig)
        page = (await rig.client.get("/", headers=operator.headers)).text
        assert sorted(f.fields["id"] for f in forms(page) if "id" in f.fields) == sorted(ids)
        one = await post(rig, "/deliveries/replay", operator, sink="oncall", id=ids[0])
        assert one.headers["Location"] == "/?flash=replayed#h-dead-letters"
        assert sorted(d.notification.id for d in await rig.store.dead_letters()) == sorted(ids[1:])
        assert rig.retried == [1]
        other_sink = await post(rig, "/deliveries/replay", operator, sink="finops")
        assert other_sink.headers["Location"] == "/?flash=nothing_replayed#h-dead-letters"
        everything = await post(rig, "/deliveries/replay", operator, sink="oncall")
        assert everything.headers["Location"] == "/?flash=replayed#h-dead-letters"
        assert await rig.store.dead_letters() == []
        counts = await rig.store.outbox_counts()
        assert (counts["oncall"].pending, counts["oncall"].dead) == (3, 0)


# --- refusals --------------------------------------------------------------------------------


async def every_action(rig: HttpRig) -> list[tuple[str, dict[str, str]]]:
    alert_id = await an_alert(rig)
    await make_dead_letters(rig, 1)
    operator = await sign_in(rig)
    await post(rig, f"/alerts/{alert_id}/silence", operator, duration="1h")
    [silence] = await rig.store.list_silences(now=rig.clock())
    return [
        (f"/alerts/{alert_id}/silence", {"duration": "24h"}),
        (f"/alerts/{alert_id}/ack", {}),
        (f"/silences/{silence.id}/expire", {}),
        ("/deliveries/replay", {"sink": "oncall"}),
        ("/signout", {}),
    ]


async def state(rig: HttpRig) -> tuple[object, ...]:
    silences = await rig.store.list_silences(now=rig.clock(), include_expired=True)
    alerts = (await rig.store.list_alerts(limit=10)).alerts
    return (
        sorted((s.id, s.expired_at) for s in silences),
        sorted((a.alert.id, a.acknowledgement) for a in alerts),
        len(await rig.store.dead_letters()),
    )


async def test_without_a_session_every_action_goes_to_sign_in(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        actions = await every_action(rig)
        before = await state(rig)
        for path, data in actions:
            # Not even the admin token as a Bearer header stands in for a session here.
            response = await rig.client.post(path, data=data, headers={**SAME_ORIGIN, **rig.admin})
            assert response.status_code == 303, path
            assert response.headers["Location"].startswith("/signin"), path
        assert await state(rig) == before


async def test_an_expired_session_acts_no_more(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        actions = await every_action(rig)
        operator = await sign_in(rig)
        before = await state(rig)
        rig.clock.advance(SESSION_LIFETIME)
        for path, data in actions:
            response = await post(rig, path, operator, **data)
            assert response.status_code == 303, path
            assert response.headers["Location"].startswith("/signin"), path
        assert await state(rig) == before


@pytest.mark.parametrize("csrf", [None, "", "forged", "x" * 43])
async def test_a_missing_or_wrong_csrf_token_is_refused(tmp_path: Path, csrf: str | None) -> None:
    async with http_rig(tmp_path) as rig:
        actions = await every_action(rig)
        operator = await sign_in(rig)
        before = await state(rig)
        for path, data in actions:
            body = dict(data) if csrf is None else {**data, "csrf": csrf}
            headers = {**SAME_ORIGIN, **operator.headers}
            response = await rig.client.post(path, data=body, headers=headers)
            assert response.status_code == 403, path
            assert "CSRF" in response.text
        assert await state(rig) == before


async def test_another_sessions_csrf_token_is_refused(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        actions = await every_action(rig)
        mine, theirs = await sign_in(rig), await sign_in(rig)
        before = await state(rig)
        for path, data in actions:
            headers = {**SAME_ORIGIN, **mine.headers}
            response = await rig.client.post(
                path, data={**data, "csrf": theirs.csrf}, headers=headers
            )
            assert response.status_code == 403, path
        assert await state(rig) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "https://sub.relay.example"},
    ],
)
async def test_a_cross_site_post_is_refused_even_with_cookie_and_token(
    tmp_path: Path, headers: dict[str, str]
) -> None:
    async with http_rig(tmp_path) as rig:
        actions = await every_action(rig)
        operator = await sign_in(rig)
        before = await state(rig)
        for path, data in actions:
            response = await rig.client.post(
                path, data={**data, "csrf": operator.csrf}, headers={**operator.headers, **headers}
            )
            assert response.status_code == 403, path
        signin = await rig.client.post("/signin", data={"token": ADMIN_TOKEN}, headers=headers)
        assert signin.status_code == 403
        assert "set-cookie" not in signin.headers
        assert await state(rig) == before


async def test_the_same_origin_passes_the_origin_check(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        alert_id = await an_alert(rig)
        operator = await sign_in(rig)
        origin = rig.server.url
        response = await rig.client.post(
            f"/alerts/{alert_id}/ack",
            data={"csrf": operator.csrf},
            headers={**operator.headers, "Origin": origin},
        )
        assert response.status_code == 303
        assert response.headers["Location"].endswith("flash=acknowledged")


async def test_a_session_cookie_does_not_authorise_the_admin_api(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        alert_id = await an_alert(rig)
        operator = await sign_in(rig)
        response = await rig.client.post(
            f"/api/v1/alerts/{alert_id}/ack", json={}, headers=operator.headers
        )
        assert response.status_code == 401
        stored = await rig.store.get_alert(alert_id)
        assert stored is not None
        assert stored.acknowledgement is None
