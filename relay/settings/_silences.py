"""Config-defined silences, and reading silence matchers in every form they are given
in (the `silences:` file section, `POST /api/v1/silences`, `silences add`).

Invariants:
- Matchers come as a list of strings in Alertmanager's syntax (`'team=~"pay.*"'`, or
  several in one `{...}`), a list of Alertmanager v2 objects (`{name, value, isRegex,
  isEqual}`), or the old map (`{rule: x, severity: warning}`: equality matchers).
  Every problem is located at the entry it is about (`(1,)`, `(1, "isRegex")`, or the
  map's key), and the checks of what a silence may be (`silence_matcher_problems`:
  `=` values of severity/type, a silence that would match everything; the silence
  domain runs them too) are located the same way.
- A validated `SilenceMatchers` remembers which entry each matcher came from and
  serialises back to the same shape (map or list, one entry per entry), so a problem
  found on the validated settings has the location it has in the raw file.
- A silence with `time_intervals` is recurring: it needs no `ends`; the names must be
  those of `time_intervals:` (a cross-section check, `silence_reference_problems`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from pydantic import Field, PlainSerializer, PlainValidator, model_validator

from relay.clock import UtcDatetime
from relay.matchers import Matcher, MatcherError, MatchOp, parse_matchers
from relay.settings._base import Name, Section, raise_problems
from relay.vocab import ExecutionKind, Severity

Location = tuple[str | int, ...]

__all__ = [
    "ALERT_LABEL_VALUES",
    "MatcherProblems",
    "ReadMatchers",
    "SilenceMatchers",
    "SilenceSettings",
    "read_matchers",
    "silence_matcher_problems",
    "silence_reference_problems",
]

_OBJECT_KEYS = frozenset({"name", "value", "isRegex", "isEqual"})
# Labels whose every value is known from the code (rule and source names come from the
# configuration): `=` on them with another value could never match, in a silence or a
# route. "" stands for an alert without the label (a windowed one has no `type`).
ALERT_LABEL_VALUES: Mapping[str, tuple[str, ...]] = {
    "severity": get_args(Severity),
    "type": (*get_args(ExecutionKind), ""),
}


class MatcherProblems(ValueError):
    """Matchers that cannot be used; `problems` are (location within them, message)."""

    def __init__(self, problems: Sequence[tuple[Location, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {m}" for loc, m in problems))


@dataclass(frozen=True, slots=True)
class ReadMatchers:
    """Parsed matchers, each with the entry it came from (its index, or its map key)."""

    matchers: tuple[Matcher, ...]
    entries: tuple[str | int, ...]
    as_map: bool

    def __iter__(self) -> Iterator[Matcher]:
        return iter(self.matchers)

    def __len__(self) -> int:
        return len(self.matchers)

    def spelled(self) -> dict[str, str] | list[str]:
        """The shape they were given in: the map, or one canonical string per entry."""
        if self.as_map:
            return {m.name: m.value for m in self.matchers}
        grouped: dict[str | int, list[str]] = {}
        for matcher, entry in zip(self.matchers, self.entries, strict=True):
            grouped.setdefault(entry, []).append(str(matcher))
        return [one[0] if len(one) == 1 else "{" + ", ".join(one) + "}" for one in grouped.values()]

    def problems(self) -> list[tuple[Location, str]]:
        """The silence domain's objections (`silence_matcher_problems`), located at the entry
        each is about (`()`: about them all)."""
        return [
            ((self.entries[index],) if index is not None else (), message)
            for index, message in silence_matcher_problems(self.matchers)
        ]


def silence_matcher_problems(matchers: Sequence[Matcher]) -> list[tuple[int | None, str]]:
    """What is wrong with a silence's matchers, each with the index of the matcher it is
    about (None: about them all); empty when they are fine."""
    if not matchers:
        return [(None, 'give at least one matcher, like rule="execution-failed"')]
    problems: list[tuple[int | None, str]] = []
    for index, matcher in enumerate(matchers):
        allowed = ALERT_LABEL_VALUES.get(matcher.name)
        if matcher.op == "=" and allowed is not None and matcher.value not in allowed:
            shown = ", ".join(sorted(v for v in allowed if v))
            if "" in allowed:
                shown += ' (or "" for an alert without it)'
            problems.append((index, f"{matcher.name} should be one of {shown}"))
    if not problems and all(m.matches_empty for m in matchers):
        problems.append(
            (
                None,
                "every matcher also matches alerts without the label, so this would "
                'silence nearly everything; add one like rule="execution-failed"',
            )
        )
    return problems


def read_matchers(value: Any, *, check: bool = True) -> ReadMatchers:
    """Matchers in any of the forms of the module docstring; `MatcherProblems` if any
    entry cannot be read, or (with `check`) the silence domain refuses them."""
    if isinstance(value, ReadMatchers):
        return value
    found: list[tuple[Matcher, str | int]] = []
    problems: list[tuple[Location, str]] = []
    as_map = isinstance(value, Mapping)
    if isinstance(value, Mapping):
        for key, raw in value.items():
            text = _plain_value(raw)
            if text is None:
                problems.append(((str(key),), "should be a string"))
                continue
            try:
                found.append((Matcher.equal(str(key), text), str(key)))
            except MatcherError as exc:
                problems.append(((str(key),), str(exc)))
    elif isinstance(value, str | list | tuple):
        entries = [value] if isinstance(value, str) else list(value)
        for index, entry in enumerate(entries):
            try:
                found.extend((m, index) for m in _entry(entry))
            except MatcherProblems as exc:
                problems.extend(((index, *loc), message) for loc, message in exc.problems)
    else:
        problems.append(((), 'should be a list of matchers like ["severity=\\"critical\\""]'))
    if problems:
        raise MatcherProblems(problems)
    read = ReadMatchers(
        matchers=tuple(m for m, _ in found),
        entries=tuple(e for _, e in found),
        as_map=as_map,
    )
    if check and (refused := read.problems()):
        raise MatcherProblems(refused)
    return read


def _plain_value(raw: Any) -> str | None:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return str(raw)
    return None


def _entry(entry: Any) -> list[Matcher]:
    """One list entry: a matcher string (maybe `{a="b", c="d"}`) or a v2 object."""
    if isinstance(entry, str):
        try:
            return parse_matchers(entry)
        except MatcherError as exc:
            raise MatcherProblems([((), str(exc))]) from None
    if not isinstance(entry, Mapping):
        raise MatcherProblems([((), 'should be a string like severity="critical"')])
    problems: list[tuple[Location, str]] = [
        ((str(key),), "unknown key; use name, value, isRegex, isEqual")
        for key in entry
        if key not in _OBJECT_KEYS
    ]
    for key in ("name", "value"):
        if not isinstance(entry.get(key), str):
            problems.append(((key,), "required, a string"))
    for key in ("isRegex", "isEqual"):
        if not isinstance(entry.get(key, False), bool):
            problems.append(((key,), "should be true or false"))
    if problems:
        raise MatcherProblems(problems)
    regex, equal = entry.get("isRegex", False), entry.get("isEqual", True)
    op: MatchOp = ("=~" if equal else "!~") if regex else ("=" if equal else "!=")
    try:
        return [Matcher(entry["name"], op, entry["value"])]
    except MatcherError as exc:
        raise MatcherProblems([((), str(exc))]) from None


def _validate(value: Any) -> ReadMatchers:
    try:
        return read_matchers(value)
    except MatcherProblems as exc:
        raise_problems(exc.problems, title="SilenceMatchers")
        raise  # unreachable: raise_problems raised


SilenceMatchers = Annotated[
    ReadMatchers,
    PlainValidator(_validate),
    PlainSerializer(lambda read: read.spelled(), return_type=dict[str, str] | list[str]),
]


class SilenceSettings(Section):
    """A silence in the file: one-off (`starts`/`ends`), recurring (`time_intervals`:
    muting only inside them), or both (recurring within `starts`/`ends`)."""

    matchers: SilenceMatchers
    starts: UtcDatetime | None = None
    ends: UtcDatetime | None = None
    time_intervals: list[Name] = Field(default_factory=list)
    comment: str = ""
    creator: str = "config"

    @model_validator(mode="after")
    def _ordered(self) -> SilenceSettings:
        problems: list[tuple[Location, str]] = []
        if self.ends is None and not self.time_intervals:
            problems.append(
                (("ends",), "required (or time_intervals: [NAME] for a recurring silence)")
            )
        if self.starts is not None and self.ends is not None and self.ends <= self.starts:
            problems.append((("ends",), "should be after starts"))
        seen: set[str] = set()
        for index, name in enumerate(self.time_intervals):
            if name in seen:
                problems.append((("time_intervals", index), f"{name!r} is listed twice"))
            seen.add(name)
        raise_problems(problems, title="SilenceSettings")
        return self


def _rules_named(matchers: Any) -> list[tuple[Location, str]]:
    """The rule names silence matchers (in any raw form) require by equality."""
    if isinstance(matchers, Mapping):
        rule = matchers.get("rule")
        return [(("rule",), str(rule))] if isinstance(rule, str) else []
    if not isinstance(matchers, list):
        return []
    named: list[tuple[Location, str]] = []
    for index, entry in enumerate(matchers):
        try:
            parsed = _entry(entry)
        except MatcherProblems:
            continue
        named.extend(((index,), m.value) for m in parsed if m.name == "rule" and m.op == "=")
    return named


def silence_reference_problems(
    tree: Mapping[str, Any], *, rule_names: Sequence[str], interval_names: Sequence[str]
) -> list[tuple[Location, str]]:
    """Silences (in a possibly partly invalid tree) that name an unknown rule by
    `rule="x"`, or an unknown time interval."""
    problems: list[tuple[Location, str]] = []
    silences = tree.get("silences")
    if not isinstance(silences, list):
        return problems
    defined_rules = ", ".join(rule_names) if rule_names else "none"
    defined_intervals = ", ".join(interval_names) or "none (add a `time_intervals:` section)"
    for index, silence in enumerate(silences):
        if not isinstance(silence, Mapping):
            continue
        for loc, rule in _rules_named(silence.get("matchers")):
            if rule not in rule_names:
                problems.append(
                    (
                        ("silences", index, "matchers", *loc),
                        f"unknown rule {rule!r}; defined rules: {defined_rules}",
                    )
                )
        wanted = silence.get("time_intervals")
        for position, name in enumerate(wanted if isinstance(wanted, list) else []):
            if isinstance(name, str) and name not in interval_names:
                problems.append(
                    (
                        ("silences", index, "time_intervals", position),
                        f"unknown time interval {name!r}; defined: {defined_intervals}",
                    )
                )
    return problems
