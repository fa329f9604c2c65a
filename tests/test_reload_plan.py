"""`relay.reload.plan_reload` and `restart_problems`: what a new configuration rebuilds."""

from __future__ import annotations

import pytest

from relay.reload import plan_reload, restart_problems
from relay.settings import Settings
from relay.settings.loader import parse_settings

BASE = """
sources:
  - {name: prod, base_url: "http://127.0.0.1:9", api_key: k1}
  - {name: staging, base_url: "http://127.0.0.1:9", api_key: k2}
rules:
  - {name: failed, when: {status: [failed]}, severity: critical, sinks: [a]}
sinks:
  a: {type: webhook, url: "http://127.0.0.1:9/a"}
  b: {type: webhook, url: "http://127.0.0.1:9/b"}
"""


AM_PAIR = 'a: {type: alertmanager, urls: ["http://127.0.0.1:1", "http://127.0.0.1:2"]}'


def settings(text: str = BASE) -> Settings:
    return parse_settings(text, environ={})


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ((), {}),
        ((("k2", "k3"),), {"sections": ["sources"], "sources_restarted": ["staging"]}),
        (
            (("/a", "/a2"),),
            {"sections": ["sinks"], "sinks_changed": ["a"]},
        ),
        (
            (('  b: {type: webhook, url: "http://127.0.0.1:9/b"}\n', ""),),
            {"sections": ["sinks"], "sinks_removed": ["b"]},
        ),
        (
            (("[failed]", "[failed, cancelled]"),),
            {"sections": ["rules"], "sources_restarted": ["prod", "staging"]},
        ),
        (
            (('a: {type: webhook, url: "http://127.0.0.1:9/a"}', AM_PAIR),),
            {
                "sections": ["sinks"],
                "sources_restarted": ["prod", "staging"],  # new targets: new planners
                "sinks_changed": ["a"],
                "targets_moved": ["a -> a[127.0.0.1:1], a[127.0.0.1:2]"],
            },
        ),
        (
            (("  - {name: staging", "  - {name: qa"),),
            {"sections": ["sources"], "sources_added": ["qa"], "sources_removed": ["staging"]},
        ),
    ],
)
def test_plan(change: tuple[tuple[str, str], ...], expected: dict[str, list[str]]) -> None:
    text = BASE
    for old, new in change:
        assert old in text
        text = text.replace(old, new)
    summary = plan_reload(settings(), settings(text)).summary()
    assert {key: value for key, value in summary.items() if value} == expected


def test_a_secret_read_again_counts_as_a_change_without_showing_it() -> None:
    plan = plan_reload(settings(), settings(BASE.replace("k1", "k1-rotated")))
    assert plan.sources_restarted == ("prod",)
    assert "k1" not in repr(plan.summary())


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ("server: {listen: '127.0.0.1:9999'}\n", "server.listen"),
        ("store: {url: 'sqlite:///elsewhere.db'}\n", "store.url"),
        ("log: {level: debug}\n", "log.level"),
        ("log: {format: json}\n", "log.format"),
    ],
)
def test_restart_only_fields_are_named(extra: str, field: str) -> None:
    problems = restart_problems(settings(), settings(BASE + extra))
    assert [p.path for p in problems] == [field]
    assert "restart" in problems[0].message


def test_other_server_fields_reload() -> None:
    token = "t" * 40
    new = settings(BASE + f"server: {{admin_token: {token}, shutdown_grace: 3s}}\n")
    assert restart_problems(settings(), new) == []
    assert plan_reload(settings(), new).sections == ("server",)
