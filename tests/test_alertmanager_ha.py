"""Alertmanager in HA (issue 15, item 4): `urls:` sends every alert to every instance,
each URL a delivery target (`am[host:port]`) with its own outbox rows, worker, retries
and dead letters. Settings and dispatch as tables; the outbox on both backends; two
REAL Alertmanagers on loopback, one of them down for a while; `test-sink` and
`deliveries --sink` as the operator runs them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from relay.delivery.worker import DeliveryWorker
from relay.domain.alerts import Alert, Notification
from relay.domain.dispatch import as_firing, notifications_for
from relay.domain.routes import Route
from relay.errors import ConfigError, SinkError
from relay.settings import AlertmanagerSinkSettings, Settings, delivery_targets, secrets_of
from relay.settings.loader import load_settings, parse_settings
from relay.sim import ManualClock
from relay.sinks import build_sinks, build_targets
from relay.sinks.base import Sink
from relay.store import Store
from tests import store_backends
from tests.alertmanager_kit import Alertmanager, free_port
from tests.delivery_kit import Receiver, Reply, enqueue, make_alert, make_notification
from tests.rules_builders import rule
from tests.test_cli_ops import cli

backend, store = store_backends.backend, store_backends.store

A0, A1 = "am[am-0:9093]", "am[am-1:9093]"  # named by host:port
TARGETS = (A0, A1)
RULE = rule("execution-failed", status=["failed"], sinks=["am", "hook"])


def am_settings(urls: list[str], **extra: Any) -> AlertmanagerSinkSettings:
    fast = {"retry_initial": "1s", "retry_max": "2s", "max_age": "1m"}
    return AlertmanagerSinkSettings.model_validate(
        {"type": "alertmanager", "urls": urls, **fast, **extra}
    )


def settings_with(sink: str) -> Settings:
    return parse_settings(
        f"""
sources: [{{name: prod, api_key: zk-live-0b1c2d3e4f5a}}]
sinks:
  am: {sink}
  hook: {{type: webhook, url: "https://hooks.example.com/x"}}
