"""Reads the configuration file into `Settings`, reporting every problem at once.

Order of work, each step on a fresh tree of plain data:
1. parse the YAML (syntax errors carry `FILE:LINE`; duplicate keys are problems);
2. interpolate `${VAR}` / `${VAR:-default}` in every string value (`$${` is a literal `${`);
3. apply environment overrides `RELAY_<KEY>__<KEY>...=value` (list entries by index,
   dict entries by key, matched case-insensitively; `RELAY_CONFIG` and other names
   without `__` are not overrides);
4. validate with pydantic, and check references between sections.

Invariants: every problem is a `ConfigProblem` whose path uses the keys of the YAML
file (`sources.0.poll_interval`, `sinks.oncall.webhook_url`), never class names or union
tags; no message repeats a secret value, nor the text of a line of the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from relay.errors import ConfigError, ConfigProblem
from relay.scrub import SecretScrubber
from relay.settings._problems import translate_error
from relay.settings._root import Settings, reference_problems
from relay.settings._secrets import raw_secrets_of

Location = tuple[str | int, ...]
Found = list[tuple[Location, str]]

ENV_PREFIX = "RELAY_"
CONFIG_ENV = "RELAY_CONFIG"
_REFERENCE = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_BODY = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.DOTALL)


def load_settings(path: Path | str | None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Load the file at `path` (or `$RELAY_CONFIG`); raise ConfigError listing every problem."""
    env = os.environ if environ is None else environ
    if path is None:
        path = env.get(CONFIG_ENV) or None
        if path is None:
            raise ConfigError(
                [ConfigProblem("", f"no configuration file: pass -c FILE or set {CONFIG_ENV}")]
            )
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(str(path), "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise ConfigError([ConfigProblem(str(path), f"cannot read it: {reason}")]) from None
    return parse_settings(text, environ=env, source=str(path), base_dir=path.parent)


def parse_settings(
    text: str,
    *,
    environ: Mapping[str, str] | None = None,
    source: str = "<config>",
    base_dir: Path | None = None,
) -> Settings:
    """Like `load_settings`, for configuration text; `base_dir` anchors relative `*_file` paths."""
    env = os.environ if environ is None else environ
    data, lines, found = _parse_yaml(text, source=source)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigProblem(f"{source}:1", "the file should be a mapping of sections")]
        )
    tree = _interpolate(data, (), env, found)
    origins = _apply_overrides(tree, env, found)
    blocked = {loc for loc, _ in found}

    try:
        settings = Settings.model_validate(tree, context={"base_dir": base_dir})
    except ValidationError as exc:
        for error in exc.errors(include_url=False, include_input=False):
            loc, message = translate_error(error, tree)
            if not any(loc[: len(b)] == b for b in blocked):
                found.append((loc, message))
        found.extend(p for p in reference_problems(tree) if p not in found)
    else:
        if not found:
            return settings

    # Pre-validation: the raw tree's secrets (of 4 characters or more: shorter values
    # are too common to replace in a message).
    scrubber = SecretScrubber.of(raw_secrets_of(tree), min_length=4)
    problems = []
    for loc, message in sorted(found, key=lambda p: _line_of(p[0], lines) or 1 << 30):
        if loc and isinstance(loc[0], str) and loc[0].startswith("$"):
            path = loc[0][1:]  # a problem with an environment variable, named as such
        else:
            path = ".".join(str(part) for part in loc)
            origin = next(
                (origins[loc[:n]] for n in range(len(loc), 0, -1) if loc[:n] in origins), None
            )
            line = _line_of(loc, lines)
            if origin is not None:
                message += f" (set by {origin})"
            elif line is not None:
                message += f" (line {line})"
        problems.append(ConfigProblem(path, scrubber.scrub_text(message)))
    raise ConfigError(problems)


# --- 1. YAML ------------------------------------------------------------------------


