"""Alerts, notifications and group states in commit_cycle; listing; pruning; ended_since."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from relay.domain.alerts import (
    Alert,
    ExecutionFacts,
    MutedRoute,
    Notification,
    execution_alert_id,
    group_alert_id,
)
from relay.domain.state import SourceCursor, TrackedExecution, Transition
from relay.domain.windows import GroupState
from relay.errors import StoreError
from relay.store import CommitOutcome, CycleResult, OutboxCounts, Store
from relay.vocab import AlertState, NotificationKind
from tests import store_backends
from tests.store_backends import Backend
from tests.test_store_sqlite import T0, make_execution, make_state, make_transition

# Every test taking `store` runs on SQLite and on PostgreSQL.
backend, store = store_backends.backend, store_backends.store


def make_alert(
    execution_id: str = "exec-1",
    *,
    rule: str = "execution-failed",
    source: str = "prod",
    at: datetime = T0,
    summary: str = "Agent failed",
) -> Alert:
    """A per-execution alert."""
    return Alert(
        id=execution_alert_id(rule=rule, source=source, execution_id=execution_id),
        rule=rule,
        severity="critical",
        state="firing",
        source=source,
        summary=summary,
        description=f"{execution_id} failed",
        started_at=at,
        labels={"rule": rule, "severity": "critical", "source": source, "type": "agent"},
        execution=ExecutionFacts(
            id=execution_id,
            kind="agent",
            status="failed",
            responder_id="resp-1",
            agent_id="agent-1",
            workflow_id=None,
            parent_id=None,
            origin_type="api",
            credits_used=2.5,
            started_at=at - timedelta(minutes=1),
            ended_at=at,
        ),
    )


def make_window_alert(
    *,
    rule: str = "agent-failure-rate",
    source: str = "prod",
    group_key: str = "responder_id=resp-1",
    episode: int = 1,
    state: AlertState = "firing",
    at: datetime = T0,
    value: float = 0.5,
) -> Alert:
    """One episode of a windowed group."""
    return Alert(
        id=group_alert_id(rule=rule, source=source, group_key=group_key, episode=episode),
        rule=rule,
        severity="critical",
        state=state,
        source=source,
        summary=f"failure ratio {value:.0%}",
        description="",
        started_at=at,
        labels={"rule": rule, "severity": "critical", "source": source},
        group={"responder_id": "resp-1"},
        value=value,
        ended_at=at if state == "resolved" else None,
    )


def notify(
    alert: Alert,
    *sinks: str,
    kind: NotificationKind = "firing",
    at: datetime = T0,
    sequence: int = 0,
) -> list[Notification]:
    return [
        Notification.about(alert, sink=s, kind=kind, created_at=at, sequence=sequence)
        for s in sinks or ("oncall",)
    ]


def alert_cycle(
    alerts: Sequence[Alert] = (),
    notifications: Sequence[Notification] = (),
    *,
    states: Sequence[TrackedExecution] = (),
    transitions: Sequence[Transition] = (),
    group_states: Sequence[GroupState] = (),
    source: str = "prod",
    at: datetime = T0,
) -> CycleResult:
    return CycleResult(
        source=source,
        states=list(states),
        transitions=list(transitions),
        cursor=SourceCursor(source=source, first_poll_done=True, last_success_at=at),
        alerts=list(alerts),
        notifications=list(notifications),
        group_states=list(group_states),
    )


def group_state(
    group_key: str = "responder_id=resp-1",
    *,
    rule: str = "agent-failure-rate",
    source: str = "prod",
    firing: bool = True,
    episode: int = 1,
    value: float | None = 0.5,
) -> GroupState:
    return GroupState(
        rule=rule,
        source=source,
        group_key=group_key,
        group={"responder_id": group_key.partition("=")[2]},
        firing=firing,
        episode=episode,
        fired_at=T0 if episode else None,
        last_notified_at=T0 + timedelta(seconds=1) if episode else None,
        reminders_sent=2 if episode else 0,
        value=value,
        resolved_at=None if firing or not episode else T0 + timedelta(minutes=3),
    )


# --- commit_cycle -----------------------------------------------------------------------


async def test_alert_and_its_notifications_commit_together(store: Store) -> None:
    alert = make_alert()
    failed = make_execution("exec-1", status="failed", ended_at=T0, error="boom")
    state = TrackedExecution.from_execution(failed, source="prod", now=T0)
    at = T0 + timedelta(seconds=2)

    outcome = await store.commit_cycle(
        alert_cycle(
            [alert],
            notify(alert, "oncall", "finops", at=at),
            states=[state],
            transitions=[make_transition(failed)],
            at=at,
        )
    )

    assert outcome == CommitOutcome(new_alert_ids=frozenset({alert.id}), enqueued=2)
    stored = await store.get_alert(alert.id)
    assert stored is not None
    assert stored.alert == alert
    assert (stored.created_at, stored.updated_at) == (at, at)
    assert [(d.sink, d.kind, d.status, d.attempts) for d in stored.deliveries] == [
        ("oncall", "firing", "pending", 0),
        ("finops", "firing", "pending", 0),
    ]
    assert stored.notified_sinks == frozenset()
    assert await store.outbox_counts() == {
        "finops": OutboxCounts(1, 0),
        "oncall": OutboxCounts(1, 0),
    }
    assert await store.get_alert("alert_unknown") is None


async def test_a_per_execution_alert_fires_once(store: Store, backend: Backend) -> None:
    first = make_alert(summary="first")
    outcome = await store.commit_cycle(alert_cycle([first], notify(first, "oncall")))
    assert outcome == CommitOutcome(new_alert_ids=frozenset({first.id}), enqueued=1)
    [item] = await store.claim_due("oncall", now=T0, limit=10, lease_s=30)
    await store.mark_delivered("oncall", [item.notification.id], now=T0)

    # The same rule and execution again (a replay, or a rule re-evaluated after a
    # restart): the stored alert stays, and nothing is enqueued for it, not even for a
    # sink that never had it.
    again = make_alert(summary="second")
    later = T0 + timedelta(minutes=1)
    outcome = await store.commit_cycle(
        alert_cycle([again], notify(again, "oncall", "finops", at=later), at=later)
    )

    assert outcome == CommitOutcome(new_alert_ids=frozenset(), enqueued=0)
    stored = await store.get_alert(first.id)
    assert stored is not None
    assert stored.alert == first
    # Raised again means still live: only its last-seen time moves (see prune).
    assert (stored.created_at, stored.updated_at) == (T0, later)
    assert stored.notified_sinks == {"oncall"}
    assert await backend.outbox_rows() == [(item.notification.id, "oncall", "delivered")]
    assert await store.get_alert("alert_unknown") is None


async def test_a_windowed_alert_follows_its_group(store: Store) -> None:
    firing = make_window_alert(value=0.4)
    await store.commit_cycle(alert_cycle([firing], notify(firing, "oncall")))
    reminder_at = T0 + timedelta(minutes=30)
    worse = replace(firing, value=0.6)
    reminder = notify(worse, "oncall", kind="reminder", at=reminder_at, sequence=1)
    outcome = await store.commit_cycle(alert_cycle([worse], reminder, at=reminder_at))
    assert outcome == CommitOutcome(new_alert_ids=frozenset(), enqueued=1)

    resolved_at = T0 + timedelta(hours=1)
    resolved = replace(firing, state="resolved", ended_at=resolved_at, value=0.05)
    outcome = await store.commit_cycle(
        alert_cycle(
            [resolved], notify(resolved, "oncall", kind="resolved", at=resolved_at), at=resolved_at
        )
    )

    assert outcome == CommitOutcome(new_alert_ids=frozenset(), enqueued=1)
    stored = await store.get_alert(firing.id)
    assert stored is not None
    assert stored.alert == resolved
    assert (stored.created_at, stored.updated_at) == (T0, resolved_at)
    assert [d.kind for d in stored.deliveries] == ["firing", "reminder", "resolved"]
    assert len({d.notification_id for d in stored.deliveries}) == 3
    # The next episode of the same group is another alert.
    next_episode = make_window_alert(episode=2, at=resolved_at + timedelta(hours=1))
    outcome = await store.commit_cycle(alert_cycle([next_episode], at=resolved_at))
    assert outcome.new_alert_ids == {next_episode.id} != {firing.id}


async def test_load_alerts_gives_the_stored_versions_by_id(store: Store) -> None:
    held = MutedRoute(route="page", sinks=("pagerduty",), reason="in weekends")
    firing = replace(make_window_alert(), muted=(held,))
    other = make_alert()
    await store.commit_cycle(alert_cycle([firing, other], notify(other, "oncall")))
    reminded = replace(firing, value=0.7)  # an update in place keeps what it is given
    await store.commit_cycle(alert_cycle([reminded], at=T0 + timedelta(minutes=5)))

    assert await store.load_alerts([]) == {}
    assert await store.load_alerts([firing.id, "alert_unknown", other.id, firing.id]) == {
        firing.id: reminded,
        other.id: other,
    }
    assert (await store.load_alerts([firing.id]))[firing.id].muted == (held,)


async def test_notifications_are_deduped_by_id_and_sink(store: Store, backend: Backend) -> None:
    alert = make_window_alert()
    twice = notify(alert, "oncall", "finops") + notify(alert, "oncall")
    outcome = await store.commit_cycle(alert_cycle([alert], twice))
    assert outcome.enqueued == 2
    # A replayed cycle enqueues nothing, whatever the notification's creation time.
    replayed = notify(alert, "oncall", "finops", at=T0 + timedelta(minutes=5))
    outcome = await store.commit_cycle(alert_cycle([alert], replayed))
    assert outcome == CommitOutcome(new_alert_ids=frozenset(), enqueued=0)
    message = twice[0].id
    assert await backend.outbox_rows() == [
        (message, "oncall", "pending"),
        (message, "finops", "pending"),
    ]


async def test_a_notification_brings_its_alert(store: Store) -> None:
    # The outbox never holds a notification whose alert is unknown, even when the
    # caller forgot to list the alert itself.
    alert = make_alert("exec-9")
    outcome = await store.commit_cycle(alert_cycle([], notify(alert, "oncall")))
    assert outcome == CommitOutcome(new_alert_ids=frozenset({alert.id}), enqueued=1)
    stored = await store.get_alert(alert.id)
    assert stored is not None
    assert stored.alert == alert


async def test_silenced_alerts_are_recorded_without_notifications(store: Store) -> None:
    silenced = replace(make_alert(), silenced_by="sil_1")
    outcome = await store.commit_cycle(alert_cycle([silenced]))
    assert outcome == CommitOutcome(new_alert_ids=frozenset({silenced.id}), enqueued=0)
    stored = await store.get_alert(silenced.id)
    assert stored is not None
    assert stored.alert.silenced_by == "sil_1"
    assert stored.deliveries == ()


async def test_a_failing_commit_stores_nothing(store: Store, backend: Backend) -> None:
    alert = make_alert()
    broken = replace(make_state("exec-broken"), responder_id=None)  # violates NOT NULL
    bad = alert_cycle(
        [alert, make_window_alert()],
        notify(alert, "oncall", "finops"),
        states=[make_state("exec-good"), broken],
        transitions=[make_transition(make_execution("exec-1", status="failed", ended_at=T0))],
        group_states=[group_state()],
    )

    with pytest.raises(StoreError, match="cannot commit a poll cycle"):
        await store.commit_cycle(bad)

    assert await store.state_count() == 0
    assert await store.transition_count() == 0
    assert await store.get_cursor("prod") is None
    assert (await store.list_alerts()).alerts == []
    assert await store.outbox_counts() == {}
    assert await backend.outbox_rows() == []
    assert await store.load_group_states("prod") == {}
    # Nothing half-done either: the same cycle, repaired, stores everything once.
    good = replace(bad, states=[make_state("exec-good")])
    outcome = await store.commit_cycle(good)
    assert outcome.enqueued == 2
    assert len(outcome.new_alert_ids) == 2
    naive = replace(make_state("exec-2"), last_seen_at=datetime(2026, 3, 1, 12, 0))
    with pytest.raises(ValueError, match="naive datetime"):
        await store.commit_cycle(alert_cycle(states=[naive]))


def test_cycle_results_check_sources_and_time() -> None:
    with pytest.raises(ValueError, match="staging"):
        alert_cycle([make_alert(source="staging")])
    with pytest.raises(ValueError, match="staging"):
        alert_cycle([], notify(make_alert(source="staging")))
    with pytest.raises(ValueError, match="staging"):
        alert_cycle(group_states=[group_state(source="staging")])
    timeless = SourceCursor(source="prod", first_poll_done=True, last_success_at=None)
    with pytest.raises(ValueError, match="last_success_at"):
        CycleResult(
            source="prod", states=[], transitions=[], cursor=timeless, alerts=[make_alert()]
        )
    # Without alerts a cycle needs no time (the baseline of a first poll).
    CycleResult(source="prod", states=[], transitions=[], cursor=timeless)


# --- group states -----------------------------------------------------------------------


async def test_group_states_round_trip_and_replace(store: Store) -> None:
    fields = {f.name for f in dataclasses.fields(GroupState)}
    assert fields == {
        "rule", "source", "group_key", "group", "firing", "episode", "fired_at",
        "last_notified_at", "reminders_sent", "value", "resolved_at",
    }  # fmt: skip
    one, two = group_state("responder_id=resp-1"), group_state("responder_id=resp-2", value=None)
    other_rule = group_state(rule="credit-burn", firing=False, episode=0, value=None)
    await store.commit_cycle(alert_cycle(group_states=[one, two, other_rule]))
    staging = group_state(source="staging")
    await store.commit_cycle(alert_cycle(group_states=[staging], source="staging"))

    loaded = await store.load_group_states("prod")

    assert loaded == {
        ("agent-failure-rate", "responder_id=resp-1"): one,
        ("agent-failure-rate", "responder_id=resp-2"): two,
        ("credit-burn", "responder_id=resp-1"): other_rule,
    }
    resolved = replace(one, firing=False, resolved_at=T0 + timedelta(hours=1), value=0.01)
    await store.commit_cycle(alert_cycle(group_states=[resolved]))
    loaded = await store.load_group_states("prod")
    assert loaded[("agent-failure-rate", "responder_id=resp-1")] == resolved
    assert len(loaded) == 3
    assert await store.load_group_states("staging") == {
        ("agent-failure-rate", staging.group_key): staging
    }
    assert await store.load_group_states("nowhere") == {}


# --- ended_since ------------------------------------------------------------------------


async def test_ended_since(store: Store) -> None:
    states = [
        make_state("old", status="failed", ended_at=T0 - timedelta(minutes=20)),
        make_state("edge", status="completed", ended_at=T0 - timedelta(minutes=15)),
        make_state("late", status="failed", ended_at=T0 - timedelta(minutes=1)),
        make_state("mid", status="cancelled", ended_at=T0 - timedelta(minutes=5)),
        make_state("running"),
        replace(make_state("gone", status="failed", ended_at=T0), status="vanished"),
    ]
    await store.commit_cycle(alert_cycle(states=states))
    staging = make_state("s", source="staging", status="failed", ended_at=T0)
    await store.commit_cycle(alert_cycle(states=[staging], source="staging"))

    ended = await store.ended_since("prod", T0 - timedelta(minutes=15))

    assert [s.id for s in ended] == ["edge", "mid", "late", "gone"]
    assert ended[1] == states[3]
    assert await store.ended_since("prod", T0 + timedelta(seconds=1)) == []


# --- listing ----------------------------------------------------------------------------


async def _commit_alerts(
    store: Store, count: int, *, start: datetime = T0, prefix: str = "exec"
) -> list[Alert]:
    # Two alerts a cycle, so pages must break ties between alerts stored together.
    alerts: list[Alert] = []
    for n in range(0, count, 2):
        at = start + timedelta(minutes=n)
        batch = [make_alert(f"{prefix}-{n + k:03d}", at=at) for k in range(min(2, count - n))]
        await store.commit_cycle(alert_cycle(batch, at=at))
        alerts += batch
    return alerts


async def test_list_alerts_pages_newest_first(store: Store) -> None:
    alerts = await _commit_alerts(store, 25)
    expected = sorted(alerts, key=lambda a: (a.started_at, a.id), reverse=True)

    seen: list[str] = []
    cursor: str | None = None
    for page_number in range(10):
        page = await store.list_alerts(limit=10, before=cursor)
        seen += [s.alert.id for s in page.alerts]
        if page_number == 0:
            # Alerts arriving between pages never shift the pages that follow.
            await _commit_alerts(store, 4, start=T0 + timedelta(days=1), prefix="new")
        cursor = page.next_cursor
        if cursor is None:
            break

    assert seen == [a.id for a in expected]
    assert page_number == 2
    assert len((await store.list_alerts(limit=100)).alerts) == 29
    exact = await store.list_alerts(limit=29)
    assert exact.next_cursor is None
    assert (await store.list_alerts(limit=0)).alerts == []


async def test_list_alerts_filters(store: Store) -> None:
    await _commit_alerts(store, 4)
    other_rule = make_alert("exec-x", rule="expensive-execution", at=T0 + timedelta(hours=1))
    staging = make_alert("exec-s", source="staging", at=T0 + timedelta(hours=1))
    window = make_window_alert(at=T0)
    await store.commit_cycle(alert_cycle([other_rule, window], at=T0 + timedelta(hours=1)))
    await store.commit_cycle(alert_cycle([staging], source="staging", at=T0 + timedelta(hours=1)))
    resolved_at = T0 + timedelta(hours=2)
    resolved = replace(window, state="resolved", ended_at=resolved_at)
    await store.commit_cycle(alert_cycle([resolved], at=resolved_at))

    async def ids(**filters: object) -> list[str]:
        page = await store.list_alerts(**filters)  # type: ignore[arg-type]
        return [s.alert.id for s in page.alerts]

    assert await ids(rule="expensive-execution") == [other_rule.id]
    assert await ids(state="resolved") == [window.id]
    assert len(await ids(state="firing")) == 6
    assert await ids(source="staging") == [staging.id]
    # `since` keeps what was created or changed since: the resolve counts.
    assert await ids(since=T0 + timedelta(hours=2)) == [window.id]
    assert sorted(await ids(since=T0 + timedelta(minutes=30))) == sorted(
        [other_rule.id, window.id, staging.id]
    )
    page = await store.list_alerts(rule="execution-failed", limit=2)
    assert page.next_cursor is not None
    rest = await store.list_alerts(rule="execution-failed", limit=10, before=page.next_cursor)
    assert len(page.alerts) + len(rest.alerts) == 5  # staging's too
    assert rest.next_cursor is None


@pytest.mark.parametrize("cursor", ["nonsense!", "", "WyJ4Il0", "WyJub3QgYSB0aW1lIiwieCJd"])
async def test_malformed_cursors_are_refused(store: Store, cursor: str) -> None:
    with pytest.raises(ValueError, match="malformed alert cursor"):
        await store.list_alerts(before=cursor)


# --- prune ------------------------------------------------------------------------------


async def test_prune_keeps_alerts_still_to_deliver(store: Store) -> None:
    delivered, pending, dead, silenced = (make_alert(f"exec-{n}") for n in range(4))
    firing_window = make_window_alert(group_key="responder_id=resp-1")
    resolved_window = make_window_alert(group_key="responder_id=resp-2", state="resolved")
    notifications = [
        *notify(delivered, "oncall"),
        *notify(pending, "oncall"),
        *notify(dead, "oncall", "finops"),
    ]
    await store.commit_cycle(
        alert_cycle(
            [delivered, pending, dead, silenced, firing_window, resolved_window], notifications
        )
    )
    ids = {n.alert.id: n.id for n in notifications}
    await store.mark_delivered("oncall", [ids[delivered.id], ids[dead.id]], now=T0)
    await store.claim_due("finops", now=T0, limit=10, lease_s=30)
    await store.mark_dead("finops", ids[dead.id], reason="410 Gone", now=T0)
    recent = make_alert("exec-recent", at=T0 + timedelta(days=8))
    await store.commit_cycle(alert_cycle([recent], at=T0 + timedelta(days=8)))

    result = await store.prune(before=T0 + timedelta(days=7))

    assert (result.alerts_deleted, result.notifications_deleted) == (3, 2)
    left = {s.alert.id for s in (await store.list_alerts()).alerts}
    assert left == {pending.id, dead.id, firing_window.id, recent.id}
    assert await store.outbox_counts() == {
        "finops": OutboxCounts(0, 1),
        "oncall": OutboxCounts(1, 0),
    }
    # Once delivered (or purged), they go with the next prune.
    await store.mark_delivered("oncall", [ids[pending.id]], now=T0 + timedelta(days=1))
    await store.purge_dead(sink="finops")
    result = await store.prune(before=T0 + timedelta(days=7))
    assert (result.alerts_deleted, result.notifications_deleted) == (2, 1)
    left = {s.alert.id for s in (await store.list_alerts()).alerts}
    assert left == {firing_window.id, recent.id}


async def test_prune_keeps_group_states_that_fired(store: Store) -> None:
    states = [
        group_state("responder_id=a", firing=True, episode=3),
        group_state("responder_id=b", firing=False, episode=2),
        group_state("responder_id=c", firing=False, episode=0),
    ]
    await store.commit_cycle(alert_cycle(group_states=states))
    fresh = group_state("responder_id=d", firing=False, episode=0)
    await store.commit_cycle(alert_cycle(group_states=[fresh], at=T0 + timedelta(days=8)))

    result = await store.prune(before=T0 + timedelta(days=7))

    assert result.group_states_deleted == 1
    left = await store.load_group_states("prod")
    assert sorted(key for _, key in left) == ["responder_id=a", "responder_id=b", "responder_id=d"]


async def test_an_alert_raised_again_is_not_pruned_so_it_never_fires_anew(
    store: Store,
) -> None:
    # A stuck execution: `running_for` raises the same alert every cycle for days.
    stuck = make_alert("exec-stuck", rule="stuck-execution")
    first = await store.commit_cycle(alert_cycle([stuck], notify(stuck, "oncall")))
    assert first.enqueued == 1
    later = T0 + timedelta(days=9)
    again = await store.commit_cycle(
        alert_cycle([stuck], notify(stuck, "oncall", at=later), at=later)
    )
    assert again.enqueued == 0
    await store.claim_due("oncall", now=later, limit=10, lease_s=30)
    await store.mark_delivered("oncall", [notify(stuck, "oncall")[0].id], now=later)

    await store.prune(before=later - timedelta(days=7))
    after = T0 + timedelta(days=9, minutes=1)
    still = await store.commit_cycle(
        alert_cycle([stuck], notify(stuck, "oncall", at=after), at=after)
    )
    assert (still.new_alert_ids, still.enqueued) == (frozenset(), 0)
