"""`routes:` in the configuration: read, refused by field when they can never work, and
`check-config`'s warnings about sinks and rules nothing routes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest

from relay.cli.main import main
from relay.domain.routes import route_alert, routes_of
from relay.settings import config_warnings
from relay.settings.loader import load_settings
from tests.test_settings import API_KEY, MINIMAL, REPO, SLACK_URL, load, problems, write

BASE = f"""
sources:
  - name: prod
    api_key: {API_KEY}
rules:
  - name: failed
    when: {{status: [failed]}}
    severity: critical
sinks:
  pagerduty: {{type: console}}
  payments: {{type: console}}
  alerts: {{type: console}}
time_intervals:
  - name: weekends
    weekdays: [saturday, sunday]
"""

GOOD_ROUTES = """
routes:
  - name: payments-page
    matchers: ['severity="critical"', 'team=~"pay.*"']
    sinks: [pagerduty, payments]
    group_by: [responder_id]
    mute_time_intervals: [weekends]
  - sinks: [alerts]
    group_wait: 30s
"""


def test_routes_are_read(tmp_path: Path) -> None:
    settings = load(tmp_path, BASE + GOOD_ROUTES)
    page, default = settings.routes
    assert page.name == "payments-page"
    assert [str(m) for m in page.matchers] == ['severity="critical"', 'team=~"pay.*"']
    assert page.grouped
    assert page.wait.total_seconds() == 10
    assert default.matchers == []
    assert default.grouped
    assert default.wait.total_seconds() == 30
    assert not default.continue_
    assert settings.rules[0].sinks == []  # optional once routes exist
    assert config_warnings(settings) == []


def test_configs_without_routes_need_rule_sinks(tmp_path: Path) -> None:
    found = problems(tmp_path, BASE)
    assert found == ["rules.0.sinks: name at least one sink (or add `routes:`) (line 6)"]
    assert load(tmp_path, MINIMAL).routes == []


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        (
            "- {sinks: [pager]}",
            "routes.0.sinks: unknown sink 'pager'; defined sinks: alerts, pagerduty, payments",
        ),
        (
            "- {sinks: [alerts], mute_time_intervals: [weekend]}",
            "routes.0.mute_time_intervals.0: unknown time interval 'weekend'; defined: weekends",
        ),
        (
            "- {sinks: [alerts], active_time_intervals: [nights]}",
            "routes.0.active_time_intervals.0: unknown time interval 'nights'",
        ),
        (
            "- {sinks: [alerts], group_by: [team, 2nd]}",
            "routes.0.group_by.1: '2nd' is not a label name",
        ),
        (
            "- {sinks: [alerts], group_by: [team, team]}",
            "routes.0.group_by.1: label 'team' is listed twice",
        ),
        ("- {matchers: ['team=~\"(\"'], sinks: [alerts]}", "routes.0.matchers.0: invalid regex"),
        (
            "- {matchers: ['severity=\"critical\"', 'severity=\"warning\"'], sinks: [alerts]}",
            'routes.0.matchers: can never match: severity="critical" and '
            'severity="warning" cannot both hold',
        ),
        (
            "- {matchers: ['team=\"a\"', 'team!=\"a\"'], sinks: [alerts]}",
            'routes.0.matchers: can never match: team="a" and team!="a" cannot both hold',
        ),
        (
            "- {matchers: ['severity=\"crit\"'], sinks: [alerts]}",
            'routes.0.matchers: can never match: severity="crit" matches no severity an alert '
            "can have ('critical', 'info', 'warning')",
        ),
        (
            "- {matchers: ['type=~\"bots?\"'], sinks: [alerts]}",
            'routes.0.matchers: can never match: type=~"bots?" matches no type',
        ),
        (
            "- {matchers: ['rule=\"faild\"'], sinks: [alerts]}",
            'routes.0.matchers: can never match: rule="faild" matches no rule an alert can '
            "have ('failed')",
        ),
        (
            "- {sinks: [alerts]}\n  - {matchers: ['team=\"x\"'], sinks: [payments]}",
            "routes.1: can never match: routes.0 before it matches every alert and has no "
            "`continue: true`",
        ),
        (
            "- {name: a, sinks: [alerts]}\n  - {name: a, sinks: [payments], continue: true}",
            "routes.1.name: duplicate route name 'a' (also routes.0)",
        ),
    ],
)
def test_bad_routes_are_refused_by_field(tmp_path: Path, routes: str, expected: str) -> None:
    found = problems(tmp_path, BASE + "routes:\n  " + routes + "\n")
    assert any(line.startswith(expected) for line in found), found


def test_a_catch_all_with_continue_lets_later_routes_match(tmp_path: Path) -> None:
    text = BASE + "routes:\n  - {sinks: [alerts], continue: true}\n  - {sinks: [payments]}\n"
    assert [r.continue_ for r in load(tmp_path, text).routes] == [True, False]


def test_check_config_warns_of_unrouted_sinks_and_rules_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BASE + "routes:\n  - {matchers: ['severity=\"warning\"'], sinks: [alerts]}\n"
    path = write(tmp_path, text)
    assert main(["check-config", "-c", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == "config OK: 1 source, 1 rule, 3 sinks, 1 route (3 warnings)\n"
    assert err.splitlines() == [
        "warning: sinks.pagerduty: no rule and no route names it; nothing is sent there",
        "warning: sinks.payments: no rule and no route names it; nothing is sent there",
        "warning: rules.0.sinks: no sinks, and no route with sinks matches its alerts "
        '(rule="failed", severity="critical"); they are recorded, never sent',
    ]


@pytest.mark.parametrize(
    ("first", "warned"),
    [
        # An earlier route catches every alert of the rule and sends nowhere: the
        # default route after it is never reached, first match wins.
        ("{matchers: ['rule=\"failed\"'], sinks: []}", True),
        ("{matchers: ['severity=\"critical\"', 'team!=\"x\"'], sinks: []}", True),
        # ... unless it lets alerts go on, or may not catch them all (responder_id is
        # known only when the alert fires), or does not match the rule at all.
        ("{matchers: ['rule=\"failed\"'], sinks: [], continue: true}", False),
        ("{matchers: ['rule=\"failed\"', 'responder_id=\"r-1\"'], sinks: []}", False),
        ("{matchers: ['severity=\"warning\"'], sinks: []}", False),
        ("{matchers: ['rule=\"failed\"'], sinks: [payments]}", False),
    ],
)
def test_the_unrouted_rule_warning_follows_first_match(
    tmp_path: Path, first: str, warned: bool
) -> None:
    text = BASE + f"routes:\n  - {first}\n  - {{sinks: [alerts]}}\n"
    warnings = config_warnings(load(tmp_path, text))
    assert any(w.startswith("rules.0.sinks: no sinks") for w in warnings) is warned, warnings


def test_check_config_exits_2_on_a_route_that_can_never_match(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = BASE + "routes:\n  - {sinks: [alerts]}\n  - {sinks: [payments]}\n"
    assert main(["check-config", "-c", str(write(tmp_path, text))]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("routes.1: can never match: routes.0 before it")


def test_the_example_config_s_routes_work_as_its_comments_say() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    env = {"ZAIA_API_KEY": API_KEY, "SLACK_WEBHOOK_URL": SLACK_URL, "WEBHOOK_SECRET": secret}
    settings = load_settings(REPO / "config" / "relay.example.yaml", environ=env)
    assert config_warnings(settings) == []
    routes = routes_of(settings.routes)
    intervals = settings.intervals()
    labels = {"rule": "agent-failure-rate", "severity": "critical", "responder_id": "r-1"}
    tuesday_noon = datetime(2026, 12, 1, 12, tzinfo=UTC)
    routing = route_alert(
        labels, own_sinks=("oncall",), routes=routes, intervals=intervals, now=tuesday_noon
    )
    assert routing.sinks == ["oncall", "alertmanager"]
    info = {"rule": "slow-workflow", "severity": "info"}
    for moment, sinks in [
        (tuesday_noon, ["console"]),
        (datetime(2026, 12, 1, 23, tzinfo=UTC), []),  # midnight in Berlin: nights
        (datetime(2026, 12, 5, 12, tzinfo=UTC), []),  # Saturday: not a weekday
    ]:
        routing = route_alert(info, own_sinks=(), routes=routes, intervals=intervals, now=moment)
        assert routing.sinks == sinks, moment
