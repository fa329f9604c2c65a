"""The relay's self-alerts: `promtool check rules` and `promtool test rules`.

The same rules run twice: from config/prometheus-rules.yaml (plain Prometheus) and from
the PrometheusRule the Helm chart renders, so the chart cannot drift from the tested file.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy_support import DATA, RULES_FILE, only, render, require_tool

UNIT_TESTS = DATA / "prometheus-rules.test.yaml"
EXPECTED_ALERTS = {
    "ZaiaRelayDown",
    "ZaiaRelayPollsFailing",
    "ZaiaRelaySourceUnauthorized",
    "ZaiaRelaySourceStale",
    "ZaiaRelayDeadLettersGrowing",
    "ZaiaRelayOutboxBacklog",
    "ZaiaRelayDeliveryErrors",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args], capture_output=True, text=True, check=False, timeout=120
    )


def chart_rules_file(tmp_path: Path) -> Path:
    """The chart's PrometheusRule spec, written as a plain rules file."""
    manifests, _ = render({"prometheusRule": {"enabled": True}})
    spec = only(manifests, "PrometheusRule")["spec"]
    path = tmp_path / "chart-rules.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def alerts_in(path: Path) -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(path.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_the_rules_cover_the_relay_self_alerts() -> None:
    alerts = alerts_in(RULES_FILE)
    assert set(alerts) == EXPECTED_ALERTS
    assert 'outcome="unauthorized"' in alerts["ZaiaRelaySourceUnauthorized"]["expr"]
    for name, rule in alerts.items():
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["summary"], name
        assert rule["annotations"]["description"], name


def test_every_alert_has_promtool_unit_tests() -> None:
    tests = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert tested == EXPECTED_ALERTS
    # Each alert is shown both firing and quiet.
    for alert in EXPECTED_ALERTS:
        cases = [c for t in tests for c in t["alert_rule_test"] if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in cases), alert
        assert any(not c["exp_alerts"] for c in cases), alert


@pytest.mark.parametrize("origin", ["plain", "chart"])
def test_promtool_check_rules(origin: str, tmp_path: Path) -> None:
    path = RULES_FILE if origin == "plain" else chart_rules_file(tmp_path)
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(EXPECTED_ALERTS)} rules found" in result.stdout


@pytest.mark.parametrize("origin", ["plain", "chart"])
def test_promtool_test_rules(origin: str, tmp_path: Path) -> None:
    if origin == "plain":
        test_file = UNIT_TESTS
    else:
        tests = yaml.safe_load(UNIT_TESTS.read_text())
        tests["rule_files"] = [str(chart_rules_file(tmp_path))]
        test_file = tmp_path / "chart-rules.test.yaml"
        test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules_does_catch_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit tests above mean something: a wrong expectation fails."""
    tests = yaml.safe_load(UNIT_TESTS.read_text())
    tests["rule_files"] = [str(RULES_FILE)]
    first_firing = next(c for t in tests["tests"] for c in t["alert_rule_test"] if c["exp_alerts"])
    first_firing["exp_alerts"] = []
    test_file = tmp_path / "wrong.test.yaml"
    test_file.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = promtool("test", "rules", str(test_file))
    assert result.returncode != 0
