"""The Microsoft Teams sink's settings: a Workflows webhook.

Invariants:
- `webhook_url` is a `SecretStr` (its query holds the workflow's signature, a
  credential); messages never repeat it.
- It is https, or http to a loopback address only (`check_vendor_url`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import model_validator

from relay.settings._base import Duration, Secret, check_vendor_url, raise_problems
from relay.settings._delivery import DeliverySettings


class TeamsSinkSettings(DeliverySettings):
    type: Literal["teams"]
    webhook_url: Secret
    # A burst within this wait goes out as one digest card.
    group_wait: Duration = timedelta(seconds=10)

    @model_validator(mode="after")
    def _usable(self) -> TeamsSinkSettings:
        try:
            check_vendor_url(self.webhook_url.get_secret_value())
        except ValueError as exc:
            raise_problems([(("webhook_url",), str(exc))], title="TeamsSinkSettings")
        return self
