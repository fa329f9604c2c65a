"""`zaia-relay routes test LABEL=VALUE...` as an operator runs it (a real subprocess)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_check_config import run_cli
from tests.test_settings_routes import BASE, GOOD_ROUTES

pytestmark = pytest.mark.slow

SATURDAY = "2026-12-05T10:00:00Z"
TUESDAY = "2026-12-01T10:00:00Z"


def config(tmp_path: Path) -> Path:
    path = tmp_path / "relay.yaml"
    path.write_text(BASE + GOOD_ROUTES, encoding="utf-8")
    return path


def test_a_critical_payments_alert_reaches_pagerduty_and_payments(tmp_path: Path) -> None:
    labels = ["severity=critical", 'team="payments"', "responder_id=r-1"]
    result = run_cli("routes", "test", "-c", str(config(tmp_path)), *labels, "--at", TUESDAY)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == 'labels: severity="critical", team="payments", responder_id="r-1"'
    assert "route payments-page" in lines
    assert '  matchers: severity="critical", team=~"pay.*"' in lines
    assert any(
        line.startswith("  group: grp_") and line.endswith('by responder_id="r-1", wait 10s')
        for line in lines
    )
    assert "  muted: no" in lines
    assert lines[-1] == "sinks reached: pagerduty, payments"


def test_on_a_weekend_the_muted_route_holds_its_sinks_back(tmp_path: Path) -> None:
    labels = ["severity=critical", "team=payments", "rule=failed"]
    result = run_cli("routes", "test", "-c", str(config(tmp_path)), *labels, "--at", SATURDAY)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "  muted: in weekends, until 2026-12-07T00:00:00Z" in lines
    assert "held back by payments-page (in weekends): pagerduty, payments" in lines
    assert lines[-1] == "sinks reached: none"


def test_other_alerts_take_the_default_route(tmp_path: Path) -> None:
    result = run_cli("routes", "test", "-c", str(config(tmp_path)), "severity=warning")
    assert result.returncode == 0, result.stderr
    assert "route routes[1]" in result.stdout
    assert result.stdout.splitlines()[-1] == "sinks reached: alerts"


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("2x=y", "routes test: '2x=y': cannot read"),
        ('team=~"pay.*"', "routes test: 'team=~\"pay.*\"': give a label as LABEL=VALUE"),
        ("team", "routes test: 'team': cannot read"),
    ],
)
def test_a_bad_label_is_a_usage_error(tmp_path: Path, label: str, message: str) -> None:
    result = run_cli("routes", "test", "-c", str(config(tmp_path)), label)
    assert result.returncode == 2
    assert result.stderr.startswith(message), result.stderr
    assert result.stdout == ""
