"""Silences: maintenance windows and quiet hours during which matching alerts are
recorded but not sent.

Invariants:
- A silence matches an alert when every matcher holds over the alert's labels, with
  Alertmanager's semantics (`relay.matchers`: anchored regexes, a missing label
  is ""). A silence without matchers matches nothing rather than everything, and one
  whose every matcher matches the empty string is refused (`silence_problems`, with
  the checks the settings also run, `relay.settings.silence_matcher_problems`): it
  would silence nearly every alert.
- A silence is in force on `[starts_at, ends_at)` unless expired earlier; an expired or
  ended silence matches nothing. A recurring silence (`time_intervals` given, config
  only) mutes only while `now` is also inside one of its intervals, judged on each
  interval's own wall clock (so DST needs nothing here). Expiring a silence changes only
  the silence: what it silenced stays silenced (it was recorded, never queued), so
  nothing is replayed.
- A config-defined silence has an id derived from its content, the same on every
  replica and after every restart; changing the silence in the file gives a new id.
  Equality-only matchers with distinct names hash as the map they were written as
  before matchers had operators, so such a silence keeps its id across the upgrade,
  whichever of the two forms spells it. Config silences are not stored: the
  application merges them with stored ones.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from relay.domain.alerts import Alert
from relay.durations import format_duration
from relay.matchers import Matcher, canonical, matches_all
from relay.settings import silence_matcher_problems
from relay.time_intervals import TimeInterval

if TYPE_CHECKING:
    from relay.settings import SilenceSettings

SilenceOrigin = Literal["config", "api"]
# The labels the first silences could match on; kept for help texts. Any label name
# can be matched now (rule labels, `source`, `responder`, ...).
MATCHER_KEYS: tuple[str, ...] = (
    "rule",
    "severity",
    "responder_id",
    "agent_id",
    "workflow_id",
    "type",
)
# A config silence without `starts` is active from the beginning of time; a fixed
# instant (not the load time) keeps its id and its `starts_at` stable across restarts.
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)
# A recurring config silence without `ends` recurs for ever.
END_OF_TIME = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
# The longest runtime silence (API, CLI, status page, Slack): a longer one is a typo.
MAX_SILENCE_LENGTH = timedelta(days=365)

__all__ = [
    "BEGINNING",
    "END_OF_TIME",
    "MATCHER_KEYS",
    "MAX_SILENCE_LENGTH",
    "Silence",
    "SilenceOrigin",
    "active",
    "as_label_map",
    "config_silence",
    "config_silences",
    "end_after",
    "expire",
    "in_force",
    "matching_silence",
    "new_silence",
    "silence_problems",
    "window_problems",
]


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: tuple[Matcher, ...]
    starts_at: datetime
    ends_at: datetime
    creator: str
    comment: str
    created_at: datetime
    expired_at: datetime | None = None
    origin: SilenceOrigin = "api"
    time_intervals: tuple[TimeInterval, ...] = ()  # recurring windows; () is always

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every matcher holds over `labels` (no matchers: never)."""
        return bool(self.matchers) and matches_all(self.matchers, labels)

    @property
    def recurring(self) -> list[str]:
        """The names of its time intervals (empty for a one-off silence)."""
        return [interval.name for interval in self.time_intervals]

    @property
    def open_ended(self) -> bool:
        return self.ends_at >= END_OF_TIME


def in_force(silence: Silence, now: datetime) -> bool:
    """Whether `now` is within the silence's `[starts_at, ends_at)` and it is not expired
    (a recurring silence in force mutes only inside its intervals: see `active`)."""
    if silence.expired_at is not None and silence.expired_at <= now:
        return False
    return silence.starts_at <= now < silence.ends_at


def active(silence: Silence, now: datetime) -> bool:
    """Whether the silence mutes alerts at `now`."""
    if not in_force(silence, now):
        return False
    return not silence.time_intervals or any(i.contains(now) for i in silence.time_intervals)


def matching_silence(alert: Alert, silences: Iterable[Silence], now: datetime) -> Silence | None:
    """The active silence that mutes `alert`, if any: the one ending last (then by id),
    so the answer does not depend on the order silences are given in."""
    found: Silence | None = None
    for silence in silences:
        if not active(silence, now) or not silence.matches(alert.labels):
            continue
        if found is None or (silence.ends_at, silence.id) > (found.ends_at, found.id):
            found = silence
    return found


def expire(silence: Silence, *, now: datetime) -> Silence:
    """The silence ended at `now` (an already expired one keeps its first expiry)."""
    if silence.expired_at is not None and silence.expired_at <= now:
        return silence
    return replace(silence, expired_at=now)


