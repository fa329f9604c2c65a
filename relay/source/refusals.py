"""What the Zaia API's refusals and a source's exhausted retries mean, as `SourceError`s
whose messages say what to check. Pure: no I/O; `detail` is already scrubbed."""

from __future__ import annotations

from typing import Literal

from relay.errors import (
    SourceError,
    SourceNotFound,
    SourceRateLimited,
    SourceRejected,
    SourceUnauthorized,
    SourceUnavailable,
)
from relay.source.config import ClientConfig

Endpoint = Literal["list", "get", "nestings"]


def refusal(
    config: ClientConfig, endpoint: Endpoint, status: int, *, detail: str, subject: str
) -> SourceError:
    """The error for an answer retrying cannot help (a 3xx or a 4xx other than 408/429)."""
    name = config.name
    if status in (401, 403):
        what = "refused the key" if status == 401 else "denied access with the key"
        return SourceUnauthorized(
            name,
            f"{subject}: the Zaia API {what} (HTTP {status}{detail}); check the API key "
            f"for source {name!r} ({config.field_path('api_key')})",
            status_code=status,
        )
    if status == 404 and endpoint != "list":
        return SourceNotFound(name, f"{subject} not found (HTTP 404{detail})", status_code=404)
    if status == 404 or 300 <= status < 400:
        return SourceRejected(
            name,
            f"{subject}: the executions endpoint is not at this address (HTTP {status}"
            f"{detail}); check the base_url ({config.field_path('base_url')})",
            status_code=status,
        )
    return SourceRejected(
        name,
        f"{subject}: the Zaia API refused the request (HTTP {status}{detail}); "
        "zaia-relay and the API may disagree: upgrade zaia-relay or report it",
        status_code=status,
    )


def gave_up(
    config: ClientConfig,
    reason: str,
    *,
    status_code: int | None,
    retry_after_s: float | None,
    subject: str,
    attempts: int,
    endpoint: Endpoint = "list",
) -> SourceError:
    """The error once retries ran out, the last attempt having failed for `reason`."""
    name = config.name
    tried = f"{attempts} attempt{'s' if attempts > 1 else ''}"
    if status_code == 429:
        asked = "" if retry_after_s is None else f", the API asked to wait {retry_after_s:g}s"
        then = (
            "the relay waits before polling this source again"
            if endpoint == "list"
            else "the relay reads on without it and slows down"
        )
        return SourceRateLimited(
            name,
            f"{subject}: rate limited by the Zaia API (HTTP 429) after {tried}{asked}; {then}",
            retry_after_s=retry_after_s,
        )
    return SourceUnavailable(
        name,
        f"{subject}: {reason} after {tried}; the relay tries again next cycle "
        f"(if this lasts, check {config.field_path('base_url')} and the network)",
        status_code=status_code,
    )
