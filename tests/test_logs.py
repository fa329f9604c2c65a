"""Logging: JSON or console output, and no secret in either, wherever it hides."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from relay.scrub import REDACTED
from relay.settings import secrets_of
from relay.settings.loader import parse_settings
from relay.telemetry.logs import SecretRedactor, configure_logging

API_KEY = "zk-live-9a8b7c6d5e4f"
WEBHOOK_URL = "https://hooks.slack.com/services/T0001/B0002/wEbHoOkPaTh"
TOKEN = "xoxb-1111-2222-tOkEn"
SECRETS = (API_KEY, WEBHOOK_URL, TOKEN)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Leave structlog and the root logger as they were, for the other tests."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in ("httpx", "httpcore")}
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in chatty.items():
        logging.getLogger(name).setLevel(old)


class Client:
    """An object whose text (repr) carries a secret, as an HTTP client's might."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"


def log_everything() -> None:
    log = structlog.get_logger("relay.test")
    log.info(f"sink.post to {WEBHOOK_URL}", sink="oncall")
    log.warning(
        "source.poll",
        api_key=API_KEY,
        headers={"Authorization": f"Bearer {TOKEN}", "nested": {"deep": [API_KEY, (TOKEN,)]}},
        client=Client(WEBHOOK_URL),
        secret_field=SecretStr("not-configured-but-secret"),
        **{f"key-{TOKEN}": "secret in a key"},
    )
    try:
        raise RuntimeError(f"POST {WEBHOOK_URL} failed with token {TOKEN}")
    except RuntimeError as exc:
        log.exception("sink.failed", error=exc)
    # Libraries log through the standard library: httpx logs every request URL.
    logging.getLogger("httpx").warning("HTTP Request: POST %s 500", WEBHOOK_URL)
    logging.getLogger("aiohttp.server").error("bad key %s", API_KEY, exc_info=ValueError(API_KEY))


def assert_clean(output: str) -> None:
    for secret in (*SECRETS, "wEbHoOkPaTh", "tOkEn", "not-configured-but-secret"):
        assert secret not in output
    assert REDACTED in output


def test_json_lines_carry_no_secret() -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", secrets=SECRETS, stream=stream)
    log_everything()
    output = stream.getvalue()
    assert_clean(output)
    records = [json.loads(line) for line in output.splitlines()]
    assert [r["event"] for r in records[1:3]] == ["source.poll", "sink.failed"]
    assert records[0]["event"] == f"sink.post to {REDACTED}"
    assert records[1]["api_key"] == REDACTED
    assert records[1]["headers"]["nested"]["deep"] == [REDACTED, [REDACTED]]
    assert records[1]["secret_field"] == REDACTED
    assert records[1]["level"] == "warning"
    assert records[1]["timestamp"].endswith("Z")
    assert "RuntimeError" in records[2]["exception"]
    assert records[3]["event"] == f"HTTP Request: POST {REDACTED} 500"
    assert records[3]["logger"] == "httpx"
    assert "ValueError" in records[4]["exception"]


def test_console_output_carries_no_secret() -> None:
    stream = io.StringIO()
    configure_logging(fmt="console", secrets=SECRETS, stream=stream)
    log_everything()
    output = stream.getvalue()
    assert_clean(output)
    assert "source.poll" in output
    assert "Traceback" in output
    assert "\x1b[" not in output  # no colours when the stream is not a terminal


def test_auto_format_is_json_when_not_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging(secrets=SECRETS, stream=stream)
    structlog.get_logger().info("poll.done", source="prod", pages=2)
    record = json.loads(stream.getvalue())
    assert (record["event"], record["source"], record["pages"]) == ("poll.done", "prod", 2)


def test_level_filters_both_structlog_and_stdlib() -> None:
    stream = io.StringIO()
    configure_logging(level="warning", fmt="json", stream=stream)
    structlog.get_logger().info("hidden")
    logging.getLogger("some.lib").info("hidden too")
    structlog.get_logger().warning("shown")
    assert [json.loads(line)["event"] for line in stream.getvalue().splitlines()] == ["shown"]


def test_reconfiguring_replaces_the_stdlib_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging(fmt="json", stream=first)
    configure_logging(fmt="json", stream=second)
    logging.getLogger("some.lib").warning("once")
    assert first.getvalue() == ""
    assert len(second.getvalue().splitlines()) == 1


def test_percent_encoded_secrets_are_redacted_too() -> None:
    redactor = SecretRedactor([WEBHOOK_URL])
    encoded = "https%3A%2F%2Fhooks.slack.com%2Fservices%2FT0001%2FB0002%2FwEbHoOkPaTh"
    assert redactor.redact(f"url={encoded}") == f"url={REDACTED}"


def test_redactor_leaves_other_values_alone() -> None:
    redactor = SecretRedactor([API_KEY])
    event: dict[str, Any] = {"event": "x", "n": 3, "ok": True, "none": None, "obj": Client("u")}
    result = redactor(None, "info", event)
    assert (result["n"], result["ok"], result["none"]) == (3, True, None)
    assert isinstance(result["obj"], Client)


def test_secrets_of_collects_every_secret() -> None:
    signing = base64.b64encode(b"w" * 32).decode()
    text = f"""
sources:
  - {{name: a, api_key: {API_KEY}}}
  - {{name: b, api_key: second-key-123}}
store: {{url: "postgresql://relay:db-pa55word@db.example/relay"}}
server: {{admin_token: adm-token-456-0123456}}
sinks:
  oncall: {{type: slack, webhook_url: "{WEBHOOK_URL}"}}
  bot: {{type: slack, bot_token: {TOKEN}, channel: C0123}}
  hook:
    type: webhook
    url: https://hooks.example.com/zaia?token=q-tok-789
    secret: whsec_{signing}
    headers: {{X-Api-Key: hdr-key-000}}
  am:
    type: alertmanager
    url: http://am:9093
    basic_auth: {{username: u, password: am-pw-111}}
  console: {{type: console}}
"""
    found = set(secrets_of(parse_settings(text, environ={})))
    assert found == {
        API_KEY,
        "second-key-123",
        "db-pa55word",
        "adm-token-456-0123456",
        WEBHOOK_URL,
        TOKEN,
        "https://hooks.example.com/zaia?token=q-tok-789",
        f"whsec_{signing}",
        signing,
        "hdr-key-000",
        "am-pw-111",
        "Basic " + base64.b64encode(b"u:am-pw-111").decode(),
    }
