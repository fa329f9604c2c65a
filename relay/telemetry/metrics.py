"""The relay's Prometheus metrics, on an injected `CollectorRegistry`.

Invariants:
- Every metric lives on the registry given to `RelayMetrics`; nothing here touches the
  process-global registry, so tests (and two relays in one process) never collide.
- Label values are bounded: source, sink and rule names come from the configuration,
  every other label takes a value from a small fixed set (outcomes, statuses, execution
  types, HTTP status codes). No execution id, alert id or error text is ever a label.
- No secret is ever a label or a value: metrics see names and counts only.
- Counters start at zero for every configured source and sink, so `rate()` and
  `absent()` work from the first scrape instead of after the first event. The outcomes
  they start are `relay.vocab`'s `CYCLE_OUTCOMES` and `NOTIFICATION_OUTCOMES`, the very
  values the poller and the delivery worker are typed to report.
- The exposition leaves out the `*_created` series prometheus_client adds to counters
  and histograms: they double the series count and no dashboard or rule here uses them.

The callbacks match what the rest of the relay calls: `on_cycle` is a `poller.OnCycle`,
`request_counter(source)` is a `source.client.OnRequest`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from relay import __version__
from relay.clock import utcnow
from relay.domain.alerts import Alert
from relay.vocab import (
    CYCLE_OUTCOMES,
    DELIVERY_ERROR_STAGES,
    NOTIFICATION_OUTCOMES,
    TERMINAL_STATUSES,
    CycleOutcome,
    DeliveryErrorStage,
)

if TYPE_CHECKING:
    from relay.delivery.types import DeliveryResult
    from relay.domain.cadence import Plan
    from relay.pipeline.cycle import CycleReport
    from relay.source.client import Endpoint, OnRequest, RequestOutcome

__all__ = [
    "PREFIX",
    "RelayMetrics",
]

PREFIX = "zaia_relay"


def _listed(values: Iterable[str]) -> str:
    return ", ".join(values)


# The help text of each metric, by its name after the prefix.
_HELP = {
    "build": "Version of the running zaia-relay.",
    "responder": "The configured name of a responder (responders:), by source and responder "
    "id, for dashboards to show names; always 1.",
    "poll_cycles": f"Poll cycles run, by source and outcome ({_listed(CYCLE_OUTCOMES)}).",
    "poll_duration_seconds": "Duration of poll cycles, whatever their outcome.",
    "api_requests": "HTTP requests to the Zaia API, by endpoint (list, get, nestings) and "
    'status code ("error" when no response came back: timeout or connection error).',
    "config_last_reload_successful": "Whether the last configuration reload succeeded (1) "
    "or was refused (0); 1 at start.",
    "config_last_reload_success_timestamp_seconds": "Unix time of the last successful "
    "configuration load (the start, or the last reload that succeeded).",
    "last_successful_poll_timestamp_seconds": "Unix time of the end of the last successful "
    "poll cycle (0 before the first).",
    "executions_running": "Executions tracked as running after the last successful poll cycle.",
    "execution_transitions": "Status transitions observed (baseline records of a first start "
    "excluded), by new status and execution type.",
    "responder_executions_ended": "Executions that ended, by responder (agent, squad or "
    "workflow) and final status (baseline records of a first start excluded).",
    "execution_credits": "Credits used by executions that ended, by final status; counted once, "
    "when the end is observed (baseline records of a first start excluded).",
    "invalid_items": "Items of API pages skipped because they did not match the documented schema.",
    "alerts": "Alerts raised (firing) and resolved, by rule and severity.",
    "alerts_muted": "Alerts a route held back because of its mute_time_intervals or "
    "active_time_intervals (recorded, never sent nor replayed), by route; counted when "
    "the alert is first recorded.",
    "notifications": "Notifications by what became of them when their turn came, by sink and "
    f"outcome ({_listed(NOTIFICATION_OUTCOMES)}): retry is a failure rescheduled, dead one "
    "given up (moved to the dead letters), silenced one a silence matched (not sent).",
    "delivery_errors": "Errors of the relay's own that a delivery worker contained (logged "
    f"and backed off, the process went on), by sink and stage ({_listed(DELIVERY_ERROR_STAGES)})"
    ": step is a whole step, settle the outcome of one message.",
    "notification_duration_seconds": "Duration of delivery attempts (one request to the sink, "
    "which may carry a digest of several notifications), whatever the outcome.",
    "detection_latency_seconds": "Time from an execution's end (as the API reports it) to its "
    "alert being queued for delivery.",
    "outbox_pending": "Notifications waiting in the outbox for delivery, by sink.",
    "poll_staleness_seconds": "The longest any execution tracked as running has gone unread "
    "(adaptive polling); poll_interval bounds it while the request budget allows.",
    "request_budget_per_minute": "The request budget of a source: the most API requests in any "
    "rolling minute (0: no ceiling).",
    "request_rate_per_minute": "The request rate a source allows itself now: its budget, or "
    "less for a while after the API answered 429.",
    "dead_letters": "Notifications given up on (dead letters) awaiting an operator, by sink.",
}

# Poll cycles read a few pages: tens of milliseconds on a quiet workspace, seconds when
# the API is slow; the top buckets sit around the default cycle timeout (60 s).
_POLL_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
_SEND_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Detection latency is bounded below by the poll interval (15 s by default) and grows
# with retries and outages; a backfill on first start can report hours.
_LATENCY_BUCKETS_S = (1, 2.5, 5, 10, 15, 20, 30, 45, 60, 120, 300, 900, 3600)


def _counter(registry: CollectorRegistry, name: str, *labels: str) -> Counter:
    return Counter(f"{PREFIX}_{name}", _HELP[name], labels, registry=registry)


def _gauge(registry: CollectorRegistry, name: str, *labels: str) -> Gauge:
    return Gauge(f"{PREFIX}_{name}", _HELP[name], labels, registry=registry)


def _histogram(
    registry: CollectorRegistry, name: str, *labels: str, buckets: Sequence[float]
) -> Histogram:
    return Histogram(f"{PREFIX}_{name}", _HELP[name], labels, buckets=buckets, registry=registry)


def _start_at_zero(
    name: str,
    *,
    by_outcome: tuple[Counter, Sequence[str]],
    others: Sequence[Counter | Gauge | Histogram],
) -> None:
    """The series of a source or sink `name`: one per outcome of a counter, one of each
    of the `others`."""
    counter, outcomes = by_outcome
    for outcome in outcomes:
        counter.labels(name, outcome)
    for metric in others:
        metric.labels(name)


class _WithoutCreated:
    """A read-only view of a registry that drops the `*_created` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self._registry.collect():
            if family.type in ("counter", "histogram", "summary"):
                created = f"{family.name}_created"
                family.samples = [s for s in family.samples if s.name != created]
            yield family