""",
        environ={},
    )


def problems_of(sink: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings_with(sink)
    return [str(problem) for problem in caught.value.problems]


def fan_out(
    alert: Alert, *, now: datetime, targets: tuple[str, ...] = TARGETS
) -> list[Notification]:
    """The notifications dispatch queues for `alert` with sink am of `targets`."""
    return notifications_for(
        as_firing([alert]), [RULE], silences=[], now=now, targets={"am": targets}
    ).notifications


# --- settings ---------------------------------------------------------------------------


def test_urls_make_one_target_per_url_and_url_keeps_the_sink_name() -> None:
    pair = settings_with('{type: alertmanager, urls: ["http://am-0:9093", "http://am-1:9093/"]}')
    assert pair.targets() == {"am": TARGETS, "hook": ("hook",)}
    assert pair.targets_of("am") == TARGETS
    assert pair.targets_of(A1) == (A1,)  # one target
    assert pair.targets_of("gone") == ("gone",)  # a sink removed from the configuration
    single = settings_with('{type: alertmanager, url: "http://am-0:9093"}')
    assert single.targets()["am"] == ("am",)
    assert delivery_targets("am", single.sinks["am"]) == ("am",)
    one_url = settings_with('{type: alertmanager, urls: ["http://am-0:9093"]}')
    assert one_url.targets()["am"] == (A0,)  # the form written decides the naming


def test_targets_are_named_by_host_and_port_whatever_their_order_or_credentials() -> None:
    urls = ["http://u:pa55-word-1@am-0:9093/", "https://AM-1.example.com", "http://[::1]:9093"]
    named = dict(zip(urls, delivery_targets("am", am_settings(urls)), strict=True))
    assert list(named.values()) == ["am[am-0:9093]", "am[am-1.example.com:443]", "am[[::1]:9093]"]
    assert "pa55-word-1" not in "".join(named.values())
    # Reordered, or one removed: every other URL keeps its target (and its outbox rows).
    reordered = delivery_targets("am", am_settings(urls[::-1]))
    assert reordered == tuple(named[url] for url in urls[::-1])
    assert delivery_targets("am", am_settings(urls[1:])) == tuple(named[u] for u in urls[1:])


def test_urls_sharing_host_and_port_add_a_hash_of_the_url_without_credentials() -> None:
    a, b = "http://proxy:8080/am-a", "http://u:pa55-word-2@proxy:8080/am-b"
    ta, tb = delivery_targets("am", am_settings([a, b]))
    assert ta.startswith("am[proxy:8080/")
    assert tb.startswith("am[proxy:8080/")
    assert ta != tb
    assert (ta, tb) == delivery_targets("am", am_settings([a, b.replace("u:pa55-word-2@", "")]))
    assert "pa55-word-2" not in ta + tb
    # The credentials do not make another Alertmanager.
    [problem] = problems_of(
        f'{{type: alertmanager, urls: ["{a}", "{b}", "http://proxy:8080/am-b"]}}'
    )
    assert problem.startswith("sinks.am.urls.2: the same Alertmanager as urls.1")


async def test_a_refusal_names_the_url_setting_and_quotes_the_replay_command() -> None:
    async with Receiver(lambda _: Reply(status=400, body=b"bad alert")) as refusing:
        other = "http://127.0.0.1:9"
        targets = build_targets("am", am_settings([other, refusing.url]))
        name = f"am[127.0.0.1:{urlsplit(refusing.url).port}]"
        try:
            with pytest.raises(SinkError) as caught:
                await targets[name].send([make_notification(sink=name)])
        finally:
            for sink in targets.values():
                await sink.aclose()
    message = str(caught.value)
    assert "check sinks.am.urls.1," in message
    assert f"deliveries retry --all --sink '{name}'`" in message
    single = build_targets(
        "one",
        AlertmanagerSinkSettings.model_validate({"type": "alertmanager", "url": refusing.url}),
    )
    assert list(single) == ["one"]
    assert single["one"]._poster._config_path == "sinks.one.url"


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        (
            '{type: alertmanager, url: "http://a:9093", urls: ["http://b:9093"]}',
            "sinks.am: give exactly one of url (one Alertmanager) or urls (an HA cluster)",
        ),
        (
            "{type: alertmanager}",
            "sinks.am: give exactly one of url (one Alertmanager) or urls (an HA cluster)",
        ),
        ("{type: alertmanager, urls: []}", "sinks.am.urls: should list at least one"),
        (
            '{type: alertmanager, urls: ["http://a:9093", "http://b:9093", "http://a:9093/"]}',
            "sinks.am.urls.2: the same Alertmanager as urls.0",
        ),
        (
            '{type: alertmanager, urls: ["http://a:9093", "ftp://b"]}',
            "sinks.am.urls.1: should be an http:// or https:// URL with a host",
        ),
        (
            '{type: alertmanager, urls: ["http://a:9093"], labels: {bad-name: x}}',
            "sinks.am.labels.bad-name: not a label name Alertmanager accepts",
        ),
        (
            '{type: alertmanager, urls: ["http://a:9093", "http://u:pw-9x8y@b:9093"], '
            "bearer_token: tok-1234567}",
            "sinks.am.bearer_token: cannot go with a user:password@ in urls",
        ),
    ],
)
def test_check_config_names_the_field(sink: str, expected: str) -> None:
    found = problems_of(sink)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_a_repeated_url_with_a_password_is_reported_without_it() -> None:
    url = "http://relay:am-pa55-word@am-0:9093"
    [problem] = problems_of(f'{{type: alertmanager, urls: ["{url}", "{url}"]}}')
    assert problem.startswith("sinks.am.urls.1: the same Alertmanager as urls.0")
    assert "am-pa55-word" not in problem


def test_every_url_with_a_password_is_a_secret() -> None:
    settings = settings_with(
        '{type: alertmanager, urls: ["http://u:first-pa55@am-0:9093", '
        '"http://u:second-pa55@am-1:9093"]}'
    )
    secrets = secrets_of(settings)
    assert "http://u:first-pa55@am-0:9093" in secrets
    assert "http://u:second-pa55@am-1:9093" in secrets


def test_the_registry_builds_one_sink_per_url_none_named_after_its_url() -> None:
    settings = settings_with(
        '{type: alertmanager, urls: ["http://u:pw-77@am-0:9093", "http://am-1:9093"]}'
    )
    sinks = build_sinks(settings.sinks)
    assert list(sinks) == [A0, A1, "hook"]
    assert [sink.name for sink in sinks.values()] == [A0, A1, "hook"]
    assert "pw-77" not in repr(sinks)


# --- dispatch ---------------------------------------------------------------------------


def test_dispatch_queues_one_notification_per_target_with_the_same_id() -> None:
    alert = make_alert()
    notifications = fan_out(alert, now=alert.started_at)
    assert [n.sink for n in notifications] == [A0, A1, "hook"]
    assert len({n.id for n in notifications}) == 1  # one webhook-id, one dedupe key
    plain = notifications_for(as_firing([alert]), [RULE], silences=[], now=alert.started_at)
    assert [n.sink for n in plain.notifications] == ["am", "hook"]  # no targets: as before


def test_routes_name_the_sink_and_each_target_gets_the_group() -> None:
    alert = make_alert()
    grouped = Route(id="all", matchers=(), sinks=("am",), group_by=("rule",), group_wait_s=10.0)
    dispatch = notifications_for(
        as_firing([alert]),
        [rule("execution-failed", status=["failed"], sinks=[])],
        silences=[],
        now=alert.started_at,
        routes=(grouped,),
        targets={"am": TARGETS},
    )
    assert [n.sink for n in dispatch.notifications] == list(TARGETS)
    first, second = (n.group for n in dispatch.notifications)
    assert first is not None
    assert first == second


# --- the outbox, both backends ------------------------------------------------------------


async def test_each_target_is_its_own_outbox_row(store: Store) -> None:
    alert = make_alert()
    now = alert.started_at
    notifications = fan_out(alert, now=now)
    assert await enqueue(store, notifications, at=now) == 3
    assert await enqueue(store, notifications, at=now) == 0  # a replayed cycle sends nothing
    [first] = await store.claim_due(A0, now=now, limit=10, lease_s=30)
    [second] = await store.claim_due(A1, now=now, limit=10, lease_s=30)
    assert first.notification.id == second.notification.id
    assert (first.notification.sink, second.notification.sink) == TARGETS
    assert await store.claim_due("am", now=now, limit=10, lease_s=30) == []

    await store.mark_delivered(A0, [first.notification.id], now=now)
    await store.mark_dead(A1, second.notification.id, reason="HTTP 503", now=now)
    [letter] = await store.dead_letters(sink=TARGETS)
    assert letter.notification.sink == A1
    assert await store.dead_letters(sink=A0) == []
    assert await store.dead_letters(sink=()) == []
    counts = await store.outbox_counts()
    assert (counts[A1].dead, counts["hook"].pending) == (1, 1)
    assert await store.retry_dead(now=now, sink=TARGETS) == 1
    assert await store.purge_dead(sink=TARGETS) == 0
    [again] = await store.claim_due(A1, now=now, limit=10, lease_s=30)
    assert again.notification.id == first.notification.id


async def test_retarget_moves_pending_and_dead_rows_and_keeps_what_a_target_has(
    store: Store,
) -> None:
    alerts = [make_alert() for _ in range(3)]
    now = alerts[0].started_at
    # A1 already holds a row for the first alert (it keeps its own); `am` has all three.
    for alert, targets in zip(alerts, [("am", A1), ("am",), ("am",)], strict=True):
        await enqueue(store, fan_out(alert, now=now, targets=targets), at=now)
    pending, dead, delivered = (fan_out(a, now=now, targets=("am",))[0] for a in alerts)
    await store.claim_due("am", now=now, limit=10, lease_s=30)
    await store.mark_dead("am", dead.id, reason="HTTP 503", now=now)
    await store.mark_delivered("am", [delivered.id], now=now)
    await store.claim_due(A1, now=now, limit=10, lease_s=30)
    await store.mark_dead(A1, pending.id, reason="own", now=now)

    assert await store.retarget("am", TARGETS) == 2  # delivered history stays
    counts = await store.outbox_counts()
    assert "am" not in counts
    assert (counts[A0].pending, counts[A0].dead) == (1, 1)
    assert (counts[A1].pending, counts[A1].dead) == (0, 2)
    [moved_dead] = await store.dead_letters(sink=A0)
    assert (moved_dead.notification.id, moved_dead.notification.sink) == (dead.id, A0)
    assert moved_dead.reason == "HTTP 503"
    # Moved as it was: still leased (the claim above) until its lease ends.
    assert await store.claim_due(A0, now=now, limit=10, lease_s=30) == []
    later = now + timedelta(seconds=31)
    [due] = await store.claim_due(A0, now=later, limit=10, lease_s=30)
    assert (due.notification.id, due.notification.sink) == (pending.id, A0)
    assert {d.reason for d in await store.dead_letters(sink=A1)} == {"own", "HTTP 503"}
    assert await store.retarget("am", TARGETS) == 0


# --- two real Alertmanagers ---------------------------------------------------------------


def worker(sink: Sink, store: Store, clock: ManualClock) -> DeliveryWorker:
    return DeliveryWorker(sink, outbox=store, now=clock)


async def until_settled(
    work: DeliveryWorker, store: Store, clock: ManualClock, *, steps: int = 6
) -> None:
    """Step `work` (moving the clock to its next due row, or the end of its pause)
    until its target has nothing pending."""
    name = work.sink.name
    for _ in range(steps):
        await work.step()
        due = await store.next_due_at(name)
        if due is None:
            return
        clock.set(max(clock(), due, work.health.paused_until or clock()))
    raise AssertionError(f"{work!r} still has work after {steps} steps")


def real_now() -> datetime:
    # Alertmanager judges alerts by its own clock: notifications are made "now".
    return datetime.now(UTC).replace(microsecond=0)


async def test_an_instance_not_started_yet_gets_the_alert_later(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Alertmanager(tmp_path) as up, Alertmanager(tmp_path, port=free_port()) as down:
        up.start()
        clock = ManualClock(real_now())
        # Credentials in the URL (sent as basic auth) stay out of errors and logs.
        down_url = down.url.replace("http://", "http://relay:am-down-pa55@")
        targets = build_targets("am", am_settings([up.url, down_url]))
        workers = {name: worker(sink, store, clock) for name, sink in targets.items()}
        pair = up_t, down_t = tuple(targets)  # am[127.0.0.1:PORT]
        try:
            alert = make_alert(started_at=clock() - timedelta(minutes=1))
            await enqueue(store, fan_out(alert, now=clock(), targets=pair), at=clock())

            # The down instance fails first: the up one is not held back by it.
            failed = await workers[down_t].step()
            assert failed.outcomes == {"retry": 1}
            retry_at = await store.next_due_at(down_t)
            assert retry_at is not None
            assert retry_at > clock()
            delivered = await workers[up_t].step()
            assert delivered.outcomes == {"delivered": 1}
            assert up.alert_ids() == {alert.id}

            # Down for longer than max_age: a dead letter on that target only.
            clock.advance(timedelta(minutes=2))
            expired = await workers[down_t].step()
            assert expired.outcomes == {"dead": 1}
            [letter] = await store.dead_letters(sink=pair)
            assert letter.notification.sink == down_t
            assert "max_age" in letter.reason
            assert "am-down-pa55" not in letter.reason
            logged = "".join(capsys.readouterr())
            assert "delivery.dead" in logged
            assert "am-down-pa55" not in logged

            # It comes up; the operator replays the sink's dead letters.
            down.start()
            assert await store.retry_dead(now=clock(), sink=pair) == 1
            await until_settled(workers[down_t], store, clock)
            assert down.alert_ids() == {alert.id}
            assert up.alert_ids() == {alert.id}
            [shown] = down.alerts()
            assert shown["labels"]["alertname"] == "execution-failed"
            assert shown["status"]["state"] == "active"
            counts = await store.outbox_counts()
            assert up_t not in counts
            assert down_t not in counts
        finally:
            for sink in targets.values():
                await sink.aclose()


async def test_an_instance_stopped_and_restarted_on_its_port_catches_up(
    store: Store, tmp_path: Path
) -> None:
    with Alertmanager(tmp_path) as first, Alertmanager(tmp_path) as second:
        first.start()
        second.start()
        clock = ManualClock(real_now())
        targets = build_targets("am", am_settings([first.url, second.url], max_age="1h"))
        workers = {name: worker(sink, store, clock) for name, sink in targets.items()}
        pair = up_t, down_t = tuple(targets)  # am[127.0.0.1:PORT]
        try:
            before = make_alert(started_at=clock())
            await enqueue(store, fan_out(before, now=clock(), targets=pair), at=clock())
            for work in workers.values():
                assert (await work.step()).outcomes == {"delivered": 1}
            assert first.alert_ids() == second.alert_ids() == {before.id}

            second.stop()
            during = [make_alert(started_at=clock()) for _ in range(2)]
            for alert in during:
                await enqueue(store, fan_out(alert, now=clock(), targets=pair), at=clock())
            failing = await workers[down_t].step()
            assert failing.outcomes == {"retry": 2}
            # While the second retries, the first gets each alert at once.
            assert (await workers[up_t].step()).outcomes == {"delivered": 2}
            later = make_alert(started_at=clock())
            await enqueue(store, fan_out(later, now=clock(), targets=pair), at=clock())
            assert (await workers[up_t].step()).outcomes == {"delivered": 1}
            wanted = {before.id, later.id} | {a.id for a in during}
            assert first.alert_ids() == wanted

            second.start()  # the same port: what it missed arrives on the next retries
            await until_settled(workers[down_t], store, clock)
            # Alertmanager keeps alerts in memory: `before` went with the restart.
            assert second.alert_ids() == wanted - {before.id}
            assert await store.dead_letters(sink=pair) == []
        finally:
            for sink in targets.values():
                await sink.aclose()


# --- the operator's commands --------------------------------------------------------------


def write_config(tmp_path: Path, urls: list[str]) -> Path:
    config = tmp_path / "relay.yaml"
    listed = ", ".join(f'"{url}"' for url in urls)
    config.write_text(
        f"""
