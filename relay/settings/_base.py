"""Building blocks shared by every settings section.

Invariants:
- Every section forbids unknown keys, so a typo is an error that names its path.
- Sections are frozen: settings are read once at start and never change.
- A secret field `X` (typed `Secret` or `OptionalSecret`) also accepts `X_file: PATH`,
  read here with its trailing newline stripped; a relative path is taken from the
  directory of the configuration file (validation context `base_dir`). Problems name
  the field and the path, never the content.
- Validators raise `ValueError` with a message meant for the operator; the loader turns
  them into `path: message` lines. Messages never repeat a secret value.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    SecretStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from relay.durations import format_duration, parse_duration

# Field names that hold a secret in some section, and names that are plain somewhere;
# the loader uses them to hint at `X_file` and to keep secrets out of its messages.
SECRET_FIELD_NAMES: set[str] = set()
PLAIN_FIELD_NAMES: set[str] = set()


def _is_secret_annotation(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    return get_origin(annotation) in (Union, type(int | None)) and SecretStr in get_args(annotation)


@dataclass(frozen=True)
class _Unusable:
    """Stands in for a secret whose `X_file` could not be used; its validator reports why."""

    message: str


class Section(BaseModel):
    """Base of every settings model."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    secret_fields: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        secret = {n for n, f in cls.model_fields.items() if _is_secret_annotation(f.annotation)}
        cls.secret_fields = frozenset(secret)
        SECRET_FIELD_NAMES.update(secret)
        PLAIN_FIELD_NAMES.update(set(cls.model_fields) - secret)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict) or not cls.secret_fields:
            return data
        file_keys = [f"{name}_file" for name in sorted(cls.secret_fields)]
        if not any(key in data for key in file_keys):
            return data
        data = dict(data)
        base_dir = (info.context or {}).get("base_dir")
        for name in sorted(cls.secret_fields):
            file_key = f"{name}_file"
            if file_key not in data:
                continue
            raw_path = data.pop(file_key)
            if raw_path in (None, ""):
                continue  # an empty `X_file:` (a template left blank) means "not given"
            if data.get(name) not in (None, ""):
                data[name] = _Unusable(f"set either {name} or {file_key}, not both")
                continue
            data[name] = _read_secret_file(raw_path, file_key=file_key, base_dir=base_dir)
        return data


def _read_secret_file(raw_path: Any, *, file_key: str, base_dir: Any) -> str | _Unusable:
    if not isinstance(raw_path, str) or not raw_path.strip():
        return _Unusable(f"{file_key} should be the path of a file holding the secret")
    path = Path(raw_path).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        return _Unusable(f"cannot read {file_key} {str(path)!r}: {reason}")
    # Kubernetes secret mounts and `echo` leave a trailing newline that is not part of it.
    content = content.rstrip("\r\n")
    if not content:
        return _Unusable(f"{file_key} {str(path)!r} is empty")
    return content


def raise_problems(problems: Sequence[tuple[tuple[str | int, ...], str]], *, title: str) -> None:
    """Raise each (location, message) as a validation error located below the current model.

    A model validator can only raise at the model's own location; raising a
    `ValidationError` instead lets pydantic prefix each location, so the operator is
    pointed at `rules.2.when.failure_ratio` rather than at `rules.2`.
    """
    if problems:
        raise ValidationError.from_exception_data(
            title,
            [
                InitErrorDetails(
                    type=PydanticCustomError("relay", "{message}", {"message": message}),
                    loc=loc,
                    input=None,
                )
                for loc, message in problems
            ],
        )


def listed_twice(
    values: Sequence[str], field: str, noun: str
) -> list[tuple[tuple[str | int, ...], str]]:
    """A problem for each value of the list `field` that an earlier entry already gave."""
    seen: set[str] = set()
    found: list[tuple[tuple[str | int, ...], str]] = []
    for index, value in enumerate(values):
        if value in seen:
            found.append(((field, index), f"{noun} {value!r} is listed twice"))
        seen.add(value)
    return found


# --- secrets ------------------------------------------------------------------------


def _secret_input(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, _Unusable):
        raise ValueError(value.message)
    if value is None or (isinstance(value, str) and not value):
        name = info.field_name or "the secret"
        raise ValueError(f"is empty: set {name}, or {name}_file to a file holding it")
    return value


def _optional_secret_input(value: Any, info: ValidationInfo) -> Any:
    # `${TOKEN:-}` yields "" when TOKEN is unset: that means "not configured".
    if value is None or (isinstance(value, str) and not value):
        return None
    return _secret_input(value, info)


Secret = Annotated[SecretStr, BeforeValidator(_secret_input)]
OptionalSecret = Annotated[SecretStr | None, BeforeValidator(_optional_secret_input)]


# --- durations ----------------------------------------------------------------------


def _duration_input(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"add a unit: write {value}s, {value}m or {value}h")
    raise ValueError("should be a duration like 15s, 5m, 2h or 7d")


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise ValueError("should be longer than 0s")
    return value


