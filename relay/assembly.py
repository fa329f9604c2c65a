"""How the composition root builds the parts a configuration decides: a source's
client, engine and poller; the sinks; the delivery pool.

Invariants:
- One place builds each part, at start and on a reload alike (`relay.app` calls it).
- What several parts share and a reload replaces (config silences, the scrubber, the
  HTTP context's settings) is read through this object, afresh on each use, so a
  reload swaps each as a whole, between two uses, never during one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from relay.delivery import DeliveryPool
from relay.domain.budget import RequestBudget
from relay.domain.routes import routes_of
from relay.domain.silences import Silence, config_silences
from relay.http.common import HttpContext
from relay.pipeline import (
    DEFAULT_NESTINGS_BUDGET_S,
    AdaptivePoller,
    AlertPlanner,
    CycleReport,
    Poller,
    ScanLimits,
    SourceEngine,
    SourceLoop,
)
from relay.pipeline.poller import SourceHealth
from relay.reload import ReloadOutcome
from relay.scrub import SecretScrubber
from relay.settings import Settings, SourceSettings
from relay.sinks import Sink, StoredMessageRefs, build_sinks
from relay.source import BudgetGate, ClientConfig, ZaiaClient
from relay.store import Store
from relay.telemetry import RelayMetrics
from relay.vocab import CycleOutcome


@dataclass
class SourceParts:
    """What polls one source; its poller's `cycling` lock is held through a cycle."""

    client: ZaiaClient
    engine: SourceEngine
    poller: Poller
    loop: SourceLoop


class Assembly:
    """Builds the configured parts of one runtime; `reconfigure()` on a reload."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        metrics: RelayMetrics,
        now: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._now = now
        self.health: dict[str, SourceHealth] = {}
        self.http_context: HttpContext | None = None
        self.deliveries: DeliveryPool | None = None
        # Secrets of every configuration loaded so far: an old one may still sit in a
        # stored error or a receiver's answer.
        self._secrets: set[str] = set()
        self.silences: Sequence[Silence] = ()
        self.scrubber = SecretScrubber()
        self.reconfigure(settings)

    def reconfigure(self, settings: Settings) -> None:
        """Swap what the running parts share for what `settings` says."""
        self.settings = settings
        self.silences = tuple(config_silences(settings.silences, intervals=settings.intervals()))
        self._secrets.update(settings.secret_values())
        self.scrubber = SecretScrubber.of(self._secrets)
        if self.deliveries is not None:
            self.deliveries.use_scrubber(self.scrubber)
        if self.http_context is not None:
            self.http_context.settings = settings
            self.http_context.scrubber = self.scrubber
            self.http_context.config_silences = self.silences

    def http_context_reload(self, reload: Callable[[], Awaitable[ReloadOutcome]]) -> None:
        if self.http_context is not None:
            self.http_context.on_reload = reload

    async def active_silences(self, at: datetime) -> list[Silence]:
        return [*self.silences, *await self._store.list_silences(now=at)]

    def sinks(self, settings: Settings, names: Iterable[str]) -> dict[str, Sink]:
        store, now = self._store, self._now
        built = build_sinks(
            {name: settings.sinks[name] for name in names},
            now=now,
            slack_refs=lambda name: StoredMessageRefs(store, name, now=now),
        )
        for target in built:  # one per delivery target (an Alertmanager's `urls`)
            self._metrics.add_sink(target)
        return built

    def delivery_pool(self, sinks: dict[str, Sink]) -> DeliveryPool:
        self.deliveries = DeliveryPool(
            sinks,
            outbox=self._store,
            now=self._now,
            on_result=self._metrics.on_delivery,
            silences=self.active_silences,
            scrubber=self.scrubber,
            on_error=self._metrics.on_delivery_error,
        )
        return self.deliveries

    def on_cycle(
        self, source: str, outcome: CycleOutcome, duration_s: float, report: CycleReport | None
    ) -> None:
        metrics = self._metrics
        metrics.on_cycle(source, outcome, duration_s, report)
        if report is None:
            return
        metrics.alerts_queued(report.new_alerts, queued_at=self._now())
        for alert in report.resolved_alerts:
            metrics.alert(alert.rule, severity=alert.severity, state="resolved")
        if report.notifications and self.deliveries is not None:
            self.deliveries.wake({n.sink for n in report.notifications})

    def planner(
        self, settings: Settings, source: SourceSettings, *, client: ZaiaClient
    ) -> AlertPlanner:
        return AlertPlanner(
            source=source.name,
            rules=settings.rules,
            alerts=settings.alerts,
            config_silences=list(self.silences),
            client=client,
            store=self._store,
            responder_names=settings.responders,
            routes=routes_of(settings.routes),
            intervals=settings.intervals(),
            targets=settings.targets(),
            # Following child executions is best effort: it may use a quarter of a
            # cycle's time at most, never the whole of it.
            nestings_budget_s=min(
                DEFAULT_NESTINGS_BUDGET_S, source.cycle_timeout.total_seconds() / 4
            ),
        )

    def source(self, settings: Settings, source: SourceSettings, *, index: int) -> SourceParts:
        """The client, engine and poller of `sources[index]`; the caller closes the client."""
        metrics, store = self._metrics, self._store
        budget = source.budget_per_minute
        metrics.add_source(source.name)
        metrics.on_budget(source.name, budget_per_minute=budget)
        metrics.set_responder_names(source.name, settings.responders)
        gate = None
        if budget is not None:
            gate = BudgetGate(
                # A second of margin: a request is counted when sent, not when the API
                # receives it.
                RequestBudget.per_minute(budget, margin_s=1.0),
                source=source.name,
                # A wait for a slot is part of a cycle: keep it well inside one.
                max_wait_s=source.cycle_timeout.total_seconds() / 4,
            )
        client = ZaiaClient(
            ClientConfig.from_settings(source, index=index),
            on_request=metrics.request_counter(source.name),
            gate=gate,
        )
        engine = SourceEngine(
            ScanLimits.from_settings(source),
            client=client,
            store=store,
            planner=self.planner(settings, source, client=client),
            now=self._now,
        )
        poller = Poller(
            engine,
            interval_s=source.poll_interval.total_seconds(),
            cycle_timeout_s=source.cycle_timeout.total_seconds(),
            on_cycle=self.on_cycle,
            lead=partial(store.try_lead, source.name),
        )
        poller.health.budget_per_minute = budget
        loop: SourceLoop = poller
        if source.polling == "adaptive" and gate is not None:
            loop = AdaptivePoller(poller, engine, gate=gate, on_plan=metrics.on_plan)
        self.health[source.name] = poller.health
        return SourceParts(client=client, engine=engine, poller=poller, loop=loop)


__all__ = ["Assembly", "SourceParts"]
