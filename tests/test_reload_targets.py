"""A reload that renames a sink's delivery targets (an Alertmanager between `url` and
`urls`): the real daemon, both stores, Alertmanager-speaking receivers on loopback.
New alerts are queued for the new targets at once (the planners are rebuilt), and what
was pending under the old name moves to the new targets rather than waiting forever
for a worker that no longer exists."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from relay.app import build_runtime
from relay.reload import positional_renames, retargeted
from relay.settings.loader import load_settings
from relay.sim import SimWorkspace
from relay.store import OutboxCounts, SqliteStore, open_store
from tests.delivery_kit import T0, Received, Receiver, Reply, enqueue, make_notification
from tests.test_prometheus import free_port
from tests.test_reload import Layout, running, sim, store_url

__all__ = ["sim", "store_url"]  # fixtures, used by name


@dataclass
class AmLayout(Layout):
    """`Layout` with one Alertmanager sink `am`, written as `am_text`."""

    am_text: str = ""

    def text(self) -> str:
        return super().text().replace("sinks:\n  {}\n", "sinks:\n" + self.am_text)


def one_url(url: str) -> str:
    return f"  am:\n    type: alertmanager\n    url: {url}\n    retry_max: 1s\n"


def both_urls(first: str, second: str) -> str:
    return f"  am:\n    type: alertmanager\n    urls: [{first}, {second}]\n    retry_max: 1s\n"


def alert_ids(receiver: Receiver) -> set[str]:
    return {alert["labels"]["alert_id"] for r in receiver.requests for alert in json.loads(r.body)}


def target(receiver: Receiver) -> str:
    return "am[" + receiver.url.removeprefix("http://") + "]"


class Switch:
    """A receiver's answer that starts as 503 and turns to 200 when `up()` is called."""

    def __init__(self) -> None:
        self.status = 503

    def __call__(self, _: Received) -> Reply:
        return Reply(status=self.status)

    def up(self) -> None:
        self.status = 200


async def test_url_to_urls_queues_new_alerts_for_both_and_moves_the_pending_one(
    tmp_path: Path, sim: tuple[SimWorkspace, str], store_url: str
) -> None:
    workspace, sim_url = sim
    first_am = Switch()
    async with Receiver(first_am) as r1, Receiver() as r2:
        layout = AmLayout(
            tmp_path,
            free_port(),
            sources={"prod": sim_url},
            sinks={},
            rules={"failed": ("failed", ["am"])},
            store_url=store_url,
            am_text=one_url(r1.url),
        )
        async with running(layout) as relay:
            first, second, _ = workspace.execution_ids(status="running")
            workspace.set_status(first, "failed")
            await r1.wait_for(1)  # refused: pending under target `am`
            [pending] = alert_ids(r1)
            layout.am_text = both_urls(r1.url, r2.url)
            answer = await relay.reload()
            assert answer.status_code == 200, answer.text
            assert answer.json()["sources_restarted"] == ["prod"]  # new planners
            moved = f"am -> {target(r1)}, {target(r2)}"
            assert answer.json()["targets_moved"] == [moved]
            # The pending alert moved to both targets: the one that is up gets it.
            await r2.wait_for(1)
            assert alert_ids(r2) == {pending}
            workspace.set_status(second, "failed")
            await r2.wait_for(2)
            first_am.up()
            await r1.wait_for(3, timeout_s=15)  # its retry, then the new alert
            await relay.wait_cycles("prod", 2)
        store = open_store(store_url)
        async with store:
            counts = await store.outbox_counts()
    assert len(alert_ids(r2)) == 2
    assert alert_ids(r1) == alert_ids(r2)
    assert "am" not in counts, "nothing is left under the old target"
    assert all(c.pending == 0 for c in counts.values()), counts


async def test_urls_to_url_moves_what_each_target_owed_to_the_sink(
    tmp_path: Path, sim: tuple[SimWorkspace, str]
) -> None:
    workspace, sim_url = sim
    async with Receiver(lambda _: Reply(status=503)) as down, Receiver() as up:
        layout = AmLayout(
            tmp_path,
            free_port(),
            sources={"prod": sim_url},
            sinks={},
            rules={"failed": ("failed", ["am"])},
            am_text=both_urls(down.url, up.url),
        )
        async with running(layout) as relay:
            workspace.set_status(workspace.execution_ids(status="running")[0], "failed")
            await down.wait_for(1)
            await up.wait_for(1)
            layout.am_text = one_url(up.url)
            answer = await relay.reload()
            assert answer.json()["targets_moved"] == [
                f"{target(down)} -> am",
                f"{target(up)} -> am",
            ], answer.text
            # The row `down` owed now belongs to `am`: delivered (again, harmlessly:
            # Alertmanager deduplicates by labels) to the one left.
            await up.wait_for(2)
            await relay.wait_cycles("prod", 2)
        store = open_store(f"sqlite:///{tmp_path}/state.db")
        async with store:
            counts = await store.outbox_counts()
    assert alert_ids(up) == alert_ids(down)
    assert counts == {}, counts


def test_only_a_change_of_form_moves_rows() -> None:
    pair = {"am": ("am[a:1]", "am[b:2]"), "hook": ("hook",)}
    cases = [
        ({"am": ("am",)}, {"am": ("am[a:1]", "am[b:2]")}, [("am", ("am[a:1]", "am[b:2]"))]),
        (pair, {"am": ("am",)}, [("am[a:1]", ("am",)), ("am[b:2]", ("am",))]),
        (pair, {"am": ("am[a:1]",)}, []),  # a URL removed: its rows keep its name
        (pair, {"am": ("am[b:2]", "am[a:1]", "am[c:3]")}, []),  # reordered, one added
        (pair, {}, []),  # the sink removed
        ({}, pair, []),  # added
    ]
    for old, new, expected in cases:
        assert list(retargeted(old, new)) == expected, (old, new)


def test_positional_names_of_an_older_relay_map_to_the_targets_at_their_place() -> None:
    targets = {"am": ("am[a:1]", "am[b:2]"), "one": ("one",), "hook": ("hook",)}
    assert positional_renames(targets) == (("am[0]", ("am[a:1]",)), ("am[1]", ("am[b:2]",)))


async def test_rows_an_older_relay_queued_by_position_are_renamed_at_start(
    tmp_path: Path,
) -> None:
    async with Receiver() as r1, Receiver() as r2:
        config = AmLayout(
            tmp_path,
            free_port(),
            sources={"prod": "http://127.0.0.1:9"},
            sinks={},
            rules={"failed": ("failed", ["am"])},
            am_text=both_urls(r1.url, r2.url),
        ).write()
        settings = load_settings(config)
        old = make_notification(sink="am[1]")  # queued by an older relay: by position
        async with SqliteStore(tmp_path / "state.db") as sqlite:
            await enqueue(sqlite, [old], at=T0)
        async with build_runtime(settings) as runtime:
            counts = await runtime.store.outbox_counts()
    assert counts == {target(r2): OutboxCounts(pending=1, dead=0)}
