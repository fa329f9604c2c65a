"""The story `zaia-relay demo` plays on its simulated workspace.

Each beat says what happens and when (seconds after the relay's first poll), so the
alerts a newcomer sees are predictable: a failure first, within seconds, then a
cancellation, a failure spike on one agent (one grouped message, and a failure-rate
alert that resolves some seconds later, when the agent recovers), an expensive run
(sent by day, muted at night by the finops route's quiet hours) and a stuck run: the
whole story, resolve included, within 30 seconds. Between beats, ordinary traffic
keeps the workspace alive.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from relay.sim import SimWorkspace
from relay.sim.catalog import DEFAULT_RESPONDERS

SPIKE_AGENT = next(r for r in DEFAULT_RESPONDERS if r.name == "Sales Qualifier")
STEADY_AGENT = next(r for r in DEFAULT_RESPONDERS if r.name == "Customer Support Agent")


@dataclass(frozen=True)
class Beat:
    at_s: float
    what: str
    act: Callable[[SimWorkspace, random.Random], None]


def _running(workspace: SimWorkspace, rng: random.Random) -> str:
    ids = workspace.execution_ids(status="running", roots_only=True)
    return rng.choice(ids) if ids else workspace.create_execution()


def _fail_one(workspace: SimWorkspace, rng: random.Random) -> None:
    target = workspace.create_execution(responder_id=STEADY_AGENT.responder_id, credits_used=3.5)
    workspace.set_status(
        target, "failed", error="Tool 'Call CRM API' failed: HTTP 502 from crm.example.com"
    )


def _cancel_one(workspace: SimWorkspace, rng: random.Random) -> None:
    workspace.set_status(_running(workspace, rng), "cancelled")


def _expensive(workspace: SimWorkspace, rng: random.Random) -> None:
    workspace.add_credits(_running(workspace, rng), 750.0)


def _stuck(workspace: SimWorkspace, rng: random.Random) -> None:
    # Started three minutes ago and still running: past the demo's 2m stuck threshold.
    workspace.create_execution(created_at=workspace.now() - timedelta(minutes=3))


def _spike(workspace: SimWorkspace, rng: random.Random) -> None:
    for index in range(8):
        target = workspace.create_execution(responder_id=SPIKE_AGENT.responder_id)
        if index < 5:
            workspace.set_status(target, "failed", error="Model returned an empty answer")
        else:
            workspace.set_status(target, "completed")


def _recover(workspace: SimWorkspace, rng: random.Random) -> None:
    for _ in range(25):
        target = workspace.create_execution(responder_id=SPIKE_AGENT.responder_id)
        workspace.set_status(target, "completed")


STORY: tuple[Beat, ...] = (
    Beat(2, "an agent execution fails", _fail_one),
    Beat(6, "a running execution is cancelled", _cancel_one),
    Beat(9, "the Sales Qualifier agent starts failing: 5 failures in a second", _spike),
    Beat(13, "a running execution burns 750 credits", _expensive),
    Beat(17, "the Sales Qualifier agent recovers", _recover),
    Beat(22, "an execution has been running for 3 minutes", _stuck),
)


def background_traffic(workspace: SimWorkspace, rng: random.Random) -> None:
    """A little ordinary activity: new runs start, running ones finish, credits grow."""
    workspace.create_execution(credits_used=round(rng.uniform(0.5, 5.0), 2))
    running = workspace.execution_ids(status="running", roots_only=True)
    for target in rng.sample(running, k=min(2, len(running))):
        if rng.random() < 0.5:
            workspace.add_credits(target, round(rng.uniform(0.5, 8.0), 2))
        else:
            workspace.set_status(target, "completed")


def seed_workspace(workspace: SimWorkspace) -> None:
    """History that already exists when the relay starts: recorded, never alerted. The
    runs in progress started moments ago, so none is stuck before the story says so."""
    workspace.seed_history(150, running=0, span_s=6 * 3600)
    for seconds_ago in (40, 25, 15, 10, 5, 2):
        workspace.create_execution(created_at=workspace.now() - timedelta(seconds=seconds_ago))
