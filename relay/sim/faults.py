"""Faults the simulated API can inject, to exercise the relay's retries and backoff.

Invariants:
- Faults apply in the order they were injected; a request consumes at most one fault,
  the first one whose endpoint matches ("any" matches every API endpoint).
- A fault applies `times` times, then is gone. The control API (`/_sim/`) never faults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

FaultKind = Literal["status", "retry_after", "delay", "non_json"]
Endpoint = Literal["list", "get", "nestings"]
FaultEndpoint = Literal["list", "get", "nestings", "any"]

ENDPOINTS: tuple[Endpoint, ...] = ("list", "get", "nestings")
FAULT_KINDS: tuple[FaultKind, ...] = ("status", "retry_after", "delay", "non_json")

# What each kind answers when no status is given: a bare 5xx, a rate limit, and the HTML
# page a load balancer serves when the backend is down.
_DEFAULT_STATUS: dict[str, int] = {"status": 503, "retry_after": 429, "delay": 200, "non_json": 502}


@dataclass(frozen=True)
class Fault:
    """One misbehaviour of the API.

    - `status`: answer `status` (default 503) with a JSON error body.
    - `retry_after`: answer `status` (default 429) with `Retry-After: retry_after`
      (seconds, or an HTTP date; default "1").
    - `delay`: wait `delay_s` seconds, then answer normally.
    - `non_json`: answer `status` (default 502) with an HTML page.
    """

    kind: FaultKind
    endpoint: FaultEndpoint = "any"
    times: int = 1
    status: int | None = None
    retry_after: str | None = None
    delay_s: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {FAULT_KINDS}")
        if self.endpoint not in (*ENDPOINTS, "any"):
            raise ValueError(f"unknown endpoint {self.endpoint!r}; use list, get, nestings or any")
        if self.times < 1:
            raise ValueError("times must be at least 1")
        if self.delay_s < 0:
            raise ValueError("delay_s must not be negative")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"status {self.status} is not an HTTP status")

    @property
    def effective_status(self) -> int:
        return self.status if self.status is not None else _DEFAULT_STATUS[self.kind]

    @property
    def effective_retry_after(self) -> str:
        return self.retry_after if self.retry_after is not None else "1"


@dataclass
class _Pending:
    fault: Fault
    left: int


class FaultQueue:
    """Pending faults with their remaining counts."""

    def __init__(self) -> None:
        self._pending: list[_Pending] = []

    def add(self, fault: Fault) -> None:
        self._pending.append(_Pending(fault, fault.times))

    def take(self, endpoint: Endpoint) -> Fault | None:
        """The fault this request must suffer, if any, consuming one of its uses."""
        for entry in self._pending:
            if entry.fault.endpoint in (endpoint, "any"):
                entry.left -= 1
                if entry.left <= 0:
                    self._pending.remove(entry)
                return entry.fault
        return None

    def clear(self) -> None:
        self._pending.clear()

    def __len__(self) -> int:
        return len(self._pending)
