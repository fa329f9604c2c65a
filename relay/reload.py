"""Reloading the configuration (SIGHUP, `POST /-/reload`) while the relay runs.

Invariants:
- A reload reads the file the relay started with through the same loader
  (`relay.settings.loader.load_settings`, environment and `*_file` secrets included).
  An invalid file, or a change to a field that only a restart applies
  (`RESTART_ONLY`), is refused as a whole with `path: message` problems; the running
  configuration stays, `config.reload_failed` is logged, the success gauge goes to 0.
- What the relay owes is in the store (the outbox, tracked executions, group states),
  never in the objects a reload replaces, so a reload loses none of it. A removed
  sink's pending notifications stay in the outbox until a sink of that name returns
  (or an operator purges them): a reload never dead-letters or drops anything.
- A sink whose delivery targets a reload renames (`url` <-> `urls`, `retargeted`) keeps
  what it owes: its pending and dead rows move to the new targets before any new
  worker or poller starts, and every source's planner is rebuilt with the new targets.
- Reloads are serialised (one lock): a reload never starts while another applies.
- `plan_reload` decides what to rebuild, per source and per sink, from the old and new
  settings alone; the composition root (`relay.app`) applies the plan.
- `TaskSet` tracks the named long-running tasks of the daemon's TaskGroup so a reload
  can start and stop some of them; a task that ends without being stopped is a bug,
  reported through `ended` (the daemon then exits non-zero).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from relay.clock import utcnow
from relay.errors import ConfigError, ConfigProblem
from relay.settings import Settings, config_warnings

log = structlog.get_logger("relay.reload")

# Fields a running relay cannot change: the listening socket, the store it opened,
# the log pipeline configured before anything ran.
RESTART_ONLY: tuple[tuple[str, str], ...] = (
    ("server", "listen"),
    ("store", "url"),
    ("log", "level"),
    ("log", "format"),
)
# Sections every planner reads: a change to any restarts every source's poller.
PLANNER_SECTIONS = ("rules", "alerts", "silences", "responders", "routes", "time_intervals")
_SECTIONS = (*PLANNER_SECTIONS, "server", "store", "sources", "sinks")


def restart_problems(old: Settings, new: Settings) -> list[ConfigProblem]:
    """The restart-only fields that differ (never their values: a URL may hold a password)."""
    return [
        ConfigProblem(
            f"{section}.{name}",
            "changes only on a restart; nothing was reloaded (restart the relay, or put it back)",
        )
        for section, name in RESTART_ONLY
        if getattr(getattr(old, section), name) != getattr(getattr(new, section), name)
    ]


@dataclass(frozen=True, kw_only=True)
class ReloadPlan:
    """What a reload changes; sources restarted are polled again by a new poller."""

    sections: tuple[str, ...] = ()
    sources_added: tuple[str, ...] = ()
    sources_removed: tuple[str, ...] = ()
    sources_restarted: tuple[str, ...] = ()
    sinks_added: tuple[str, ...] = ()
    sinks_removed: tuple[str, ...] = ()
    sinks_changed: tuple[str, ...] = ()
    # (old target, its new targets): a sink changed between `url` and `urls`, so what
    # is owed under the old name moves (`retargeted`).
    targets_moved: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.sections)

    def summary(self) -> dict[str, list[str]]:
        """For the API's answer and the log line: names only, never settings."""
        return {
            "sections": list(self.sections),
            "sources_added": list(self.sources_added),
            "sources_removed": list(self.sources_removed),
            "sources_restarted": list(self.sources_restarted),
            "sinks_added": list(self.sinks_added),
            "sinks_removed": list(self.sinks_removed),
            "sinks_changed": list(self.sinks_changed),
            "targets_moved": [f"{old} -> {', '.join(new)}" for old, new in self.targets_moved],
        }


def plan_reload(old: Settings, new: Settings) -> ReloadPlan:
    """Diff two valid configurations. A source restarts when its settings or its place
    (`sources.N`, in its messages) changed, or when anything the planners read did
    (the sinks' delivery targets among it)."""
    sections = tuple(s for s in _SECTIONS if getattr(old, s) != getattr(new, s))
    old_sources = {s.name: (i, s) for i, s in enumerate(old.sources)}
    new_sources = {s.name: (i, s) for i, s in enumerate(new.sources)}
    # The planners queue each notification once per delivery target: a kept sink that
    # gains, loses or renames targets (`url` <-> `urls`, a URL added) needs new planners,
    # or they would keep queueing for targets no worker serves. (A sink added or removed
    # is named by no rule the old planners run: the rules would have changed too.)
    old_targets, new_targets = old.targets(), new.targets()
    planners_changed = any(s in sections for s in PLANNER_SECTIONS) or any(
        old_targets[name] != targets for name, targets in new_targets.items() if name in old_targets
    )
    kept = [name for name in new_sources if name in old_sources]
    return ReloadPlan(
        sections=sections,
        sources_added=tuple(n for n in new_sources if n not in old_sources),
        sources_removed=tuple(n for n in old_sources if n not in new_sources),
        sources_restarted=tuple(
            n for n in kept if planners_changed or old_sources[n] != new_sources[n]
        ),
        sinks_added=tuple(n for n in new.sinks if n not in old.sinks),
        sinks_removed=tuple(n for n in old.sinks if n not in new.sinks),
        sinks_changed=tuple(
            n for n in new.sinks if n in old.sinks and old.sinks[n] != new.sinks[n]
        ),
        targets_moved=retargeted(old_targets, new_targets),
    )


