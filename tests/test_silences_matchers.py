"""Silences with Alertmanager matchers and recurring time intervals: matching and
validation tables, the old map form against the equivalent `=` list, config forms and
their ids, the file's cross-checks, and recurring windows across DST changes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.domain.silences import (
    END_OF_TIME,
    Silence,
    active,
    config_silence,
    in_force,
    matching_silence,
)
from relay.settings import MatcherProblems, SilenceSettings, read_matchers
from relay.sim.clock import ManualClock
from relay.time_intervals import time_interval
from tests.test_settings import MINIMAL, load, only_problem, problems
from tests.test_silences import failed_alert

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)  # a Monday
LABELS = {
    "rule": "execution-failed",
    "severity": "critical",
    "source": "prod",
    "team": "payments",
    "responder": "Sales Qualifier",
}


def one_off(matchers: Any, *, silence_id: str = "sil-1", **fields: Any) -> Silence:
    return Silence(
        id=silence_id,
        matchers=read_matchers(matchers, check=False).matchers,
        starts_at=T0 - timedelta(hours=1),
        ends_at=T0 + timedelta(hours=1),
        creator="ops",
        comment="",
        created_at=T0 - timedelta(hours=1),
        **fields,
    )


# --- matching -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matchers", "silenced"),
    [
        (['team="payments"'], True),
        (['team!="payments"', 'rule="execution-failed"'], False),
        (['team!="search"', 'rule="execution-failed"'], True),
        (['team=~"pay.*"'], True),
        (['team=~"pay"'], False),  # anchored: `pay` is not `payments`
        (['team=~"ments"'], False),
        (['team!~"pay.*"', 'rule="execution-failed"'], False),
        (['team!~"search|db"', 'severity="critical"'], True),
        (['responder="Sales Qualifier"'], True),  # quoted value with a space
        (['squad=""', 'rule="execution-failed"'], True),  # a missing label is ""
        (['squad!=""'], False),
        (['squad=~".+"'], False),
        (['{severity="critical", source=~"prod|staging"}'], True),
        (['severity="critical"', 'source="staging"'], False),  # every matcher must hold
        ({"team": "payments", "severity": "critical"}, True),  # the old map form
        ({"team": "payments", "severity": "warning"}, False),
    ],
)
def test_matching(matchers: Any, silenced: bool) -> None:
    s = one_off(matchers)
    assert s.matches(LABELS) is silenced


def test_a_matching_silence_over_an_alerts_labels() -> None:
    alert = failed_alert()  # rule failed, severity critical, agent agent-1, resp-1
    regex = one_off(['agent_id=~"agent-[0-9]+"', 'severity!="info"'])
    other = one_off(['agent_id=~"bot-.*"'], silence_id="sil-2")
    assert matching_silence(alert, [other, regex], T0) == regex
    assert matching_silence(alert, [other], T0) is None


# --- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matchers", "problem"),
    [
        (['rule="x"', 'team=~"(pay"'], ((1,), "invalid regex '(pay'")),
        (["rule=x", "not a matcher"], ((1,), "cannot read 'not a matcher'")),
        (['rule="x", team="a'], ((0,), "unterminated quoted value")),
        ([{"name": "team", "value": "(", "isRegex": True}], ((0,), "invalid regex")),
        ([{"name": "team", "value": 3}], ((0, "value"), "required, a string")),
        ([{"name": "team", "value": "x", "isEqual": "no"}], ((0, "isEqual"), "true or false")),
        ({"rule": "x", "1team": "y"}, (("1team",), "is not a label name")),
        ({"rule": None}, (("rule",), "should be a string")),
        ('rule="x", severity="loud"', ((0,), "severity should be one of critical, info")),
        ({"type": "bot"}, (("type",), "type should be one of agent, squad, workflow")),
        (['severity="loud"'], ((0,), "severity should be one of")),
        ([], ((), "give at least one matcher")),
        ({}, ((), "give at least one matcher")),
        (['team!="payments"'], ((), "silence nearly everything")),
        (['team=~".*"', 'rule!="x"', 'source=""'], ((), "silence nearly everything")),
        (42, ((), "should be a list of matchers")),
    ],
)
def test_validation(matchers: Any, problem: tuple[tuple[Any, ...], str]) -> None:
    with pytest.raises(MatcherProblems) as caught:
        read_matchers(matchers)
    [(loc, message)] = caught.value.problems
    assert loc == problem[0]
    assert problem[1] in message


@pytest.mark.parametrize(
    "matchers",
    [
        ['severity=~"loud|critical"'],  # only `=` is checked against the known values
        ['severity!="loud"', 'rule="x"'],
        ['colour="red"'],  # any label name
        ['team=~"pay.+"'],
    ],
)
def test_accepted(matchers: list[str]) -> None:
    assert len(read_matchers(matchers)) == len(matchers)


# --- the map form is the `=` list ----------------------------------------------------

NAMES = st.sampled_from(["rule", "severity", "team", "source", "responder"])
VALUES = st.sampled_from(["critical", "warning", "payments", "a b", 'q"uote', "", "x\\y"])


@given(
    wanted=st.dictionaries(NAMES, VALUES, min_size=1, max_size=3),
    labels=st.lists(st.dictionaries(NAMES, VALUES, max_size=5), min_size=1, max_size=8),
)
def test_the_map_and_the_equal_list_silence_the_same_alerts(
    wanted: dict[str, str], labels: list[dict[str, str]]
) -> None:
    as_map = read_matchers(wanted, check=False)
    as_list = read_matchers([str(m) for m in read_matchers(wanted, check=False)], check=False)
    as_objects = read_matchers([{"name": k, "value": v} for k, v in wanted.items()], check=False)
    assert as_map.matchers == as_list.matchers == as_objects.matchers
    for alert_labels in labels:
        expected = all(alert_labels.get(k, "") == v for k, v in wanted.items())
        for read in (as_map, as_list, as_objects):
            assert one_off(read).matches(alert_labels) is expected


@given(
    wanted=st.dictionaries(
        st.sampled_from(["rule", "team", "source"]),
        st.sampled_from(["critical", "payments", "a b"]),
        min_size=1,
    )
)
def test_the_map_and_the_equal_list_get_the_same_config_id(wanted: dict[str, str]) -> None:
    ends = "2026-12-01T06:00:00Z"
    as_map = SilenceSettings.model_validate({"matchers": wanted, "ends": ends})
    strings = [f'{k}="{v}"' for k, v in reversed(list(wanted.items()))]
    as_list = SilenceSettings.model_validate({"matchers": strings, "ends": ends})
    assert config_silence(as_map).id == config_silence(as_list).id


# --- config silences ------------------------------------------------------------------


def test_an_old_form_config_silence_keeps_its_id_across_the_upgrade() -> None:
    """The ids the relay gave these silences before matchers had operators."""
    first = SilenceSettings.model_validate(
        {
            "matchers": {"rule": "credit-burn"},
            "starts": "2026-12-01T00:00:00Z",
            "ends": "2026-12-01T06:00:00Z",
        }
    )
    second = SilenceSettings.model_validate(
        {
            "matchers": {"severity": "warning", "type": "workflow", "responder_id": "r-1"},
            "ends": "2026-12-01T06:00:00Z",
            "comment": "db",
            "creator": "ana",
        }
    )
    assert config_silence(first).id == "cfg_b30e57c7170cb0dde4c1"
    assert config_silence(second).id == "cfg_eb5317ee9824a473a9a5"


def test_new_forms_get_ids_of_their_own() -> None:
    ends = "2026-12-01T06:00:00Z"
    weekends = time_interval("weekends", weekdays=["saturday", "sunday"])
    variants = [
        {"matchers": ['team="payments"'], "ends": ends},
        {"matchers": ['team=~"payments"'], "ends": ends},
        {"matchers": ['team!="payments"', 'rule="x"'], "ends": ends},
        {"matchers": ['team="payments"'], "time_intervals": ["weekends"]},
        {"matchers": ['team="payments"'], "time_intervals": ["weekends"], "ends": ends},
    ]
    ids = [
        config_silence(SilenceSettings.model_validate(raw), intervals={"weekends": weekends}).id
        for raw in variants
    ]
    assert len(set(ids)) == len(ids)
    again = config_silence(
        SilenceSettings.model_validate(variants[3]), intervals={"weekends": weekends}
    )
    assert again.id == ids[3]
    assert again.recurring == ["weekends"]
    assert again.ends_at == END_OF_TIME
    assert again.open_ended


def test_the_file_takes_both_forms(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        MINIMAL
        + """
