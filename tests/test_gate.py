"""The request budget gate at the API client (source.gate): every attempt takes a slot,
a 429 slows the source and blocks it until `Retry-After`, no wait outlasts `max_wait_s`.
Against a real client and a scripted API on loopback (`tests.delivery_kit.Receiver`)."""

from __future__ import annotations

import pytest

from relay.domain.budget import RequestBudget
from relay.errors import SourceRateLimited
from relay.source import BudgetGate, ClientConfig, ZaiaClient
from tests.delivery_kit import Received, Receiver, Reply


class FakeTime:
    """A clock that only moves when the gate sleeps."""

    def __init__(self) -> None:
        self.now_s = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now_s

    async def sleep(self, delay_s: float) -> None:
        self.slept.append(delay_s)
        self.now_s += delay_s


def _gate(time: FakeTime, *, per_minute: float = 60, **options: float) -> BudgetGate:
    return BudgetGate(
        RequestBudget.per_minute(per_minute),
        source="prod",
        clock=time.clock,
        sleep=time.sleep,
        **options,
    )


async def test_requests_wait_for_their_slot() -> None:
    time = FakeTime()
    gate = _gate(time, per_minute=120)
    for _ in range(3):
        await gate.acquire()
    assert time.slept == pytest.approx([0.5, 0.5])
    assert gate.budget.used(time.now_s) == 3


async def test_a_429_to_a_list_read_blocks_until_its_retry_after() -> None:
    time = FakeTime()
    gate = _gate(time, max_wait_s=60.0)
    await gate.acquire()
    gate.rate_limited(30.0)
    await gate.acquire()
    assert time.slept == pytest.approx([30.0])
    assert gate.budget.throttled


async def test_a_429_to_a_drill_down_read_only_slows_the_source() -> None:
    time = FakeTime()
    gate = _gate(time, max_wait_s=60.0)
    await gate.acquire()
    gate.rate_limited(3600.0, blocks=False)
    await gate.acquire()
    assert sum(time.slept) < 5.0  # the halved pace, not the hour
    assert gate.budget.throttled


async def test_a_wait_longer_than_max_wait_ends_the_read_as_rate_limited() -> None:
    time = FakeTime()
    gate = _gate(time, max_wait_s=5.0)
    await gate.acquire()
    gate.rate_limited(20.0)
    with pytest.raises(SourceRateLimited) as caught:
        await gate.acquire()
    assert caught.value.retry_after_s == pytest.approx(20.0)
    assert time.slept == []


async def test_the_client_passes_every_attempt_through_the_gate() -> None:
    time = FakeTime()
    gate = _gate(time, max_wait_s=60.0)
    answers = [Reply(429, "", {"Retry-After": "7"}), Reply(200, "[]")]
    seen: list[float] = []

    def answer(_: Received) -> Reply:
        seen.append(time.now_s)
        return answers.pop(0)

    client_sleeps: list[float] = []

    async def client_sleep(delay_s: float) -> None:
        client_sleeps.append(delay_s)

    async with Receiver(answer) as api:
        config = ClientConfig(name="prod", base_url=api.url, api_key="k", max_retries=1)
        async with ZaiaClient(config, sleep=client_sleep, gate=gate) as client:
            page = await client.list_page(1)
    assert page.ids == []
    # Two attempts, both through the gate: the retry waited out the Retry-After there.
    assert len(seen) == 2
    assert seen[1] - seen[0] >= 7.0
    assert gate.budget.used(time.now_s) == 2