# PyYAML's messages quote what they stumbled on (a tag, an alias, a value), which may
# be a secret: quoted text goes, but for what cannot be one (`_HARMLESS_QUOTE`).
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_QUOTE_HINT = (
    "; quote values that start with ! * & @ or ` (YAML reads them as tags, aliases, "
    "anchors or reserved characters)"
)
# What PyYAML's constructors raise, besides its own errors, for `!!int abc`, `!!bool x`.
_CONSTRUCTOR_ERRORS = (ValueError, KeyError, TypeError, OverflowError, AttributeError)
_TAG_HINT = "a value does not fit its tag (like !!int); quote the value or drop the tag"


# Kept: one character, or a token name of PyYAML's own (`'<block end>'`).
_HARMLESS_QUOTE = re.compile(r"""(['"])(?:[^\\]|\\[a-z]|\\x[0-9a-f]{2}|<[a-z ]+>)\1""")


def _unquoted(message: str) -> str:
    return _QUOTED.sub(lambda m: m[0] if _HARMLESS_QUOTE.fullmatch(m[0]) else "(...)", message)


def _yaml_problem(exc: yaml.MarkedYAMLError, source: str) -> ConfigProblem:
    """Where the YAML is wrong and how, without the text there (it may be a secret)."""
    mark = exc.problem_mark or exc.context_mark
    where = f"{source}:{mark.line + 1}" if mark is not None else source
    # Never the offending line itself (`get_snippet`) nor a quoted part of it.
    what = "; ".join(_unquoted(str(part)) for part in (exc.context, exc.problem) if part)
    column = f" (column {mark.column + 1})" if mark is not None else ""
    hint = _QUOTE_HINT if re.search(r"tag|alias|anchor|cannot start", what) else ""
    return ConfigProblem(where, f"invalid YAML: {what}{column}{hint}")


def _unfit_value(node: yaml.Node, source: str) -> ConfigProblem:
    """The first scalar whose explicit tag its value does not fit (`!!int abc`)."""
    pending = [node]
    while pending:
        current = pending.pop(0)
        if isinstance(current, yaml.ScalarNode):
            try:  # a fresh loader: a failed construction leaves state behind
                _ConfigLoader("").construct_object(current)
            except (*_CONSTRUCTOR_ERRORS, yaml.YAMLError):
                mark = current.start_mark
                return ConfigProblem(
                    f"{source}:{mark.line + 1}",
                    f"invalid YAML: {_TAG_HINT} (column {mark.column + 1})",
                )
        elif isinstance(current, yaml.SequenceNode):
            pending.extend(current.value)
        elif isinstance(current, yaml.MappingNode):
            pending.extend(part for pair in current.value for part in pair)
    return ConfigProblem(source, f"invalid YAML: {_TAG_HINT}")


class _ConfigLoader(yaml.SafeLoader):
    """YAML 1.1's safe loader without its base-60 numbers: `start: 10:00` and
    `days_of_month: [1:15]` stay the strings an operator meant (a time, a range), as
    YAML 1.2 and Alertmanager read them, instead of becoming 600 and 75."""


_INT, _FLOAT = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"
_ConfigLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in (_INT, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# PyYAML's own patterns, minus the sexagesimal alternatives.
_ConfigLoader.add_implicit_resolver(
    _INT,
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)
_ConfigLoader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def _parse_yaml(text: str, *, source: str) -> tuple[Any, dict[Location, int], Found]:
    loader = _ConfigLoader(text)
    node: yaml.Node | None = None
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_yaml_problem(exc, source)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(source, f"invalid YAML: {type(exc).__name__}")]) from None
    except _CONSTRUCTOR_ERRORS:
        # `!!int abc`, `!!bool maybe`: the constructor's own error quotes the value.
        assert node is not None
        raise ConfigError([_unfit_value(node, source)]) from None
    finally:
        loader.dispose()
    lines: dict[Location, int] = {}
    found: Found = []
    if node is not None:
        _index_nodes(node, (), lines, found)
    return data, lines, found


