"""The e-mail sink: each message (one notification, or a digest) as one mail over SMTP
(aiosmtplib), a new connection per message.

Invariants:
- `security` is enforced, never negotiated down: `starttls` fails when the server does
  not offer STARTTLS, `tls` speaks TLS from the first byte, `none` never upgrades. The
  server's certificate is verified against the system's trust store, or `ca_file`.
- The whole conversation (connect, TLS, AUTH, MAIL, RCPT, DATA) is bounded by the
  sink's `timeout`.
- Connection failures, timeouts, a dropped connection and 4xx replies are retried
  (`SinkError(retryable=True)`); 5xx replies are dead at once, with what to check
  (`sinks.NAME.smtp.username/password` for a refused login, `to` for refused
  recipients, `from` for a refused sender), and so is a server that lacks what
  `security` or the credentials need, or whose certificate does not verify (a
  configuration problem: `ca_file`, `security`).
- Recipients: the mail is delivered when the server accepts at least one of `to`;
  the refused ones are logged (a warning), not retried, because retrying would send
  the mail again to those who already got it. All refused: dead on 5xx, retried on 4xx.
- The password is never in an error, a log event or a repr; the server's reply text is
  bounded and scrubbed of it (and of the base64 AUTH sends it as), and made encodable
  (a reply that is not UTF-8 still records the failure).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
from collections.abc import Callable, Sequence
from datetime import datetime

import aiosmtplib
import structlog

from relay.clock import utcnow
from relay.domain.alerts import Notification
from relay.domain.delivery import classify_smtp_reply
from relay.domain.grouping import GROUP_MESSAGE_MAX, message_group
from relay.errors import SinkError
from relay.scrub import SecretScrubber
from relay.settings import EmailSinkSettings
from relay.sinks.base import BaseSink, delivery_policy, replay_hint
from relay.sinks.email_message import email_message

log = structlog.get_logger("relay.sinks")

# A burst digest lists its first `DIGEST_SHOWN` and counts the rest; this many are
# acknowledged by one mail.
EMAIL_MAX_BATCH = 200
_DETAIL_CHARS = 200


class EmailSink(BaseSink):
    """Sends mail through one SMTP server to the configured recipients."""

    def __init__(
        self,
        name: str,
        settings: EmailSinkSettings,
        *,
        now: Callable[[], datetime] = utcnow,
    ) -> None:
        policy = delivery_policy(
            settings, group_wait_s=settings.group_wait.total_seconds(), max_batch=EMAIL_MAX_BATCH
        )
        super().__init__(name, policy=policy)
        self._settings = settings
        self._smtp = settings.smtp
        self._now = now
        secrets: list[str] = []
        if settings.smtp.password is not None:
            password = settings.smtp.password.get_secret_value()
            user = settings.smtp.username or ""
            # What AUTH PLAIN and AUTH LOGIN put on the wire, should a server echo it.
            secrets += [
                password,
                base64.b64encode(password.encode()).decode("ascii"),
                base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii"),
            ]
        self._scrubber = SecretScrubber.of(secrets, min_length=1)
        self._tls: ssl.SSLContext | None = None
        self._local_hostname: str | None = None

    def __repr__(self) -> str:
        smtp = self._smtp
        return f"EmailSink({self._name!r}, {smtp.host}:{smtp.effective_port} {smtp.security})"

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=self._smtp.ca_file)
        return self._tls

    async def send(
        self, notifications: Sequence[Notification], *, message_id: str | None = None
    ) -> None:
        if not notifications:
            raise ValueError("nothing to send")
        limit = self.max_batch if message_group(notifications) is None else GROUP_MESSAGE_MAX
        if len(notifications) > limit:
            raise ValueError(f"{len(notifications)} notifications exceed {limit} a message")
        settings = self._settings
        message = email_message(
            notifications,
            sender=settings.from_,
            to=settings.to,
            subject_prefix=settings.subject_prefix,
            now=self._now(),
            stamped_id=message_id,
        )
        smtp = self._smtp
        secure = smtp.security != "none"
        password = None if smtp.password is None else smtp.password.get_secret_value()
        timeout_s = self.policy.timeout_s
        failure: SinkError | None = None
        try:
            async with asyncio.timeout(timeout_s):
                if self._local_hostname is None:
                    # The EHLO name: looked up once, not on every message (a slow resolver).
                    self._local_hostname = await asyncio.to_thread(socket.getfqdn)
                refused, _ = await aiosmtplib.send(
                    message,
                    sender=settings.sender,
                    recipients=settings.recipients,
                    hostname=smtp.host,
                    port=smtp.effective_port,
                    username=smtp.username,
                    password=password,
                    use_tls=smtp.security == "tls",
                    start_tls=smtp.security == "starttls",
                    tls_context=self._tls_context() if secure else None,
                    timeout=timeout_s,
                    local_hostname=self._local_hostname,
                )
        except (TimeoutError, aiosmtplib.SMTPTimeoutError):
            failure = self._error(f"no answer from the SMTP server within {timeout_s:g}s")
        except aiosmtplib.SMTPException as exc:
            failure = self._classify(exc)
        except ssl.SSLCertVerificationError as exc:
            # The server's certificate is not one the settings trust: no retry changes it.
            failure = self._error(
                f"the SMTP server's TLS certificate could not be verified "
                f"({self._detail(exc.verify_message or str(exc.reason))}): a configuration "
                f"problem; check sinks.{self._name}.smtp.ca_file (the CA that signed it) "
                f"and smtp.security",
                retryable=False,
            )
        except ssl.SSLError as exc:
            failure = self._error(
                f"TLS with the SMTP server failed ({type(exc).__name__}: {exc.reason}); "
                f"check sinks.{self._name}.smtp.security and smtp.ca_file"
            )
        except OSError as exc:
            failure = self._error(f"cannot reach the SMTP server: {type(exc).__name__}")
        if failure is not None:
            # Raised outside the handler: the client's exception is not chained.
            raise failure
        if refused:
            log.warning(
                "delivery.recipients_refused",
                sink=self._name,
                refused={
                    address: f"{reply.code} {self._detail(reply.message)}"
                    for address, reply in refused.items()
                },
                hint=f"the mail went to the others; check sinks.{self._name}.to",
            )

    def _error(self, message: str, *, retryable: bool = True) -> SinkError:
        if not retryable:
            message += f", then replay with {replay_hint(self._name)}"
        elif not message.endswith("retrying"):
            message += "; retrying with backoff"
        return SinkError(self._name, message, retryable=retryable)

    def _detail(self, text: str) -> str:
        return self._scrubber.excerpt(" ".join(str(text).split()), limit=_DETAIL_CHARS)

    def _classify(self, exc: aiosmtplib.SMTPException) -> SinkError:
        """The `SinkError` of an SMTP failure (module invariants)."""
        config = f"sinks.{self._name}"
        if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
            codes = [r.code for r in exc.recipients] or [0]
            replies = "; ".join(
                f"{r.recipient}: {r.code} {self._detail(r.message)}" for r in exc.recipients
            )
            if classify_smtp_reply(codes) == "dead":
                return self._error(
                    f"the SMTP server refused every recipient ({replies}): check {config}.to",
                    retryable=False,
                )
            return self._error(f"the SMTP server deferred the recipients ({replies})")
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            reply = f"{exc.code} {self._detail(exc.message)}".rstrip()
            if classify_smtp_reply([exc.code]) != "dead":
                return self._error(f"the SMTP server answered {reply}")
            if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
                what = (
                    f"the SMTP server refused the login ({reply}): "
                    f"check {config}.smtp.username/password"
                )
            elif isinstance(exc, aiosmtplib.SMTPSenderRefused):
                what = f"the SMTP server refused the sender ({reply}): check {config}.from"
            else:
                what = f"the SMTP server refused the message ({reply}): check {config}"
            return self._error(what, retryable=False)
        if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
            return self._error(f"cannot reach the SMTP server: {self._detail(exc.message)}")
        text = self._detail(exc.message)
        if "STARTTLS" in text or "AUTH" in text:
            # The server lacks what the settings need: no retry will add it.
            return self._error(
                f"the SMTP server cannot do what {config}.smtp asks ({text}): check "
                f"{config}.smtp.security and username",
                retryable=False,
            )
        return self._error(f"the SMTP conversation failed: {text}")


__all__ = ["EMAIL_MAX_BATCH", "EmailSink"]
