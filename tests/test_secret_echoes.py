"""A receiver that echoes the credentials it was sent: none of them, in any encoding,
reaches the store file, the HTTP API, the command line or the logs.

Three sinks carry credentials the three ways the configuration allows: a bearer token
in a configured `Authorization` header, `user:password@` in a webhook URL (sent by the
HTTP client as basic auth), and Alertmanager `basic_auth`. The receiver answers 400
with the `Authorization` value it got, its bare credentials, the decoded
`user:password`, the password, and their percent-encoded forms. Each is looked for
verbatim, computed here from the configuration rather than from what was received.
"""

from __future__ import annotations

import asyncio
import base64
import io
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
from prometheus_client import CollectorRegistry

from relay.assembly import Assembly
from relay.delivery import DeliveryWorker
from relay.domain.alerts import Notification
from relay.http.server import HttpServer, build_app
from relay.pipeline.poller import SourceHealth
from relay.scrub import REDACTED, SecretScrubber
from relay.settings import Settings
from relay.settings.loader import load_settings, parse_settings
from relay.sinks import build_sinks
from relay.store import SqliteStore
from relay.telemetry.logs import configure_logging
from relay.telemetry.metrics import RelayMetrics
from tests.delivery_kit import Received, Receiver, Reply, enqueue, make_notification
from tests.http_rig import START, commit_alerts, make_alert

TOKEN = "Tk+9f8e/7d6c5b4a3e2d1="
USER, PASSWORD = "relay-bot", "p@ss:w0rd/42!"
AM_USER, AM_PASSWORD = "am-user", "am-Pa55/word+x"
ADMIN_TOKEN = "admin-0123456789abcdef"


def _b64(pair: str) -> str:
    return base64.b64encode(pair.encode()).decode()


def _forms(*values: str) -> set[str]:
    return {form for value in values for form in (value, quote(value, safe=""))}


SECRET_FORMS = _forms(
    f"Bearer {TOKEN}",
    TOKEN,
    *(f"Basic {_b64(f'{u}:{p}')}" for u, p in ((USER, PASSWORD), (AM_USER, AM_PASSWORD))),
    _b64(f"{USER}:{PASSWORD}"),
    _b64(f"{AM_USER}:{AM_PASSWORD}"),
    f"{USER}:{PASSWORD}",
    f"{AM_USER}:{AM_PASSWORD}",
    PASSWORD,
    AM_PASSWORD,
)


def echo_of(authorization: str) -> str:
    """What a careless receiver says: every form of the credentials it was sent."""
    scheme, _, credentials = authorization.partition(" ")
    echoed = [authorization, credentials]
    if scheme == "Basic":
        pair = base64.b64decode(credentials).decode()
        echoed += [pair, pair.partition(":")[2]]
    return "denied: " + " | ".join(f"{e} {quote(e, safe='')}" for e in echoed)


def echo(request: Received) -> Reply:
    return Reply(400, echo_of(request.headers.get("authorization", "")))


def write_config(tmp_path: Path, receiver: str) -> Path:
    userinfo = f"{USER}:{quote(PASSWORD, safe='')}@"
    config = tmp_path / "relay.yaml"
    config.write_text(
        f"""
sources:
  - {{name: prod, api_key: zk-live-0b1c2d3e4f5a}}
store: {{url: "sqlite:///{tmp_path / "state.db"}"}}
server: {{listen: "127.0.0.1:0", admin_token: {ADMIN_TOKEN}}}
rules:
  - {{name: execution-failed, when: {{status: [failed]}}, severity: critical, sinks: [bearer]}}
sinks:
  bearer:
    type: webhook
    url: {receiver}/bearer
    headers: {{Authorization: "Bearer {TOKEN}"}}
  userinfo:
    type: webhook
    url: "{receiver.replace("://", f"://{userinfo}")}/userinfo"
  am:
    type: alertmanager
    url: {receiver}/am
    basic_auth: {{username: {AM_USER}, password: "{AM_PASSWORD}"}}
"""
    )
    return config


def store_file_bytes(tmp_path: Path) -> bytes:
    """The SQLite file and its journal, as bytes: free pages keep what was overwritten."""
    return b"".join(path.read_bytes() for path in tmp_path.glob("state.db*"))


def assert_clean(where: str, text: str) -> None:
    leaked = sorted(form for form in SECRET_FORMS if form in text)
    assert not leaked, f"{where} holds {leaked}"


async def deliver_all(settings: Settings, store: SqliteStore) -> None:
    """One worker step a sink, as the app runs them: every message answered 400."""
    sinks = build_sinks(settings.sinks, now=lambda: START)
    scrubber = SecretScrubber.from_settings(settings)
    try:
        for sink in sinks.values():
            worker = DeliveryWorker(sink, outbox=store, now=lambda: START, scrubber=scrubber)
            assert (await worker.step()).outcomes == {"dead": 1}
    finally:
        for sink in sinks.values():
            await sink.aclose()


