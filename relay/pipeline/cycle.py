"""The values one poll cycle works with: its limits, its scratchpad and its report.

A cycle is one transaction's worth of reading: a fixed-rate cycle (the whole scan of
`polling: fixed`) or one read of the adaptive cadence (the top of the list, one page,
one execution by id). Either way the engine commits everything it observed at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from relay.domain.alerts import Alert, Notification
from relay.domain.detect import Observation
from relay.domain.paging import StopReason
from relay.domain.state import TrackedExecution, Transition
from relay.source.pages import ItemProblem

if TYPE_CHECKING:
    from relay.settings import SourceSettings


@dataclass(frozen=True, slots=True)
class PageSeen:
    """A page a cycle read, and the ids of its valid items in list order."""

    page: int
    ids: tuple[str, ...]
    # A short page: the end of the list.
    last: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanLimits:
    """How far one cycle of a source may read, and (adaptive) how often."""

    source: str
    page_size: int = 100
    max_pages: int = 20
    max_refreshes_per_cycle: int = 50
    list_order: Literal["created", "updated"] = "created"
    on_first_start: Literal["baseline", "backfill"] = "baseline"
    backfill_window: timedelta = timedelta(hours=1)
    # The adaptive cadence's: its worst-case bound, how deep a first start looks, and
    # how long one read may take.
    poll_interval: timedelta = timedelta(seconds=15)
    discovery_pages: int = 50
    cycle_timeout: timedelta = timedelta(seconds=60)

    @classmethod
    def from_settings(cls, source: SourceSettings) -> ScanLimits:
        # Every limit but `source` has the name of its setting.
        same_named = {f.name for f in fields(cls)} - {"source"}
        return cls(source=source.name, **{name: getattr(source, name) for name in same_named})


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one cycle did, for logs, metrics and `zaia-relay once`."""

    source: str
    started_at: datetime
    first_poll: bool
    pages: int
    refreshes: int
    observed: int
    stop_reason: StopReason | None
    running: int
    transitions: tuple[Transition, ...]
    problems: tuple[ItemProblem, ...] = field(default=())
    vanished: int = 0
    # Alerts stored for the first time by this cycle (silenced ones included, marked),
    # windowed alerts that resolved, and the notifications it queued.
    new_alerts: tuple[Alert, ...] = ()
    resolved_alerts: tuple[Alert, ...] = ()
    notifications: tuple[Notification, ...] = ()
    # What the cycle read: pages (in order) and executions re-read by id.
    pages_seen: tuple[PageSeen, ...] = ()
    refreshed_ids: tuple[str, ...] = ()

    @property
    def alertable(self) -> tuple[Transition, ...]:
        return tuple(t for t in self.transitions if t.alertable)


@dataclass
class CycleWork:
    """Mutable scratchpad of one cycle; becomes a CycleResult at the end."""

    # The live states the cycle began from, by id: a changed one is not asked again.
    running: dict[str, TrackedExecution] = field(default_factory=dict)
    states: dict[str, TrackedExecution] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    problems: list[ItemProblem] = field(default_factory=list)
    pages: list[PageSeen] = field(default_factory=list)
    refreshed: list[str] = field(default_factory=list)
    observed: int = 0
    vanished: int = 0

    def record(self, observation: Observation) -> None:
        self.states[observation.state.id] = observation.state
        self.transitions.extend(observation.transitions)
