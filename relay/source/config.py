"""What the client needs to know about one source, taken from its settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from relay.settings import DEFAULT_BASE_URL

if TYPE_CHECKING:
    from relay.settings import SourceSettings

MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientConfig:
    """What the client needs to know about one source; `api_key` stays out of the repr."""

    name: str
    base_url: str = DEFAULT_BASE_URL
    api_key: str = field(repr=False)
    auth_scheme: Literal["bearer", "raw"] = "bearer"
    page_size: int = MAX_PAGE_SIZE
    responder_ids: tuple[str, ...] = ()
    request_timeout_s: float = 10.0
    max_retries: int = 3
    retry_backoff_s: float = 0.5
    retry_backoff_max_s: float = 30.0
    # The longest the API's `Retry-After` may hold this source back.
    max_retry_after_s: float = 300.0
    # Where the operator fixes this source, like "sources.0"; used in error messages.
    config_path: str = ""

    def __post_init__(self) -> None:
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if self.request_timeout_s <= 0 or self.max_retry_after_s <= 0:
            raise ValueError("request_timeout_s and max_retry_after_s must be positive")
        if self.auth_scheme not in ("bearer", "raw"):
            raise ValueError("auth_scheme must be 'bearer' or 'raw'")

    @classmethod
    def from_settings(cls, source: SourceSettings, *, index: int | None = None) -> ClientConfig:
        """The client's view of `sources[index]` of the settings."""
        return cls(
            name=source.name,
            base_url=source.base_url,
            api_key=source.api_key.get_secret_value(),
            auth_scheme=source.auth_scheme,
            page_size=source.page_size,
            responder_ids=tuple(source.responder_ids),
            request_timeout_s=source.request_timeout.total_seconds(),
            max_retries=source.max_retries,
            retry_backoff_s=source.retry_backoff.total_seconds(),
            retry_backoff_max_s=source.retry_backoff_max.total_seconds(),
            max_retry_after_s=source.max_retry_after.total_seconds(),
            config_path="" if index is None else f"sources.{index}",
        )

    def field_path(self, name: str) -> str:
        return f"{self.config_path}.{name}" if self.config_path else f"{name} of this source"
