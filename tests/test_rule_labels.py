"""Rule labels and annotations, and responder names, from settings to alerts (pure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from relay.domain.alerts import Alert
from relay.domain.rules import evaluate_running, evaluate_transitions
from relay.domain.windows import evaluate_windows
from relay.errors import ConfigError
from relay.settings import RuleSettings
from relay.settings.loader import load_settings
from relay.vocab import RESERVED_LABELS
from tests.rules_builders import SOURCE, context, execution, rule, tracked, transition

SALES = "cb364d8f-6e9c-48ed-b241-ac405da66337"
NAMES = {SALES: "Sales Qualifier"}


def _failed(r: RuleSettings, *, names: dict[str, str] | None = None, **kwargs: Any) -> Alert:
    exec_ = execution("exec-1234567890", responder_id=SALES, **kwargs)
    [alert] = evaluate_transitions(
        [r], [transition(exec_)], ctx=context(responder_names=names or {})
    )
    return alert


# --- settings -----------------------------------------------------------------------


def _problems(**fields: Any) -> list[tuple[tuple[str | int, ...], str]]:
    raw = {"name": "r", "severity": "critical", "sinks": ["s"], "when": {"status": "failed"}}
    try:
        RuleSettings.model_validate(raw | fields)
    except ValidationError as exc:
        return [(tuple(e["loc"]), e["msg"]) for e in exc.errors()]
    return []


@pytest.mark.parametrize(
    ("fields", "where", "message"),
    [
        ({"labels": {"severity": "low"}}, ("labels", "severity"), "set by the relay"),
        ({"labels": {"responder": "x"}}, ("labels", "responder"), "set by the relay"),
        ({"labels": {"alertname": "x"}}, ("labels", "alertname"), "set by the relay"),
        ({"labels": {"team-a": "x"}}, ("labels", "team-a"), "invalid label name"),
        ({"labels": {"1team": "x"}}, ("labels", "1team"), "invalid label name"),
        ({"labels": {"team": " "}}, ("labels", "team"), "should not be empty"),
        ({"annotations": {"summary": "x"}}, ("annotations", "summary"), "set by the relay"),
        (
            {"annotations": {"run book": "x"}},
            ("annotations", "run book"),
            "invalid annotation name",
        ),
        (
            {"annotations": {"runbook_url": "javascript:alert(1)"}},
            ("annotations", "runbook_url"),
            "http:// or https://",
        ),
        (
            {"annotations": {"runbook_url": "wiki/page"}},
            ("annotations", "runbook_url"),
            "http:// or https://",
        ),
    ],
)
def test_bad_labels_and_annotations_are_named(
    fields: dict[str, Any], where: tuple[str, ...], message: str
) -> None:
    [(loc, text)] = _problems(**fields)
    assert loc == where
    assert message in text


def test_every_reserved_label_is_refused() -> None:
    problems = _problems(labels=dict.fromkeys(sorted(RESERVED_LABELS), "x"))
    assert sorted(loc[1] for loc, _ in problems) == sorted(RESERVED_LABELS)


def test_good_labels_and_annotations_are_kept() -> None:
    assert _problems(labels={"team": "payments", "_tier": 1}, annotations={"dash": "x"}) == []
    r = rule("r", status="failed", labels={"team": "payments"})
    assert r.labels == {"team": "payments"}


# --- labels and annotations on alerts -----------------------------------------------


def test_rule_labels_join_the_relays_and_annotations_are_carried() -> None:
    r = rule(
        "r",
        status=["failed"],
        labels={"team": "payments", "service": "billing"},
        annotations={"runbook_url": "https://wiki.example/r"},
    )
    alert = _failed(r, names=NAMES)
    assert alert.labels == {
        "team": "payments",
        "service": "billing",
        "rule": "r",
        "severity": "critical",
        "source": SOURCE,
        "type": "agent",
        "responder_id": SALES,
        "responder": "Sales Qualifier",
        "agent_id": "agent-1",
    }
    assert alert.annotations == {"runbook_url": "https://wiki.example/r"}
    assert alert.responder == "Sales Qualifier"


def test_running_alerts_carry_labels_annotations_and_names() -> None:
    r = rule("stuck", running_for={"gt": "1m"}, labels={"team": "ops"}, annotations={"a": "b"})
    state = tracked(execution("exec-8", status="running", responder_id=SALES))
    [alert] = evaluate_running([r], [state], ctx=context(5, responder_names=NAMES))
    assert alert.labels["team"] == "ops"
    assert alert.labels["responder"] == "Sales Qualifier"
    assert alert.annotations == {"a": "b"}
    assert alert.summary.startswith("Sales Qualifier agent has been running for 5m")


_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True).filter(
    lambda name: name not in RESERVED_LABELS
)


@given(labels=st.dictionaries(_names, st.text(min_size=1, max_size=5).filter(str.strip)))
def test_rule_labels_never_replace_the_relays(labels: dict[str, str]) -> None:
    plain = _failed(rule("r", status=["failed"]))
    labelled = _failed(rule("r", status=["failed"], labels=labels))
    assert labelled.labels == {**labels, **plain.labels}
    for name, value in plain.labels.items():
        assert labelled.labels[name] == value


# --- responder names in text --------------------------------------------------------


def test_a_known_responder_is_named_in_the_summary_and_description() -> None:
    r = rule("r", status=["failed"])
    named = _failed(r, names=NAMES, output={"error": "quota exceeded"})
    assert named.summary == "Sales Qualifier agent failed: quota exceeded"
    assert f"Responder: Sales Qualifier ({SALES})" in named.description
    assert named.execution is not None
    assert named.execution.responder_id == SALES
    unnamed = _failed(r, output={"error": "quota exceeded"})
    assert unnamed.summary == "agent execution exec-123 failed: quota exceeded"
    assert "responder" not in unnamed.labels
    assert unnamed.responder == SALES


def test_templates_can_name_the_responder() -> None:
    r = rule("r", status=["failed"], summary="{responder} ({responder_id}) {status}")
    assert _failed(r, names=NAMES).summary == f"Sales Qualifier ({SALES}) failed"
    assert _failed(r).summary == f"{SALES} ({SALES}) failed"


def test_windowed_groups_by_responder_use_the_name() -> None:
    r = rule(
        "ratio",
        window="15m",
        failure_ratio={"gt": 0.5},
        group_by=["responder_id"],
        labels={"team": "sales"},
        annotations={"runbook_url": "https://wiki.example/ratio"},
    )
    executions = [
        tracked(execution(f"e-{i}", responder_id=SALES, started=50, ended=55)) for i in range(3)
    ]
    outcome = evaluate_windows([r], executions, {}, ctx=context(60, responder_names=NAMES))
    [(alert, kind, _)] = outcome.alerts
    assert kind == "firing"
    assert alert.labels["responder"] == "Sales Qualifier"
    assert alert.labels["responder_id"] == SALES
    assert alert.labels["team"] == "sales"
    assert alert.annotations == {"runbook_url": "https://wiki.example/ratio"}
    assert alert.summary.endswith("over the last 15m for Sales Qualifier")
    assert "Group: Sales Qualifier" in alert.description
    assert alert.group == {"responder_id": SALES}
    unnamed = evaluate_windows([r], executions, {}, ctx=context(60)).alerts[0][0]
    assert unnamed.summary.endswith(f"for responder_id={SALES}")
    assert "responder" not in unnamed.labels


# --- as check-config reports them -------------------------------------------------------

_CONFIG = """
sources:
  - name: prod
    api_key: key-0123456789
