"""What `check-config` warns about: a valid configuration that probably does not do what
was meant. Warnings never stop the relay (errors are `reference_problems`' job).

Invariants: each warning is `path.to.field: message`, like a problem; a configuration
without routes warns exactly as before routes existed (about nothing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from relay.matchers import Matcher, walk_routes
from relay.settings._root import Settings
from relay.settings._routes import RouteSettings

__all__ = ["EXECUTION_LABELS", "config_warnings"]

# Labels an alert takes from its execution (or source), unknown before it fires; every
# other label an alert has comes from its rule (name, severity, `labels`).
EXECUTION_LABELS = frozenset(
    {"source", "type", "responder_id", "responder", "agent_id", "workflow_id"}
)


def _may_match(matchers: list[Matcher], rule_labels: Mapping[str, str]) -> bool:
    """Whether an alert of a rule with `rule_labels` may satisfy `matchers` (labels from
    the execution are assumed to fit)."""
    return all(m.name in EXECUTION_LABELS or m.matches(rule_labels) for m in matchers)


def _surely_matches(matchers: list[Matcher], rule_labels: Mapping[str, str]) -> bool:
    """Whether every alert of a rule with `rule_labels` satisfies `matchers` (none of
    them looks at a label from the execution)."""
    return all(m.name not in EXECUTION_LABELS and m.matches(rule_labels) for m in matchers)


def _reaches_a_sink(routes: Sequence[RouteSettings], rule_labels: Mapping[str, str]) -> bool:
    """Whether some alert of the rule takes a route with sinks: the daemon's first-match
    walk, where a route that may match is taken but only one that surely matches (and
    does not `continue`) stops the alerts that got that far."""
    taken = walk_routes(
        routes,
        matches=lambda r: _may_match(r.matchers, rule_labels),
        stops=lambda r: _surely_matches(r.matchers, rule_labels) and not r.continue_,
    )
    return any(route.sinks for route in taken)


def config_warnings(settings: Settings) -> list[str]:
    """Sinks nothing sends to, Slack signing secrets without a bot token, and rules
    whose alerts reach no sink."""
    warnings: list[str] = []
    used = {sink for rule in settings.rules for sink in rule.sinks}
    used.update(sink for route in settings.routes for sink in route.sinks)
    for name in settings.sinks:
        if name not in used:
            warnings.append(f"sinks.{name}: no rule and no route names it; nothing is sent there")
    for name, sink in settings.sinks.items():
        if sink.type == "slack" and sink.signing_secret is not None and sink.bot_token is None:
            warnings.append(
                f"sinks.{name}.signing_secret: only used with bot_token (messages of an "
                "incoming webhook carry no buttons and cannot be edited); it is ignored"
            )
    for index, rule in enumerate(settings.rules):
        if rule.sinks:
            continue
        extra = getattr(rule, "labels", None)
        labels = {**(extra or {}), "rule": rule.name, "severity": rule.severity}
        if not _reaches_a_sink(settings.routes, labels):
            warnings.append(
                f"rules.{index}.sinks: no sinks, and no route with sinks matches its alerts "
                f'(rule="{rule.name}", severity="{rule.severity}"); they are recorded, never sent'
            )
    return warnings
