"""Label matchers in Alertmanager's syntax: `name="value"`, `name!="value"`,
`name=~"regex"`, `name!~"regex"`.

Invariants:
- Regexes are anchored at both ends (`=~"pay.*"` does not match `repay`), as in
  Alertmanager, and compiled once, when the matcher is made.
- A label the alert does not have counts as the empty string (Alertmanager's rule):
  `team!="payments"` matches an alert without `team`, `team=""` matches only such alerts.
- Values may be double-quoted (with `\\"`, `\\\\` and `\\n` escapes) or bare; a bare
  value ends at the first `,` or `}` and has its surrounding spaces trimmed.
- `str(matcher)` is the canonical spelling (always quoted); parsing it gives the same
  matcher back.
- Every problem is a `MatcherError` (a `ValueError`) whose message says what is wrong and
  never needs the caller to add more than the field's path.
- `walk_routes` is the one first-match walk: routes in order, each that matches is
  taken, and the walk stops at the first taken one that `stops` (for the daemon: has no
  `continue`). The daemon's routing and check-config's warnings both use it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar, cast

MatchOp = Literal["=", "!=", "=~", "!~"]
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
# Longest operators first, so `!=` is not read as `!` then `=`.
_OPS: tuple[MatchOp, ...] = ("=~", "!~", "!=", "=")
_NAME_THEN_OP = re.compile(r"\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*")
_ESCAPES = {'"': '"', "\\": "\\", "n": "\n"}

__all__ = [
    "LABEL_NAME",
    "MatchOp",
    "Matcher",
    "MatcherError",
    "canonical",
    "catches_all",
    "contradiction",
    "matches_all",
    "parse_matcher",
    "parse_matchers",
    "walk_routes",
]


class MatcherError(ValueError):
    """A matcher that cannot be read; the message says why."""


@dataclass(frozen=True, slots=True)
class Matcher:
    name: str
    op: MatchOp
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not LABEL_NAME.fullmatch(self.name):
            raise MatcherError(
                f"{self.name!r} is not a label name (letters, digits and _, not first a digit)"
            )
        if self.op not in _OPS:
            raise MatcherError(f"unknown operator {self.op!r}; use one of = != =~ !~")
        if self.op in ("=~", "!~"):
            try:
                compiled = re.compile(f"(?:{self.value})", re.DOTALL)
            except re.error as exc:
                raise MatcherError(f"invalid regex {self.value!r}: {exc}") from None
            object.__setattr__(self, "_regex", compiled)

    @classmethod
    def equal(cls, name: str, value: str) -> Matcher:
        return cls(name, "=", value)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self._regex is not None:
            found = self._regex.fullmatch(actual) is not None
            return found if self.op == "=~" else not found
        return (actual == self.value) if self.op == "=" else (actual != self.value)

    @property
    def matches_empty(self) -> bool:
        """Whether an alert without this label matches: such a matcher alone would
        select (or silence) almost everything."""
        return self.matches({})

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"


def matches_all(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """Whether every matcher holds (true for no matchers: a route without any matches all)."""
    return all(m.matches(labels) for m in matchers)


_Route = TypeVar("_Route")


def walk_routes(
    routes: Iterable[_Route], *, matches: Callable[[_Route], bool], stops: Callable[[_Route], bool]
) -> list[_Route]:
    """The routes taken, in order: each that `matches`, up to the first taken that `stops`."""
    taken: list[_Route] = []
    for route in routes:
        if matches(route):
            taken.append(route)
            if stops(route):
                break
    return taken


def catches_all(matchers: Sequence[Matcher]) -> bool:
    """Whether the matchers hold for every label set: none at all, or only `=~".*"`."""
    return all(m.op == "=~" and m.value in (".*", "(.*)") for m in matchers)


def contradiction(
    matchers: Sequence[Matcher], *, known: Mapping[str, Collection[str]] | None = None
) -> str | None:
    """Why no label set satisfies every matcher, or None when some may (or it cannot tell).

    `known` gives, for some label names, every value an alert can carry there ("" for
    an alert without the label). Other labels are judged only where an `=` fixes the
    value: regexes against each other are not compared.
    """
    by_name: dict[str, list[Matcher]] = {}
    for matcher in matchers:
        by_name.setdefault(matcher.name, []).append(matcher)
    for name, group in by_name.items():
        fixed = next((m for m in group if m.op == "="), None)
        if fixed is not None:
            failing = next((m for m in group if not m.matches({name: fixed.value})), None)
            if failing is not None:
                return f"{fixed} and {failing} cannot both hold"
        values = (known or {}).get(name)
        if values is not None and not any(
            all(m.matches({name: value}) for m in group) for value in values
        ):
            shown = ", ".join(str(m) for m in group)
            can_be = ", ".join(repr(v) if v else "(none)" for v in sorted(values))
            return f"{shown} matches no {name} an alert can have ({can_be or 'none'})"
    return None


def parse_matcher(text: str) -> Matcher:
    """One matcher, like `severity="critical"` or `team=~pay.*`."""
    matchers = parse_matchers(text)
    if len(matchers) != 1:
        raise MatcherError(f"expected one matcher, found {len(matchers)} in {text!r}")
    return matchers[0]


def parse_matchers(text: str) -> list[Matcher]:
    """Matchers separated by commas, optionally inside `{...}`, as `amtool` takes them."""
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise MatcherError(f"missing closing }} in {text!r}")
        body = body[1:-1]
    matchers: list[Matcher] = []
    position = 0
    while position < len(body):
        found = _NAME_THEN_OP.match(body, position)
        if found is None:
            rest = body[position:].strip()
            if not rest:
                break
            raise MatcherError(f'cannot read {rest!r}: expected name="value" (or !=, =~, !~)')
        name, op = found.group(1), cast(MatchOp, found.group(2))
        value, position = _value(body, found.end())
        matchers.append(Matcher(name, op, value))
        position = _after_separator(body, position)
    if not matchers:
        raise MatcherError("no matcher given")
    return matchers


def canonical(matchers: Sequence[Matcher]) -> list[str]:
    """The matchers as strings, in a stable order (for ids and display)."""
    return sorted(str(m) for m in matchers)


def _value(text: str, start: int) -> tuple[str, int]:
    """The value beginning at `start`, and the position just after it."""
    if start < len(text) and text[start] == '"':
        chars: list[str] = []
        position = start + 1
        while position < len(text):
            char = text[position]
            if char == "\\" and position + 1 < len(text):
                escaped = text[position + 1]
                chars.append(_ESCAPES.get(escaped, "\\" + escaped))
                position += 2
            elif char == '"':
                return "".join(chars), position + 1
            else:
                chars.append(char)
                position += 1
        raise MatcherError(f"unterminated quoted value in {text!r}")
    end = start
    while end < len(text) and text[end] not in ",}":
        end += 1
    value = text[start:end].strip()
    if '"' in value:
        raise MatcherError(f'a bare value cannot hold a quote: {value!r}; quote it as "..."')
    return value, end


def _after_separator(text: str, position: int) -> int:
    rest = text[position:]
    stripped = rest.lstrip()
    if not stripped:
        return len(text)
    if stripped[0] != ",":
        raise MatcherError(f"expected , between matchers, found {stripped[:20]!r}")
    return len(text) - len(stripped) + 1


def _quote(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
