"""Silences: matching, time windows, config ids, validation, and what they do to delivery."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta, timezone
from typing import Any

import pytest

from relay.domain.alerts import Alert
from relay.domain.rules import as_firing, evaluate_transitions, notifications_for
from relay.domain.silences import (
    BEGINNING,
    Silence,
    active,
    config_silence,
    config_silences,
    expire,
    matching_silence,
    new_silence,
)
from relay.domain.windows import GroupState, evaluate_windows
from relay.matchers import Matcher, parse_matcher
from relay.settings import SilenceSettings
from tests.rules_builders import at, context, execution, rule, tracked, transition


def as_matchers(given: dict[str, str] | list[str]) -> tuple[Matcher, ...]:
    """The old map form as equality matchers, or strings in Alertmanager's syntax."""
    if isinstance(given, dict):
        return tuple(Matcher.equal(name, value) for name, value in given.items())
    return tuple(parse_matcher(text) for text in given)


FAILED = rule("failed", status=["failed"], severity="critical", sinks=["oncall", "audit"])


def silence(
    matchers: dict[str, str] | list[str],
    *,
    starts: float = -60,
    ends: float = 60,
    expired: float | None = None,
    silence_id: str = "sil-1",
) -> Silence:
    return Silence(
        id=silence_id,
        matchers=as_matchers(matchers),
        starts_at=at(starts),
        ends_at=at(ends),
        creator="ops@example.com",
        comment="maintenance",
        created_at=at(starts),
        expired_at=None if expired is None else at(expired),
    )


def failed_alert(**kwargs: Any) -> Alert:
    [alert] = evaluate_transitions(
        [FAILED], [transition(execution(status="failed", **kwargs))], ctx=context()
    )
    return alert


# --- time windows -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expired", "expected"),
    [
        (-61, None, False),  # before it starts
        (-60, None, True),  # starts inclusive
        (59.9, None, True),
        (60, None, False),  # ends exclusive
        (120, None, False),  # ended
        (0, 10, True),  # expires later
        (10, 10, False),  # expired now
        (30, 10, False),  # expired earlier
    ],
)
def test_active(now: float, expired: float | None, expected: bool) -> None:
    assert active(silence({"rule": "failed"}, expired=expired), at(now)) is expected


def test_expired_and_ended_silences_do_not_match() -> None:
    alert = failed_alert()
    assert matching_silence(alert, [silence({"rule": "failed"}, expired=-1)], at(0)) is None
    assert matching_silence(alert, [silence({"rule": "failed"}, ends=-1)], at(0)) is None
    assert matching_silence(alert, [silence({"rule": "failed"}, starts=1)], at(0)) is None


def test_expire_keeps_the_first_expiry() -> None:
    s = silence({"rule": "failed"})
    once = expire(s, now=at(5))
    assert once.expired_at == at(5)
    assert expire(once, now=at(9)) is once
    assert not active(once, at(6))


# --- matchers -----------------------------------------------------------------------

MATCHER_CASES = [
    ({"rule": "failed"}, True),
    ({"rule": "other"}, False),
    ({"severity": "critical"}, True),
    ({"severity": "warning"}, False),
    ({"responder_id": "resp-1"}, True),
    ({"responder_id": "resp-2"}, False),
    ({"agent_id": "agent-1"}, True),
    ({"agent_id": "agent-2"}, False),
    ({"workflow_id": "wf-1"}, False),  # an agent execution has no workflow_id label
    ({"type": "agent"}, True),
    ({"type": "workflow"}, False),
    ({"rule": "failed", "responder_id": "resp-1", "type": "agent"}, True),
    ({"rule": "failed", "responder_id": "resp-2"}, False),  # every matcher must match
    ({}, False),  # no matchers never silences everything
]


@pytest.mark.parametrize(("matchers", "matches"), MATCHER_CASES)
def test_each_matcher_key(matchers: dict[str, str], matches: bool) -> None:
    s = silence(matchers)
    assert (matching_silence(failed_alert(), [s], at(0)) == s) is matches


