"""Reloading the configuration of a running relay (`POST /-/reload`, SIGHUP): the real
daemon, a real file rewritten in tmp_path, the simulated Zaia API and webhook receivers
on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from relay.app import run_daemon
from relay.errors import ConfigError
from relay.settings.loader import load_settings
from relay.sim import SimServer, SimWorkspace
from relay.store import open_store
from relay.store.sqlite import SqliteStore
from tests import store_backends
from tests.delivery_kit import Receiver, Reply
from tests.relay_process import RelayProcess
from tests.test_prometheus import free_port

KEY = "reload-test-key"
TOKEN = "reload-admin-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Layout:
    """What a test's configuration file says; `text()` renders it."""

    tmp_path: Path
    port: int
    sources: dict[str, str]  # name -> simulator URL
    sinks: dict[str, str]  # name -> webhook URL
    rules: dict[str, tuple[str, list[str]]]  # name -> (status, sinks)
    extra: str = ""
    store_url: str = ""  # SQLite in tmp_path unless set
    # name -> (failures within 10 minutes that fire it, sinks)
    windowed: dict[str, tuple[int, list[str]]] = field(default_factory=dict)

    @classmethod
    def prod(cls, tmp_path: Path, sim_url: str, hook_url: str, **more: Any) -> Layout:
        """The usual layout: one source `prod`, one webhook sink `hook`, a free port."""
        return cls(
            tmp_path, free_port(), sources={"prod": sim_url}, sinks={"hook": hook_url}, **more
        )

    def text(self) -> str:
        sources = "".join(
            f"  - name: {name}\n    base_url: {url}\n    api_key: {KEY}\n"
            "    poll_interval: 200ms\n    request_budget: 600/m\n"
            for name, url in self.sources.items()
        )
        sinks = "".join(
            f"  {name}:\n    type: webhook\n    url: {url}\n" for name, url in self.sinks.items()
        )
        rules = "".join(
            f"  - name: {name}\n    when: {{status: [{status}]}}\n    severity: critical\n"
            f"    sinks: [{', '.join(to)}]\n"
            for name, (status, to) in self.rules.items()
        )
        rules += "".join(
            f"  - name: {name}\n    window: 10m\n"
            f"    when: {{count: {{gte: {count}, statuses: [failed]}}}}\n"
            f"    severity: warning\n    sinks: [{', '.join(to)}]\n"
            for name, (count, to) in self.windowed.items()
        )
        rules = rules or "  []\n"
        sinks = sinks or "  {}\n"
        return (
            f"sources:\n{sources}"
            f"store:\n  url: {self.store_url or f'sqlite:///{self.tmp_path}/state.db'}\n"
            f"server:\n  listen: 127.0.0.1:{self.port}\n  admin_token: {TOKEN}\n"
            "  shutdown_grace: 5s\n"
            f"rules:\n{rules}"
            f"sinks:\n{sinks}"
            f"{self.extra}"
        )

    def write(self) -> Path:
        path = self.tmp_path / "relay.yaml"
        path.write_text(self.text())
        return path


@pytest.fixture(params=store_backends.BACKENDS)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/state.db"
    else:
        async with store_backends.fresh_pg_schema() as url:
            yield url


@pytest.fixture
async def sim() -> AsyncIterator[tuple[SimWorkspace, str]]:
    workspace = SimWorkspace(api_key=KEY, seed=5)
    for _ in range(3):
        workspace.create_execution()
    async with SimServer(workspace) as server:
        yield workspace, server.url


