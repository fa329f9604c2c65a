"""Routing: from an alert's labels to the routes that match and the sinks they reach.

Pure: no I/O, no clock; `now` is passed in.

Invariants:
- Routes are tried in order; the first that matches wins, unless it has `continue`,
  in which case the next ones are tried too. A route without matchers matches every
  alert (a default route). So without `continue` at most one route matches.
- A sink is reached once per alert: the rule's own sinks first (always notified,
  ungrouped, whatever the routes' intervals; only what follows a firing they did not
  get is held back), then each matching route's, in order.
  A sink reached twice keeps its first way in: a rule's own sink stays ungrouped, a
  route's sink carries the group of the first route that reached it.
- A route is muted at `now` when one of its `mute_time_intervals` contains `now`, or
  when it has `active_time_intervals` and none contains `now`. A muted route reaches
  no sink; the sinks it alone would have reached are recorded (`MutedRoute`), never
  queued, so nothing is replayed when the mute ends. A muted route still stops the
  search (without `continue`): muting does not fall through to the default route.
- Per (alert, sink) the firing's fate decides the rest of the alert (`sends`, as
  Alertmanager does): a sink whose firing was held back gets none of the alert's
  reminders nor its resolve (recorded as held back, never replayed); a sink that got
  the firing gets its resolve even inside a mute window (else a receiver such as
  PagerDuty keeps the incident open for good), and its reminders only outside one.
- A grouped route's group is `route_group_key(route=id, values=group_by values)`, a
  label the alert lacks counting as "": the same alert labels always give the same key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from relay.domain.alerts import MutedRoute, NotificationGroup, route_group_key
from relay.matchers import Matcher, matches_all, walk_routes
from relay.settings import route_label
from relay.time_intervals import YEAR, TimeInterval, change_points, in_any
from relay.vocab import NotificationKind

if TYPE_CHECKING:
    from relay.settings import RouteSettings

__all__ = [
    "Destination",
    "Route",
    "RouteMatch",
    "Routing",
    "firing_held_back",
    "matching_routes",
    "mute_reason",
    "muted_until",
    "route_alert",
    "routes_of",
    "sends",
]

# How far `muted_until` looks ahead: every interval repeats within it (see `YEAR`).
_LOOKAHEAD = YEAR


@dataclass(frozen=True, slots=True)
class Route:
    id: str  # the route's name, or `routes[i]`: its groups' key and how it is shown
    matchers: tuple[Matcher, ...] = ()
    sinks: tuple[str, ...] = ()
    group_by: tuple[str, ...] = ()
    group_wait_s: float | None = None  # None: not grouped
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    continue_: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches_all(self.matchers, labels)

    def group(self, labels: Mapping[str, str]) -> NotificationGroup | None:
        """The group an alert with `labels` joins on this route (None: not grouped)."""
        if self.group_wait_s is None:
            return None
        values = {name: labels.get(name, "") for name in self.group_by}
        return NotificationGroup(
            key=route_group_key(route=self.id, values=values),
            wait_s=self.group_wait_s,
            route=self.id,
            values=values,
        )


def routes_of(settings: Sequence[RouteSettings]) -> tuple[Route, ...]:
    """The configured routes, in order."""
    return tuple(
        Route(
            id=route_label(index, entry.name),
            matchers=tuple(entry.matchers),
            sinks=tuple(entry.sinks),
            group_by=tuple(entry.group_by),
            group_wait_s=entry.wait.total_seconds() if entry.grouped else None,
            mute_time_intervals=tuple(entry.mute_time_intervals),
            active_time_intervals=tuple(entry.active_time_intervals),
            continue_=entry.continue_,
        )
        for index, entry in enumerate(settings)
    )


def matching_routes(routes: Iterable[Route], labels: Mapping[str, str]) -> list[Route]:
    """The routes an alert with `labels` takes: the first match, and on while `continue`."""
    return walk_routes(routes, matches=lambda r: r.matches(labels), stops=lambda r: not r.continue_)


def mute_reason(
    route: Route, *, intervals: Mapping[str, TimeInterval], now: datetime
) -> str | None:
    """Why `route` is muted at `now` ("in weekends", "outside business-hours"), or None."""
    muting = in_any(route.mute_time_intervals, intervals, now)
    if muting is not None:
        return f"in {muting}"
    if route.active_time_intervals and in_any(route.active_time_intervals, intervals, now) is None:
        return f"outside {', '.join(route.active_time_intervals)}"
    return None


def muted_until(
    route: Route, *, intervals: Mapping[str, TimeInterval], now: datetime
) -> datetime | None:
    """The first instant after `now` at which `route` is no longer muted (None: not
    muted now, or muted for as far as `_LOOKAHEAD` reaches). Only the instants where
    one of its intervals may change are judged (`relay.time_intervals.change_points`)."""
    if mute_reason(route, intervals=intervals, now=now) is None:
        return None
    names = (*route.mute_time_intervals, *route.active_time_intervals)
    used = [intervals[name] for name in names if name in intervals]
    for point in change_points(used, now, within=_LOOKAHEAD):
        if mute_reason(route, intervals=intervals, now=point) is None:
            return point
    return None


def sends(kind: NotificationKind, *, firing_sent: bool, muted_now: bool) -> bool:
    """Whether a notification of `kind` about an alert goes to a sink through a route
    that is muted now (`muted_now`) or not; `firing_sent`: whether that sink got the
    alert's firing (judged only for what follows a firing)."""
    if kind == "firing" or kind == "test":
        return not muted_now
    if not firing_sent:
        return False  # it never heard of the alert: nothing of it follows
    return kind == "resolved" or not muted_now


