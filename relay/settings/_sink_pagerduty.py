"""The PagerDuty sink's settings: an Events API v2 integration.

Invariants:
- `routing_key` is a `SecretStr` of exactly 32 characters (an Events API v2
  integration key); messages never repeat it.
- `api_url` is https, or http to a loopback address only (`check_vendor_url`).
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from relay.settings._base import Secret, check_vendor_url, raise_problems
from relay.settings._delivery import DeliverySettings

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
ROUTING_KEY_CHARS = 32


class PagerDutySinkSettings(DeliverySettings):
    type: Literal["pagerduty"]
    routing_key: Secret
    api_url: str = PAGERDUTY_EVENTS_URL

    @model_validator(mode="after")
    def _usable(self) -> PagerDutySinkSettings:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        key = self.routing_key.get_secret_value()
        if len(key) != ROUTING_KEY_CHARS or not key.isalnum():
            got = f"{len(key)} characters" if len(key) != ROUTING_KEY_CHARS else "other characters"
            problems.append(
                (
                    ("routing_key",),
                    f"should be the {ROUTING_KEY_CHARS}-character integration key (letters "
                    "and digits) of an Events API v2 integration (PagerDuty: Service -> "
                    f"Integrations -> Events API v2), got {got}",
                )
            )
        try:
            check_vendor_url(self.api_url)
        except ValueError as exc:
            problems.append((("api_url",), str(exc)))
        raise_problems(problems, title="PagerDutySinkSettings")
        return self
