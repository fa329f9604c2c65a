"""Route groups, the pure part (`relay.domain.grouping`): when a grouped notification
is due, how due notifications are cut into messages, and what a group's message says."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pytest

from relay.domain.delivery import Attempted, Backoff, DeliveryPolicy, message_after_failure
from relay.domain.grouping import (
    GROUP_MESSAGE_MAX,
    GroupFacts,
    claims_grouped_only,
    group_digest,
    group_due_at,
    group_message_id,
    message_group,
    plan_messages,
    sink_ready_at,
)
from tests.delivery_kit import T0, make_alert, make_notification
from tests.grouping_kit import group_of, grouped


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# (arrival, wait_s, pending message's due time, last message's first attempt) -> due
DUE_TABLE = [
    pytest.param(0, 10, None, None, 10, id="a new group waits group_wait"),
    pytest.param(4, 10, 10, None, 10, id="joins the message not yet attempted"),
    pytest.param(30, 10, 10, None, 10, id="joins it even when it is overdue"),
    pytest.param(4, 10, 10, 2, 10, id="the pending message wins over the last one"),
    pytest.param(12, 10, None, 10, 20, id="just after a message: the next one, not a burst"),
    pytest.param(19.5, 10, None, 10, 20, id="still within group_wait of the last message"),
    pytest.param(20, 10, None, 10, 30, id="group_wait after the last: a new burst"),
    pytest.param(100, 10, None, 10, 110, id="long after: waits group_wait again"),
    pytest.param(5, 0, None, 5, 5, id="no wait: due at once"),
    pytest.param(5, -1, None, None, 5, id="a negative wait counts as none"),
]


@pytest.mark.parametrize(("now", "wait_s", "pending", "last", "due"), DUE_TABLE)
def test_group_due_at(
    now: float, wait_s: float, pending: float | None, last: float | None, due: float
) -> None:
    facts = GroupFacts(
        pending_due_at=None if pending is None else at(pending),
        last_message_at=None if last is None else at(last),
    )
    assert group_due_at(now=at(now), wait_s=wait_s, facts=facts) == at(due)


@dataclass(frozen=True)
class Item:
    name: str
    group: str | None = None
    message: str | None = None


def plan(items: list[Item], *, max_batch: int = 1) -> list[list[str]]:
    messages = plan_messages(
        items,
        max_batch=max_batch,
        group_of=lambda i: i.group,
        message_of=lambda i: i.message,
    )
    return [[i.name for i in m] for m in messages]


PLAN_TABLE = [
    pytest.param([Item("a"), Item("b")], 1, [["a"], ["b"]], id="ungrouped: max_batch each"),
    pytest.param([Item("a"), Item("b"), Item("c")], 2, [["a", "b"], ["c"]], id="batches"),
    pytest.param(
        [Item("a", "g"), Item("b", "g"), Item("c", "g")], 1, [["a", "b", "c"]], id="one group"
    ),
    pytest.param(
        [Item("a", "g"), Item("u"), Item("b", "h"), Item("c", "g"), Item("v")],
        5,
        [["a", "c"], ["u", "v"], ["b"]],
        id="never mixes groups, nor grouped with ungrouped",
    ),
    pytest.param(
        [Item("a", "g", "m1"), Item("n", "g"), Item("b", "g", "m1"), Item("o", "g")],
        1,
        [["a", "b"], ["n", "o"]],
        id="an attempted message keeps its members; later arrivals go in the next",
    ),
    pytest.param(
        [Item("a", "g", "m1"), Item("b", "g", "m2")],
        10,
        [["a"], ["b"]],
        id="two attempted messages of a group stay two",
    ),
    pytest.param(
        [Item("a", None, "stray")], 1, [["a"]], id="a message id without a group is ignored"
    ),
]


@pytest.mark.parametrize(("items", "max_batch", "expected"), PLAN_TABLE)
def test_plan_messages(items: list[Item], max_batch: int, expected: list[list[str]]) -> None:
    assert plan(items, max_batch=max_batch) == expected


def test_a_group_message_is_capped_the_rest_in_the_next() -> None:
    items = [Item(f"n{i}", "g") for i in range(GROUP_MESSAGE_MAX * 2 + 3)]
    sizes = [len(m) for m in plan(items, max_batch=1000)]
    assert sizes == [GROUP_MESSAGE_MAX, GROUP_MESSAGE_MAX, 3]


def test_a_group_message_id_depends_on_the_set_only() -> None:
    key = group_of().key
    assert group_message_id(key, ["b", "a"]) == group_message_id(key, ["a", "b"])
    assert group_message_id(key, ["a", "b"]) != group_message_id(key, ["a"])
    assert group_message_id(key, ["a"]) != group_message_id(group_of("resp-2").key, ["a"])
    assert group_message_id(key, ["a"]).startswith("msg_group_")


def test_the_digest_counts_names_the_first_five_and_the_rest() -> None:
    alerts = [make_alert() for _ in range(7)]
    # The name label the responders' names add: it wins over the id.
    alerts[0] = replace(alerts[0], labels={**alerts[0].labels, "responder": "Sales Qualifier"})
    digest = group_digest([grouped(alert=a) for a in alerts])
    assert digest.title == "7 alerts: execution-failed for Sales Qualifier"
    assert [n.alert.id for n in digest.shown] == [a.id for a in alerts[:5]]
    assert (digest.count, digest.hidden, digest.more) == (7, 2, "and 2 more")
    assert digest.severity == "critical"
    assert digest.group.route == "routes[0]"


def test_the_digest_without_names_says_the_values_and_every_rule() -> None:
    first = grouped(alert=make_alert(rule="execution-failed"))
    second = grouped(alert=make_alert(rule="credits-spike", severity="warning"))
    digest = group_digest([first, second])
    assert digest.title == "2 alerts: execution-failed, credits-spike for responder_id=resp-1"
    assert digest.more is None
    assert group_digest([first]).title.startswith("1 alert: ")


def test_a_message_is_one_group_or_none() -> None:
    assert message_group([make_notification()]) is None
    assert message_group([grouped(), grouped()]) == group_of()
    with pytest.raises(ValueError, match="one group only"):
        message_group([grouped(), grouped(group_of("resp-2"))])
    with pytest.raises(ValueError, match="one group only"):
        message_group([grouped(), make_notification()])
    with pytest.raises(ValueError, match="an ungrouped message"):
        group_digest([make_notification()])


READY_TABLE = [
    pytest.param(None, None, 10, None, id="nothing pending"),
    pytest.param(0, None, 10, 10, id="ungrouped: the sink's digest wait"),
    pytest.param(None, 10, 10, 10, id="a group: its own due time, no second wait"),
    pytest.param(0, 5, 10, 5, id="the group's message comes first"),
    pytest.param(0, 30, 10, 10, id="the digest comes first"),
]


@pytest.mark.parametrize(("ungrouped", "grouped_due", "wait_s", "ready"), READY_TABLE)
def test_sink_ready_at(
    ungrouped: float | None, grouped_due: float | None, wait_s: float, ready: float | None
) -> None:
    assert sink_ready_at(
        ungrouped_due_at=None if ungrouped is None else at(ungrouped),
        grouped_due_at=None if grouped_due is None else at(grouped_due),
        group_wait_s=wait_s,
    ) == (None if ready is None else at(ready))


# (now, oldest due ungrouped, the sink's group_wait) -> claim route groups' rows only
GROUPED_ONLY_TABLE = [
    pytest.param(10, None, 60, False, id="nothing ungrouped: claim anything"),
    pytest.param(10, 9, 60, True, id="the digest has not waited: groups only"),
    pytest.param(69, 9, 60, False, id="the digest has waited: everything"),
    pytest.param(70, 9, 60, False, id="and later"),
    pytest.param(10, 9, 0, False, id="no digest wait: everything"),
]


@pytest.mark.parametrize(("now", "ungrouped", "wait_s", "only"), GROUPED_ONLY_TABLE)
def test_claims_grouped_only(
    now: float, ungrouped: float | None, wait_s: float, only: bool
) -> None:
    assert (
        claims_grouped_only(
            now=at(now),
            ungrouped_due_at=None if ungrouped is None else at(ungrouped),
            group_wait_s=wait_s,
        )
        is only
    )


def test_a_failed_message_is_retried_at_one_time_or_its_old_members_die() -> None:
    policy = DeliveryPolicy(backoff=Backoff(initial_s=1, max_s=60), max_age_s=100)
    now = at(50)
    members = [
        Attempted(failures=1, first_enqueued_at=at(45)),  # backoff ~1 s
        Attempted(failures=5, first_enqueued_at=at(40)),  # backoff ~16 s: sets the time
        Attempted(failures=1, first_enqueued_at=at(-45)),  # max_age ends at 55
    ]
    decisions = message_after_failure(
        "HTTP 503",
        members=members,
        retryable=True,
        retry_after_s=None,
        now=now,
        policy=policy,
        rng=random.Random(3),
    )
    assert [d.outcome for d in decisions] == ["retry", "retry", "dead"]
    assert decisions[0].next_attempt_at == decisions[1].next_attempt_at
    assert decisions[1].next_attempt_at is not None
    assert decisions[1].next_attempt_at > at(60)
    assert "max_age" in decisions[2].reason
    refused = message_after_failure(
        "HTTP 410",
        members=members,
        retryable=False,
        retry_after_s=None,
        now=now,
        policy=policy,
        rng=random.Random(3),
    )
    assert [(d.outcome, d.reason) for d in refused] == [("dead", "HTTP 410")] * 3
