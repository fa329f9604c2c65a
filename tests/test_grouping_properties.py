"""Route groups, whatever the arrival order and the receiver's failures: every grouped
notification is delivered exactly once (to a receiver deduplicating by `webhook-id`,
even when the store fails after a request), a message holds one group only (or one
ungrouped notification), a retried message carries the same members under the same
`webhook-id`, and two messages of one group first go out at least `group_wait` apart.
The real SQLite outbox, the real worker and a loopback receiver; the clock is manual."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from relay.domain.alerts import Notification
from relay.errors import StoreError
from relay.sim import ManualClock
from relay.store import SqliteStore
from tests.delivery_kit import T0, Receiver, enqueue, make_notification
from tests.grouping_kit import WAIT_S, FlakyOutbox, Recorder, group_of, grouped, webhook, worker_on

GROUPS = [group_of(f"resp-{i}") for i in range(3)]


@dataclass(frozen=True)
class Arrival:
    at_s: float  # in tenths: arrivals fall between a message and its retry, too
    group: int | None  # an index in GROUPS, None: ungrouped


arrivals = st.lists(
    st.builds(
        Arrival,
        st.integers(0, 250).map(lambda tenths: tenths / 10),
        st.none() | st.integers(0, len(GROUPS) - 1) | st.just(0),
    ),
    min_size=1,
    max_size=20,
)
answers = st.lists(st.sampled_from([200, 503]), max_size=6)
# Which calls of `mark_delivered` fail (the store blips after the receiver took them).
blips = st.sets(st.integers(0, 8), max_size=3)


async def scenario(
    path: Path, schedule: list[Arrival], statuses: list[int], failing: set[int]
) -> None:
    clock = ManualClock(T0)
    recorder = Recorder(clock, statuses=tuple(statuses))
    sent: list[Notification] = []
    pending = sorted(schedule, key=lambda a: a.at_s)
    async with SqliteStore(path) as store, Receiver(recorder) as receiver:
        sink = webhook(f"{receiver.url}/h")
        flaky = FlakyOutbox(store, fail="mark_delivered", calls=failing)
        worker = worker_on(sink, flaky, clock)  # type: ignore[arg-type]
        try:
            for _ in range(500):
                while pending and T0 + timedelta(seconds=pending[0].at_s) <= clock():
                    arrival = pending.pop(0)
                    if arrival.group is None:
                        n = make_notification(created_at=clock())
                    else:
                        n = grouped(GROUPS[arrival.group], at=clock())
                    sent.append(n)
                    await enqueue(store, [n], at=clock())
                try:
                    result = await worker.step()
                except StoreError:
                    continue  # what it claimed is due again after a backoff
                if result.claimed:
                    continue
                wakes = [] if result.next_wake_at is None else [result.next_wake_at]
                if pending:
                    wakes.append(T0 + timedelta(seconds=pending[0].at_s))
                if not wakes:
                    break
                clock.set(max(clock(), min(wakes)))
            else:
                raise AssertionError("the worker did not settle")
        finally:
            await sink.aclose()
        assert await store.outbox_counts() == {}

    group_by_id = {n.id: None if n.group is None else n.group.key for n in sent}
    # Exactly once, for a receiver that deduplicates by `webhook-id` (a blip of the store
    # after a request sends it again, under its id): every notification, each once.
    accepted = {s.webhook_id: s.ids for s in recorder.seen if s.status < 300}
    assert Counter(i for ids in accepted.values() for i in ids) == Counter(n.id for n in sent)
    members: dict[str, tuple[str, ...]] = {}
    first_attempts: dict[str, list[datetime]] = {}  # by group: each message's first try
    for seen in recorder.seen:
        keys = {group_by_id[i] for i in seen.ids}
        assert keys == {seen.group_key}  # one group, or ungrouped only
        if seen.group_key is None:
            assert len(seen.ids) == 1  # max_alerts_per_request: 1
        elif seen.webhook_id not in members:
            first_attempts.setdefault(seen.group_key, []).append(seen.at)
        # A retry is the same message: same id, same members.
        assert members.setdefault(seen.webhook_id, seen.ids) == seen.ids
    # A later alert of a group joins the next message, never a burst.
    for times in first_attempts.values():
        for earlier, later in itertools.pairwise(times):
            assert later - earlier >= timedelta(seconds=WAIT_S)


@hyp_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(schedule=arrivals, statuses=answers, failing=blips)
def test_every_grouped_notification_is_delivered_once_one_group_a_message(
    schedule: list[Arrival], statuses: list[int], failing: set[int]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(scenario(Path(directory) / "relay.db", schedule, statuses, failing))
