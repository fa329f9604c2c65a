"""Sinks: where alerts are delivered. One model a sink type, chosen by `type`.

Invariants:
- Every credential-bearing value (Slack webhook URL and bot token, webhook URL and
  signing secret, webhook header values, Alertmanager password and token) is a
  `SecretStr`; validation messages never repeat it.
- Retry settings are ordered: `retry_initial <= retry_max <= max_age` (`_delivery`).
- A Slack sink has exactly one of `webhook_url` and `bot_token`; a bot token needs a
  channel; its `signing_secret` (Slack actions) is used only with `bot_token`. A
  webhook signing secret is base64 (optionally prefixed `whsec_`).
- A URL with `user:password@` never goes with an `Authorization` header (configured, or
  set by the sink for a token or basic auth): the HTTP client refuses to send both, so
  every attempt would fail until `max_age`.
- Alertmanager label names are Prometheus label names (`LABEL_NAME`); Alertmanager
  answers 400 to an alert with any other.
- An Alertmanager sink has exactly one of `url` and `urls` (an HA cluster: at least one
  URL, no two the same); each URL is a delivery target (`delivery_targets`), named by
  its `host:port` (stable when URLs are reordered or removed), never by the whole URL
  (which may carry `user:password@`).
- A Slack sink's `mentions` are Slack mention tokens (`SLACK_MENTION`) and nothing
  else, so configuration cannot smuggle other markup into a message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import timedelta
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from relay.settings._base import (
    LABEL_NAME,
    Duration,
    HttpUrl,
    OneOrMany,
    OptionalSecret,
    RateLimit,
    RateLimitSetting,
    Secret,
    Section,
    check_http_url,
    raise_problems,
)
from relay.settings._delivery import DeliverySettings, Problems
from relay.settings._sink_email import EmailSinkSettings
from relay.settings._sink_pagerduty import PagerDutySinkSettings
from relay.settings._sink_teams import TeamsSinkSettings
from relay.vocab import Severity

# Headers the webhook sink sets itself; letting configuration replace them would break
# signatures or the body's meaning.
RESERVED_WEBHOOK_HEADERS = frozenset(
    {"content-type", "content-length", "webhook-id", "webhook-timestamp", "webhook-signature"}
)
WEBHOOK_SECRET_PREFIX = "whsec_"
# What a Slack mention looks like in message text: a user group, a user, or a broadcast.
SLACK_MENTION = re.compile(r"<!subteam\^[A-Z0-9]+>|<@[UW][A-Z0-9]+>|<!(?:here|channel|everyone)>")
_MENTION_FORMS = "<!subteam^S0123ABC>, <@U0123ABC>, <!here>, <!channel> or <!everyone>"
_BOTH_CREDENTIALS = (
    "cannot go with a user:password@ in {url}: the HTTP client refuses to send both; "
    "give the credentials in one place"
)


def _has_userinfo(url: str) -> bool:
    """Whether `url` carries `user[:password]@` (the message never repeats it)."""
    try:
        return "@" in urlsplit(url.strip()).netloc
    except ValueError:
        return False


class SlackSinkSettings(DeliverySettings):
    type: Literal["slack"]
    webhook_url: OptionalSecret = None
    bot_token: OptionalSecret = None
    # The Slack app's signing secret (Basic Information): with bot_token, firing
    # messages carry Acknowledge / Silence buttons and POST /slack/interactions
    # checks Slack's signature with it.
    signing_secret: OptionalSecret = None
    channel: str | None = None
    # Only used with a bot token; tests point it at a local server.
    api_url: HttpUrl = "https://slack.com/api"
    group_wait: Duration = timedelta(seconds=10)
    rate_limit: RateLimitSetting | None = RateLimit(count=1, per=timedelta(seconds=1))
    # Added to firing messages of that severity, outside the escaped alert text.
    mentions: dict[Severity, Annotated[list[str], OneOrMany]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackSinkSettings:
        problems: Problems = [
            (("mentions", severity, index), f"not a Slack mention; use {_MENTION_FORMS}")
            for severity, entries in self.mentions.items()
            for index, entry in enumerate(entries)
            if not SLACK_MENTION.fullmatch(entry)
        ]
        if (self.webhook_url is None) == (self.bot_token is None):
            problems.append(((), "give exactly one of webhook_url or bot_token (with channel)"))
        if self.bot_token is not None and not self.channel:
            problems.append((("channel",), "required with bot_token (a channel id like C0123)"))
        if self.webhook_url is not None and self.channel:
            problems.append(
                (("channel",), "only with bot_token: a webhook URL already names its channel")
            )
        if self.webhook_url is not None:
            problems.extend(_url_problems(self.webhook_url, "webhook_url"))
        if self.bot_token is not None and _has_userinfo(self.api_url):
            problems.append((("bot_token",), _BOTH_CREDENTIALS.format(url="api_url")))
        raise_problems(problems, title="SlackSinkSettings")
        return self

    @property
    def takes_actions(self) -> bool:
        """Whether its firing messages carry buttons Slack posts clicks of back."""
        return self.bot_token is not None and self.signing_secret is not None


class WebhookSinkSettings(DeliverySettings):
    type: Literal["webhook"]
    url: Secret  # a URL can carry a token in its path or query
    secret: OptionalSecret = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    max_alerts_per_request: int = Field(default=1, ge=1, le=1000)
    group_wait: Duration = timedelta(0)

    @property
    def batched(self) -> bool:
        """Whether its requests carry a batch body (and `webhook-id`), even of one."""
        return self.max_alerts_per_request > 1

    @field_validator("headers")
    @classmethod
    def _own_headers(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        reserved = sorted(name for name in value if name.lower() in RESERVED_WEBHOOK_HEADERS)
        if reserved:
            raise ValueError(f"{', '.join(reserved)} is set by the relay and cannot be configured")
        return value

    @model_validator(mode="after")
    def _usable(self) -> WebhookSinkSettings:
        problems = _url_problems(self.url, "url")
        if _has_userinfo(self.url.get_secret_value()):
            problems += [
                (("headers", name), _BOTH_CREDENTIALS.format(url="url"))
                for name in self.headers
                if name.lower() == "authorization"
            ]
        if self.secret is not None:
            try:
                _decode_webhook_secret(self.secret.get_secret_value())
            except ValueError as exc:
                problems.append((("secret",), str(exc)))
        raise_problems(problems, title="WebhookSinkSettings")
        return self

    @property
    def signing_key(self) -> bytes | None:
        """The raw HMAC key of Standard Webhooks signing, or None when unsigned."""
        if self.secret is None:
            return None
        return _decode_webhook_secret(self.secret.get_secret_value())


def _decode_webhook_secret(value: str) -> bytes:
    encoded = value.removeprefix(WEBHOOK_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        raise ValueError(
            "should be base64, optionally prefixed whsec_ "
            "(generate one with: echo whsec_$(openssl rand -base64 32))"
        )
    return key


def _url_problems(value: SecretStr, field: str) -> Problems:
    try:
        check_http_url(value.get_secret_value())
    except ValueError as exc:
        return [((field,), str(exc))]
    return []


class BasicAuthSettings(Section):
    username: str
    password: Secret

    @property
    def header_value(self) -> str:
        """The `Authorization` value: `Basic base64(username:password)`, a secret."""
        pair = f"{self.username}:{self.password.get_secret_value()}".encode()
        return f"Basic {base64.b64encode(pair).decode('ascii')}"


class AlertmanagerSinkSettings(DeliverySettings):
    type: Literal["alertmanager"]
    # The Alertmanager base URL (alerts are posted to /api/v2/alerts), or with `urls`
    # every instance of an HA cluster: each gets every alert (`delivery_targets`).
    url: HttpUrl | None = None
    urls: list[HttpUrl] | None = None
    basic_auth: BasicAuthSettings | None = None
    bearer_token: OptionalSecret = None
    labels: dict[str, str] = Field(default_factory=dict)

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The base URL of each Alertmanager, in configured order."""
        return tuple(self.urls) if self.urls is not None else (self.url or "",)

    @model_validator(mode="after")
    def _usable(self) -> AlertmanagerSinkSettings:
        problems: Problems = [
            (("labels", name), f"not a label name Alertmanager accepts ({LABEL_NAME.pattern})")
            for name in self.labels
            if not LABEL_NAME.fullmatch(name)
        ]
        problems += self._endpoint_problems()
        if self.basic_auth is not None and self.bearer_token is not None:
            problems.append((("bearer_token",), "give basic_auth or bearer_token, not both"))
        if any(_has_userinfo(url) for url in self.endpoints):
            field = "url" if self.urls is None else "urls"
            problems += [
                ((name,), _BOTH_CREDENTIALS.format(url=field))
                for name in ("basic_auth", "bearer_token")
                if getattr(self, name) is not None
            ]
        raise_problems(problems, title="AlertmanagerSinkSettings")
        return self

    def _endpoint_problems(self) -> Problems:
        if (self.url is None) == (self.urls is None):
            return [((), "give exactly one of url (one Alertmanager) or urls (an HA cluster)")]
        if self.urls is not None and not self.urls:
            return [(("urls",), "should list at least one Alertmanager URL")]
        # Messages never repeat a URL: it may carry `user:password@`.
        first_at: dict[str, int] = {}
        problems: Problems = []
        urls = self.urls or []
        hosts = [_host_port(url) for url in urls]
        # Two URLs that name one target (the same host, port and path, whatever their
        # credentials) are one Alertmanager.
        for index, url in enumerate(urls):
            key = target_key(url, shared=hosts.count(hosts[index]) > 1)
            if key in first_at:
                problems.append((("urls", index), f"the same Alertmanager as urls.{first_at[key]}"))
            first_at.setdefault(key, index)
        return problems


