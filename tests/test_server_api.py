"""The admin API over loopback against a real SQLite store: alerts (filters, pagination),
silences (list, create, expire) and dead letters (list, retry, purge)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from relay.domain.alerts import group_alert_id
from tests.http_rig import HttpRig, commit_alerts, http_rig, make_alert


async def seed_alerts(rig: HttpRig) -> list[str]:
    """Seven per-execution alerts, one cycle a minute, two of them in staging, plus a
    resolved windowed alert; returns the per-execution ids newest first."""
    ids: list[str] = []
    for n in range(7):
        source = "staging" if n in (2, 5) else "prod"
        alert = make_alert(n, source=source, at=rig.clock())
        await commit_alerts(rig.store, [alert], at=rig.clock(), source=source)
        ids.append(alert.id)
        rig.clock.advance(seconds=60)
    windowed = replace(
        make_alert(99, rule="credit-burn", severity="warning", at=rig.clock()),
        id=group_alert_id(rule="credit-burn", source="prod", group_key="", episode=1),
        state="resolved",
        execution=None,
        cause=None,
        group={},
        value=12000.0,
        ended_at=rig.clock(),
    )
    await commit_alerts(rig.store, [windowed], at=rig.clock(), sinks=("finops",))
    return ids[::-1]


async def get_json(rig: HttpRig, path: str, **params: str) -> Any:
    response = await rig.client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def test_alerts_page_newest_first_without_gaps_or_repeats(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        ids = await seed_alerts(rig)
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            params = {"rule": "execution-failed", "limit": "3"}
            if cursor:
                params["cursor"] = cursor
            body = await get_json(rig, "/api/v1/alerts", **params)
            pages += 1
            seen.extend(a["id"] for a in body["alerts"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
            # New alerts arriving between pages neither shift nor repeat the listing.
            await commit_alerts(rig.store, [make_alert(100 + pages)], at=rig.clock())
            rig.clock.advance(seconds=1)
        assert pages == 3
        assert seen == ids


async def test_alerts_carry_their_details_and_deliveries(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        alert = make_alert(1, at=rig.clock())
        await commit_alerts(rig.store, [alert], at=rig.clock(), sinks=("oncall", "finops"))
        body = await get_json(rig, f"/api/v1/alerts/{alert.id}")
        assert body["id"] == alert.id
        assert body["rule"] == "execution-failed"
        assert body["state"] == "firing"
        assert body["execution"]["id"] == "exec-0001"
        assert body["cause"]["error_excerpt"] == "tool exploded"
        assert body["created_at"] == "2026-03-02T09:00:00Z"
        assert sorted((d["sink"], d["status"], d["kind"]) for d in body["deliveries"]) == [
            ("finops", "pending", "firing"),
            ("oncall", "pending", "firing"),
        ]
        listed = await get_json(rig, "/api/v1/alerts")
        assert listed["alerts"] == [body]


async def test_alert_filters(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        ids = await seed_alerts(rig)  # the clock now stands 7 minutes after the first

        async def listed(**params: str) -> list[str]:
            body = await get_json(rig, "/api/v1/alerts", **params)
            return [a["id"] for a in body["alerts"]]

        assert len(await listed()) == 8
        assert await listed(rule="execution-failed") == ids
        assert await listed(rule="no-such-rule") == []
        (resolved,) = await listed(state="resolved")
        assert resolved.startswith("alert_")
        assert resolved not in ids
        assert await listed(state="firing") == ids
        assert await listed(source="staging") == [ids[1], ids[4]]
        # `since` as a duration back from now, and as a time.
        assert await listed(rule="execution-failed", since="3m") == ids[:3]
        assert await listed(rule="execution-failed", since="2026-03-02T09:05:00Z") == ids[:2]
        assert await listed(rule="execution-failed", since="2026-03-02T10:05:00+01:00") == ids[:2]
        assert await listed(rule="execution-failed", source="prod", limit="2") == [ids[0], ids[2]]

        for params in ({"state": "pending"}, {"since": "yesterday"}, {"since": "2026-03-02"}):
            response = await rig.client.get("/api/v1/alerts", params=params)
            assert response.status_code == 400, params
            assert response.json()["problems"][0]["path"] in params
        response = await rig.client.get("/api/v1/alerts", params={"cursor": "garbage"})
        assert response.status_code == 400
        assert response.json()["problems"] == [
            {"path": "cursor", "message": "not a cursor this API returned; start without it"}
        ]
        response = await rig.client.get("/api/v1/alerts", params=[("rule", "a"), ("rule", "b")])
        assert response.status_code == 400


async def test_silences_are_created_listed_and_expired(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        (configured,) = (await get_json(rig, "/api/v1/silences"))["silences"]
        assert configured["origin"] == "config"
        assert configured["matchers"] == ['rule="credit-burn"']
        assert configured["active"] is True
        assert (configured["recurring"], configured["active_now"]) == ([], True)

        response = await rig.client.post(
            "/api/v1/silences",
            json={
                "matchers": {"rule": "execution-failed", "severity": "critical"},
                "duration": "2h",
                "comment": "deploying the agent fleet",
                "creator": "ana",
            },
            headers=rig.admin,
        )
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["id"].startswith("sil_")
        assert created["origin"] == "api"
        assert created["starts_at"] == "2026-03-02T09:00:00Z"
        assert created["ends_at"] == "2026-03-02T11:00:00Z"
        assert created["active"] is True
        assert created["creator"] == "ana"

        later = await rig.client.post(
            "/api/v1/silences",
            json={
                "matchers": {"type": "workflow"},
                "starts_at": "2026-03-03T00:00:00Z",
                "ends_at": "2026-03-03T06:00:00+02:00",
            },
            headers=rig.admin,
        )
        assert later.status_code == 201, later.text
        assert later.json()["ends_at"] == "2026-03-03T04:00:00Z"
        assert later.json()["active"] is False  # pending: listed, not yet muting

        listed = (await get_json(rig, "/api/v1/silences"))["silences"]
        assert [s["id"] for s in listed] == [configured["id"], created["id"], later.json()["id"]]

        rig.clock.advance(seconds=30)
        response = await rig.client.delete(f"/api/v1/silences/{created['id']}", headers=rig.admin)
        assert response.status_code == 200, response.text
        assert response.json()["expired_at"] == "2026-03-02T09:00:30Z"
        assert response.json()["active"] is False
        listed = (await get_json(rig, "/api/v1/silences"))["silences"]
        assert created["id"] not in [s["id"] for s in listed]
        everything = (await get_json(rig, "/api/v1/silences", include_expired="true"))["silences"]
        assert created["id"] in [s["id"] for s in everything]

        again = await rig.client.delete(f"/api/v1/silences/{created['id']}", headers=rig.admin)
        assert again.status_code == 409
        unknown = await rig.client.delete("/api/v1/silences/sil_nope", headers=rig.admin)
        assert unknown.status_code == 404
        from_config = await rig.client.delete(
            f"/api/v1/silences/{configured['id']}", headers=rig.admin
        )
        assert from_config.status_code == 409
        assert "configuration file" in from_config.json()["message"]


async def test_invalid_silences_are_refused_with_their_problems(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        cases: list[tuple[dict[str, Any], str]] = [
            (
                {"matchers": {"colour": "red", "severity": "loud"}, "duration": "1h"},
                "matchers.severity",
            ),
            ({"matchers": {}, "duration": "1h"}, "matchers"),
            ({"matchers": ["team!=payments"], "duration": "1h"}, "matchers"),
            ({"matchers": {"rule": "x"}, "ends_at": "2026-03-01T00:00:00Z"}, "ends_at"),
            ({"matchers": {"rule": "x"}, "ends_at": "2026-03-03T00:00:00"}, "ends_at"),
            ({"matchers": {"rule": "x"}, "duration": "soon"}, "duration"),
            ({"matchers": {"rule": "x"}, "duration": "0s"}, "duration"),
        ]
        for body, path in cases:
            response = await rig.client.post("/api/v1/silences", json=body, headers=rig.admin)
            assert response.status_code == 422, (body, response.text)
            problems = response.json()["problems"]
            assert path in [p["path"] for p in problems], (body, problems)
        assert await rig.store.list_silences(now=rig.clock(), include_expired=True) == []


async def make_dead_letters(rig: HttpRig, count: int) -> list[str]:
    alerts = [make_alert(n, at=rig.clock()) for n in range(count)]
    await commit_alerts(rig.store, alerts, at=rig.clock(), sinks=("oncall", "finops"))
    items = await rig.store.claim_due("oncall", now=rig.clock(), limit=count, lease_s=30)
    for item in items:
        await rig.store.mark_dead(
            "oncall", item.notification.id, reason="HTTP 404 from Slack", now=rig.clock()
        )
    return [item.notification.id for item in items]


async def test_dead_letters_are_listed_retried_and_purged(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        ids = await make_dead_letters(rig, 3)
        body = await get_json(rig, "/api/v1/deliveries")
        assert sorted(d["id"] for d in body["dead_letters"]) == sorted(ids)
        letter = body["dead_letters"][0]
        assert letter["sink"] == "oncall"
        assert letter["reason"] == "HTTP 404 from Slack"
        assert letter["attempts"] == 1
        assert letter["rule"] == "execution-failed"
        assert letter["notification"]["alert"]["id"] == letter["alert_id"]
        assert body["outbox"] == {
            "finops": {"pending": 3, "dead": 0},
            "oncall": {"pending": 0, "dead": 3},
        }
        assert (await get_json(rig, "/api/v1/deliveries", sink="finops"))["dead_letters"] == []
        assert len((await get_json(rig, "/api/v1/deliveries", limit="2"))["dead_letters"]) == 2

        # One by id.
        response = await rig.client.post(
            f"/api/v1/deliveries/{ids[0]}/retry", params={"sink": "oncall"}, headers=rig.admin
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"retried": 1}
        assert rig.retried == [1]
        response = await rig.client.post(f"/api/v1/deliveries/{ids[0]}/retry", headers=rig.admin)
        assert response.status_code == 404
        # An empty selection is refused rather than taken as "everything".
        selections: list[dict[str, Any]] = [
            {},
            {"all": False},
            {"ids": []},
            {"ids": [ids[1]], "all": True},
        ]
        for selection in selections:
            response = await rig.client.post(
                "/api/v1/deliveries/retry", json=selection, headers=rig.admin
            )
            assert response.status_code == 422, selection
        response = await rig.client.post(
            "/api/v1/deliveries/purge", json={"ids": [ids[1]]}, headers=rig.admin
        )
        assert response.json() == {"purged": 1}
        response = await rig.client.post(
            "/api/v1/deliveries/retry", json={"all": True, "sink": "finops"}, headers=rig.admin
        )
        assert response.json() == {"retried": 0}
        assert rig.retried == [1]  # nothing replayed, nobody woken
        response = await rig.client.post(
            "/api/v1/deliveries/retry", json={"all": True}, headers=rig.admin
        )
        assert response.json() == {"retried": 1}
        assert rig.retried == [1, 1]
        body = await get_json(rig, "/api/v1/deliveries")
        assert body["dead_letters"] == []
        assert body["outbox"]["oncall"] == {"pending": 2, "dead": 0}


async def test_deliveries_expire_nothing_when_asked_for_unknown_ids(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        await make_dead_letters(rig, 1)
        response = await rig.client.post(
            "/api/v1/deliveries/purge", json={"ids": ["msg_unknown"]}, headers=rig.admin
        )
        assert response.json() == {"purged": 0}
        rig.clock.advance(timedelta(minutes=1))
        body = await get_json(rig, "/api/v1/deliveries")
        assert len(body["dead_letters"]) == 1