sources: [{{name: prod, api_key: zk-live-0b1c2d3e4f5a}}]
store: {{url: "sqlite:///{tmp_path}/state.db"}}
sinks:
  am: {{type: alertmanager, urls: [{listed}], timeout: 5s}}
rules:
  - {{name: execution-failed, severity: critical, when: {{status: [failed]}}, sinks: [am]}}
"""
    )
    return config


@pytest.mark.slow
async def test_test_sink_sends_to_every_url_and_reports_each(tmp_path: Path) -> None:
    with Alertmanager(tmp_path) as up, Alertmanager(tmp_path) as later:
        up.start()
        down_url = later.url.replace("http://", "http://relay:am-url-pa55@")
        config = write_config(tmp_path, [up.url, down_url])
        partly = await asyncio.to_thread(cli, "test-sink", "am", config=config)
        assert partly.returncode == 1
        assert f"am[127.0.0.1:{up.port}]: sent a test alert (label alert_id=" in partly.stdout
        assert f"am[127.0.0.1:{later.port}]: test alert not delivered" in partly.stderr
        assert "1 of 2 targets of sink 'am' failed" in partly.stderr
        assert "am-url-pa55" not in partly.stdout + partly.stderr
        later.start()
        done = await asyncio.to_thread(cli, "test-sink", "am", config=config)
        assert done.returncode == 0, done.stderr
        assert "sent a test alert through every target of sink 'am'" in done.stdout
        for instance in (up, later):
            summaries = [a["annotations"]["summary"] for a in instance.alerts()]
            assert any(s.startswith("[TEST]") for s in summaries), summaries


@pytest.mark.slow
async def test_deliveries_sink_selects_every_target_or_one(tmp_path: Path) -> None:
    from relay.store import SqliteStore

    urls = ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    config = write_config(tmp_path, urls)
    # One host and port: each name also carries a short hash of its URL.
    t0, t1 = pair = delivery_targets("am", am_settings(urls))
    assert t0.startswith("am[127.0.0.1:9/")
    assert t1.startswith("am[127.0.0.1:9/")
    alerts = [make_alert() for _ in range(2)]
    async with SqliteStore(tmp_path / "state.db") as sqlite:
        for alert in alerts:
            await enqueue(
                sqlite, fan_out(alert, now=alert.started_at, targets=pair), at=alert.started_at
            )
            for target in pair:
                [item] = await sqlite.claim_due(target, now=alert.started_at, limit=1, lease_s=30)
                await sqlite.mark_dead(
                    target, item.notification.id, reason="HTTP 503", now=alert.started_at
                )

    every = await asyncio.to_thread(cli, "deliveries", "list", "--sink", "am", config=config)
    assert every.returncode == 0, every.stderr
    assert every.stdout.count(f"sink={t0}") == 2
    assert every.stdout.count(f"sink={t1}") == 2
    one = await asyncio.to_thread(cli, "deliveries", "list", "--sink", t1, config=config)
    assert one.stdout.count(f"sink={t1}") == 2
    assert f"sink={t0}" not in one.stdout
    retried = await asyncio.to_thread(
        cli, "deliveries", "retry", "--all", "--sink", t1, config=config
    )
    assert "2 dead letter(s) queued" in retried.stdout
    purged = await asyncio.to_thread(
        cli, "deliveries", "purge", "--all", "--sink", "am", config=config
    )
    assert "2 dead letter(s) dropped" in purged.stdout


def test_the_example_configs_ha_form_loads_when_uncommented(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[1] / "config" / "relay.example.yaml"
    lines = example.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "# urls:")
    ha = [line.replace("# ", "", 1) for line in lines[start : start + 3]]
    single = next(i for i, line in enumerate(lines) if "url: http://alertmanager" in line)
    edited = [*lines[:single], *lines[single + 1 : start], *ha, *lines[start + 3 :]]
    config = tmp_path / "relay.yaml"
    config.write_text("\n".join(edited) + "\n")
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    env = {
        "ZAIA_API_KEY": "k",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.com/x",
        "WEBHOOK_SECRET": secret,
    }
    settings = load_settings(config, environ=env)
    assert settings.targets()["alertmanager"] == (
        "alertmanager[alertmanager-0.alertmanager.monitoring:9093]",
        "alertmanager[alertmanager-1.alertmanager.monitoring:9093]",
    )
