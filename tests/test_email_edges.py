"""The e-mail sink against SMTP servers that misbehave: a reply that is not UTF-8 (the
failure is still recorded, in SQLite and PostgreSQL), a certificate the settings do not
trust (dead at once, a configuration problem), odd replies. A scripted SMTP server on
loopback answers each command with a chosen reply; STARTTLS with a certificate from a
CA the test creates (trustme)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trustme

from relay.errors import SinkError
from relay.settings import EmailSinkSettings
from relay.sim import ManualClock
from relay.sinks.email import EmailSink
from relay.store import Store
from tests import store_backends
from tests.delivery_kit import T0, enqueue, make_notification
from tests.grouping_kit import worker_on

backend, store = store_backends.backend, store_backends.store

NOT_UTF8 = b"550 bad \xff\xfe\xc3 mailbox\r\n"


def settings(port: int, **smtp: Any) -> EmailSinkSettings:
    return EmailSinkSettings.model_validate(
        {
            "type": "email",
            "group_wait": "0s",
            "timeout": "3s",
            "smtp": {"host": "127.0.0.1", "port": port, "security": "none", **smtp},
            "from": "relay@example.com",
            "to": ["a@example.com"],
        }
    )


@asynccontextmanager
async def scripted(
    replies: Mapping[str | bytes, bytes], tls: ssl.SSLContext | None = None
) -> AsyncIterator[int]:
    """An SMTP server answering each command with `replies[VERB]` (250 by default),
    `replies["banner"]` first and `replies[b"DOT"]` after the message; its port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(replies.get("banner", b"220 hi\r\n"))
        await writer.drain()
        while line := await reader.readline():
            verb = line.split(b" ")[0].split(b":")[0].strip().upper()
            if verb == b"DATA":
                writer.write(b"354 go\r\n")
                await writer.drain()
                while (await reader.readline()) not in (b".\r\n", b""):
                    pass
                writer.write(replies.get(b"DOT", b"250 ok\r\n"))
            elif verb == b"STARTTLS" and tls is not None:
                writer.write(b"220 go\r\n")
                await writer.drain()
                try:
                    await writer.start_tls(tls)
                except (ssl.SSLError, ConnectionError):
                    break  # the client refused our certificate
            else:
                writer.write(replies.get(verb, b"250 ok\r\n"))
            await writer.drain()
            if verb == b"QUIT":
                break
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def refusal(replies: Mapping[str | bytes, bytes], **smtp: Any) -> SinkError:
    async with scripted(replies) as port:
        sink = EmailSink("mail", settings(port, **smtp))
        with pytest.raises(SinkError) as caught:
            await sink.send([make_notification(sink="mail")])
    return caught.value


async def test_a_reply_that_is_not_utf8_becomes_an_encodable_reason() -> None:
    error = await refusal({b"DOT": NOT_UTF8})
    assert not error.retryable
    text = str(error)
    text.encode()  # no lone surrogate left
    assert "550 bad \ufffd\ufffd\ufffd mailbox" in text


async def test_a_reply_that_is_not_utf8_is_recorded_as_a_dead_letter(store: Store) -> None:
    async with scripted({b"DOT": NOT_UTF8}) as port:
        clock = ManualClock(T0)
        sink = EmailSink("mail", settings(port), now=clock)
        await enqueue(store, [make_notification(sink="mail")], at=T0)
        result = await worker_on(sink, store, clock).step()
    assert result.outcomes == {"dead": 1}
    [letter] = await store.dead_letters(sink="mail")
    assert "550 bad \ufffd\ufffd\ufffd mailbox" in letter.reason


async def test_the_store_makes_any_error_text_encodable(store: Store) -> None:
    notification = make_notification(sink="hook")
    await enqueue(store, [notification], at=T0)
    await store.claim_due("hook", now=T0, limit=1, lease_s=30)
    # A sink that did not scrub its receiver's bytes: the failure is recorded anyway.
    await store.mark_dead("hook", notification.id, reason="HTTP 400: caf\udce9", now=T0)
    [letter] = await store.dead_letters(sink="hook")
    assert letter.reason == "HTTP 400: caf\ufffd"


@pytest.mark.parametrize(
    ("replies", "retryable", "words"),
    [
        ({b"EHLO": b"421 busy\r\n", b"HELO": b"421 busy\r\n"}, True, "421 busy"),
        ({"banner": b"421 go away\r\n"}, True, "421 go away"),
        ({"banner": b"554 no\r\n"}, False, "554 no"),
        ({b"MAIL": b"452 full\r\n"}, True, "452 full"),
        ({b"DOT": b"550 " + b"x" * 9000 + b"\r\n"}, True, "Response too long"),
        ({b"DOT": b"hello\r\n"}, True, "Malformed SMTP response line"),
    ],
)
async def test_odd_replies_are_classified(
    replies: Mapping[str | bytes, bytes], retryable: bool, words: str
) -> None:
    error = await refusal(replies)
    assert error.retryable is retryable
    assert words in str(error)
    assert len(str(error)) < 600


async def test_a_server_without_starttls_is_dead_at_once() -> None:
    error = await refusal({}, security="starttls")
    assert not error.retryable
    assert "sinks.mail.smtp.security" in str(error)


async def test_a_certificate_the_settings_do_not_trust_is_dead_at_once() -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    # The sink trusts the system's store only: this CA is not in it.
    async with scripted({b"EHLO": b"250-hi\r\n250 STARTTLS\r\n"}, tls=context) as port:
        sink = EmailSink("mail", settings(port, security="starttls"))
        with pytest.raises(SinkError) as caught:
            await sink.send([make_notification(sink="mail")])
    error = caught.value
    assert not error.retryable
    assert "certificate could not be verified" in str(error)
    assert "sinks.mail.smtp.ca_file" in str(error)
    assert "deliveries retry --all --sink mail" in str(error)