class RelayMetrics:
    """All metrics of one relay process, and the hooks that update them."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        version: str = __version__,
        sources: Iterable[str] = (),
        sinks: Iterable[str] = (),
        routes: Iterable[str] = (),
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self.registry = registry
        self._now = now
        counter, gauge = partial(_counter, registry), partial(_gauge, registry)
        histogram = partial(_histogram, registry)

        self.build_info = Info(f"{PREFIX}_build", _HELP["build"], registry=registry)
        self.build_info.info({"version": version})
        self.responder_info = Info(
            f"{PREFIX}_responder", _HELP["responder"], ("source", "responder_id"), registry=registry
        )
        self.poll_cycles = counter("poll_cycles", "source", "outcome")
        self.poll_duration = histogram("poll_duration_seconds", "source", buckets=_POLL_BUCKETS_S)
        self.api_requests = counter("api_requests", "source", "endpoint", "code")
        self.last_success = gauge("last_successful_poll_timestamp_seconds", "source")
        # Named like Prometheus's and Alertmanager's own, so the same alerts fit.
        self.reload_successful = gauge("config_last_reload_successful")
        self.reload_success_time = gauge("config_last_reload_success_timestamp_seconds")
        self.running = gauge("executions_running", "source")
        self.transitions = counter("execution_transitions", "source", "to", "type")
        # Responder ids are bounded by the agents, squads and workflows of a workspace
        # (tens, not millions), unlike execution ids, which never become labels.
        self.responder_ended = counter(
            "responder_executions_ended", "source", "responder_id", "status"
        )
        self.credits = counter("execution_credits", "source", "status")
        self.invalid_items = counter("invalid_items", "source")
        self.alerts = counter("alerts", "rule", "severity", "state")
        self.alerts_muted = counter("alerts_muted", "route")
        self.notifications = counter("notifications", "sink", "outcome")
        self.delivery_errors = counter("delivery_errors", "sink", "stage")
        self.notification_duration = histogram(
            "notification_duration_seconds", "sink", buckets=_SEND_BUCKETS_S
        )
        self.detection_latency = histogram("detection_latency_seconds", buckets=_LATENCY_BUCKETS_S)
        self.outbox_pending = gauge("outbox_pending", "sink")
        self.staleness = gauge("poll_staleness_seconds", "source")
        self.request_budget = gauge("request_budget_per_minute", "source")
        self.request_rate = gauge("request_rate_per_minute", "source")
        self.dead_letters = gauge("dead_letters", "sink")

        for source in sources:
            self.add_source(source)
        for sink in sinks:
            self.add_sink(sink)
        for route in routes:
            self.alerts_muted.labels(route)

    # --- label initialisation -------------------------------------------------------------

    def _per_source(self) -> tuple[Counter | Gauge | Histogram, ...]:
        return (
            self.poll_duration,
            self.last_success,
            self.running,
            self.invalid_items,
            self.staleness,
            self.request_budget,
            self.request_rate,
        )

    def add_source(self, source: str) -> None:
        """Create the series of `source` at zero (idempotent)."""
        by_outcome = (self.poll_cycles, CYCLE_OUTCOMES)
        _start_at_zero(source, by_outcome=by_outcome, others=self._per_source())

    def remove_source(self, source: str) -> None:
        """Drop the series `add_source` made (a reload removed the source), so a source
        that is gone never looks stale to the self-alerts."""
        with contextlib.suppress(KeyError):
            for outcome in CYCLE_OUTCOMES:
                self.poll_cycles.remove(source, outcome)
            for metric in self._per_source():
                metric.remove(source)

    def set_responder_names(self, source: str, names: Mapping[str, str]) -> None:
        """`zaia_relay_responder_info{source,responder_id,name} 1` for each configured name;
        bounded like `responder_executions_ended` (a workspace's responders)."""
        for responder_id, name in names.items():
            self.responder_info.labels(source, responder_id).info({"name": name})

    def on_config_load(self, *, successful: bool, at: datetime) -> None:
        """A configuration load: the start (successful) or a reload."""
        self.reload_successful.set(1 if successful else 0)
        if successful:
            self.reload_success_time.set(at.timestamp())

    def on_budget(self, source: str, *, budget_per_minute: float | None) -> None:
        """The request budget of `source` (None: no ceiling)."""
        self.request_budget.labels(source).set(budget_per_minute or 0.0)
        self.request_rate.labels(source).set(budget_per_minute or 0.0)

    def on_plan(self, source: str, plan: Plan, /) -> None:
        """A `relay.pipeline.adaptive.OnPlan`: the cadence planned a read."""
        self.staleness.labels(source).set(plan.staleness_s)
        self.request_rate.labels(source).set(plan.allowed_rate_per_s * 60.0)

    def add_sink(self, sink: str) -> None:
        """Create the series of `sink` at zero (idempotent)."""
        by_outcome = (self.notifications, NOTIFICATION_OUTCOMES)
        others = (self.notification_duration, self.outbox_pending, self.dead_letters)
        _start_at_zero(sink, by_outcome=by_outcome, others=others)
        for stage in DELIVERY_ERROR_STAGES:
            self.delivery_errors.labels(sink, stage)

    # --- polling ----------------------------------------------------------------------------

    def on_cycle(
        self,
        source: str,
        outcome: CycleOutcome,
        duration_s: float,
        report: CycleReport | None,
        /,
    ) -> None:
        """A `relay.pipeline.poller.OnCycle`: one poll cycle ended."""
        self.poll_cycles.labels(source, outcome).inc()
        self.poll_duration.labels(source).observe(max(0.0, duration_s))
        if outcome != "ok":
            return
        self.last_success.labels(source).set(self._now().timestamp())
        if report is None:
            return
        self.running.labels(source).set(report.running)
        if report.problems:
            self.invalid_items.labels(source).inc(len(report.problems))
        for transition in report.transitions:
            if transition.kind != "status" or not transition.alertable:
                continue
            self.transitions.labels(source, transition.to_status, transition.execution.kind).inc()
            if transition.to_status in TERMINAL_STATUSES:
                self.responder_ended.labels(
                    source, transition.execution.responder_id, transition.to_status
                ).inc()
            if transition.to_status in TERMINAL_STATUSES and transition.credits_after > 0:
                self.credits.labels(source, transition.to_status).inc(transition.credits_after)

    def api_request(self, source: str, endpoint: str, code: int | str) -> None:
        """One HTTP attempt against the Zaia API."""
        self.api_requests.labels(source, endpoint, str(code)).inc()

    def request_counter(self, source: str) -> OnRequest:
        """A `relay.source.client.OnRequest` that counts the requests of `source`."""

        def count(endpoint: Endpoint, outcome: RequestOutcome) -> None:
            self.api_request(source, endpoint, outcome)

        return count

    # --- alerts and delivery ----------------------------------------------------------------

    def alert(self, rule: str, *, severity: str, state: str) -> None:
        """One alert raised (state "firing") or resolved (state "resolved")."""
        self.alerts.labels(rule, severity, state).inc()

    def alerts_queued(self, alerts: Sequence[Alert], *, queued_at: datetime) -> None:
        """Alerts just committed (new ones only): counts them and, for those about an
        execution that ended, observes the detection latency."""
        for alert in alerts:
            self.alert(alert.rule, severity=alert.severity, state=alert.state)
            for muted in alert.muted:
                self.alerts_muted.labels(muted.route).inc()
            execution = alert.execution
            if alert.state == "firing" and execution is not None and execution.ended_at:
                self.observe_detection_latency((queued_at - execution.ended_at).total_seconds())

    def observe_detection_latency(self, seconds: float) -> None:
        self.detection_latency.observe(max(0.0, seconds))

    def on_delivery(self, result: DeliveryResult, /) -> None:
        """A `relay.delivery.worker.OnResult`: one message to a sink carried `result.count`
        notifications, which all met `result.outcome`."""
        self.notifications.labels(result.sink, result.outcome).inc(result.count)
        self.notification_duration.labels(result.sink).observe(max(0.0, result.duration_s))

    def on_delivery_error(self, sink: str, stage: DeliveryErrorStage, /) -> None:
        """A `relay.delivery.loop.OnError`: a worker contained an error of its own."""
        self.delivery_errors.labels(sink, stage).inc()

    def set_outbox(self, counts: Mapping[str, tuple[int, int]]) -> None:
        """Outbox sizes as `{sink: (pending, dead)}`; sinks absent from `counts` that were
        seen before (or configured) drop to zero rather than keep a stale value."""
        known = {labels[0] for labels in _label_values(self.outbox_pending)} | set(counts)
        for sink in known:
            pending, dead = counts.get(sink, (0, 0))
            self.outbox_pending.labels(sink).set(pending)
            self.dead_letters.labels(sink).set(dead)

    # --- exposition -------------------------------------------------------------------------

    def exposition(self, accept: str | None = None) -> tuple[bytes, str]:
        """The registry in the format the `Accept` header asks for (Prometheus text by
        default, OpenMetrics when asked): `(body, content_type)`."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(_WithoutCreated(self.registry)), content_type


def _label_values(metric: Gauge) -> list[tuple[str, ...]]:
    # prometheus_client keeps children by label tuple; reading the samples is the public way.
    values: list[tuple[str, ...]] = []
    for family in metric.collect():
        for sample in family.samples:
            values.append(tuple(sample.labels[name] for name in sorted(sample.labels)))
    return values