def _non_negative(value: timedelta) -> timedelta:
    if value < timedelta(0):
        raise ValueError("should not be negative")
    return value


_duration_json = PlainSerializer(format_duration, return_type=str, when_used="json")
Duration = Annotated[
    timedelta, BeforeValidator(_duration_input), AfterValidator(_non_negative), _duration_json
]
PositiveDuration = Annotated[
    timedelta, BeforeValidator(_duration_input), AfterValidator(_positive), _duration_json
]


# --- names, URLs, templates, patterns ------------------------------------------------

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(
            "should be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return value


# Names of sources, rules and sinks end up in metric labels, alert ids and URLs.
Name = Annotated[str, AfterValidator(_check_name)]


def check_http_url(value: str, *, field: str = "URL") -> str:
    """Accept an http(s) URL with a host; the message never repeats the value (it may be secret)."""
    try:
        parts = urlsplit(value.strip())
        usable = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        usable = False
    if not usable:
        raise ValueError(f"should be an http:// or https:// {field} with a host")
    return value.strip()


HttpUrl = Annotated[str, AfterValidator(check_http_url)]


def is_loopback_host(host: str) -> bool:
    """Whether `host` names this machine: `localhost`, 127.0.0.0/8 or ::1 (brackets
    allowed), where local bridges, relays and tests listen; nothing else is trusted."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    # Spelled out rather than `is_loopback`, whose answer for IPv4-mapped IPv6 addresses
    # changed between Python versions.
    if isinstance(address, ipaddress.IPv4Address):
        return address in ipaddress.IPv4Network("127.0.0.0/8")
    return address == ipaddress.IPv6Address("::1")


def check_vendor_url(value: str) -> None:
    """Accept the URL of a vendor's service: https with a host; plain http only to a
    loopback host (`localhost`, 127.0.0.0/8, ::1), where local bridges and tests listen.
    A `ValueError` says why; it never repeats the value (it may be secret)."""
    try:
        parts = urlsplit(value.strip())
        scheme, host = parts.scheme.lower(), parts.hostname or ""
    except ValueError:  # e.g. an unclosed IPv6 bracket
        scheme, host = "", ""
    if scheme not in ("http", "https") or not host:
        raise ValueError("should be an https:// URL with a host")
    if scheme == "http" and not is_loopback_host(host):
        raise ValueError(
            "should be https://: plain http:// is only for loopback hosts "
            "(localhost, 127.0.0.0/8, ::1)"
        )


# Prometheus/Alertmanager label names: Alertmanager answers 400 to an alert with any
# other, and routes match on these names.
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def label_problems(
    values: Mapping[str, str], *, field: str, reserved: frozenset[str] = frozenset(), noun: str
) -> list[tuple[tuple[str | int, ...], str]]:
    """Problems of a map of label (or annotation) names to values, located at `field.NAME`:
    names that are not label names, names the relay sets itself, empty values."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    for name, value in values.items():
        if not LABEL_NAME.fullmatch(name):
            problems.append(
                ((field, name), f"invalid {noun} name: should match {LABEL_NAME.pattern}")
            )
        elif name in reserved:
            problems.append(((field, name), f"set by the relay; a rule cannot replace this {noun}"))
        elif not value.strip():
            problems.append(((field, name), "should not be empty"))
    return problems


def _check_template(value: str) -> str:
    try:
        list(string.Formatter().parse(value))
    except ValueError as exc:
        raise ValueError(
            f"invalid template ({exc}); placeholders look like {{execution_id}}, "
            "write {{ and }} for literal braces"
        ) from None
    return value


Template = Annotated[str, AfterValidator(_check_template)]


def _check_regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_check_regex)]


def _one_or_many(value: Any) -> Any:
    # `status: failed` is read as `status: [failed]`.
    return [value] if isinstance(value, str) else value


OneOrMany = BeforeValidator(_one_or_many)


# --- rate limits --------------------------------------------------------------------

_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*/\s*(\S+)\s*")


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `count` requests every `per` (written `1/s`, `30/m`, `10/5s`)."""

    count: float
    per: timedelta

    @property
    def per_second(self) -> float:
        return self.count / self.per.total_seconds()

    def __str__(self) -> str:
        return f"{self.count:g}/{format_duration(self.per)}"


def parse_rate_limit(value: Any) -> RateLimit:
    if isinstance(value, RateLimit):
        return value
    match = _RATE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError(
            "relay", "should be a rate like 1/s, 30/m or 10/5s (requests per period)"
        )
    period = match.group(2)
    per = parse_duration(period if period[0].isdigit() else f"1{period}")
    count = float(match.group(1))
    if count <= 0 or per <= timedelta(0):
        raise PydanticCustomError("relay", "should allow at least some requests per period")
    return RateLimit(count=count, per=per)


RateLimitSetting = Annotated[
    RateLimit,
    PlainValidator(parse_rate_limit),
    PlainSerializer(str, return_type=str, when_used="json"),
]
