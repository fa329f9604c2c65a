"""From one cycle's observations to alerts and notifications, ready to commit.

Invariants:
- Decisions are the pure functions of `relay.domain` (rules, windows, silences,
  routes, dispatch); this module only gathers what they need: failure causes (following child
  executions through `/nestings`, a bounded number of calls per cycle), the executions
  of the windows, the active silences, the acknowledgements and, for reminders and
  resolves, the alert as stored (what its firing's routes held back) from the store.
- A reminder of an acknowledged alert is dropped here (`relay.domain.acks`); the
  acknowledgement is in the store, so every replica that leads the source sees it.
- Nothing here writes: the plan is committed by the engine with the cycle's states, in
  the same transaction, so an alert is queued if and only if its cause is recorded.
- A failure to follow a child execution never loses the alert: it keeps the cause
  found in the execution itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from relay.domain.acks import without_acknowledged_reminders
from relay.domain.alerts import Alert, FailureCause, Notification
from relay.domain.cause import deepest_cause, failure_cause, needs_nestings
from relay.domain.detect import live_after
from relay.domain.dispatch import as_firing, notifications_for
from relay.domain.redact import Redactor
from relay.domain.routes import Route
from relay.domain.rules import RuleContext, evaluate_running, evaluate_transitions
from relay.domain.silences import Silence
from relay.domain.state import TrackedExecution, Transition
from relay.domain.windows import GroupState, evaluate_windows
from relay.errors import SourceError
from relay.settings import AlertsSettings, RuleSettings
from relay.source.client import ZaiaClient
from relay.store.base import Store
from relay.time_intervals import TimeInterval
from relay.vocab import NotificationKind

log = structlog.get_logger("relay.pipeline.alerting")

DEFAULT_MAX_NESTINGS_PER_CYCLE = 10
DEFAULT_NESTINGS_BUDGET_S = 10.0


@dataclass(frozen=True)
class AlertPlan:
    """What one cycle alerts on: every alert to record (silenced ones included, marked),
    the notifications to enqueue, and the windowed groups whose state moved."""

    alerts: tuple[Alert, ...] = ()
    notifications: tuple[Notification, ...] = ()
    group_states: tuple[GroupState, ...] = ()
    kinds: Mapping[str, NotificationKind] = field(default_factory=dict)

    @property
    def resolved(self) -> tuple[Alert, ...]:
        return tuple(a for a in self.alerts if self.kinds.get(a.id) == "resolved")


class AlertPlanner:
    """Evaluates the rules of one source after each cycle."""

    def __init__(
        self,
        *,
        source: str,
        rules: Sequence[RuleSettings],
        alerts: AlertsSettings,
        config_silences: Sequence[Silence],
        client: ZaiaClient,
        store: Store,
        routes: Sequence[Route] = (),
        intervals: Mapping[str, TimeInterval] | None = None,
        max_nestings_per_cycle: int = DEFAULT_MAX_NESTINGS_PER_CYCLE,
        nestings_budget_s: float = DEFAULT_NESTINGS_BUDGET_S,
        responder_names: Mapping[str, str] | None = None,
        targets: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._source = source
        self._targets = dict(targets or {})
        self._responder_names = dict(responder_names or {})
        self._rules = list(rules)
        self._routes = tuple(routes)
        self._intervals = dict(intervals or {})
        self._alerts_settings = alerts
        self._redactor = Redactor.from_settings(alerts)
        self._config_silences = list(config_silences)
        self._client = client
        self._store = store
        self._max_nestings = max_nestings_per_cycle
        self._nestings_budget_s = nestings_budget_s
        windows = [rule.window for rule in self._rules if rule.window is not None]
        self._longest_window: timedelta | None = max(windows) if windows else None

    async def plan(
        self,
        *,
        now: datetime,
        transitions: Sequence[Transition],
        changed: Mapping[str, TrackedExecution],
        running_before: Mapping[str, TrackedExecution],
    ) -> AlertPlan:
        if not self._rules:
            return AlertPlan()
        ctx = RuleContext(
            source=self._source,
            now=now,
            link_template=self._alerts_settings.link_template,
            redactor=self._redactor,
            responder_names=self._responder_names,
        )
        causes = await self._causes(transitions)
        per_execution = evaluate_transitions(self._rules, transitions, ctx=ctx, causes=causes)
        running_now = list(live_after(running_before, changed).values())
        per_execution += evaluate_running(self._rules, running_now, ctx=ctx)

        triples: list[tuple[Alert, NotificationKind, int]] = as_firing(per_execution)
        group_states: list[GroupState] = []
        if self._longest_window is not None:
            outcome = evaluate_windows(
                self._rules,
                await self._window_executions(now=now, changed=changed, running=running_now),
                await self._store.load_group_states(self._source),
                ctx=ctx,
            )
            triples += await self._unacknowledged(outcome.alerts)
            group_states = outcome.states

        if not triples:
            return AlertPlan(group_states=tuple(group_states))
        silences = self._config_silences + await self._store.list_silences(now=now)
        # A reminder or resolve follows what its firing did per sink: the stored alert says.
        following = [alert.id for alert, kind, _ in triples if kind != "firing"]
        previous = await self._store.load_alerts(following) if following else {}
        dispatch = notifications_for(
            triples,
            self._rules,
            silences=silences,
            now=now,
            routes=self._routes,
            intervals=self._intervals,
            targets=self._targets,
            previous=previous,
        )
        by_id = {alert.id: alert for alert, _, _ in triples}
        by_id.update({alert.id: alert for alert in (*dispatch.silenced, *dispatch.muted)})
        return AlertPlan(
            alerts=tuple(by_id.values()),
            notifications=tuple(dispatch.notifications),
            group_states=tuple(group_states),
            kinds={alert.id: kind for alert, kind, _ in triples},
        )

    async def _unacknowledged(
        self, triples: Sequence[tuple[Alert, NotificationKind, int]]
    ) -> list[tuple[Alert, NotificationKind, int]]:
        """The windows' notifications minus reminders of acknowledged alerts. The group
        state still counts the skipped reminder, so none is owed later."""
        reminded = [alert.id for alert, kind, _ in triples if kind == "reminder"]
        if not reminded:
            return list(triples)
        acknowledged = await self._store.acknowledged_among(reminded)
        return without_acknowledged_reminders(triples, acknowledged)

    async def _causes(self, transitions: Sequence[Transition]) -> dict[str, FailureCause]:
        """Failure causes that need a child execution: followed through `/nestings`.

        Best effort within a budget: one attempt per call, at most `max_nestings` calls
        and `nestings_budget_s` in all, and none after the API said it is unavailable
        or busy. Whatever is not followed keeps the cause found in the execution itself,
        so a slow `/nestings` can delay no alert. A 429 here slows the source but never
        delays its next read (the client and its gate see to that)."""
        wanted = [
            t.execution
            for t in transitions
            if t.alertable
            and t.to_status == "failed"
            and needs_nestings(failure_cause(t.execution, redactor=self._redactor), t.execution)
        ][: self._max_nestings]
        causes: dict[str, FailureCause] = {}
        try:
            async with asyncio.timeout(self._nestings_budget_s):
                for execution in wanted:
                    tree = await self._client.get_nestings(execution.id, retry=False)
                    deeper = deepest_cause(tree, redactor=self._redactor)
                    if deeper is not None:
                        causes[execution.id] = deeper
        except (SourceError, TimeoutError) as exc:
            log.warning(
                "cause.nestings_stopped",
                source=self._source,
                followed=len(causes),
                wanted=len(wanted),
                error=str(exc) or "took longer than its budget",
                hint="alerts keep the cause found in the execution itself",
            )
        return causes

    async def _window_executions(
        self,
        *,
        now: datetime,
        changed: Mapping[str, TrackedExecution],
        running: Sequence[TrackedExecution],
    ) -> list[TrackedExecution]:
        """Executions that ended within the longest window, or still run, as of this cycle
        (stored ones overlaid with what this cycle changed)."""
        assert self._longest_window is not None
        since = now - self._longest_window
        merged = {s.id: s for s in await self._store.ended_since(self._source, since)}
        for state in changed.values():
            ended_recently = state.ended_at is not None and state.ended_at >= since
            if ended_recently and not state.is_running:
                merged[state.id] = state
            else:
                merged.pop(state.id, None)
        merged.update({s.id: s for s in running})
        return list(merged.values())
