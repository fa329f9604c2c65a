"""The e-mail sink's settings: an SMTP server, a sender, recipients.

Invariants:
- `from` and every `to` entry are one address each (`Name <local@domain>` or
  `local@domain`), checked here (`parse_address`), never in the sink: a typo is a
  `sinks.NAME.to.1: ...` problem at start-up, not a bounce at 3 a.m.
- Addresses, the display name and `subject_prefix` hold no CR/LF: nothing in the
  configuration can add a header to a message.
- `username` and `password` go together. A password is never sent in clear over a
  network: `security: none` with a password is refused unless the host is a loopback
  address (a local relay such as Postfix on the same machine).
- `port` defaults by `security`: 587 for starttls, 465 for tls, 25 for none.
- `ca_file` (a PEM bundle that replaces the system's trust store for this server,
  for internal relays with a private CA) is readable and holds certificates; it only
  goes with `starttls` or `tls`.
"""

from __future__ import annotations

import re
import ssl
from datetime import timedelta
from email.utils import formataddr, getaddresses
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from relay.settings._base import (
    Duration,
    OneOrMany,
    OptionalSecret,
    Section,
    is_loopback_host,
    raise_problems,
)
from relay.settings._delivery import DeliverySettings, Problems

SmtpSecurity = Literal["starttls", "tls", "none"]
DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
DEFAULT_SUBJECT_PREFIX = "[zaia-relay]"
_SUBJECT_PREFIX_CHARS = 60
# local@domain: a dot-atom local part (RFC 5322, without quoted strings) and a domain
# of DNS labels with at least one dot. Strict on purpose: a relay that accepts a
# stranger form is rare, a typo is not.
_LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
ADDRESS = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})+")
_HOST = re.compile(r"[A-Za-z0-9_.:-]{1,253}|\[[0-9A-Fa-f:.]+\]")
_ADDRESS_HINT = "should be one e-mail address, like oncall@example.com or Ops <ops@example.com>"


def parse_address(value: str) -> tuple[str, str]:
    """`(display name, address)` of one address; `ValueError` with a hint otherwise."""
    if any(c in value for c in "\r\n\0"):
        raise ValueError("should be one address on one line")
    parsed = getaddresses([value])
    if len(parsed) != 1:
        raise ValueError(f"{_ADDRESS_HINT} (give several as a list)")
    name, address = parsed[0]
    # The parser mends some forms (`a@exa mple.com` -> `a@example.com`): the address
    # must be written as it is read.
    if not ADDRESS.fullmatch(address) or len(address) > 254 or address not in value:
        raise ValueError(_ADDRESS_HINT)
    return name, address


def _check_address(value: str) -> str:
    name, address = parse_address(value.strip())
    return formataddr((name, address)) if name else address


EmailAddress = Annotated[str, AfterValidator(_check_address)]


class SmtpSettings(Section):
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: SmtpSecurity = "starttls"
    username: str | None = None
    password: OptionalSecret = None
    ca_file: str | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        host = value.strip()
        if "://" in host or not _HOST.fullmatch(host):
            raise ValueError("should be a host name or IP address, like smtp.example.com")
        return host

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not value.strip():
            return None
        path = Path(value.strip()).expanduser()
        base_dir = (info.context or {}).get("base_dir")
        if not path.is_absolute() and base_dir is not None:
            path = Path(base_dir) / path
        try:
            ssl.create_default_context(cafile=str(path))
        except FileNotFoundError:
            raise ValueError(f"no such file {str(path)!r}") from None
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ValueError(
                f"cannot load {str(path)!r} as PEM CA certificates ({type(exc).__name__})"
            ) from None
        return str(path)

    @model_validator(mode="after")
    def _usable(self) -> SmtpSettings:
        problems: Problems = []
        if self.username is not None and self.password is None:
            problems.append((("password",), "required with username (or password_file)"))
        if self.password is not None and not self.username:
            problems.append((("username",), "required with password"))
        if self.security == "none":
            if self.password is not None and not is_loopback_host(self.host):
                problems.append(
                    (
                        ("security",),
                        "none would send the password in clear over the network: use "
                        "starttls or tls (or a relay on a loopback address)",
                    )
                )
            if self.ca_file is not None:
                problems.append((("ca_file",), "only with security: starttls or tls"))
        raise_problems(problems, title="SmtpSettings")
        return self

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.security]


class EmailSinkSettings(DeliverySettings):
    """Mail through an SMTP server (or relay): one message a notification or digest."""

    type: Literal["email"]
    smtp: SmtpSettings
    from_: EmailAddress = Field(alias="from")
    to: Annotated[list[EmailAddress], OneOrMany] = Field(min_length=1)
    subject_prefix: str = DEFAULT_SUBJECT_PREFIX
    group_wait: Duration = timedelta(seconds=30)

    @field_validator("subject_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if any(c in value for c in "\r\n\0"):
            raise ValueError("should be one line")
        if len(value) > _SUBJECT_PREFIX_CHARS:
            raise ValueError(f"should be at most {_SUBJECT_PREFIX_CHARS} characters")
        return value.strip()

    @field_validator("to")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        seen = [parse_address(entry)[1].lower() for entry in value]
        twice = sorted({a for a in seen if seen.count(a) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} is listed twice")
        return value

    @property
    def sender(self) -> str:
        """The envelope sender (`MAIL FROM`): the bare address of `from`."""
        return parse_address(self.from_)[1]

    @property
    def recipients(self) -> list[str]:
        """The envelope recipients (`RCPT TO`): the bare addresses of `to`."""
        return [parse_address(entry)[1] for entry in self.to]


__all__ = [
    "DEFAULT_PORTS",
    "DEFAULT_SUBJECT_PREFIX",
    "EmailSinkSettings",
    "SmtpSettings",
    "parse_address",
]