responders:
  cb364d8f: "  Sales   Qualifier "
  empty-name: ""
rules:
  - name: failed
    when: {status: [failed]}
    severity: critical
    sinks: [oncall]
    labels: {team: payments, severity: low}
    annotations: {runbook_url: "ftp://wiki.example/x"}
sinks:
  oncall:
    type: slack
    webhook_url: https://hooks.slack.com/services/T/B/C
    mentions: {critical: ["<!subteam^S0123ABC>", "@here"]}
"""


def test_check_config_names_each_field(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text(_CONFIG)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    found = sorted(str(problem).split(":")[0] for problem in caught.value.problems)
    assert found == [
        "responders.empty-name",
        "rules.0.annotations.runbook_url",
        "rules.0.labels.severity",
        "sinks.oncall.mentions.critical.1",
    ]


def test_responder_names_are_one_tidy_line(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text(_CONFIG.replace('  empty-name: ""\n', "").replace("severity: low", "x: y"))
    path.write_text(
        path.read_text()
        .replace('"ftp://wiki.example/x"', "https://wiki.example/x")
        .replace(', "@here"', "")
    )
    settings = load_settings(path, environ={})
    assert settings.responders == {"cb364d8f": "Sales Qualifier"}
    assert settings.rules[0].labels == {"team": "payments", "x": "y"}
