"""The Grafana dashboard: well-formed, complete, and every query valid PromQL.

PromQL is checked by promtool: each panel query becomes a recording rule (Grafana's
variables replaced by what Grafana would put there) and `promtool check rules` parses it.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy_support import DASHBOARD_FILE, require_tool

# What the dashboard must show (issue 7), as words the panel titles contain.
REQUIRED_PANELS = [
    "executions by status",
    "failure ratio",
    "credits",
    "detection latency",
    "deliveries by outcome",
    "outbox pending",
    "dead letters",
    "poll cycles by outcome",
    "since last successful poll",
    "poll duration",
]

# Grafana's built-in and dashboard variables, as Grafana substitutes them.
VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__range": "6h",
    "$job": ".*",
    "$source": ".*",
    "$sink": ".*",
}


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return loaded


def panels() -> list[dict[str, Any]]:
    return [p for p in dashboard()["panels"] if p["type"] != "row"]


def queries() -> list[str]:
    found = [t["expr"] for p in panels() for t in p["targets"]]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            found.append(variable["query"]["query"])
    return found


def test_the_dashboard_is_importable_and_self_contained() -> None:
    board = dashboard()
    assert board["uid"] == "zaia-relay"
    assert board["title"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels():
        # Every query goes through the data source variable: no hard-coded data source uid.
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["description"], panel["title"]


def test_the_dashboard_shows_what_operators_need() -> None:
    titles = [p["title"].lower() for p in panels()]
    missing = [need for need in REQUIRED_PANELS if not any(need in t for t in titles)]
    assert missing == []


def _substitute(expr: str) -> str:
    for name, value in sorted(VARIABLES.items(), key=lambda item: -len(item[0])):
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown variable in {expr}"
    return expr


def _label_values_metric(query: str) -> str:
    """`label_values(metric{...}, label)` -> the selector, which is PromQL on its own."""
    match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query.strip())
    assert match is not None, query
    return match.group(1)


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    rules = []
    for index, query in enumerate(queries()):
        expr = _label_values_metric(query) if query.startswith("label_values(") else query
        rules.append({"record": f"dashboard:query_{index}", "expr": _substitute(expr)})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