class Relay:
    """The daemon in this process, reloadable from its file, and a client of its API."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.url = f"http://127.0.0.1:{layout.port}"
        self.http = httpx.AsyncClient(base_url=self.url, timeout=10.0)

    async def reload(self) -> httpx.Response:
        self.layout.write()
        return await self.http.post("/-/reload", headers=AUTH)

    async def cycles(self, source: str) -> float:
        text = (await self.http.get("/metrics")).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("zaia_relay_poll_cycles_total{") and f'source="{source}"' in line
        )

    async def wait_cycles(self, source: str, count: int = 2, *, timeout_s: float = 15.0) -> None:
        """Wait until `source` ran `count` more cycles (a cycle's commit is then done).
        The counter changes with no event to wait on: scraping it is the wait."""
        target = await self.cycles(source) + count
        async with asyncio.timeout(timeout_s):
            while await self.cycles(source) < target:  # noqa: ASYNC110
                await asyncio.sleep(0.05)

    async def metric(self, name: str) -> float:
        for line in (await self.http.get("/metrics")).text.splitlines():
            if line.startswith(f"{name} "):
                return float(line.split(" ", 1)[1])
        raise AssertionError(f"no metric {name}")


@contextlib.asynccontextmanager
async def running(layout: Layout) -> AsyncIterator[Relay]:
    path = layout.write()
    daemon = asyncio.create_task(
        run_daemon(load_settings(path), reload=partial(load_settings, path))
    )
    relay = Relay(layout)
    try:
        async with asyncio.timeout(15):
            while True:
                assert not daemon.done(), daemon
                with contextlib.suppress(httpx.TransportError):
                    if (await relay.http.get("/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        for source in layout.sources:
            await relay.wait_cycles(source, 1)
        yield relay
    finally:
        await relay.http.aclose()
        daemon.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await daemon


def ids(receiver: Receiver) -> list[str]:
    return [r.headers["webhook-id"] for r in receiver.requests]


async def test_an_added_rule_alerts_on_the_next_cycle_and_nothing_is_sent_twice(
    tmp_path: Path, sim: tuple[SimWorkspace, str], store_url: str
) -> None:
    workspace, sim_url = sim
    async with Receiver() as hook:
        layout = Layout.prod(
            tmp_path,
            sim_url,
            hook.url,
            rules={"failed": ("failed", ["hook"])},
            store_url=store_url,
        )
        async with running(layout) as relay:
            first, second, _ = workspace.execution_ids(status="running")
            workspace.set_status(first, "failed")
            await hook.wait_for(1)
            layout.rules["cancelled"] = ("cancelled", ["hook"])
            answer = await relay.reload()
            assert answer.status_code == 200, answer.text
            assert answer.json()["sections"] == ["rules"]
            assert answer.json()["sources_restarted"] == ["prod"]
            workspace.set_status(second, "cancelled")
            await hook.wait_for(2)
            await relay.wait_cycles("prod", 3)
            assert await relay.metric("zaia_relay_config_last_reload_successful") == 1
        store = open_store(store_url)
        async with store:
            counts = await store.outbox_counts()
    assert len(hook.requests) == 2, "the failure alerted before the reload is not sent again"
    assert len(set(ids(hook))) == 2
    assert b"cancelled" in hook.requests[1].body
    assert counts.get("hook", (0, 0)) == (0, 0)


async def test_an_open_window_survives_reloads_and_fires_once(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    workspace, sim_url = sim
    async with Receiver() as hook:
        layout = Layout.prod(
            tmp_path,
            sim_url,
            hook.url,
            rules={},
            windowed={"two-failures": (2, ["hook"])},
        )
        async with running(layout) as relay:
            first, second, _ = workspace.execution_ids(status="running")
            workspace.set_status(first, "failed")
            await relay.wait_cycles("prod", 2)
            layout.rules["cancelled"] = ("cancelled", ["hook"])
            assert (await relay.reload()).json()["sources_restarted"] == ["prod"]
            workspace.set_status(second, "failed")
            await hook.wait_for(1)  # the window counted the failure from before the reload
            del layout.rules["cancelled"]
            assert (await relay.reload()).json()["sources_restarted"] == ["prod"]
            await relay.wait_cycles("prod", 3)
    assert len(hook.requests) == 1, "the firing window is not fired again by a new poller"
    assert b"alert.firing" in hook.requests[0].body


async def test_a_changed_sink_url_gets_the_pending_notification(
    tmp_path: Path, sim: tuple[SimWorkspace, str], store_url: str
) -> None:
    workspace, sim_url = sim
    async with Receiver(lambda _: Reply(status=503)) as old, Receiver() as new:
        layout = Layout(
            tmp_path,
            free_port(),
            sources={"prod": sim_url},
            sinks={"hook": old.url},
            rules={"failed": ("failed", ["hook"])},
            store_url=store_url,
        )
        async with running(layout) as relay:
            workspace.set_status(workspace.execution_ids(status="running")[0], "failed")
            await old.wait_for(1)  # refused: it waits in the outbox for a retry
            layout.sinks["hook"] = new.url
            answer = await relay.reload()
            assert answer.json()["sinks_changed"] == ["hook"], answer.text
            delivered = await new.wait_for(1, timeout_s=20)
    assert delivered[0].headers["webhook-id"] == old.requests[0].headers["webhook-id"]


async def test_a_removed_sink_keeps_its_notifications_in_the_outbox(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    workspace, sim_url = sim
    async with Receiver() as kept, Receiver(lambda _: Reply(status=503)) as gone:
        layout = Layout(
            tmp_path,
            free_port(),
            sources={"prod": sim_url},
            sinks={"kept": kept.url, "gone": gone.url},
            rules={"failed": ("failed", ["kept", "gone"])},
        )
        async with running(layout) as relay:
            first, second, _ = workspace.execution_ids(status="running")
            workspace.set_status(first, "failed")
            await gone.wait_for(1)
            await kept.wait_for(1)
            del layout.sinks["gone"]
            layout.rules["failed"] = ("failed", ["kept"])
            answer = await relay.reload()
            assert answer.json()["sinks_removed"] == ["gone"], answer.text
            tried = len(gone.requests)
            workspace.set_status(second, "failed")
            await kept.wait_for(2)
            await relay.wait_cycles("prod", 2)
        async with SqliteStore(tmp_path / "state.db") as store:
            counts = await store.outbox_counts()
    assert len(gone.requests) == tried, "no worker sends to a removed sink"
    assert counts["gone"].pending == 1, "its notification waits for the sink to come back"


async def test_sources_added_and_removed(tmp_path: Path, sim: tuple[SimWorkspace, str]) -> None:
    _, sim_url = sim
    other = SimWorkspace(api_key=KEY, seed=6)
    other.create_execution()
    async with SimServer(other) as other_server, Receiver() as hook:
        layout = Layout.prod(
            tmp_path,
            sim_url,
            hook.url,
            rules={"failed": ("failed", ["hook"])},
        )
        async with running(layout) as relay:
            layout.sources["staging"] = other_server.url
            answer = await relay.reload()
            assert answer.json()["sources_added"] == ["staging"], answer.text
            await relay.wait_cycles("staging", 2)
            other.set_status(other.execution_ids(status="running")[0], "failed")
            await hook.wait_for(1)
            del layout.sources["staging"]
            answer = await relay.reload()
            assert answer.json()["sources_removed"] == ["staging"], answer.text
            await relay.wait_cycles("prod", 3)
            # Its series are gone (no stale-source self-alert), and stay gone: a poller
            # still running would bring them back with its next cycle.
            assert await relay.cycles("staging") == 0, "its poller stopped"
            metrics = (await relay.http.get("/metrics")).text
            ready = (await relay.http.get("/readyz")).json()
    assert 'zaia_relay_last_successful_poll_timestamp_seconds{source="staging"}' not in metrics
    assert b"staging" in hook.requests[0].body, "the added source alerts"
    assert list(ready["checks"]["sources"]) == ["prod"]


async def test_an_invalid_file_is_refused_and_the_running_configuration_stays(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    workspace, sim_url = sim
    async with Receiver() as hook:
        layout = Layout.prod(
            tmp_path,
            sim_url,
            hook.url,
            rules={"failed": ("failed", ["hook"])},
        )
        async with running(layout) as relay:
            assert (await relay.http.post("/-/reload")).status_code == 401
            started_at = await relay.metric(
                "zaia_relay_config_last_reload_success_timestamp_seconds"
            )
            layout.rules["failed"] = ("failed", ["nowhere"])
            answer = await relay.reload()
            with pytest.raises(ConfigError) as expected:
                load_settings(tmp_path / "relay.yaml")
            assert answer.status_code == 422
            assert [f"{p['path']}: {p['message']}" for p in answer.json()["problems"]] == [
                str(p) for p in expected.value.problems
            ]
            assert await relay.metric("zaia_relay_config_last_reload_successful") == 0
            assert (
                await relay.metric("zaia_relay_config_last_reload_success_timestamp_seconds")
                == started_at
            )
            workspace.set_status(workspace.execution_ids(status="running")[0], "failed")
            await hook.wait_for(1)  # the old rules still alert
    assert len(hook.requests) == 1


async def test_a_restart_only_change_is_refused_naming_the_field(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    _, sim_url = sim
    layout = Layout(tmp_path, free_port(), sources={"prod": sim_url}, sinks={}, rules={})
    async with running(layout) as relay:
        layout.extra = "log:\n  level: debug\n"
        answer = await relay.reload()
        assert answer.status_code == 422
        assert [p["path"] for p in answer.json()["problems"]] == ["log.level"]
        layout.extra = ""
        answer = await relay.reload()
        assert answer.status_code == 200
        assert answer.json()["changed"] is False
        assert await relay.metric("zaia_relay_config_last_reload_successful") == 1


async def test_concurrent_reloads_are_applied_one_after_the_other(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    workspace, sim_url = sim
    async with Receiver() as first, Receiver() as second:
        layout = Layout(
            tmp_path,
            free_port(),
            sources={"prod": sim_url},
            sinks={"first": first.url},
            rules={"failed": ("failed", ["first"])},
        )
        async with running(layout) as relay:
            layout.sinks["second"] = second.url
            layout.rules["failed"] = ("failed", ["first", "second"])
            answers = await asyncio.gather(*(relay.reload() for _ in range(3)))
            summaries = [a.json() for a in answers]
            assert all(a.status_code == 200 for a in answers), summaries
            # One of them applied the change; the others, after it, found nothing new.
            assert sorted(s["changed"] for s in summaries) == [False, False, True]
            workspace.set_status(workspace.execution_ids(status="running")[0], "failed")
            await first.wait_for(1)
            await second.wait_for(1)


@pytest.mark.slow
async def test_sighup_reloads_zaia_relay_run(tmp_path: Path, sim: tuple[SimWorkspace, str]) -> None:
    workspace, sim_url = sim
    async with Receiver() as first, Receiver() as second:
        layout = Layout(
            tmp_path,
            free_port(),
            sources={"prod": sim_url},
            sinks={"first": first.url},
            rules={"failed": ("failed", ["first"])},
            extra="log:\n  format: json\n",
        )
        config = layout.write()
        relay = await RelayProcess.start(["run", "-c", str(config)])
        try:
            await relay.wait_for_event("poll.done")
            layout.rules["failed"] = ("failed", ["nowhere"])
            short = "short-secret-x"  # too short for a token: refused without its value
            text = layout.text().replace(TOKEN, short)
            config.write_text(text)
            relay.signal(signal.SIGHUP)
            await relay.wait_for_event("config.reload_failed")
            layout.sinks["second"] = second.url
            layout.rules["failed"] = ("failed", ["second"])
            layout.write()
            relay.signal(signal.SIGHUP)
            await relay.wait_for_event("config.reloaded")
            workspace.set_status(workspace.execution_ids(status="running")[0], "failed")
            await second.wait_for(1)
            assert await relay.stop() == 0, relay.tail()
        finally:
            await relay.close()
    failed = relay.named("config.reload_failed")[0]
    assert failed["trigger"] == "sighup"
    assert any("nowhere" in problem for problem in failed["problems"])
    assert any(problem.startswith("server.admin_token: ") for problem in failed["problems"])
    assert short not in relay.tail(lines=10_000)
    assert relay.named("config.reloaded")[0]["sinks_added"] == ["second"]
    assert first.requests == []