def retargeted(
    old: dict[str, tuple[str, ...]], new: dict[str, tuple[str, ...]]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Where the rows of a sink's old targets go when a reload renames them: a sink that
    went from `url` to `urls` (target `am` -> every `am[host:port]`), or back (each
    `am[host:port]` -> `am`). Targets are named by their Alertmanager, so a URL added
    or removed moves nothing: a removed one's rows stay under its name (replay or
    purge them with `--sink`), like a removed sink's."""
    moves: list[tuple[str, tuple[str, ...]]] = []
    for name, after in new.items():
        before = old.get(name)
        if before is None or before == after:
            continue
        if name in before and name not in after:
            moves.append((name, after))
        elif name in after and name not in before:
            moves += [(target, (name,)) for target in before]
    return tuple(moves)


def positional_renames(
    targets: dict[str, tuple[str, ...]],
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """Rows an older relay queued under `am[0]`, `am[1]`... (targets were named by
    position until they were named by host and port): each goes to the target now at
    that position, which is where it went when it was queued unless the list was
    edited in the same upgrade. New names always hold a `:`, so none is ever taken
    for an old one."""
    return tuple(
        (f"{name}[{index}]", (target,))
        for name, named in targets.items()
        if named != (name,)
        for index, target in enumerate(named)
    )


class TaskSet:
    """The named long-running tasks of one TaskGroup, started and stopped by name."""

    def __init__(self, group: asyncio.TaskGroup) -> None:
        self._group = group
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping: set[asyncio.Task[None]] = set()
        self.ended = asyncio.Event()
        self.ended_names: list[str] = []

    def names(self) -> list[str]:
        return list(self._tasks)

    def start(self, name: str, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        if name in self._tasks:
            coro.close()
            raise RuntimeError(f"task {name} already runs")
        task = self._group.create_task(coro, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[None]) -> None:
        if task in self._stopping:
            self._stopping.discard(task)
            return
        if not task.cancelled() and task.exception() is not None:
            return  # the TaskGroup ends on it
        self.ended_names.append(task.get_name())
        self.ended.set()

    async def stop(
        self, name: str, *, how: Callable[[asyncio.Task[None]], Awaitable[None]] | None = None
    ) -> None:
        """Stop the task `name`: `how(task)` when given (it must end it), else cancel."""
        task = self._tasks.pop(name, None)
        if task is None:
            return
        self._stopping.add(task)
        if how is not None:
            await how(task)
        if not task.done():
            task.cancel()
        await asyncio.wait({task})

    def forget_all(self) -> None:
        """Shutting down: whatever ends from now on ends on purpose."""
        self._stopping.update(self._tasks.values())


ApplyReload = Callable[[Settings, ReloadPlan], Awaitable[None]]


@dataclass(frozen=True, kw_only=True)
class ReloadOutcome:
    ok: bool
    plan: ReloadPlan = field(default_factory=ReloadPlan)
    problems: tuple[ConfigProblem, ...] = ()


class Reloader:
    """Loads the file again and hands a valid, reloadable change to `apply`."""

    def __init__(
        self,
        load: Callable[[], Settings],
        *,
        current: Callable[[], Settings],
        apply: ApplyReload,
        on_result: Callable[[bool, datetime], None],
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        self._load = load
        self._closed = False
        self._current = current
        self._apply = apply
        self._on_result = on_result
        self._now = now
        self._lock = asyncio.Lock()

    async def reload(self, *, trigger: str) -> ReloadOutcome:
        async with self._lock:
            if self._closed:
                return ReloadOutcome(ok=False, problems=(ConfigProblem("", "shutting down"),))
            try:
                outcome = await self._reload(trigger)
            except Exception as exc:
                # Applying a valid change failed half-way (a sink's client, say): what
                # was applied stays; the gauge says the reload failed.
                log.exception("config.reload_failed", trigger=trigger, error=type(exc).__name__)
                problem = ConfigProblem("", "applying the change failed; the logs have why")
                outcome = ReloadOutcome(ok=False, problems=(problem,))
            self._on_result(outcome.ok, self._now())
        return outcome

    async def close(self) -> None:
        """Wait for a reload in progress, and refuse any later one (the relay stops)."""
        async with self._lock:
            self._closed = True

    async def _reload(self, trigger: str) -> ReloadOutcome:
        old = self._current()
        try:
            new = await asyncio.to_thread(self._load)
        except ConfigError as exc:
            return self._refused(trigger, exc.problems)
        if problems := restart_problems(old, new):
            return self._refused(trigger, problems)
        plan = plan_reload(old, new)
        if plan.changed:
            await self._apply(new, plan)
        log.info("config.reloaded", trigger=trigger, **plan.summary())
        for warning in config_warnings(new):
            log.warning("config.warning", problem=warning)
        return ReloadOutcome(ok=True, plan=plan)

    def _refused(
        self, trigger: str, problems: tuple[ConfigProblem, ...] | list[ConfigProblem]
    ) -> ReloadOutcome:
        # Problems name fields and say what is wrong; the loader never puts values in them.
        log.warning("config.reload_failed", trigger=trigger, problems=[str(p) for p in problems])
        return ReloadOutcome(ok=False, problems=tuple(problems))


__all__ = [
    "RESTART_ONLY",
    "ReloadOutcome",
    "ReloadPlan",
    "Reloader",
    "TaskSet",
    "plan_reload",
    "positional_renames",
    "restart_problems",
    "retargeted",
]
