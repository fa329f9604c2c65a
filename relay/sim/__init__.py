"""A simulated Zaia workspace: the executions API in memory, served over HTTP.

It backs `zaia-relay demo`, the tests and the benches. `SimWorkspace` holds the state
(pure, deterministic given a seed and a clock); `create_app`/`SimServer` serve it as the
three documented endpoints plus a `/_sim/` control API; `Fault` makes it misbehave.
"""

from relay.sim.app import SimServer, create_app
from relay.sim.catalog import DEFAULT_RESPONDERS, Responder
from relay.sim.clock import ManualClock, utcnow
from relay.sim.faults import Fault
from relay.sim.workspace import (
    FollowUpMessageError,
    SimWorkspace,
    UnknownExecutionError,
)

__all__ = [
    "DEFAULT_RESPONDERS",
    "Fault",
    "FollowUpMessageError",
    "ManualClock",
    "Responder",
    "SimServer",
    "SimWorkspace",
    "UnknownExecutionError",
    "create_app",
    "utcnow",
]