def delivery_targets(name: str, settings: SinkSettings) -> tuple[str, ...]:
    """The delivery targets of sink `name`: what workers, outbox rows and the `sink`
    label of metrics are named after. One target, the sink's own name, for every sink
    but an Alertmanager with `urls`, which has one per URL (`target_key`), in order:
    `name[host:port]`. Named by the Alertmanager, never by its position, so reordering
    or removing a URL leaves every other target's rows with the right Alertmanager
    (brackets are not allowed in sink names, so a target never collides with a sink)."""
    if isinstance(settings, AlertmanagerSinkSettings) and settings.urls is not None:
        keys = [_host_port(url) for url in settings.urls]
        return tuple(
            f"{name}[{target_key(url, shared=keys.count(key) > 1)}]"
            for url, key in zip(settings.urls, keys, strict=True)
        )
    return (name,)


def _host_port(url: str) -> str:
    split = urlsplit(url.strip())
    host = (split.hostname or "").lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    port = split.port or (443 if split.scheme == "https" else 80)
    return f"{host}:{port}"


def target_key(url: str, *, shared: bool = False) -> str:
    """What names the target of one Alertmanager URL: its `host:port`, never its
    userinfo (a credential) nor its path; when several URLs share a host and port,
    followed by `/` and a short hash of the URL without credentials, query or fragment."""
    key = _host_port(url)
    if not shared:
        return key
    split = urlsplit(url.strip())
    bare = f"{split.scheme}://{key}{split.path.rstrip('/')}"
    return f"{key}/{hashlib.sha256(bare.encode()).hexdigest()[:6]}"


class ConsoleSinkSettings(Section):
    """Prints alerts on standard output (the demo's sink)."""

    type: Literal["console"]
    color: Literal["auto", "always", "never"] = "auto"


SinkSettings = Annotated[
    SlackSinkSettings
    | WebhookSinkSettings
    | AlertmanagerSinkSettings
    | ConsoleSinkSettings
    | PagerDutySinkSettings
    | TeamsSinkSettings
    | EmailSinkSettings,
    Field(discriminator="type"),
]
SINK_TYPES = ("slack", "webhook", "alertmanager", "console", "pagerduty", "teams", "email")
