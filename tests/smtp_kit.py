"""Test kit for the e-mail sink: a real SMTP server (aiosmtpd) on loopback, in the
test's own event loop, with STARTTLS or implicit TLS from a CA the test makes
(trustme), AUTH checked by a callback, and scripted replies to DATA.

Every DATA the server receives is recorded with the reply it gave, so a test sees a
refused attempt too (its Message-ID, say)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import warnings
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

import trustme
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from relay.settings import EmailSinkSettings

USERNAME = "relay@example.com"
PASSWORD = "SmtpPa55-w0rd-9"
SERVER_NAME = "mail.test"


@dataclass
class Delivered:
    """One DATA the server received: the envelope, how the session was, the reply."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool
    authenticated: bool
    reply: str

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("250")

    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.content, policy=email.policy.default)
        return cast(EmailMessage, parsed)


@dataclass
class Mailbox:
    """The server's handler: answers DATA with `data_replies` in turn (then 250),
    refuses the recipients in `refuse` (550), records everything."""

    data_replies: list[str] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    received: list[Delivered] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self.data_replies.pop(0) if self.data_replies else "250 2.0.0 OK queued"
        content = envelope.content
        assert isinstance(content, bytes)
        self.received.append(
            Delivered(
                mail_from=str(envelope.mail_from),
                rcpt_tos=list(envelope.rcpt_tos),
                content=content,
                tls=server.transport is not None
                and server.transport.get_extra_info("ssl_object") is not None,
                authenticated=bool(session.authenticated),
                reply=reply,
            )
        )
        return reply

    def accepted(self) -> list[Delivered]:
        return [d for d in self.received if d.accepted]

    def authenticator(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == USERNAME.encode()
            and auth_data.password == PASSWORD.encode()
        )
        self.logins.append((mechanism, ok))
        # handled=False: aiosmtpd answers the refusal itself (535).
        return AuthResult(success=ok, handled=False)


@dataclass(frozen=True)
class Certificates:
    """A CA the test made (its PEM file for `smtp.ca_file`) and a server context with a
    certificate it issued for 127.0.0.1 and localhost."""

    ca_file: Path
    server: ssl.SSLContext


def certificates(tmp_path: Path) -> Certificates:
    ca = trustme.CA()
    ca_file = tmp_path / "smtp-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    return Certificates(ca_file=ca_file, server=server)


@asynccontextmanager
async def smtp_server(
    mailbox: Mailbox,
    *,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    auth: bool = False,
    auth_require_tls: bool = True,
) -> AsyncIterator[int]:
    """An SMTP server on 127.0.0.1 for `mailbox`; yields its port. `starttls` offers
    (and requires) STARTTLS, `implicit_tls` speaks TLS at once; `auth` checks logins
    with `Mailbox.authenticator` and requires one."""
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        with warnings.catch_warnings():
            # "Requiring AUTH while not requiring TLS": aiosmtpd cannot see implicit TLS.
            warnings.simplefilter("ignore", UserWarning)
            return _protocol()

    def _protocol() -> SMTP:
        return SMTP(
            mailbox,
            hostname=SERVER_NAME,
            tls_context=starttls,
            require_starttls=starttls is not None,
            authenticator=mailbox.authenticator if auth else None,
            auth_required=auth,
            # aiosmtpd only knows of TLS it started itself (STARTTLS).
            auth_require_tls=auth_require_tls and implicit_tls is None,
            loop=loop,
        )

    server = await loop.create_server(protocol, "127.0.0.1", 0, ssl=implicit_tls)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


def email_settings(
    port: int, *, to: Iterable[str] = ("oncall@example.com",), **smtp: Any
) -> EmailSinkSettings:
    """An `EmailSinkSettings` for the server on `port`; `smtp` adds smtp keys, and the
    sink's own keys come in `smtp["sink"]`."""
    sink = smtp.pop("sink", {})
    return EmailSinkSettings.model_validate(
        {
            "type": "email",
            "smtp": {"host": "127.0.0.1", "port": port, "security": "none", **smtp},
            "from": "Zaia Relay <relay@example.com>",
            "to": list(to),
            **sink,
        }
    )
