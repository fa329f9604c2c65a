"""Sources, store, server, logging and alert-content settings.

Invariants: durations are positive; a source's timeouts and backoffs are consistent
(request timeout below cycle timeout, backoff below its cap); `base_url` has no
trailing slash; `server.listen` is a valid `host:port`.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from relay.durations import format_duration
from relay.settings._base import (
    HttpUrl,
    Name,
    OptionalSecret,
    PositiveDuration,
    RateLimit,
    RateLimitSetting,
    Regex,
    Secret,
    Section,
    Template,
    raise_problems,
)

DEFAULT_BASE_URL = "https://api.endless.zaia.app"
DEFAULT_LINK_TEMPLATE = "https://app.zaia.app/executions/{execution_id}"
# What an adaptive source spends when `request_budget` is not set.
DEFAULT_REQUEST_BUDGET = RateLimit(count=60, per=timedelta(minutes=1))


class SourceSettings(Section):
    """One Zaia workspace to poll."""

    name: Name
    base_url: HttpUrl = DEFAULT_BASE_URL
    api_key: Secret
    auth_scheme: Literal["bearer", "raw"] = "bearer"
    poll_interval: PositiveDuration = timedelta(seconds=15)
    page_size: int = Field(default=100, ge=1, le=100)
    responder_ids: list[str] = Field(default_factory=list)
    on_first_start: Literal["baseline", "backfill"] = "baseline"
    backfill_window: PositiveDuration = timedelta(hours=1)
    max_pages: int = Field(default=20, ge=1)
    # How the executions list is ordered upstream. "created" (newest started first) is
    # the safe default: running executions stay where they are, so every cycle must
    # cover them. "updated" (last changed first) lets a cycle stop at the first known,
    # unchanged item, since any change moves an execution to the top.
    list_order: Literal["created", "updated"] = "created"
    max_refreshes_per_cycle: int = Field(default=50, ge=0)
    request_timeout: PositiveDuration = timedelta(seconds=10)
    cycle_timeout: PositiveDuration = timedelta(seconds=60)
    max_retries: int = Field(default=3, ge=0)
    retry_backoff: PositiveDuration = timedelta(milliseconds=500)
    retry_backoff_max: PositiveDuration = timedelta(seconds=30)
    # adaptive: reads go where transitions are likeliest, inside `request_budget`, and
    # `poll_interval` bounds how long the top or a running execution may go unread.
    # fixed: one whole cycle every `poll_interval`, as before.
    polling: Literal["adaptive", "fixed"] = "adaptive"
    # The most API requests (list, get, nestings, retries) in any rolling minute. Unset:
    # 60/m when adaptive, no ceiling when fixed.
    request_budget: RateLimitSetting | None = None
    # How deep (in pages) an adaptive first start looks for running executions.
    discovery_pages: int = Field(default=50, ge=1)
    # A `Retry-After` longer than this is taken as this: no answer stalls a source.
    max_retry_after: PositiveDuration = timedelta(minutes=5)

    @property
    def budget_per_minute(self) -> float | None:
        """The request ceiling in requests a minute, or None for none."""
        budget = self.request_budget
        if budget is None and self.polling == "adaptive":
            budget = DEFAULT_REQUEST_BUDGET
        return None if budget is None else budget.per_second * 60.0

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> SourceSettings:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        if self.request_timeout >= self.cycle_timeout:
            problems.append(
                (("request_timeout",), "should be shorter than cycle_timeout, or no cycle ends")
            )
        if self.retry_backoff > self.retry_backoff_max:
            problems.append((("retry_backoff",), "should not exceed retry_backoff_max"))
        budget = self.budget_per_minute
        if budget is not None and budget < 1:
            problems.append((("request_budget",), "should allow at least 1 request a minute"))
        elif budget is not None and self.polling == "adaptive":
            needed = 60.0 / self.poll_interval.total_seconds()
            if needed > budget:
                problems.append(
                    (
                        ("poll_interval",),
                        f"reading the top of the list every {format_duration(self.poll_interval)}"
                        f" takes {needed:g} requests a minute, more than request_budget allows"
                        f" ({budget:g}/m): raise request_budget or poll_interval",
                    )
                )
        raise_problems(problems, title="SourceSettings")
        return self


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _check_store_url(value: str) -> str:
    try:
        scheme = urlsplit(value).scheme.split("+")[0]
    except ValueError:
        scheme = ""
    if scheme not in ("sqlite", "postgresql", "postgres"):
        # The URL may hold a database password: do not repeat it.
        raise ValueError("should be sqlite:///path/to/state.db or postgresql://user@host/db")
    return value


class StoreSettings(Section):
    url: Annotated[str, BeforeValidator(_strip)] = "sqlite:///var/lib/zaia-relay/state.db"
    retention: PositiveDuration = timedelta(days=7)

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        return _check_store_url(value)

    @property
    def password(self) -> str | None:
        """The database password embedded in the URL, if any (it must never be logged)."""
        return urlsplit(self.url).password


# The admin token guards every change, the read token every read: shorter ones can be
# guessed (and are too short to scrub reliably).
MIN_TOKEN_CHARS = 16


class ServerSettings(Section):
    listen: str = "0.0.0.0:8080"
    admin_token: OptionalSecret = None
    # Reads (status page, /api/v1) need a token when read_token is set or protect_reads
    # is true; the admin token is always accepted for them too.
    read_token: OptionalSecret = None
    protect_reads: bool = False
    # Host headers the status page and API answer to (empty: any), e.g. relay.internal:8080.
    allowed_hosts: list[str] = Field(default_factory=list)
    # Mark the status page's session cookie Secure even when a request came over plain
    # http (it is anyway over https, or with X-Forwarded-Proto: https).
    secure_cookies: bool = False
    # Proxies (CIDRs, e.g. the ingress controller's pod network) whose X-Forwarded-For
    # names the client, for the sign-in limit; empty: the connecting peer is the client.
    trusted_proxies: list[str] = Field(default_factory=list)
    shutdown_grace: PositiveDuration = timedelta(seconds=20)

    @field_validator("admin_token", "read_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # The message never repeats the value.
        if value is not None and len(value.get_secret_value()) < MIN_TOKEN_CHARS:
            raise ValueError(
                f"should be at least {MIN_TOKEN_CHARS} characters "
                "(generate one with: openssl rand -hex 32)"
            )
        return value

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        _split_listen(value)
        return value.strip()

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [_check_allowed_host(host) for host in value]

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an address or CIDR (10.0.0.0/8, 192.168.1.7, fd00::/8)"
                ) from None
        return [entry.strip() for entry in value]

    @property
    def trusted_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in self.trusted_proxies)

    @model_validator(mode="after")
    def _reads_protectable(self) -> ServerSettings:
        if self.protect_reads and self.read_token is None and self.admin_token is None:
            raise_problems(
                [(("protect_reads",), "needs server.read_token or server.admin_token")],
                title="ServerSettings",
            )
        return self

    @property
    def reads_protected(self) -> bool:
        return self.protect_reads or self.read_token is not None

    @property
    def host(self) -> str:
        return _split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return _split_listen(self.listen)[1]


def _split_listen(value: str) -> tuple[str, int]:
    host, sep, port_text = value.strip().rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError("should be HOST:PORT, like 0.0.0.0:8080 or [::]:8080")
    host = host.removeprefix("[").removesuffix("]")  # IPv6 literals are bracketed
    return host or "0.0.0.0", int(port_text)


_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:[0-9]{1,5})?")


def _check_allowed_host(value: str) -> str:
    host = value.strip().lower()
    if not _HOST.fullmatch(host):
        raise ValueError(
            "each entry should be a host name or address, with or without :PORT "
            "(relay.internal, relay.internal:8080, 10.0.0.7, [::1]:8080)"
        )
    return host


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class LogSettings(Section):
    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(_lower)] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class AlertsSettings(Section):
    """What goes into an alert about an execution (inputs and outputs can hold personal data)."""

    link_template: Template = DEFAULT_LINK_TEMPLATE
    excerpt_chars: int = Field(default=500, ge=0, le=3000)
    redactions: list[Regex] = Field(default_factory=list)
