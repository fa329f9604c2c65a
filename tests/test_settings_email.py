"""The e-mail sink's settings as check-config reports them: every problem at its path
(`sinks.mail.to.1: ...`), never repeating the password."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from relay.errors import ConfigError
from relay.settings import EmailSinkSettings
from relay.settings._base import is_loopback_host
from relay.settings._sink_email import parse_address
from relay.settings.loader import parse_settings

PASSWORD = "Sm7p-Secret-Value"


def config(sink: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "sources": [{"name": "prod", "api_key": "zk-test-key-0123"}],
            "rules": [
                {
                    "name": "failed",
                    "when": {"status": ["failed"]},
                    "severity": "critical",
                    "sinks": ["mail"],
                }
            ],
            "sinks": {"mail": sink},
        }
    )


def mail(**extra: Any) -> dict[str, Any]:
    smtp = {"host": "smtp.example.com", **extra.pop("smtp", {})}
    return {
        "type": "email",
        "smtp": smtp,
        "from": "Relay <relay@example.com>",
        "to": ["oncall@example.com"],
        **extra,
    }


def problems(sink: dict[str, Any], *, base_dir: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(sink), environ={}, base_dir=base_dir)
    return [str(p) for p in caught.value.problems]


def test_a_valid_sink_and_its_defaults() -> None:
    settings = parse_settings(config(mail(to="ops@example.com")), environ={})
    sink = settings.sinks["mail"]
    assert isinstance(sink, EmailSinkSettings)
    assert sink.to == ["ops@example.com"]  # one address is a list of one
    assert sink.sender == "relay@example.com"
    assert sink.from_ == "Relay <relay@example.com>"
    assert sink.subject_prefix == "[zaia-relay]"
    assert sink.group_wait.total_seconds() == 30
    assert sink.smtp.security == "starttls"


@pytest.mark.parametrize(("security", "port"), [("starttls", 587), ("tls", 465), ("none", 25)])
def test_the_port_follows_security(security: str, port: int) -> None:
    settings = parse_settings(config(mail(smtp={"security": security})), environ={})
    sink = settings.sinks["mail"]
    assert isinstance(sink, EmailSinkSettings)
    assert sink.smtp.effective_port == port


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        (
            mail(to=["ops@example.com", "oncall"]),
            "sinks.mail.to.1: should be one e-mail address, like oncall@example.com",
        ),
        (mail(to=["a@example.com, b@example.com"]), "sinks.mail.to.0: should be one e-mail"),
        (mail(to=[]), "sinks.mail.to: "),
        (mail(to=["ops@example.com", "OPS@example.com"]), "sinks.mail.to: ops@example.com is"),
        ({**mail(), "from": "relay@localhost"}, "sinks.mail.from: should be one e-mail"),
        ({**mail(), "from": "x@example.com\r\nBcc: y@example.com"}, "sinks.mail.from: should be"),
        (mail(subject_prefix="[a]\nBcc: x"), "sinks.mail.subject_prefix: should be one line"),
        (mail(smtp={"host": "smtp://mail.example.com"}), "sinks.mail.smtp.host: should be a host"),
        (mail(smtp={"port": 0}), "sinks.mail.smtp.port: "),
        (mail(smtp={"security": "ssl"}), "sinks.mail.smtp.security: "),
        (mail(smtp={"username": "relay"}), "sinks.mail.smtp.password: required with username"),
        (mail(smtp={"password": PASSWORD}), "sinks.mail.smtp.username: required with password"),
        (
            mail(smtp={"security": "none", "username": "relay", "password": PASSWORD}),
            "sinks.mail.smtp.security: none would send the password in clear",
        ),
        (
            mail(smtp={"security": "none", "ca_file": "/etc/ssl/certs/ca-certificates.crt"}),
            "sinks.mail.smtp.ca_file: only with security: starttls or tls",
        ),
        (mail(smtp={"ca_file": "missing-ca.pem"}), "sinks.mail.smtp.ca_file: no such file"),
        (mail(retry_initial="10m", retry_max="1m"), "sinks.mail.retry_initial: should not"),
        (mail(smtp={"hots": "x"}), "sinks.mail.smtp.hots: unknown key"),
    ],
)
def test_problems_name_their_field(sink: dict[str, Any], expected: str, tmp_path: Path) -> None:
    found = problems(sink, base_dir=tmp_path)
    assert any(p.startswith(expected) for p in found), found
    assert all(PASSWORD not in p for p in found)


def test_a_ca_file_that_is_not_pem_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("not a certificate\n")
    found = problems(mail(smtp={"ca_file": "ca.pem"}), base_dir=tmp_path)
    assert any(p.startswith("sinks.mail.smtp.ca_file: cannot load") for p in found), found


def test_no_tls_with_a_password_is_fine_on_loopback_and_the_password_file_works(
    tmp_path: Path,
) -> None:
    (tmp_path / "smtp-password").write_text(PASSWORD + "\n")
    sink = mail(
        smtp={
            "host": "127.0.0.1",
            "security": "none",
            "username": "relay",
            "password_file": "smtp-password",
        }
    )
    settings = parse_settings(config(sink), environ={}, base_dir=tmp_path)
    parsed = settings.sinks["mail"]
    assert isinstance(parsed, EmailSinkSettings)
    assert parsed.smtp.password is not None
    assert parsed.smtp.password.get_secret_value() == PASSWORD
    assert PASSWORD in settings.secret_values()
    assert PASSWORD not in repr(settings)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        # Only `localhost` itself: a resolver need not send other `.localhost` names home.
        ("mail.localhost", False),
        ("::ffff:127.0.0.1", False),
        ("localhost.example.com", False),
        ("10.0.0.1", False),
        ("smtp.example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("ops@example.com", ("", "ops@example.com")),
        ("Ops Team <ops@example.com>", ("Ops Team", "ops@example.com")),
        (
            '"Ops, Team" <ops+alerts@mail.example.co.uk>',
            ("Ops, Team", "ops+alerts@mail.example.co.uk"),
        ),
    ],
)
def test_addresses_that_are_one(value: str, parsed: tuple[str, str]) -> None:
    assert parse_address(value) == parsed


@pytest.mark.parametrize(
    "value",
    [
        "ops",
        "ops@",
        "@example.com",
        "ops@example",
        "a@b@example.com",
        "ops@exa mple.com",
        "a@-x.com",
    ],
)
def test_addresses_that_are_not(value: str) -> None:
    with pytest.raises(ValueError, match="should be one"):
        parse_address(value)


def test_the_commented_example_in_relay_example_yaml_is_valid() -> None:
    example = Path(__file__).resolve().parent.parent / "config" / "relay.example.yaml"
    lines = example.read_text().splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("  # mail:"))
    block = []
    for line in lines[start:]:
        if not line.startswith("  #"):
            break
        block.append(line[:2] + line[4:])
    sink = yaml.safe_load("\n".join(block))["mail"]
    sink["smtp"]["password"] = PASSWORD  # ${SMTP_PASSWORD} in the file
    settings = parse_settings(config(sink), environ={})
    parsed = settings.sinks["mail"]
    assert isinstance(parsed, EmailSinkSettings)
    assert parsed.smtp.effective_port == 587
    assert parsed.recipients == ["oncall@example.com"]
