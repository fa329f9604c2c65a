"""The e-mail sink behind the delivery worker: a real outbox (both backends), a real
SMTP server on loopback, the worker on a manual clock. A 4xx is retried with the same
Message-ID, a refused login is a dead letter saying what to check (never the
password), a burst is one digest, a route group is one mail."""

from __future__ import annotations

from datetime import timedelta

from structlog.testing import capture_logs

from relay.delivery.worker import DeliveryWorker
from relay.domain.grouping import group_message_id
from relay.sim import ManualClock
from relay.sinks.email import EmailSink
from relay.store import Store
from tests import store_backends
from tests.delivery_kit import T0, enqueue, make_alert, make_notification
from tests.grouping_kit import WAIT_S, grouped, worker_on
from tests.smtp_kit import PASSWORD, USERNAME, Mailbox, email_settings, smtp_server

backend, store = store_backends.backend, store_backends.store


async def step_until_idle(worker: DeliveryWorker, clock: ManualClock) -> dict[str, int]:
    """Step, jumping the clock to each wake-up, until nothing is pending; the outcomes."""
    outcomes: dict[str, int] = {}
    for _ in range(50):
        result = await worker.step()
        for outcome, count in result.outcomes.items():
            outcomes[outcome] = outcomes.get(outcome, 0) + count
        if not result.claimed:
            if result.next_wake_at is None:
                return outcomes
            clock.set(max(clock(), result.next_wake_at))
    raise AssertionError("the worker did not settle")


async def test_a_temporary_failure_is_retried_with_the_same_message_id(store: Store) -> None:
    mailbox = Mailbox(data_replies=["451 4.3.0 try later"])
    clock = ManualClock(T0)
    async with smtp_server(mailbox) as port:
        sink = EmailSink("mail", email_settings(port, sink={"group_wait": "0s"}), now=clock)
        worker = worker_on(sink, store, clock)
        notification = make_notification(sink="mail")
        await enqueue(store, [notification], at=T0)
        assert (await worker.step()).outcomes == {"retry": 1}
        outcomes = await step_until_idle(worker, clock)
        await sink.aclose()
    assert outcomes == {"delivered": 1}
    assert clock() > T0
    refused, accepted = mailbox.received
    assert refused.reply.startswith("451")
    assert accepted.accepted
    expected = f"<{notification.id}@zaia-relay>"
    assert refused.message()["Message-ID"] == accepted.message()["Message-ID"] == expected


async def test_a_refused_login_is_a_dead_letter_that_says_what_to_check(store: Store) -> None:
    mailbox = Mailbox()
    clock = ManualClock(T0)
    wrong = "N0t-the-Pa55word"
    async with smtp_server(mailbox, auth=True, auth_require_tls=False) as port:
        settings = email_settings(port, username=USERNAME, password=wrong)
        sink = EmailSink("mail", settings, now=clock)
        worker = worker_on(sink, store, clock)
        await enqueue(store, [make_notification(sink="mail")], at=T0)
        clock.advance(seconds=30)
        with capture_logs() as logs:
            result = await worker.step()
        await sink.aclose()
    assert result.outcomes == {"dead": 1}
    (dead,) = await store.dead_letters(sink="mail")
    assert "the SMTP server refused the login (535" in dead.reason
    assert "check sinks.mail.smtp.username/password" in dead.reason
    assert wrong not in dead.reason
    assert wrong not in repr(logs)
    assert mailbox.received == []
    assert wrong != PASSWORD


async def test_a_burst_is_one_digest(store: Store) -> None:
    mailbox = Mailbox()
    clock = ManualClock(T0)
    burst = [make_notification(sink="mail") for _ in range(4)]
    burst.append(make_notification(make_alert(severity="warning"), sink="mail"))
    async with smtp_server(mailbox) as port:
        sink = EmailSink("mail", email_settings(port), now=clock)  # group_wait 30s
        worker = worker_on(sink, store, clock)
        await enqueue(store, burst, at=T0)
        waiting = await worker.step()
        assert waiting.outcomes == {}
        assert waiting.next_wake_at == T0 + timedelta(seconds=30)
        clock.set(T0 + timedelta(seconds=30))
        result = await worker.step()
        await sink.aclose()
    assert (result.messages, result.outcomes) == (1, {"delivered": 5})
    (got,) = mailbox.received
    message = got.message()
    assert message["Subject"] == "[zaia-relay] [critical] 5 alerts: 4 critical, 1 warning"
    assert message["Message-ID"].startswith("<msg_batch_")
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    for n in burst:
        assert n.alert.summary in text
        assert str(n.alert.link) in text
    assert text.count("  Error: Tool 'crm.lookup' failed: HTTP 502 from upstream") == 5
    page = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert page.count("border-left:4px solid") == 5


async def test_a_route_group_is_one_mail_naming_the_first_five(store: Store) -> None:
    mailbox = Mailbox()
    clock = ManualClock(T0)
    members = [grouped(sink="mail") for _ in range(7)]
    async with smtp_server(mailbox) as port:
        sink = EmailSink("mail", email_settings(port), now=clock)
        worker = worker_on(sink, store, clock)
        await enqueue(store, members, at=T0)
        await worker.step()
        clock.set(T0 + timedelta(seconds=WAIT_S))
        result = await worker.step()
        await sink.aclose()
    assert (result.messages, result.outcomes) == (1, {"delivered": 7})
    message = mailbox.received[0].message()
    title = "7 alerts: execution-failed for responder_id=resp-1"
    # (A value that fits a line of its own is folded onto one: unfolded, it starts with a
    # space, which mail clients do not show.)
    assert message["Subject"].strip() == f"[zaia-relay] [critical] {title}"
    group = members[0].group
    assert group is not None
    expected = group_message_id(group.key, [n.id for n in members])
    assert message["Message-ID"] == f"<{expected}@zaia-relay>"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"{title} (route routes[0])" in text
    assert sum(n.alert.summary in text for n in members) == 5
    assert "…and 2 more" in text