def as_label_map(matchers: Sequence[Matcher]) -> dict[str, str] | None:
    """The matchers as the `{name: value}` map silences had before matchers had
    operators, when that spells them (every matcher `=`, names distinct); else None."""
    names = [m.name for m in matchers]
    if all(m.op == "=" for m in matchers) and len(set(names)) == len(names):
        return {m.name: m.value for m in matchers}
    return None


def _id_matchers(matchers: Sequence[Matcher]) -> Any:
    """What a config silence's id hashes for its matchers: the old map when that spells
    them (so old-form silences keep their ids), else their canonical strings."""
    as_map = as_label_map(matchers)
    return dict(sorted(as_map.items())) if as_map is not None else canonical(matchers)


def config_silence(
    settings: SilenceSettings, *, intervals: Mapping[str, TimeInterval] | None = None
) -> Silence:
    """A `silences:` entry of the configuration, with its content-derived id; the
    intervals it names are looked up in `intervals` (KeyError when one is missing:
    settings validation has made sure none is)."""
    matchers = tuple(settings.matchers)
    recurring = tuple((intervals or {})[name] for name in settings.time_intervals)
    starts_at = settings.starts or BEGINNING
    ends_at = settings.ends or END_OF_TIME
    # The id hashes this content: its spelling (`isoformat`, `+00:00`) must never change,
    # or every config silence would get a new id, so it is not `utc_iso`'s. Keys only a
    # recurring silence has are added only for one, so one-off silences keep their ids.
    content: dict[str, Any] = {
        "matchers": _id_matchers(matchers),
        "starts": starts_at.isoformat(),
        "ends": settings.ends.isoformat() if settings.ends else None,
        "creator": settings.creator,
        "comment": settings.comment,
    }
    if recurring:
        content["time_intervals"] = list(settings.time_intervals)
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return Silence(
        id=f"cfg_{digest[:20]}",
        matchers=matchers,
        starts_at=starts_at,
        ends_at=ends_at,
        creator=settings.creator,
        comment=settings.comment,
        created_at=starts_at,
        origin="config",
        time_intervals=recurring,
    )


def config_silences(
    settings: Sequence[SilenceSettings], *, intervals: Mapping[str, TimeInterval] | None = None
) -> list[Silence]:
    return [config_silence(entry, intervals=intervals) for entry in settings]


def silence_problems(
    matchers: Sequence[Matcher],
    *,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
) -> list[str]:
    """What is wrong with a silence someone asks for (empty when it is fine), each as
    `path: message` (`matchers[1]: ...`, `ends_at: ...`)."""
    problems = [
        f"{'matchers' if index is None else f'matchers[{index}]'}: {message}"
        for index, message in silence_matcher_problems(matchers)
    ]
    return problems + window_problems(starts_at=starts_at, ends_at=ends_at, now=now)


def window_problems(*, starts_at: datetime, ends_at: datetime, now: datetime) -> list[str]:
    """What is wrong with a runtime silence's times (empty when they are fine)."""
    problems: list[str] = []
    for name, moment in (("starts_at", starts_at), ("ends_at", ends_at)):
        if moment.tzinfo is None:
            problems.append(f"{name}: give a time zone, like 2026-12-01T06:00:00Z")
    if not problems:
        if ends_at <= starts_at:
            problems.append("ends_at: should be after starts_at")
        elif ends_at <= now:
            problems.append("ends_at: is in the past; a silence must end in the future")
        elif ends_at - starts_at > MAX_SILENCE_LENGTH:
            problems.append(
                f"ends_at: at most {format_duration(MAX_SILENCE_LENGTH)} after starts_at"
            )
    return problems


def end_after(starts_at: datetime, length: timedelta) -> datetime:
    """`starts_at + length` for a runtime silence; ValueError (never OverflowError)
    when `length` is longer than `MAX_SILENCE_LENGTH` or the end past year 9999."""
    if length > MAX_SILENCE_LENGTH:
        raise ValueError(f"duration: at most {format_duration(MAX_SILENCE_LENGTH)}")
    try:
        return starts_at + length
    except OverflowError:
        raise ValueError("duration: ends after the year 9999") from None


def new_silence(
    matchers: Sequence[Matcher],
    *,
    ends_at: datetime,
    now: datetime,
    starts_at: datetime | None = None,
    creator: str = "",
    comment: str = "",
    silence_id: str | None = None,
) -> Silence:
    """A runtime silence (HTTP API or CLI); ValueError listing the problems if invalid."""
    starts = now if starts_at is None else starts_at
    problems = silence_problems(matchers, starts_at=starts, ends_at=ends_at, now=now)
    if problems:
        raise ValueError("; ".join(problems))
    return Silence(
        id=silence_id or f"sil_{uuid.uuid4().hex[:20]}",
        matchers=tuple(matchers),
        starts_at=starts.astimezone(UTC),
        ends_at=ends_at.astimezone(UTC),
        creator=creator,
        comment=comment,
        created_at=now,
        origin="api",
    )