async def api_bodies(settings: Settings, store: SqliteStore) -> str:
    app = build_app(
        metrics=RelayMetrics(CollectorRegistry(), sources=["prod"], sinks=list(settings.sinks)),
        store=store,
        health={"prod": SourceHealth(source="prod", interval_s=15.0)},
        settings=settings,
        now=lambda: START,
    )
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with (
        HttpServer(app, host="127.0.0.1", port=0) as server,
        httpx.AsyncClient(base_url=server.url, headers=headers) as client,
    ):
        answers = [await client.get(p) for p in ("/api/v1/alerts", "/api/v1/deliveries")]
    assert [a.status_code for a in answers] == [200, 200]
    return "\n".join(a.text for a in answers)


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", *args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_echoed_credentials_are_nowhere(tmp_path: Path) -> None:
    logs = io.StringIO()
    async with Receiver(echo) as receiver:
        config = write_config(tmp_path, receiver.url)
        settings = load_settings(config)
        configure_logging(fmt="json", secrets=settings.secret_values(), stream=logs)
        async with SqliteStore(tmp_path / "state.db") as store:
            await commit_alerts(store, [make_alert(1)], at=START, sinks=list(settings.sinks))
            await deliver_all(settings, store)
            stored = [letter.reason for letter in await store.dead_letters(limit=10)]
        # Every request carried its credentials, and every answer echoed them.
        sent = [r.headers["authorization"] for r in await receiver.wait_for(3)]
        assert any(s.startswith("Bearer ") for s in sent)
        assert sum(s.startswith("Basic ") for s in sent) == 2
        assert len(stored) == 3
        assert all("HTTP 400" in r and REDACTED in r for r in stored)
        store_bytes = store_file_bytes(tmp_path)
        for form in SECRET_FORMS:
            assert form.encode() not in store_bytes, f"the store file holds {form!r}"

        async with SqliteStore(tmp_path / "state.db") as store:
            # A dead letter stored by an older release, unscrubbed, is scrubbed on show.
            legacy = make_alert(9)
            await commit_alerts(store, [legacy], at=START, sinks=["bearer"])
            legacy_id = Notification.about(
                legacy, sink="bearer", kind="firing", created_at=START
            ).id
            raw = echo_of(f"Bearer {TOKEN}") + " " + echo_of(f"Basic {_b64(f'{USER}:{PASSWORD}')}")
            await store.mark_dead("bearer", legacy_id, reason=raw, now=START)
            api = await api_bodies(settings, store)
        listed, tested = await asyncio.gather(
            asyncio.to_thread(cli, config, "deliveries", "list"),
            asyncio.to_thread(cli, config, "test-sink", "userinfo"),
        )
    assert api.count(REDACTED) >= 8
    assert_clean("the API", api)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("reason:") == 4
    assert_clean("deliveries list", listed.stdout + listed.stderr)
    assert tested.returncode == 1
    assert "HTTP 400" in tested.stderr
    assert REDACTED in tested.stderr
    assert_clean("test-sink", tested.stdout + tested.stderr)
    assert "delivery.dead" in logs.getvalue()
    assert_clean("the logs", logs.getvalue())


async def test_a_reload_scrubs_its_new_secrets_from_the_sinks_it_kept(tmp_path: Path) -> None:
    # Sink `hook` is unchanged by the reload, which adds `pager` and its token; what
    # hook's receiver answers (here, that token) is stored scrubbed of it all the same.
    new_token = "pager-" + "9f8e7d6c5b4a3e2d1c0b"

    def settings_of(sinks: str) -> Settings:
        return parse_settings(
            f"""
sources: [{{name: prod, api_key: k}}]
store: {{url: "sqlite:///{tmp_path}/state.db"}}
rules: [{{name: failed, when: {{status: [failed]}}, severity: critical, sinks: [hook]}}]
sinks:
{sinks}""",
            environ={},
        )

    pager = (
        "  pager: {type: webhook, url: 'https://pager.invalid/h',"
        f" headers: {{X-Token: {new_token}}}}}\n"
    )
    async with (
        SqliteStore(tmp_path / "state.db") as store,
        Receiver(lambda _: Reply(400, f"refused; pager's token is {new_token}")) as receiver,
    ):
        hook = f"  hook: {{type: webhook, url: '{receiver.url}/hook'}}\n"
        before = settings_of(hook)
        metrics = RelayMetrics(CollectorRegistry(), sources=["prod"], sinks=["hook"])
        assembly = Assembly(before, store=store, metrics=metrics, now=lambda: START)
        sinks = assembly.sinks(before, ["hook"])
        pool = assembly.delivery_pool(sinks)
        try:
            assembly.reconfigure(settings_of(hook + pager))
            await enqueue(store, [make_notification(sink="hook", created_at=START)], at=START)
            assert (await pool.workers["hook"].step()).outcomes == {"dead": 1}
        finally:
            await sinks["hook"].aclose()
        [dead] = await store.dead_letters(sink="hook")
    assert "refused" in dead.reason
    assert new_token not in dead.reason
    assert REDACTED in dead.reason
