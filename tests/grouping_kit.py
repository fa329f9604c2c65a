"""Test kit for route groups: grouped notifications as a route would make them, and a
loopback webhook rig that records what each request covered, on the worker's clock."""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relay.delivery.worker import DeliveryWorker
from relay.domain.alerts import Alert, Notification, NotificationGroup, route_group_key
from relay.errors import StoreError
from relay.settings import WebhookSinkSettings
from relay.sim import ManualClock
from relay.sinks.webhook import WebhookSink
from relay.store import Store
from tests.delivery_kit import T0, Received, Reply, make_alert

ROUTE = "routes[0]"
WAIT_S = 10.0


def group_of(
    responder: str = "resp-1", *, wait_s: float = WAIT_S, route: str = ROUTE
) -> NotificationGroup:
    values = {"responder_id": responder}
    key = route_group_key(route=route, values=values)
    return NotificationGroup(key=key, wait_s=wait_s, route=route, values=values)


def grouped(
    group: NotificationGroup | None = None,
    *,
    alert: Alert | None = None,
    sink: str = "hook",
    at: datetime = T0,
) -> Notification:
    """A firing notification of `group` (the default group) created at `at`."""
    return Notification.about(
        alert or make_alert(),
        sink=sink,
        kind="firing",
        created_at=at,
        group=group if group is not None else group_of(),
    )


class FlakyOutbox:
    """The real store, except that its method `fail` raises `StoreError` on the calls
    numbered in `calls` (0: the first): a database blip at that point of a step (after
    the receiver took the message, for `mark_delivered`)."""

    def __init__(self, store: Store, *, fail: str, calls: Collection[int] = (0,)) -> None:
        self._store = store
        self._fail = fail
        self._calls = frozenset(calls)
        self._made = 0
        self.failed = 0

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if name != self._fail:
            return method

        async def failing(*args: Any, **kwargs: Any) -> Any:
            call, self._made = self._made, self._made + 1
            if call in self._calls:
                self.failed += 1
                raise StoreError(f"{name}: the database went away (a test's blip)")
            return await method(*args, **kwargs)

        return failing


def webhook(url: str, **extra: Any) -> WebhookSink:
    settings = WebhookSinkSettings.model_validate({"type": "webhook", "url": url, **extra})
    return WebhookSink("hook", settings)


def worker_on(sink: Any, store: Store, clock: ManualClock, **extra: Any) -> DeliveryWorker:
    return DeliveryWorker(sink, outbox=store, now=clock, rng=random.Random(7), **extra)


@dataclass(frozen=True)
class Seen:
    """One webhook request as the receiver saw it: when (worker's clock), its id, the
    notification ids it covered, its group key (None: ungrouped) and the answer."""

    at: datetime
    webhook_id: str
    ids: tuple[str, ...]
    group_key: str | None
    status: int


def covered(body: Mapping[str, Any]) -> tuple[tuple[str, ...], str | None]:
    """The notification ids a webhook body covers, and its group key."""
    if body["type"] == "alert.group":
        assert [n["id"] for n in body["notifications"]] == body["group"]["notification_ids"]
        return tuple(body["group"]["notification_ids"]), body["group"]["key"]
    if body["type"] == "alert.batch":
        return tuple(n["id"] for n in body["notifications"]), None
    return (body["id"],), None


class Recorder:
    """A receiver's `reply` that answers `statuses` in turn (then 200) and records what
    each request covered, at the worker's clock."""

    def __init__(self, clock: ManualClock, statuses: tuple[int, ...] = ()) -> None:
        self.clock = clock
        self.statuses = list(statuses)
        self.seen: list[Seen] = []

    def __call__(self, request: Received) -> Reply:
        status = self.statuses.pop(0) if self.statuses else 200
        ids, key = covered(request.json())
        self.seen.append(Seen(self.clock(), request.headers["webhook-id"], ids, key, status))
        return Reply(status)

    def delivered(self) -> list[str]:
        return [i for s in self.seen if s.status < 300 for i in s.ids]
