"""The pipeline of one source: a poll loop runs cycles, the engine makes one cycle (read,
detect, commit), and alerting turns a cycle into alerts.

    SourceEngine(ScanLimits.from_settings(source), client=..., store=..., planner=...)
    Poller(engine, ...)                        # polling: fixed, one whole cycle a tick
    AdaptivePoller(poller, engine, gate=...)   # polling: adaptive, one read at a time
"""

from relay.pipeline.adaptive import AdaptivePoller
from relay.pipeline.alerting import DEFAULT_NESTINGS_BUDGET_S, AlertPlanner
from relay.pipeline.cycle import CycleReport, ScanLimits
from relay.pipeline.engine import SourceEngine
from relay.pipeline.poller import Poller, SourceHealth, SourceLoop

__all__ = [
    "DEFAULT_NESTINGS_BUDGET_S",
    "AdaptivePoller",
    "AlertPlanner",
    "CycleReport",
    "Poller",
    "ScanLimits",
    "SourceEngine",
    "SourceHealth",
    "SourceLoop",
]
