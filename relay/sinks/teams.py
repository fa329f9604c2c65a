"""The Microsoft Teams sink: a Workflows webhook ("When a Teams webhook request is
received") posting an Adaptive Card to a channel (`relay.sinks.teams_cards`).

Invariants:
- One request a message: one card for one notification, a digest card for a burst
  (`group_wait`) or a route group's message, within Teams' size limit.
- Workflows answers 202 Accepted; 4xx other than 408/429 is dead at once, 408/429 and
  5xx are retried (`relay.domain.delivery.classify_status`). Teams cannot edit a card
  posted through a workflow, so a resolve is a new, green card.
- The webhook URL (its `sig=` query is the credential) never appears in an error or a log.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from relay.clock import utcnow
from relay.domain.alerts import Notification
from relay.settings import TeamsSinkSettings
from relay.sinks.base import HttpSink, url_secrets
from relay.sinks.teams_cards import encode_message, teams_message

# A burst digest lists as many as fit in one card and counts the rest.
TEAMS_MAX_BATCH = 100
_HEADERS = {"content-type": "application/json"}


class TeamsSink(HttpSink):
    def __init__(
        self,
        name: str,
        settings: TeamsSinkSettings,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        url = settings.webhook_url.get_secret_value()
        super().__init__(
            name,
            settings,
            receiver="Teams",
            secrets=url_secrets(url),
            now=now,
            config_key="webhook_url",
            group_wait_s=settings.group_wait.total_seconds(),
            max_batch=TEAMS_MAX_BATCH,
        )
        self._url = url

    def body(self, notifications: Sequence[Notification]) -> bytes:
        return encode_message(teams_message(notifications))

    async def send(
        self, notifications: Sequence[Notification], *, message_id: str | None = None
    ) -> None:
        del message_id  # A Teams card has no id a reader could deduplicate by.
        await self._poster.post(self._url, content=self.body(notifications), headers=_HEADERS)


__all__ = ["TEAMS_MAX_BATCH", "TeamsSink"]
