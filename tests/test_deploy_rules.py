"""The relay's self-alerts: `promtool check rules` and `promtool test rules`.

The same rules run twice: from config/prometheus-rules.yaml (plain Prometheus) and from
the PrometheusRule the Helm chart renders, so the chart cannot drift from the tested file.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy_support import CHART, DATA, ROOT, RULES_FILE, only, render, require_tool

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


# --- runbook_url annotations ---------------------------------------------------------


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lowercase, punctuation (but - and _)
    dropped, each space a hyphen."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def readme_anchors(markdown: str) -> set[str]:
    """Anchors of every heading outside fenced code, with GitHub's -1, -2 for repeats."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        heading = re.match(r"#{1,6} (.+)", line)
        if fenced or heading is None:
            continue
        slug = github_slug(heading.group(1))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("ZaiaRelayDown", "zaiarelaydown"),
        ("401: the source is unauthorized", "401-the-source-is-unauthorized"),
        ("Metrics, dashboard and self-alerts", "metrics-dashboard-and-self-alerts"),
        ("Slack: rate limits and missing messages", "slack-rate-limits-and-missing-messages"),
        ("`zaia-relay` on Kubernetes", "zaia-relay-on-kubernetes"),
        ("snake_case stays", "snake_case-stays"),
    ],
)
def test_github_slug(heading: str, anchor: str) -> None:
    assert github_slug(heading) == anchor


def test_readme_anchors_skip_code_and_number_repeats() -> None:
    text = "# A\n```sh\n# Not a heading\n```\n## A\n### B b\n"
    assert readme_anchors(text) == {"a", "a-1", "b-b"}


def runbook_base() -> str:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    return f"{values['prometheusRule']['runbookBaseUrl']}#"


def test_every_alert_links_to_a_readme_section_that_exists() -> None:
    anchors = readme_anchors((ROOT / "README.md").read_text())
    for name, rule in alerts_in(RULES_FILE).items():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(runbook_base()), (name, url)
        parts = urlsplit(url)
        assert parts.scheme == "https", url
        assert parts.path.endswith("/README.md"), url
        assert parts.fragment == name.lower(), url
        assert parts.fragment in anchors, f"{name}: README.md has no heading for #{parts.fragment}"


def test_the_chart_template_knows_the_rules_file_runbook_base() -> None:
    """The PrometheusRule template swaps the file's base for runbookBaseUrl by text: its
    constant, the values default and the file must name the same base."""
    template = (CHART / "templates" / "prometheusrule.yaml").read_text()
    assert f'$fileRunbookBase := "{runbook_base()}"' in template


def test_the_chart_points_runbooks_at_runbook_base_url() -> None:
    manifests, _ = render(
        {"prometheusRule": {"enabled": True, "runbookBaseUrl": "https://wiki.example.com/relay"}}
    )
    spec = only(manifests, "PrometheusRule")["spec"]
    urls = {r["alert"]: r["annotations"]["runbook_url"] for g in spec["groups"] for r in g["rules"]}
    assert urls == {
        name: f"https://wiki.example.com/relay#{name.lower()}" for name in EXPECTED_ALERTS
    }


def test_the_readme_links_to_its_own_sections_resolve() -> None:
    """The runbook sections link on to others; the chart's README links into the README."""
    readme = (ROOT / "README.md").read_text()
    anchors = readme_anchors(readme)
    chart_readme = (CHART / "README.md").read_text()
    links = set(re.findall(r"\]\(#([^)]+)\)", readme))
    links |= set(re.findall(r"\]\(\.\./\.\./README\.md#([^)]+)\)", chart_readme))
    assert {"when-a-self-alert-fires", "ingress"} <= links
    assert links - anchors == set()
