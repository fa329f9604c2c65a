"""The e-mail sink against a real SMTP server (aiosmtpd) on loopback: the message as a
mail client parses it, STARTTLS and implicit TLS with a CA the test makes, AUTH, and
how each SMTP failure is classified (retried, or dead with what to check)."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import re
import socket
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from relay.domain.delivery import classify_smtp_reply
from relay.errors import SinkError
from relay.scrub import REDACTED
from relay.sinks.email import EmailSink
from relay.sinks.email_message import email_message
from relay.sinks.email_words import message_id
from tests.delivery_kit import T0, make_alert, make_notification
from tests.smtp_kit import (
    PASSWORD,
    USERNAME,
    Mailbox,
    certificates,
    email_settings,
    smtp_server,
)

OWN_TAGS = {"!DOCTYPE", "html", "head", "meta", "body", "table", "tr", "td", "th", "div"}
OWN_TAGS |= {"h1", "p", "pre", "a"}
HOSTILE = '<script>alert(1)</script> & "quotes"\r\nBcc: evil@example.net\r\nX-Evil: 1'


async def send(sink: EmailSink, *notifications: object) -> None:
    try:
        await sink.send(list(notifications))  # type: ignore[arg-type]
    finally:
        await sink.aclose()


async def test_one_alert_is_a_multipart_mail_with_escaped_html() -> None:
    mailbox = Mailbox()
    alert = make_alert(error_excerpt=HOSTILE, summary="Agent <b>bot</b> failed\r\nBcc: x@y.z")
    alert = replace(alert, annotations={"runbook_url": "https://runbooks.example/agent"})
    notification = make_notification(alert, sink="mail")
    async with smtp_server(mailbox) as port:
        await send(EmailSink("mail", email_settings(port), now=lambda: T0), notification)
    (got,) = mailbox.received
    assert got.mail_from == "relay@example.com"
    assert got.rcpt_tos == ["oncall@example.com"]  # nothing from the alert added any
    message = got.message()
    assert message["Message-ID"] == f"<{notification.id}@zaia-relay>"
    assert message["From"] == "Zaia Relay <relay@example.com>"
    assert message["To"] == "oncall@example.com"
    assert message["Date"] == "Mon, 02 Mar 2026 09:00:00 +0000"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Subject"] == (
        "[zaia-relay] FIRING [critical] execution-failed (resp-1): "
        "Agent <b>bot</b> failed Bcc: x@y.z"
    )
    assert message["Bcc"] is None
    assert message["X-Evil"] is None
    assert message.get_content_type() == "multipart/alternative"
    plain, rich = (part for part in message.iter_parts())
    assert plain.get_content_type() == "text/plain"
    assert rich.get_content_type() == "text/html"
    text, page = plain.get_content(), rich.get_content()
    assert "Execution:    agent exec-" in text
    assert "Credits:      12.5" in text
    assert "Runbook: https://runbooks.example/agent" in text
    assert "    <script>alert(1)</script>" in text  # the excerpt, indented
    assert "<script>" not in page
    assert "<b>bot</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quotes&quot;" in page
    assert '<pre style="' in page
    assert f'href="{alert.link}"' in page
    assert 'href="https://runbooks.example/agent"' in page
    assert "background:#D92D20" in page  # the critical colour bar
    assert "<img" not in page
    assert "<style" not in page
    assert "<script" not in page


async def test_resolved_says_so_in_green_and_threads_with_its_firing() -> None:
    mailbox = Mailbox()
    alert = make_alert(rule="agent-failure-rate", windowed=True, state="resolved")
    resolved = make_notification(alert, sink="mail", kind="resolved")
    firing = make_notification(replace(alert, state="firing"), sink="mail")
    async with smtp_server(mailbox) as port:
        await send(EmailSink("mail", email_settings(port)), resolved)
    message = mailbox.received[0].message()
    assert message["Subject"].startswith("[zaia-relay] RESOLVED [critical] agent-failure-rate")
    assert message["In-Reply-To"] == f"<{firing.id}@zaia-relay>"
    assert message["References"] == f"<{firing.id}@zaia-relay>"
    page = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "RESOLVED" in page
    assert "background:#12B76A" in page
    assert "Resolved:" in message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


async def test_starttls_with_a_private_ca_and_auth(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    mailbox = Mailbox()
    async with smtp_server(mailbox, starttls=certs.server, auth=True) as port:
        settings = email_settings(
            port,
            security="starttls",
            ca_file=str(certs.ca_file),
            username=USERNAME,
            password=PASSWORD,
        )
        await send(EmailSink("mail", settings), make_notification(sink="mail"))
    (got,) = mailbox.received
    assert got.tls
    assert got.authenticated
    assert mailbox.logins
    assert mailbox.logins[-1][1] is True


async def test_starttls_refuses_a_certificate_it_cannot_verify(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    mailbox = Mailbox()
    async with smtp_server(mailbox, starttls=certs.server) as port:
        sink = EmailSink("mail", email_settings(port, security="starttls"))
        with pytest.raises(SinkError) as caught:
            await send(sink, make_notification(sink="mail"))
    # A configuration problem (which CA to trust): no retry can fix it.
    assert not caught.value.retryable
    assert "smtp.ca_file" in str(caught.value)
    assert mailbox.received == []


async def test_starttls_is_required_when_configured() -> None:
    mailbox = Mailbox()
    async with smtp_server(mailbox) as port:  # offers no STARTTLS
        sink = EmailSink("mail", email_settings(port, security="starttls"))
        with pytest.raises(SinkError) as caught:
            await send(sink, make_notification(sink="mail"))
    assert not caught.value.retryable
    assert "STARTTLS" in str(caught.value)
    assert "sinks.mail.smtp.security" in str(caught.value)
    assert mailbox.received == []


async def test_implicit_tls_with_auth(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    mailbox = Mailbox()
    async with smtp_server(mailbox, implicit_tls=certs.server, auth=True) as port:
        settings = email_settings(
            port, security="tls", ca_file=str(certs.ca_file), username=USERNAME, password=PASSWORD
        )
        await send(EmailSink("mail", settings), make_notification(sink="mail"))
    (got,) = mailbox.received
    assert got.tls
    assert got.authenticated


async def test_a_refused_login_is_dead_with_what_to_check(tmp_path: Path) -> None:
    certs = certificates(tmp_path)
    mailbox = Mailbox()
    wrong = "Wr0ng-Pa55word"
    async with smtp_server(mailbox, starttls=certs.server, auth=True) as port:
        settings = email_settings(
            port,
            security="starttls",
            ca_file=str(certs.ca_file),
            username=USERNAME,
            password=wrong,
        )
        with capture_logs() as logs, pytest.raises(SinkError) as caught:
            await send(EmailSink("mail", settings), make_notification(sink="mail"))
    text = str(caught.value)
    assert not caught.value.retryable
    assert "the SMTP server refused the login (535" in text
    assert "check sinks.mail.smtp.username/password" in text
    assert "deliveries retry --all --sink mail" in text
    assert wrong not in text
    assert wrong not in repr(logs)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert mailbox.received == []


async def test_temporary_and_permanent_refusals() -> None:
    mailbox = Mailbox(data_replies=["451 4.3.0 try later", "554 5.6.0 message rejected"])
    async with smtp_server(mailbox) as port:
        sink = EmailSink("mail", email_settings(port))
        with pytest.raises(SinkError) as later:
            await sink.send([make_notification(sink="mail")])
        with pytest.raises(SinkError) as never:
            await send(sink, make_notification(sink="mail"))
    assert later.value.retryable
    assert "451 4.3.0 try later" in str(later.value)
    assert not never.value.retryable
    assert "refused the message (554 5.6.0 message rejected)" in str(never.value)


async def test_some_recipients_refused_is_delivered_to_the_others() -> None:
    mailbox = Mailbox(refuse={"gone@example.com"})
    async with smtp_server(mailbox) as port:
        settings = email_settings(port, to=["gone@example.com", "oncall@example.com"])
        with capture_logs() as logs:
            await send(EmailSink("mail", settings), make_notification(sink="mail"))
    (got,) = mailbox.received
    assert got.rcpt_tos == ["oncall@example.com"]
    assert got.message()["To"] == "gone@example.com, oncall@example.com"
    (warning,) = [e for e in logs if e["event"] == "delivery.recipients_refused"]
    assert warning["refused"] == {"gone@example.com": "550 5.1.1 mailbox unavailable"}


async def test_every_recipient_refused_is_dead() -> None:
    mailbox = Mailbox(refuse={"gone@example.com"})
    async with smtp_server(mailbox) as port:
        sink = EmailSink("mail", email_settings(port, to=["gone@example.com"]))
        with pytest.raises(SinkError) as caught:
            await send(sink, make_notification(sink="mail"))
    assert not caught.value.retryable
    assert "refused every recipient (gone@example.com: 550 5.1.1" in str(caught.value)
    assert "check sinks.mail.to" in str(caught.value)


async def test_a_closed_port_is_retried() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    sink = EmailSink("mail", email_settings(port))
    with pytest.raises(SinkError) as caught:
        await send(sink, make_notification(sink="mail"))
    assert caught.value.retryable
    assert "cannot reach the SMTP server" in str(caught.value)


def test_message_ids_are_stable_and_distinct() -> None:
    one, two = make_notification(sink="mail"), make_notification(sink="mail")
    assert message_id([one]) == message_id([one]) == f"<{one.id}@zaia-relay>"
    assert message_id([one, two]) == message_id([two, one])
    assert message_id([one, two]).startswith("<msg_batch_")
    assert message_id([one, two]) != message_id([one])


async def test_a_reply_echoing_the_password_is_scrubbed() -> None:
    encoded = base64.b64encode(f"\0{USERNAME}\0{PASSWORD}".encode()).decode()
    mailbox = Mailbox(data_replies=[f"554 5.7.1 not for {PASSWORD} nor {encoded}"])
    async with smtp_server(mailbox, auth=True, auth_require_tls=False) as port:
        settings = email_settings(port, username=USERNAME, password=PASSWORD)
        with pytest.raises(SinkError) as caught:
            await send(EmailSink("mail", settings), make_notification(sink="mail"))
    text = str(caught.value)
    assert f"not for {REDACTED} nor {REDACTED}" in text
    assert PASSWORD not in text
    assert encoded not in text
    assert PASSWORD not in repr(EmailSink("mail", settings))


@pytest.mark.parametrize(
    ("codes", "verdict"),
    [
        ([250], "ok"),
        ([451], "retry"),
        ([421], "retry"),
        ([454], "retry"),
        ([535], "dead"),
        ([550], "dead"),
        ([550, 553], "dead"),
        ([550, 452], "retry"),  # one recipient may yet be accepted
        ([0], "retry"),
        ([999], "retry"),
        ([], "retry"),
    ],
)
def test_smtp_replies_are_classified(codes: list[int], verdict: str) -> None:
    assert classify_smtp_reply(codes) == verdict


async def test_a_server_that_never_greets_times_out_and_is_retried() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)  # accepts, is silent
    port = int(server.sockets[0].getsockname()[1])
    try:
        sink = EmailSink("mail", email_settings(port, sink={"timeout": "300ms"}))
        with pytest.raises(SinkError) as caught:
            await send(sink, make_notification(sink="mail"))
    finally:
        server.close()
        await server.wait_closed()
    assert caught.value.retryable
    assert "no answer from the SMTP server within 0.3s" in str(caught.value)


@settings(max_examples=60, deadline=None)
@given(summary=st.text(max_size=120), error=st.text(max_size=200), rule=st.text(max_size=40))
def test_no_alert_text_adds_a_header_or_markup(summary: str, error: str, rule: str) -> None:
    alert = replace(make_alert(error_excerpt=error or None, summary=summary), rule=rule)
    message = email_message(
        [make_notification(alert, sink="mail")],
        sender="relay@example.com",
        to=["oncall@example.com"],
        subject_prefix="[zaia-relay]",
        now=T0,
    )
    wire = message.as_bytes(policy=email.policy.SMTP)
    parsed = email.message_from_bytes(wire, policy=email.policy.default)
    assert sorted(parsed.keys()) == sorted(
        [
            "From",
            "To",
            "Subject",
            "Date",
            "Message-ID",
            "Auto-Submitted",
            "MIME-Version",
            "Content-Type",
        ]
    )
    page = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    # Every tag is one of the relay's own: no text from the alert became markup.
    assert set(re.findall(r"<\s*/?\s*([^\s>/]*)", page)) <= OWN_TAGS
