"""Calls to Slack's Web API with a bot token: what the Slack sink and the handler of
Slack's button clicks (`relay.http.slack_actions`) share.

Invariants:
- Slack answers HTTP 200 with `{"ok": false, "error": ...}` for most refusals:
  transient error codes are retried (`SinkError.retryable`), every other code is a
  refusal, and codes the caller tolerates come back as the answer.
- The token never appears in an error, a log event or a repr; text from Slack is
  bounded and scrubbed of the sink's secrets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from pydantic import SecretStr

from relay.clock import utcnow
from relay.errors import SinkError
from relay.settings import SlackSinkSettings
from relay.sinks.base import HttpPoster, replay_hint

__all__ = ["RETRYABLE_API_ERRORS", "SlackWebApi", "slack_web_api"]

# Web API error codes that say "try again later"; every other code is a refusal.
RETRYABLE_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)
_JSON = {"content-type": "application/json; charset=utf-8"}


class SlackWebApi:
    """One sink's bot token, channel and API address, over an `HttpPoster`."""

    def __init__(
        self, name: str, *, token: SecretStr, channel: str, api_url: str, poster: HttpPoster
    ) -> None:
        self._name = name
        self._token = token
        self._channel = channel
        self._api_url = api_url.rstrip("/")
        self._poster = poster

    def __repr__(self) -> str:
        return f"SlackWebApi({self._name!r}, channel {self._channel})"

    async def aclose(self) -> None:
        await self._poster.aclose()

    async def call(
        self, method: str, payload: dict[str, Any], *, tolerate: Sequence[str] = ()
    ) -> dict[str, Any]:
        """Slack's answer to `method` with `payload` (the sink's channel unless it names
        one), or `SinkError`."""
        body = {"channel": self._channel, **payload}
        headers = {**_JSON, "authorization": f"Bearer {self._token.get_secret_value()}"}
        response = await self._poster.post(
            f"{self._api_url}/{method}", content=json.dumps(body).encode(), headers=headers
        )
        try:
            answer = json.loads(response.body)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise SinkError(
                self._name,
                f"Slack's {method} answered something that is not a JSON object; "
                f"check sinks.{self._name}.api_url",
                retryable=True,
            )
        if answer.get("ok") is True:
            return answer
        error = self._poster.scrubbed(str(answer.get("error") or "unknown_error"), limit=100)
        if error in tolerate:
            return answer
        if error in RETRYABLE_API_ERRORS:
            raise SinkError(
                self._name, f"Slack's {method} failed ({error}); retrying", retryable=True
            )
        raise SinkError(
            self._name,
            f"Slack's {method} refused the message ({error}); check sinks.{self._name} "
            f"(bot_token scopes chat:write, channel {self._channel!r} with the bot invited), "
            f"then replay with {replay_hint(self._name)}",
            retryable=False,
        )


def slack_web_api(
    name: str, settings: SlackSinkSettings, *, now: Callable[[], datetime] = utcnow
) -> SlackWebApi:
    """A client of its own for a bot-mode sink (`aclose` it), for calls outside delivery."""
    assert settings.bot_token is not None
    secrets = [settings.bot_token.get_secret_value()]
    if settings.signing_secret is not None:
        secrets.append(settings.signing_secret.get_secret_value())
    poster = HttpPoster(
        name,
        timeout_s=settings.timeout.total_seconds(),
        receiver="Slack",
        config_path=f"sinks.{name}.bot_token",
        secrets=secrets,
        now=now,
    )
    return SlackWebApi(
        name,
        token=settings.bot_token,
        channel=settings.channel or "",
        api_url=settings.api_url,
        poster=poster,
    )
