"""Silence matchers through the admin API: every form POST takes, the canonical form
GET gives back, bad matchers refused (400) naming the entry, and recurring config
silences listed as such."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relay.matchers import parse_matcher
from tests.http_rig import HttpRig, http_rig, make_alert
from tests.test_server_api import get_json

WEEKENDS = {"name": "weekends", "weekdays": ["saturday", "sunday"], "location": "Europe/Berlin"}
NIGHTS = {"name": "nights", "times": [{"start": "00:00", "end": "06:00"}]}


async def post(rig: HttpRig, body: dict[str, Any]) -> Any:
    return await rig.client.post("/api/v1/silences", json=body, headers=rig.admin)


@pytest.mark.parametrize(
    "matchers",
    [
        ['team=~"pay.*"', 'severity="critical"'],
        ['{team=~"pay.*", severity="critical"}'],
        [
            {"name": "team", "value": "pay.*", "isRegex": True},
            {"name": "severity", "value": "critical", "isRegex": False, "isEqual": True},
        ],
    ],
)
async def test_every_matcher_form_gives_the_same_silence(
    tmp_path: Path, matchers: list[Any]
) -> None:
    async with http_rig(tmp_path) as rig:
        response = await post(rig, {"matchers": matchers, "duration": "1h"})
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["matchers"] == ['severity="critical"', 'team=~"pay.*"']
        assert (created["recurring"], created["active"], created["active_now"]) == ([], True, True)
        stored = await rig.store.get_silence(created["id"])
        assert stored is not None
        assert sorted(str(m) for m in stored.matchers) == created["matchers"]
        listed = (await get_json(rig, "/api/v1/silences"))["silences"]
        assert created in listed


async def test_negative_matchers_and_the_old_map(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        negative = await post(
            rig,
            {
                "matchers": [
                    {"name": "rule", "value": "execution-failed"},
                    {"name": "source", "value": "staging", "isEqual": False},
                    {"name": "agent_id", "value": "agent-9.*", "isRegex": True, "isEqual": False},
                ],
                "duration": "1h",
            },
        )
        assert negative.status_code == 201, negative.text
        assert negative.json()["matchers"] == [
            'agent_id!~"agent-9.*"',
            'rule="execution-failed"',
            'source!="staging"',
        ]
        old = await post(rig, {"matchers": {"rule": "credit-burn", "team": "db"}, "duration": "1h"})
        assert old.status_code == 201, old.text
        assert old.json()["matchers"] == ['rule="credit-burn"', 'team="db"']
        # What the stored silences now silence: the store gives them back as matchers.
        [first, second] = [
            s
            for s in await rig.store.list_silences(now=rig.clock())
            if s.id in (negative.json()["id"], old.json()["id"])
        ]
        alert = make_alert(1)  # execution-failed, prod
        assert {first.matches(alert.labels), second.matches(alert.labels)} == {True, False}


@pytest.mark.parametrize(
    ("matchers", "path", "message"),
    [
        (['rule="x"', 'team=~"(pay"'], "matchers[1]", "invalid regex '(pay'"),
        (['rule="x"', "team"], "matchers[1]", "cannot read 'team'"),
        (["9lives=x"], "matchers[0]", "cannot read"),
        ([{"name": "team", "value": "(", "isRegex": True}], "matchers[0]", "invalid regex"),
        (
            [{"name": "team", "value": "x", "isRegex": "yes"}],
            "matchers[0].isRegex",
            "true or false",
        ),
        ([{"name": "team"}], "matchers[0].value", "required"),
        ([{"name": "team", "value": "x", "op": "="}], "matchers[0].op", "unknown key"),
        ([7], "matchers[0]", "should be a string"),
        ({"team": 1.5, "bad-name": "x"}, "matchers.bad-name", "not a label name"),
        ({"rule": ["x"]}, "matchers.rule", "should be a string"),
        (7, "matchers", "should be a list of matchers"),
    ],
)
async def test_unreadable_matchers_are_a_400_naming_the_entry(
    tmp_path: Path, matchers: Any, path: str, message: str
) -> None:
    async with http_rig(tmp_path) as rig:
        response = await post(rig, {"matchers": matchers, "duration": "1h"})
        assert response.status_code == 400, response.text
        body = response.json()
        assert body["error"] == "bad_request"
        [problem] = [p for p in body["problems"] if p["path"] == path]
        assert message in problem["message"]
        assert f"{path}: " in body["message"]
        assert await rig.store.list_silences(now=rig.clock(), include_expired=True) == []


@pytest.mark.parametrize(
    ("matchers", "path", "message"),
    [
        (['rule="x"', 'severity="loud"'], "matchers[1]", "severity should be one of critical"),
        ({"type": "bot"}, "matchers.type", "type should be one of agent, squad, workflow"),
        (['team=~".*"', 'rule!="x"'], "matchers", "silence nearly everything"),
        ([], "matchers", "give at least one matcher"),
    ],
)
async def test_refused_matchers_are_a_422(
    tmp_path: Path, matchers: Any, path: str, message: str
) -> None:
    async with http_rig(tmp_path) as rig:
        response = await post(rig, {"matchers": matchers, "duration": "1h"})
        assert response.status_code == 422, response.text
        [problem] = [p for p in response.json()["problems"] if p["path"] == path]
        assert message in problem["message"]


async def test_recurring_config_silences_are_listed_as_such(tmp_path: Path) -> None:
    more = {
        "time_intervals": [WEEKENDS, NIGHTS],
        "silences": [
            {"matchers": ['severity=~"warning|info"'], "time_intervals": ["weekends"]},
            {
                "matchers": ['rule="execution-failed"'],
                "time_intervals": ["nights"],
                "ends": "2026-04-01T00:00:00Z",
            },
        ],
    }
    # START is Monday 2026-03-02 09:00 UTC: a weekday, after the night.
    async with http_rig(tmp_path, more=more) as rig:
        listed = (await get_json(rig, "/api/v1/silences"))["silences"]
        by_recurring = {tuple(s["recurring"]): s for s in listed}
        weekends, nights = by_recurring[("weekends",)], by_recurring[("nights",)]
        assert weekends["matchers"] == ['severity=~"warning|info"']
        assert weekends["ends_at"] is None  # recurs for ever
        assert (weekends["active"], weekends["active_now"]) == (True, False)
        assert nights["ends_at"] == "2026-04-01T00:00:00Z"
        assert (nights["active"], nights["active_now"]) == (True, False)

        rig.clock.advance(seconds=5 * 86400)  # Saturday 09:00 UTC, 10:00 in Berlin
        listed = (await get_json(rig, "/api/v1/silences"))["silences"]
        now_muting = {tuple(s["recurring"]): s["active_now"] for s in listed}
        assert now_muting == {("weekends",): True, ("nights",): False}

        rig.clock.advance(seconds=16 * 3600)  # Sunday 01:00 UTC: a weekend night
        page = await rig.client.get("/")
        assert 'data-muting="true"' in page.text
        assert "weekends (muting now)" in page.text
        assert "nights (muting now)" in page.text
        # A config silence cannot be expired through the API, recurring or not.
        response = await rig.client.delete(f"/api/v1/silences/{weekends['id']}", headers=rig.admin)
        assert response.status_code == 409


async def test_a_recurring_silence_between_its_windows_shows_not_now(tmp_path: Path) -> None:
    more = {
        "time_intervals": [WEEKENDS],
        "silences": [{"matchers": {"rule": "credit-burn"}, "time_intervals": ["weekends"]}],
    }
    async with http_rig(tmp_path, more=more) as rig:
        page = await rig.client.get("/")
        assert page.status_code == 200
        assert "weekends (not now)" in page.text
        assert 'data-muting="false"' in page.text
        assert str(parse_matcher("rule=credit-burn")) in page.text.replace("&quot;", '"')


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"duration": "366d"}, "duration"),
        ({"duration": "99999999999999999999s"}, "duration"),
        ({"starts_at": "9999-12-01T00:00:00Z", "duration": "90d"}, "duration"),
        ({"ends_at": "2099-01-01T00:00:00Z"}, "ends_at"),
    ],
)
async def test_a_silence_longer_than_a_year_is_refused(
    tmp_path: Path, body: dict[str, str], path: str
) -> None:
    async with http_rig(tmp_path) as rig:
        response = await post(rig, {"matchers": {"rule": "credit-burn"}, **body})
        assert response.status_code in (400, 422), response.text
        assert path in [p["path"] for p in response.json()["problems"]], response.text
        assert await rig.store.list_silences(now=rig.clock(), include_expired=True) == []
