"""`zaia-relay test-sink NAME` for an e-mail sink, as a real subprocess against a real
SMTP server on loopback: the marked test mail arrives, and a refused login is reported
with what to check and without the password."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.smtp_kit import PASSWORD, USERNAME, Mailbox, smtp_server
from tests.test_cli_ops import cli

pytestmark = pytest.mark.slow


def write_config(tmp_path: Path, *, port: int, password: str) -> Path:
    (tmp_path / "smtp-password").write_text(password + "\n")
    config = tmp_path / "relay.yaml"
    config.write_text(
        f"""
sources:
  - name: prod
    api_key: k
store:
  url: sqlite:///{tmp_path}/state.db
rules:
  - name: execution-failed
    when: {{status: [failed]}}
    severity: critical
    sinks: [mail]
sinks:
  mail:
    type: email
    smtp:
      host: 127.0.0.1
      port: {port}
      security: none
      username: {USERNAME}
      password_file: smtp-password
    from: Zaia Relay <relay@example.com>
    to: [oncall@example.com]
"""
    )
    return config


async def test_test_sink_sends_one_marked_mail(tmp_path: Path) -> None:
    mailbox = Mailbox()
    async with smtp_server(mailbox, auth=True, auth_require_tls=False) as port:
        config = write_config(tmp_path, port=port, password=PASSWORD)
        done = await asyncio.to_thread(cli, "test-sink", "mail", config=config)
    assert done.returncode == 0, done.stderr
    assert "sent a test alert through sink 'mail'" in done.stdout
    (got,) = mailbox.received
    assert got.authenticated
    message = got.message()
    assert message["Subject"].startswith("[zaia-relay] TEST [info] test-sink")
    assert "[TEST] zaia-relay test notification" in message["Subject"]
    assert PASSWORD not in done.stdout + done.stderr


async def test_test_sink_reports_a_refused_login(tmp_path: Path) -> None:
    wrong = "Wr0ng-Pa55-x"
    mailbox = Mailbox()
    async with smtp_server(mailbox, auth=True, auth_require_tls=False) as port:
        config = write_config(tmp_path, port=port, password=wrong)
        result = await asyncio.to_thread(cli, "test-sink", "mail", config=config)
    assert result.returncode == 1
    assert "test alert not delivered" in result.stderr
    assert "refused the login (535" in result.stderr
    assert "sinks.mail.smtp.username/password" in result.stderr
    assert wrong not in result.stdout + result.stderr
    assert mailbox.received == []
