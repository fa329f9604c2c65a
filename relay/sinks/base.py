"""The sink contract, what every sink shares (`BaseSink`), and the HTTP plumbing of the
remote sinks (`HttpSink`, `HttpPoster`).

Invariants:
- `Sink.send` either returns (every notification given was accepted by the receiver) or
  raises `SinkError`, whose `retryable` says whether trying again can help and whose
  `retry_after_s` carries the receiver's `Retry-After`. Nothing else escapes it for a
  failure of the receiver or the network.
- Redirects are never followed: a 3xx is a refusal (dead at once, see
  `relay.domain.delivery`), so a signed body is never replayed to another host.
- Every request is bounded by the sink's timeout from start to last byte.
- Error messages never contain a sink's URL, token, secret or header values (they are
  credentials), and never chain the HTTP client's exception (which can hold the URL);
  text from the receiver is bounded and scrubbed of the sink's secrets (`relay.scrub`).
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qsl, urlsplit

import aiohttp
import structlog

from relay import __version__
from relay.clock import utcnow
from relay.domain.alerts import Notification
from relay.domain.delivery import (
    Backoff,
    DeliveryPolicy,
    bounded_retry_after,
    classify_status,
)
from relay.errors import SinkError
from relay.proxies import Proxy, env_proxy, proxy_secrets, request_options
from relay.scrub import SecretScrubber
from relay.settings import DeliverySettings

log = structlog.get_logger("relay.sinks")

USER_AGENT = f"zaia-relay/{__version__}"
# A worker sends a few messages at once to one sink; more connections would not help.
_MAX_CONNECTIONS = 16
# Only the start of an answer is ever used (error detail, Slack's small JSON).
_MAX_BODY_BYTES = 64 * 1024
_DETAIL_CHARS = 200
# Shorter query values (`?v=2`) are too common to be credentials, and scrubbing them
# would garble every message.
_MIN_SECRET_CHARS = 6


@runtime_checkable
class Sink(Protocol):
    """Where notifications go. One instance a configured sink; used by one worker."""

    @property
    def name(self) -> str: ...

    @property
    def policy(self) -> DeliveryPolicy:
        """Retries, rate limit, digest wait and batch size for this sink."""
        ...

    @property
    def max_batch(self) -> int:
        """The most ungrouped notifications one `send` may be given (a route group's
        message holds up to `relay.domain.grouping.GROUP_MESSAGE_MAX`, whatever this)."""
        ...

    async def send(
        self, notifications: Sequence[Notification], *, message_id: str | None = None
    ) -> None:
        """Deliver `notifications` as one message (a digest or batch when several): all
        ungrouped, or all of one route group (`Notification.group`), never mixed.
        `message_id`: a route group's message's stamped id (`OutboxItem.message_id`),
        the same on every attempt even when a member was settled meanwhile; a sink that
        names its messages uses it rather than deriving one from the members given."""
        ...

    async def aclose(self) -> None: ...


def replay_hint(target: str) -> str:
    """The command that replays `target`'s dead letters, quoted for any shell (a target
    like `am[host:port]` is a glob to zsh)."""
    return f"`zaia-relay deliveries retry --all --sink {shlex.quote(target)}`"


def url_secrets(url: str) -> list[str]:
    """The URL and the parts of it that may be a credential on their own (a path like
    Slack's `/services/T/B/XXXX`, query values like `?token=...`), for scrubbing text a
    receiver echoes back."""
    parts = [url]
    try:
        split = urlsplit(url)
    except ValueError:
        return parts
    if len(split.path) > 1:
        parts.append(split.path)
    parts += [value for _, value in parse_qsl(split.query) if len(value) >= _MIN_SECRET_CHARS]
    if split.password:
        parts.append(split.password)
    return parts


def delivery_policy(
    settings: DeliverySettings, *, group_wait_s: float = 0.0, max_batch: int = 1
) -> DeliveryPolicy:
    """The policy of a remote sink from its settings."""
    rate = settings.rate_limit
    return DeliveryPolicy(
        backoff=Backoff(
            initial_s=settings.retry_initial.total_seconds(),
            max_s=settings.retry_max.total_seconds(),
        ),
        max_age_s=settings.max_age.total_seconds(),
        rate_per_s=None if rate is None else rate.per_second,
        burst=3.0 if rate is None else max(rate.count, 3.0),
        group_wait_s=group_wait_s,
        max_batch=max_batch,
        timeout_s=settings.timeout.total_seconds(),
        max_retry_after_s=settings.max_retry_after.total_seconds(),
    )


class BaseSink:
    """What every sink has: its name and its delivery policy (`max_batch` comes from
    it). A subclass adds `send`, and `aclose` when it holds something to release."""

    def __init__(self, name: str, *, policy: DeliveryPolicy) -> None:
        self._name = name
        self._policy = policy

    def __repr__(self) -> str:
        # The name only: a sink's address or token is a credential.
        return f"{type(self).__name__}({self._name!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def policy(self) -> DeliveryPolicy:
        return self._policy

    @property
    def max_batch(self) -> int:
        return self._policy.max_batch

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """A receiver's answer: status, headers and (the start of) the body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class HttpPoster:
    """POSTs for one sink: no redirects, a whole-request timeout, errors as `SinkError`.

    aiohttp rather than httpx (the Zaia client made the same choice): on this 2-core
    target httpx spends ~0.9 ms of CPU a request and tops out near 1,100 requests/s,
    below the delivery target of 1,000 deliveries/s once signing and the outbox are
    added; aiohttp's client needs ~0.1-0.2 ms. The session is created on first use,
    inside the running event loop, as aiohttp requires.
    """

    def __init__(
        self,
        sink: str,
        *,
        timeout_s: float,
        receiver: str,
        config_path: str,
        secrets: Sequence[str] = (),
        now: Callable[[], datetime] = utcnow,
        max_retry_after_s: float = 900.0,
    ) -> None:
        self.sink = sink
        self.timeout_s = timeout_s
        self.max_retry_after_s = max_retry_after_s
        self._receiver = receiver  # "the webhook receiver", "Slack", ...: for messages
        self._config_path = config_path
        # Any length: every one of them is a credential of this sink.
        self._scrubber = SecretScrubber.of([*secrets, *proxy_secrets()], min_length=1)
        self._now = now
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, Proxy | None] = {}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT},
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=_MAX_CONNECTIONS, keepalive_timeout=30.0),
                # Receivers' cookies are not ours to keep. No `trust_env`: the proxy
                # is looked up once per origin instead (`_proxy`, `relay.proxies`).
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )
        return self._session

    def _proxy(self, url: str) -> Proxy | None:
        """The proxy for `url` (`relay.proxies`), looked up once per origin."""
        split = urlsplit(url)
        origin = f"{split.scheme}://{split.netloc}"
        if origin not in self._proxies:
            self._proxies[origin] = env_proxy(url)
        return self._proxies[origin]

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def post(self, url: str, *, content: bytes, headers: Mapping[str, str]) -> HttpAnswer:
        """The receiver's 2xx answer, or `SinkError` for anything else."""
        failure: str | None = None
        try:
            async with (
                asyncio.timeout(self.timeout_s),
                self._client().post(
                    url,
                    data=content,
                    headers=dict(headers),
                    allow_redirects=False,
                    **request_options(self._proxy(url)),
                ) as response,
            ):
                body = await response.content.read(_MAX_BODY_BYTES)
                answer = HttpAnswer(response.status, dict(response.headers), body)
        except TimeoutError:
            failure = f"no answer from {self._receiver} within {self.timeout_s:g}s"
        except (aiohttp.ClientError, ValueError) as exc:
            failure = self._scrubber.scrub_text(
                f"cannot reach {self._receiver}: {type(exc).__name__} {exc}"
            )
        if failure is not None:
            # Raised outside the handler: the client's exception can hold the URL.
            raise SinkError(self.sink, failure.rstrip(), retryable=True)
        self.check(answer)
        return answer

    def _retry_after_s(self, response: HttpAnswer) -> float | None:
        """The receiver's `Retry-After`, within `max_retry_after` (a warning if not)."""
        header = {k.lower(): v for k, v in response.headers.items()}.get("retry-after")
        wait = bounded_retry_after(header, now=self._now(), max_s=self.max_retry_after_s)
        if wait is None:
            return None
        if wait.capped:
            log.warning(
                "delivery.retry_after_capped",
                sink=self.sink,
                retry_after=self._scrubber.scrub_text((header or "")[:40]),
                used_s=wait.seconds,
                hint=f"the receiver asked for longer than sinks.{self.sink}.max_retry_after "
                "(or something unreadable); the sink pauses for that long instead",
            )
        return wait.seconds

    def check(self, response: HttpAnswer) -> None:
        """Raise `SinkError` unless `response` is a 2xx."""
        status = response.status
        verdict = classify_status(status)
        if verdict == "ok":
            return
        detail = self.detail(response)
        if verdict == "retry":
            raise SinkError(
                self.sink,
                f"HTTP {status} from {self._receiver}{detail}; retrying with backoff",
                retryable=True,
                retry_after_s=self._retry_after_s(response),
            )
        if 300 <= status < 400:
            what = (
                f"{self._receiver} redirected (HTTP {status}) and redirects are not followed; "
                f"set {self._config_path} to the final address"
            )
        else:
            what = (
                f"{self._receiver} refused the message (HTTP {status}{detail}); "
                f"check {self._config_path}"
            )
        raise SinkError(
            self.sink,
            f"{what}, then replay with {replay_hint(self.sink)}",
            retryable=False,
        )

    def detail(self, response: HttpAnswer) -> str:
        """`: <start of the body>`, bounded and scrubbed, or "" for an empty body."""
        text = self._scrubber.excerpt(response.text(), limit=_DETAIL_CHARS)
        return f": {text}" if text else ""

    def scrubbed(self, text: str, *, limit: int) -> str:
        """`text` from the receiver, bounded and scrubbed of this sink's secrets."""
        return self._scrubber.excerpt(text, limit=limit)


