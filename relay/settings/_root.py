"""The whole configuration, and the checks that span sections.

Invariants of a `Settings` value:
- at least one source; source names, rule names and sink names are unique;
- every sink a rule names is defined under `sinks`; a rule without sinks needs `routes`;
- routes are coherent with the other sections (see `relay.settings._routes`);
- every rule a config-defined silence names (`rule="x"`) is defined under `rules`, and
  every time interval it names under `time_intervals`;
- a responder name (`responders`) is one non-empty line of at most 100 characters.
The cross-section checks are written against plain data (`reference_problems`) so the
loader can also run them when other parts of the file failed validation, and report
every problem in one go.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, Field, model_validator

from relay.proxies import proxy_secrets
from relay.settings._base import Name, Section, raise_problems
from relay.settings._intervals import TimeIntervalSettings
from relay.settings._routes import RouteSettings, route_problems
from relay.settings._rules import RuleSettings
from relay.settings._secrets import distinct_secrets, model_secrets
from relay.settings._sections import (
    AlertsSettings,
    LogSettings,
    ServerSettings,
    SourceSettings,
    StoreSettings,
)
from relay.settings._silences import SilenceSettings, silence_reference_problems
from relay.settings._sinks import AlertmanagerSinkSettings, SinkSettings, delivery_targets
from relay.time_intervals import TimeInterval

Location = tuple[str | int, ...]


def _check_responder_name(value: str) -> str:
    value = " ".join(value.split())
    if not value:
        raise ValueError("should not be empty")
    if len(value) > _RESPONDER_NAME_CHARS:
        raise ValueError(f"should be at most {_RESPONDER_NAME_CHARS} characters")
    return value


# Shown in one-line summaries and used as the `responder` label: one line, bounded.
_RESPONDER_NAME_CHARS = 100
ResponderName = Annotated[str, AfterValidator(_check_responder_name)]


class Settings(Section):
    sources: list[SourceSettings] = Field(min_length=1)
    store: StoreSettings = Field(default_factory=StoreSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    rules: list[RuleSettings] = Field(default_factory=list)
    sinks: dict[Name, SinkSettings] = Field(default_factory=dict)
    silences: list[SilenceSettings] = Field(default_factory=list)
    time_intervals: list[TimeIntervalSettings] = Field(default_factory=list)
    # responder_id -> the name people know it by, shown instead of the id in messages.
    responders: dict[str, ResponderName] = Field(default_factory=dict)
    routes: list[RouteSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> Settings:
        raise_problems(reference_problems(self.model_dump()), title="Settings")
        return self

    def source(self, name: str) -> SourceSettings:
        """The source called `name`; KeyError if there is none."""
        for source in self.sources:
            if source.name == name:
                return source
        raise KeyError(name)

    def rule(self, name: str) -> RuleSettings:
        """The rule called `name`; KeyError if there is none."""
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def intervals(self) -> dict[str, TimeInterval]:
        """The `time_intervals` by name, ready for routes and silences."""
        return {entry.name: entry.build() for entry in self.time_intervals}

    def targets(self) -> dict[str, tuple[str, ...]]:
        """The delivery targets of each sink (`delivery_targets`), by sink name."""
        return {name: delivery_targets(name, sink) for name, sink in self.sinks.items()}

    def targets_of(self, sink: str) -> tuple[str, ...]:
        """What `--sink NAME` selects: a configured sink's targets, else NAME itself (a
        target like `am[host:9093]`, or a sink removed from the configuration)."""
        return self.targets().get(sink, (sink,))

    def secret_values(self) -> list[str]:
        """`secrets_of(self)`: what `relay.scrub.SecretScrubber.from_settings` asks for."""
        return secrets_of(self)


def secrets_of(settings: Settings) -> list[str]:
    """Every secret value in `settings`: API keys, webhook URLs, tokens, signing secrets
    (with and without `whsec_`), header values, the admin token, a database password
    in the store URL (a plain string, yet a secret), the `Authorization` value of
    Alertmanager basic auth (so its base64 is scrubbed too) and an Alertmanager URL
    with `user:password@`; and the credentials of a proxy in the environment."""
    alertmanager = [s for s in settings.sinks.values() if isinstance(s, AlertmanagerSinkSettings)]
    credentials = [s.basic_auth.header_value for s in alertmanager if s.basic_auth is not None]
    # An Alertmanager URL is plain text, unless it carries `user:password@`.
    credentials += [url for s in alertmanager for url in s.endpoints if "@" in url]
    return distinct_secrets(
        [*model_secrets(settings), settings.store.password, *credentials, *proxy_secrets()]
    )


def _entries(tree: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    value = tree.get(key)
    if not isinstance(value, list):
        return []
    return [(index, item) for index, item in enumerate(value) if isinstance(item, Mapping)]


def _names_of(tree: Mapping[str, Any], key: str) -> list[str]:
    return [name for _, item in _entries(tree, key) if isinstance(name := item.get("name"), str)]


def _unique_names(tree: Mapping[str, Any], key: str, noun: str) -> list[tuple[Location, str]]:
    problems: list[tuple[Location, str]] = []
    first_index: dict[str, int] = {}
    for index, item in _entries(tree, key):
        name = item.get("name")
        if not isinstance(name, str):
            continue
        if name in first_index:
            problems.append(
                (
                    (key, index, "name"),
                    f"duplicate {noun} name {name!r} (also {key}.{first_index[name]})",
                )
            )
        else:
            first_index[name] = index
    return problems


def reference_problems(tree: Mapping[str, Any]) -> list[tuple[Location, str]]:
    """Problems between sections of a (possibly partly invalid) configuration tree."""
    problems = _unique_names(tree, "sources", "source")
    problems += _unique_names(tree, "rules", "rule")
    problems += _unique_names(tree, "time_intervals", "time interval")

    sinks = tree.get("sinks")
    sink_names = sorted(str(name) for name in sinks) if isinstance(sinks, Mapping) else []
    defined_sinks = ", ".join(sink_names) if sink_names else "none (add a `sinks:` section)"
    routes = _entries(tree, "routes")
    for index, rule in _entries(tree, "rules"):
        wanted = rule.get("sinks")
        wanted = [wanted] if isinstance(wanted, str) else wanted
        if not routes and wanted in (None, []):
            problems.append(
                (("rules", index, "sinks"), "name at least one sink (or add `routes:`)")
            )
        if not isinstance(wanted, list):
            continue
        unknown = [name for name in wanted if isinstance(name, str) and name not in sink_names]
        if unknown:
            listed = ", ".join(repr(name) for name in unknown)
            problems.append(
                (
                    ("rules", index, "sinks"),
                    f"unknown {'sink' if len(unknown) == 1 else 'sinks'} {listed}; "
                    f"defined sinks: {defined_sinks}",
                )
            )

    rule_names = sorted(
        name for _, rule in _entries(tree, "rules") if isinstance(name := rule.get("name"), str)
    )
    problems += route_problems(
        routes,
        sinks=sink_names,
        intervals=_names_of(tree, "time_intervals"),
        rules=rule_names,
        sources=_names_of(tree, "sources"),
    )
    problems += silence_reference_problems(
        tree, rule_names=rule_names, interval_names=_names_of(tree, "time_intervals")
    )
    return problems