def _index_nodes(node: yaml.Node, loc: Location, lines: dict[Location, int], found: Found) -> None:
    lines.setdefault(loc, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(
                key_node, yaml.ScalarNode
            ):
                continue
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                found.append(
                    ((*loc, key), f"duplicate key: also on line {seen[key]}; keep only one")
                )
            seen[key] = line
            lines[(*loc, key)] = line  # the later value is the one kept, as in PyYAML
            _index_nodes(value_node, (*loc, key), lines, found)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_nodes(item, (*loc, index), lines, found)


def _line_of(loc: Location, lines: Mapping[Location, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        key = tuple(str(p) if isinstance(p, str) else p for p in loc[:end])
        if key in lines:
            return lines[key]
    return None


# --- 2. interpolation ---------------------------------------------------------------


def _interpolate(value: Any, loc: Location, env: Mapping[str, str], found: Found) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, k), env, found) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), env, found) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        return _REFERENCE.sub(lambda m: _substitute(m, loc, env, found), value)
    return value


def _substitute(match: re.Match[str], loc: Location, env: Mapping[str, str], found: Found) -> str:
    text = match.group(0)
    if text == "$${":
        return "${"
    body = match.group("body")
    parsed = _BODY.fullmatch(body) if body is not None else None
    if parsed is None:
        found.append(
            (loc, "invalid reference: write ${NAME} or ${NAME:-default} ($${ for a literal ${)")
        )
        return ""
    name, default = parsed.group("name"), parsed.group("default")
    value = env.get(name)
    if default is not None and not value:
        return default
    if value is None:
        found.append(
            (loc, f"environment variable {name} is not set (or write ${{{name}:-default}})")
        )
        return ""
    return value


# --- 3. environment overrides -------------------------------------------------------


def _apply_overrides(
    tree: dict[str, Any], env: Mapping[str, str], found: Found
) -> dict[Location, str]:
    """Apply `RELAY_A__B__0__C=value`; return which location each variable set."""
    origins: dict[Location, str] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or "__" not in name or name == CONFIG_ENV:
            continue
        parts = name[len(ENV_PREFIX) :].split("__")
        if not all(parts):
            found.append(((f"${name}",), "empty segment: separate keys with exactly two _"))
            continue
        loc = _set_path(tree, parts, _override_value(env[name]), name, found)
        if loc is not None:
            origins[loc] = name
    return origins


def _set_path(
    tree: dict[str, Any], parts: Sequence[str], value: Any, name: str, found: Found
) -> Location | None:
    node: dict[Any, Any] | list[Any] = tree
    loc: Location = ()
    for depth, part in enumerate(parts):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                dotted = ".".join(str(p) for p in loc)
                found.append(
                    (
                        (f"${name}",),
                        f"{dotted} has {len(node)} entries: use an index from 0 to {len(node) - 1}",
                    )
                )
                return None
            index = int(part)
            loc += (index,)
            if depth == len(parts) - 1:
                node[index] = value
                return loc
            child = node[index]
            if child is None:
                child = node[index] = {}
        else:
            key = _match_key(node, part)
            loc += (key,)
            if depth == len(parts) - 1:
                node[key] = value
                return loc
            child = node.get(key)
            if child is None:
                child = node[key] = {}
        if not isinstance(child, dict | list):
            found.append(
                ((f"${name}",), f"{'.'.join(str(p) for p in loc)} is a value, not a section")
            )
            return None
        node = child
    return None


def _match_key(mapping: dict[Any, Any], part: str) -> str:
    def normal(key: object) -> str:
        return str(key).lower().replace("-", "_")

    for key in mapping:
        if normal(key) == normal(part):
            return str(key)
    return part.lower()


def _override_value(text: str) -> Any:
    # Strings are taken verbatim: YAML would turn a token like `0123` or `1e5` into a
    # number, or cut `abc #def` at the `#`. Pydantic converts "30", "true", "0.2" where
    # the field wants a number or a boolean; only flow lists/mappings and null are parsed.
    stripped = text.strip()
    if stripped in ("null", "~"):
        return None
    if stripped[:1] in ("[", "{"):
        try:
            return yaml.load(stripped, Loader=_ConfigLoader)
        except yaml.YAMLError:
            return text
    return text