@pytest.mark.parametrize(
    ("matchers", "matches"),
    [
        ({"workflow_id": "wf-7"}, True),
        ({"workflow_id": "wf-8"}, False),
        ({"type": "workflow"}, True),
    ],
)
def test_workflow_matchers(matchers: dict[str, str], matches: bool) -> None:
    alert = failed_alert(kind="workflow", workflow_id="wf-7")
    assert (matching_silence(alert, [silence(matchers)], at(0)) is not None) is matches


def test_windowed_alerts_match_on_their_group_labels() -> None:
    ratio = rule("ratio", window="15m", group_by=["responder_id"], count={"gte": 1})
    state = tracked(execution(status="failed", ended=5, responder_id="resp-1"))
    [(alert, _, _)] = evaluate_windows([ratio], [state], {}, ctx=context(10)).alerts
    assert matching_silence(alert, [silence({"responder_id": "resp-1"})], at(0)) is not None
    # Not grouped by agent: the alert has no agent_id label, so such a silence cannot match.
    assert matching_silence(alert, [silence({"agent_id": "agent-1"})], at(0)) is None


def test_the_silence_ending_last_is_reported_whatever_the_order() -> None:
    short = silence({"rule": "failed"}, ends=10, silence_id="a")
    long = silence({"type": "agent"}, ends=90, silence_id="b")
    other = silence({"rule": "nope"}, ends=500, silence_id="c")
    alert = failed_alert()
    assert matching_silence(alert, [short, long, other], at(0)) == long
    assert matching_silence(alert, [other, long, short], at(0)) == long


# --- notifications ------------------------------------------------------------------


def test_one_notification_per_sink() -> None:
    alert = failed_alert()
    notifications, silenced, _ = notifications_for(
        as_firing([alert]), [FAILED], silences=[], now=at(1)
    )
    assert [n.sink for n in notifications] == ["oncall", "audit"]
    assert {n.kind for n in notifications} == {"firing"}
    assert all(n.alert == alert and n.created_at == at(1) for n in notifications)
    assert len({(n.id, n.sink) for n in notifications}) == 2
    assert silenced == []


def test_a_silenced_alert_is_recorded_not_sent() -> None:
    alert = failed_alert()
    s = silence({"rule": "failed"})
    notifications, silenced, _ = notifications_for(
        as_firing([alert]), [FAILED], silences=[s], now=at(0)
    )
    assert notifications == []
    assert silenced == [replace(alert, silenced_by="sil-1")]


def test_alerts_of_unknown_rules_go_nowhere() -> None:
    alert = failed_alert()
    dispatch = notifications_for(as_firing([alert]), [], silences=[], now=at(0))
    assert dispatch.notifications == []
    assert dispatch.silenced == []


def test_expiring_a_silence_does_not_replay_what_it_silenced() -> None:
    """A windowed group fires under a silence; after the silence expires nothing about the
    silenced firing is sent again, and the next reminder goes out on its own schedule."""
    ratio = rule("ratio", window="1h", count={"gte": 1}, repeat_interval="30m", sinks=["oncall"])
    states = [tracked(execution(status="failed", started=0, ended=1))]
    maintenance = silence({"rule": "ratio"}, starts=0, ends=120)
    previous: dict[tuple[str, str], GroupState] = {}
    sent: list[tuple[str, float]] = []
    muted: list[str] = []
    for minute in (2, 10, 20, 25, 31, 40, 50, 59):
        if minute == 25:
            maintenance = expire(maintenance, now=at(minute))
        outcome = evaluate_windows([ratio], states, previous, ctx=context(minute))
        previous |= {s.key: s for s in outcome.states}
        notifications, silenced, _ = notifications_for(
            outcome.alerts, [ratio], silences=[maintenance], now=at(minute)
        )
        sent.extend((n.kind, minute) for n in notifications)
        muted.extend(a.id for a in silenced)
    assert len(muted) == 1  # the firing at minute 2
    assert sent == [("reminder", 40)]  # 30m after the (silenced) firing, not at expiry