def firing_held_back(muted: Sequence[MutedRoute]) -> dict[str, MutedRoute]:
    """The sinks whose firing of the alert was held back, by sink: what an alert's
    recorded `muted` says of its firing."""
    return {sink: entry for entry in muted if entry.kind == "firing" for sink in entry.sinks}


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    group: NotificationGroup | None
    muted_by: str | None  # `mute_reason`; None: the route sends


@dataclass(frozen=True, slots=True)
class Destination:
    sink: str
    group: NotificationGroup | None = None
    route: str | None = None  # None: one of the rule's own sinks


@dataclass(frozen=True, slots=True)
class Routing:
    """Where one alert goes, and what its muted routes held back."""

    matches: tuple[RouteMatch, ...]
    destinations: tuple[Destination, ...]
    muted: tuple[MutedRoute, ...]

    @property
    def sinks(self) -> list[str]:
        return [d.sink for d in self.destinations]


def route_alert(
    labels: Mapping[str, str],
    *,
    own_sinks: Sequence[str],
    routes: Sequence[Route],
    intervals: Mapping[str, TimeInterval],
    now: datetime,
    kind: NotificationKind = "firing",
    firing_muted: Sequence[MutedRoute] = (),
) -> Routing:
    """Where a notification of `kind` about an alert with `labels` (of a rule whose
    sinks are `own_sinks`) goes at `now`. For a reminder or a resolve, `firing_muted`
    is what the alert recorded of its firing (`Alert.muted`): see `sends`."""
    matches = tuple(
        RouteMatch(
            route=route,
            group=route.group(labels),
            muted_by=mute_reason(route, intervals=intervals, now=now),
        )
        for route in matching_routes(routes, labels)
    )
    held = firing_held_back(firing_muted) if kind not in ("firing", "test") else {}
    reached: dict[str, Destination] = {s: Destination(s) for s in own_sinks if s not in held}
    for match in matches:
        muted_now = match.muted_by is not None
        for sink in match.route.sinks:
            if sends(kind, firing_sent=sink not in held, muted_now=muted_now):
                reached.setdefault(sink, Destination(sink, match.group, match.route.id))
    muted: list[MutedRoute] = []
    for match in matches:
        muted.extend(_held_back(match, reached=reached, held=held, kind=kind))
    own_held = [s for s in dict.fromkeys(own_sinks) if s in held]
    for sink in own_held:  # a rule's own sink that did not get the firing either
        muted.append(replace(held[sink], sinks=(sink,), reason=_after(held[sink]), kind=kind))
    return Routing(matches=matches, destinations=tuple(reached.values()), muted=tuple(muted))


def _after(firing: MutedRoute) -> str:
    return f"firing held back {firing.reason}"


def _held_back(
    match: RouteMatch,
    *,
    reached: Mapping[str, Destination],
    held: Mapping[str, MutedRoute],
    kind: NotificationKind,
) -> list[MutedRoute]:
    """What `match` held back, one entry per reason: the sinks of its route that nothing
    reached, because its firing was held back there or the route is muted now."""
    reasons: dict[str, list[str]] = {}
    for sink in match.route.sinks:
        if sink in reached:
            continue
        reason = _after(held[sink]) if sink in held else match.muted_by
        if reason is not None:
            reasons.setdefault(reason, []).append(sink)
    return [
        MutedRoute(route=match.route.id, sinks=tuple(sinks), reason=reason, kind=kind)
        for reason, sinks in reasons.items()
    ]
