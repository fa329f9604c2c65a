"""Silences: maintenance windows during which matching alerts are recorded but not sent.

Invariants:
- A silence matches an alert when every matcher equals the alert's label of that key
  (a matcher on a label the alert does not have never matches; a silence without
  matchers matches nothing rather than everything).
- A silence is active on `[starts_at, ends_at)` unless expired earlier; an expired or
  ended silence matches nothing. Expiring a silence changes only the silence: what it
  silenced stays silenced (it was recorded, never queued), so nothing is replayed.
- A config-defined silence has an id derived from its content, the same on every
  replica and after every restart; changing the silence in the file gives a new id.
  Config silences are not stored: the application merges them with stored ones.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from relay.domain.alerts import Alert

if TYPE_CHECKING:
    from relay.settings import SilenceSettings

SilenceOrigin = Literal["config", "api"]
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
_ALLOWED_VALUES: Mapping[str, frozenset[str]] = {
    "severity": frozenset({"critical", "warning", "info"}),
    "type": frozenset({"agent", "squad", "workflow"}),
}

__all__ = [
    "BEGINNING",
    "MATCHER_KEYS",
    "Silence",
    "SilenceOrigin",
    "active",
    "config_silence",
    "config_silences",
    "expire",
    "matching_silence",
    "new_silence",
    "silence_problems",
]


@dataclass(frozen=True, slots=True)
class Silence:
    id: str
    matchers: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime
    creator: str
    comment: str
    created_at: datetime
    expired_at: datetime | None = None
    origin: SilenceOrigin = "api"

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every matcher equals the label of its key (no matchers: never)."""
        return bool(self.matchers) and all(
            labels.get(key) == value for key, value in self.matchers.items()
        )


def active(silence: Silence, now: datetime) -> bool:
    """Whether the silence mutes alerts at `now`."""
    if silence.expired_at is not None and silence.expired_at <= now:
        return False
    return silence.starts_at <= now < silence.ends_at


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


def config_silence(settings: SilenceSettings) -> Silence:
    """A `silences:` entry of the configuration, with its content-derived id."""
    matchers = {
        key: str(value)
        for key, value in settings.matchers.model_dump(exclude_none=True).items()
        if value is not None
    }
    starts_at = settings.starts or BEGINNING
    # The id hashes this content: its spelling (`isoformat`, `+00:00`) must never change,
    # or every config silence would get a new id, so it is not `utc_iso`'s.
    content = {
        "matchers": dict(sorted(matchers.items())),
        "starts": starts_at.isoformat(),
        "ends": settings.ends.isoformat(),
        "creator": settings.creator,
        "comment": settings.comment,
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
    return Silence(
        id=f"cfg_{digest[:20]}",
        matchers=matchers,
        starts_at=starts_at,
        ends_at=settings.ends,
        creator=settings.creator,
        comment=settings.comment,
        created_at=starts_at,
        origin="config",
    )


def config_silences(settings: Sequence[SilenceSettings]) -> list[Silence]:
    return [config_silence(entry) for entry in settings]


def silence_problems(
    matchers: Mapping[str, str],
    *,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
) -> list[str]:
    """What is wrong with a silence someone asks for (empty when it is fine)."""
    problems: list[str] = []
    if not matchers:
        problems.append(f"matchers: give at least one of {', '.join(MATCHER_KEYS)}")
    for key, value in matchers.items():
        if key not in MATCHER_KEYS:
            problems.append(
                f"matchers.{key}: unknown matcher; use one of {', '.join(MATCHER_KEYS)}"
            )
        elif not isinstance(value, str) or not value:
            problems.append(f"matchers.{key}: should be a non-empty string")
        elif key in _ALLOWED_VALUES and value not in _ALLOWED_VALUES[key]:
            allowed = ", ".join(sorted(_ALLOWED_VALUES[key]))
            problems.append(f"matchers.{key}: should be one of {allowed}")
    for name, moment in (("starts_at", starts_at), ("ends_at", ends_at)):
        if moment.tzinfo is None:
            problems.append(f"{name}: give a time zone, like 2026-12-01T06:00:00Z")
    if not problems:
        if ends_at <= starts_at:
            problems.append("ends_at: should be after starts_at")
        elif ends_at <= now:
            problems.append("ends_at: is in the past; a silence must end in the future")
    return problems


def new_silence(
    matchers: Mapping[str, str],
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
        matchers=dict(matchers),
        starts_at=starts.astimezone(UTC),
        ends_at=ends_at.astimezone(UTC),
        creator=creator,
        comment=comment,
        created_at=now,
        origin="api",
    )