# --- config and runtime silences -----------------------------------------------------


def _settings(**overrides: Any) -> SilenceSettings:
    raw: dict[str, Any] = {
        "matchers": {"rule": "credit-burn"},
        "starts": "2026-12-01T00:00:00Z",
        "ends": "2026-12-01T06:00:00Z",
    }
    return SilenceSettings.model_validate(raw | overrides)


def test_config_silences_have_stable_content_derived_ids() -> None:
    first = config_silence(_settings())
    assert first == config_silence(_settings())
    assert first.id.startswith("cfg_")
    assert first.origin == "config"
    assert first.matchers == (Matcher.equal("rule", "credit-burn"),)
    assert first.starts_at.isoformat() == "2026-12-01T00:00:00+00:00"
    others = [
        _settings(ends="2026-12-01T07:00:00Z"),
        _settings(matchers={"rule": "credit-burn", "severity": "warning"}),
        _settings(comment="db upgrade"),
        _settings(creator="ana"),
        _settings(starts="2026-11-30T00:00:00Z"),
    ]
    ids = {first.id} | {config_silence(s).id for s in others}
    assert len(ids) == 6


def test_a_config_silence_without_start_is_active_from_the_beginning() -> None:
    raw = {"matchers": {"type": "workflow"}, "ends": "2026-12-01T06:00:00Z"}
    [s] = config_silences([SilenceSettings.model_validate(raw)])
    assert s.starts_at == BEGINNING
    assert active(s, at(0))
    assert s.id == config_silences([SilenceSettings.model_validate(raw)])[0].id


def test_new_silence() -> None:
    s = new_silence(
        as_matchers({"responder_id": "resp-1"}),
        ends_at=at(60),
        now=at(0),
        creator="ana",
        comment="deploy",
    )
    assert s.id.startswith("sil_")
    assert (s.starts_at, s.ends_at, s.created_at, s.origin) == (at(0), at(60), at(0), "api")
    rule_r = as_matchers({"rule": "r"})
    assert new_silence(rule_r, ends_at=at(60), now=at(0)).id != s.id
    fixed = new_silence(rule_r, ends_at=at(60), now=at(0), silence_id="given")
    assert fixed.id == "given"


@pytest.mark.parametrize(
    ("matchers", "starts", "ends", "message"),
    [
        ({}, None, 60, "matchers: give at least one"),
        ({"rule": ""}, None, 60, "matchers: every matcher also matches alerts without"),
        (["team!=payments"], None, 60, "silence nearly everything"),
        (["rule=x", "severity=loud"], None, 60, r"matchers\[1\]: severity should be one of"),
        ({"type": "bot"}, None, 60, r"matchers\[0\]: type should be one of agent"),
        ({"rule": "r"}, 30, 10, "ends_at: should be after starts_at"),
        ({"rule": "r"}, -60, -10, "ends_at: is in the past"),
    ],
)
def test_new_silence_problems(
    matchers: dict[str, str] | list[str], starts: float | None, ends: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        new_silence(
            as_matchers(matchers),
            starts_at=None if starts is None else at(starts),
            ends_at=at(ends),
            now=at(0),
        )


def test_new_silence_needs_aware_times() -> None:
    naive = at(60).replace(tzinfo=None)
    with pytest.raises(ValueError, match="time zone"):
        new_silence(as_matchers({"rule": "r"}), ends_at=naive, now=at(0))


def test_new_silence_stores_utc() -> None:
    other_zone = at(60).astimezone(timezone(timedelta(hours=-3)))
    s = new_silence(as_matchers({"rule": "r"}), ends_at=other_zone, now=at(0))
    assert s.ends_at.utcoffset() == timedelta(0)
    assert s.ends_at == at(60)