class HttpSink(BaseSink):
    """A sink that POSTs to its receiver: the policy from its `DeliverySettings`, and an
    `HttpPoster` (`self._poster`) bounded by their timeout, closed by `aclose`. Errors
    point at `sinks.<name>.<config_key>` (or `config_path`), the setting to check when the
    receiver refuses."""

    def __init__(
        self,
        name: str,
        settings: DeliverySettings,
        *,
        receiver: str,
        secrets: Sequence[str],
        now: Callable[[], datetime],
        config_key: str = "url",
        config_path: str | None = None,
        group_wait_s: float = 0.0,
        max_batch: int = 1,
    ) -> None:
        policy = delivery_policy(settings, group_wait_s=group_wait_s, max_batch=max_batch)
        super().__init__(name, policy=policy)
        self._poster = HttpPoster(
            name,
            timeout_s=settings.timeout.total_seconds(),
            receiver=receiver,
            config_path=config_path or f"sinks.{name}.{config_key}",
            secrets=secrets,
            now=now,
            max_retry_after_s=policy.max_retry_after_s,
        )

    async def aclose(self) -> None:
        await self._poster.aclose()


__all__ = [
    "USER_AGENT",
    "BaseSink",
    "HttpAnswer",
    "HttpPoster",
    "HttpSink",
    "Sink",
    "delivery_policy",
    "replay_hint",
    "url_secrets",
]