time_intervals:
  - name: weekends
    weekdays: [saturday, sunday]
silences:
  - matchers: ['severity="critical"', 'team=~"pay.*"']
    ends: 2026-12-01T06:00:00Z
  - matchers: {rule: failed, severity: warning}
    ends: 2026-12-01T06:00:00Z
  - matchers:
      - {name: team, value: "db|search", isRegex: true}
    time_intervals: [weekends]
""",
    )
    one, two, three = settings.silences
    assert [str(m) for m in one.matchers] == ['severity="critical"', 'team=~"pay.*"']
    assert [str(m) for m in two.matchers] == ['rule="failed"', 'severity="warning"']
    assert (three.ends, three.time_intervals) == (None, ["weekends"])
    assert settings.model_dump()["silences"][1]["matchers"] == {
        "rule": "failed",
        "severity": "warning",
    }


@pytest.mark.parametrize(
    ("silence", "expected"),
    [
        (
            "{matchers: ['rule=\"failed\"', 'team=~\"(pay\"'], ends: 2026-12-01T00:00:00Z}",
            "silences.0.matchers.1: invalid regex '(pay'",
        ),
        (
            "{matchers: {severity: loud}, ends: 2026-12-01T00:00:00Z}",
            "silences.0.matchers.severity: severity should be one of critical",
        ),
        (
            "{matchers: ['team!=\"payments\"'], ends: 2026-12-01T00:00:00Z}",
            "silences.0.matchers: every matcher also matches",
        ),
        ("{matchers: {rule: failed}}", "silences.0.ends: required (or time_intervals"),
        (
            "{matchers: ['rule=\"typo\"'], ends: 2026-12-01T00:00:00Z}",
            "silences.0.matchers.0: unknown rule 'typo'; defined rules: failed",
        ),
        (
            '{matchers: [\'{severity="critical", rule="typo"}\'], ends: 2026-12-01T00:00:00Z}',
            "silences.0.matchers.0: unknown rule 'typo'",
        ),
        (
            "{matchers: {rule: failed}, time_intervals: [weekends, nights]}",
            "silences.0.time_intervals.1: unknown time interval 'nights'; defined: weekends",
        ),
        (
            "{matchers: {rule: failed}, time_intervals: [weekends, weekends]}",
            "silences.0.time_intervals.1: 'weekends' is listed twice",
        ),
    ],
)
def test_a_bad_silence_names_its_field(tmp_path: Path, silence: str, expected: str) -> None:
    text = MINIMAL + "time_intervals:\n  - {name: weekends, weekdays: [sunday]}\n"
    assert only_problem(tmp_path, text + f"silences:\n  - {silence}\n").startswith(expected)


def test_an_unknown_rule_is_reported_once_beside_other_problems(tmp_path: Path) -> None:
    text = MINIMAL + "silences:\n  - {matchers: ['rule=\"typo\"'], ends: 2026-12-01T00:00:00}\n"
    found = problems(tmp_path, text)
    assert len(found) == 2, found
    assert any(p.startswith("silences.0.matchers.0: unknown rule 'typo'") for p in found)
    assert any(p.startswith("silences.0.ends: needs a timezone") for p in found)


# --- recurring silences ---------------------------------------------------------------

# 01:00-04:00 on Berlin's clock, every day.
NIGHT = time_interval("night", times=[("01:00", "04:00")], location="Europe/Berlin")


def recurring(**fields: Any) -> Silence:
    base = Silence(
        id="cfg_night",
        matchers=read_matchers(['rule="failed"']).matchers,
        starts_at=datetime(1970, 1, 1, tzinfo=UTC),
        ends_at=END_OF_TIME,
        creator="config",
        comment="",
        created_at=datetime(1970, 1, 1, tzinfo=UTC),
        origin="config",
        time_intervals=(NIGHT,),
    )
    return replace(base, **fields)


def muted_minutes(silence: Silence, *, day_utc: datetime) -> list[tuple[str, str]]:
    """The UTC spans (start, end) from 22:00 the day before to the end of `day_utc`,
    minute by minute on an injected clock, during which the silence mutes an alert of
    rule `failed` ("open": still muting at the end)."""
    clock = ManualClock(day_utc - timedelta(hours=2))
    alert = failed_alert()
    spans: list[tuple[str, str]] = []
    start: datetime | None = None
    while clock() < day_utc + timedelta(hours=24):
        muting = matching_silence(alert, [silence], clock()) is not None
        if muting and start is None:
            start = clock()
        elif not muting and start is not None:
            spans.append((start.strftime("%d %H:%M"), clock().strftime("%d %H:%M")))
            start = None
        clock.advance(seconds=60)
    if start is not None:
        spans.append((start.strftime("%d %H:%M"), "open"))
    return spans


@pytest.mark.parametrize(
    ("day", "spans"),
    [
        # Winter (CET, UTC+1): 01:00-04:00 Berlin is 00:00-03:00 UTC.
        (datetime(2026, 3, 28, tzinfo=UTC), [("28 00:00", "28 03:00")]),
        # Spring forward on 29 March at 02:00: the hour 02:00-03:00 never shows on the
        # clock, so the window is two hours long, 00:00-02:00 UTC.
        (datetime(2026, 3, 29, tzinfo=UTC), [("29 00:00", "29 02:00"), ("29 23:00", "open")]),
        # Summer (CEST, UTC+2): 23:00-02:00 UTC.
        (datetime(2026, 3, 30, tzinfo=UTC), [("29 23:00", "30 02:00"), ("30 23:00", "open")]),
        # Fall back on 25 October at 03:00: 02:00-03:00 shows twice, both inside, so
        # the window is four hours long, 23:00-03:00 UTC.
        (datetime(2026, 10, 25, tzinfo=UTC), [("24 23:00", "25 03:00")]),
        (datetime(2026, 10, 26, tzinfo=UTC), [("26 00:00", "26 03:00")]),
    ],
)
def test_a_recurring_silence_across_dst_changes(
    day: datetime, spans: list[tuple[str, str]]
) -> None:
    assert muted_minutes(recurring(), day_utc=day) == spans


def test_a_recurring_silence_only_within_its_starts_and_ends() -> None:
    bounded = recurring(
        starts_at=datetime(2026, 3, 29, 0, 30, tzinfo=UTC),
        ends_at=datetime(2026, 3, 29, 23, 30, tzinfo=UTC),
    )
    assert muted_minutes(bounded, day_utc=datetime(2026, 3, 29, tzinfo=UTC)) == [
        ("29 00:30", "29 02:00"),
        ("29 23:00", "29 23:30"),
    ]
    between = datetime(2026, 3, 29, 12, tzinfo=UTC)
    assert in_force(bounded, between)
    assert not active(bounded, between)
    expired = recurring(expired_at=datetime(2026, 3, 29, 1, tzinfo=UTC))
    assert active(expired, datetime(2026, 3, 29, 0, 59, tzinfo=UTC))
    assert not active(expired, datetime(2026, 3, 29, 1, tzinfo=UTC))
