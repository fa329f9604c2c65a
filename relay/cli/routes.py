"""`zaia-relay routes test LABEL=VALUE...`: where an alert with those labels would go,
like `amtool config routes test`.

Invariants: reads only the configuration (no store, no network); the answer is the one
`relay.domain.routes.route_alert` gives the daemon, at the current time (or `--at`).
Labels the daemon adds from the configuration are filled in when not given (and the
output says which): the severity and `labels` of the rule `rule=` names, the name
`responders:` gives `responder_id=`.
A label that cannot be read is a usage error (exit 2) naming it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from relay.cli.args import add_rest
from relay.clock import utcnow
from relay.domain.routes import RouteMatch, muted_until, route_alert, routes_of
from relay.durations import format_rough_s, utc_iso
from relay.errors import EXIT_OK, EXIT_USAGE
from relay.matchers import MatcherError, parse_matcher
from relay.settings import Settings

__all__ = ["add_routes_arguments", "routes"]


def add_routes_arguments(
    parser: argparse.ArgumentParser, *, config: Callable[[argparse.ArgumentParser], None]
) -> None:
    """`routes test [-c FILE] [--at TIME] LABEL=VALUE...`; `-c` on `test` itself, so the
    labels may follow it."""
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    test = actions.add_parser("test", help="the routes and sinks of an alert with these labels")
    config(test)
    add_rest(
        test,
        "labels",
        metavar="LABEL=VALUE",
        help='the alert\'s labels, like severity=critical team="payments"',
    )
    test.add_argument("--at", help="ISO 8601 moment to judge time intervals at (default now)")


def _labels(texts: Sequence[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for text in texts:
        try:
            matcher = parse_matcher(text)
        except MatcherError as exc:
            raise ValueError(f"{text!r}: {exc}") from None
        if matcher.op != "=":
            raise ValueError(f"{text!r}: give a label as LABEL=VALUE, not a matcher")
        labels[matcher.name] = matcher.value
    return labels


def _filled_in(labels: Mapping[str, str], settings: Settings) -> dict[str, str]:
    """The labels the daemon would add that were not given: the named rule's severity
    and `labels`, and the responder's name from `responders:` (given ones win)."""
    found: dict[str, str] = {}
    rule_name = labels.get("rule")
    if rule_name is not None and any(r.name == rule_name for r in settings.rules):
        rule = settings.rule(rule_name)
        found |= {**rule.labels, "severity": rule.severity}
    name = settings.responders.get(labels.get("responder_id", ""))
    if name is not None:
        found["responder"] = name
    return {key: value for key, value in found.items() if key not in labels}


def _shown(labels: Mapping[str, str]) -> str:
    return ", ".join(f'{k}="{v}"' for k, v in labels.items())


def _moment(text: str | None) -> datetime:
    if text is None:
        return utcnow()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--at: {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"--at: {text!r} needs a timezone, like 2026-12-05T10:00:00Z")
    return moment


def _describe(match: RouteMatch, settings: Settings, now: datetime) -> list[str]:
    route = match.route
    matchers = ", ".join(str(m) for m in route.matchers) or "(none: every alert)"
    lines = [f"route {route.id}", f"  matchers: {matchers}"]
    lines.append(f"  sinks: {', '.join(route.sinks) or '(none)'}")
    if match.group is not None:
        values = ", ".join(f'{k}="{v}"' for k, v in match.group.values.items()) or "(all)"
        wait = format_rough_s(match.group.wait_s)
        lines.append(f"  group: {match.group.key} by {values}, wait {wait}")
    if match.muted_by is None:
        lines.append("  muted: no")
    else:
        until = muted_until(route, intervals=settings.intervals(), now=now)
        tail = f", until {utc_iso(until, timespec='seconds')}" if until else ""
        lines.append(f"  muted: {match.muted_by}{tail}")
    if route.continue_:
        lines.append("  continue: true")
    return lines


def routes(settings: Settings, args: argparse.Namespace) -> int:
    try:
        labels = _labels(args.labels)
        now = _moment(args.at)
    except ValueError as exc:
        print(f"routes test: {exc}", file=sys.stderr)
        return EXIT_USAGE
    own: list[str] = []
    rule_name = labels.get("rule")
    if rule_name is not None and any(r.name == rule_name for r in settings.rules):
        own = list(settings.rule(rule_name).sinks)
    filled = _filled_in(labels, settings)
    labels |= filled
    routing = route_alert(
        labels,
        own_sinks=own,
        routes=routes_of(settings.routes),
        intervals=settings.intervals(),
        now=now,
    )
    shown = _shown(labels) or "(none)"
    print(f"labels: {shown}")
    if filled:
        print(f"filled in from the configuration: {_shown(filled)}")
    print(f"at: {utc_iso(now, timespec='seconds')}")
    if own:
        print(f"rule {rule_name} sinks: {', '.join(own)}")
    if not routing.matches:
        print("no route matches")
    for match in routing.matches:
        print("\n".join(_describe(match, settings, now)))
    for muted in routing.muted:
        print(f"held back by {muted.route} ({muted.reason}): {', '.join(muted.sinks)}")
    print(f"sinks reached: {', '.join(routing.sinks) or 'none'}")
    return EXIT_OK
