"""Settings models and the loader: defaults, validation messages, interpolation, env
overrides and `*_file` secrets. Everything goes through real files in tmp_path."""

from __future__ import annotations

import base64
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from relay.errors import ConfigError
from relay.settings import (
    ConsoleSinkSettings,
    RateLimit,
    Settings,
    SlackSinkSettings,
    WebhookSinkSettings,
    parse_rate_limit,
)
from relay.settings.loader import load_settings, parse_settings

REPO = Path(__file__).resolve().parent.parent
API_KEY = "zk-live-5f8a7c1e9b3d"
SLACK_URL = "https://hooks.slack.com/services/T0001/B0001/sEcReTsEcReT"

MINIMAL = f"""
sources:
  - name: prod
    api_key: {API_KEY}
rules:
  - name: failed
    when: {{status: [failed]}}
    severity: critical
    sinks: [oncall]
sinks:
  oncall:
    type: console
"""


def write(tmp_path: Path, text: str, name: str = "relay.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    return load_settings(write(tmp_path, text), environ=env or {})


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text, env)
    return [str(problem) for problem in caught.value.problems]


def only_problem(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    found = problems(tmp_path, text, env)
    assert len(found) == 1, found
    return found[0]


# --- defaults and shapes --------------------------------------------------------------


def test_minimal_config_gets_the_documented_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL)
    source = settings.sources[0]
    assert source.base_url == "https://api.endless.zaia.app"
    assert source.api_key.get_secret_value() == API_KEY
    assert source.auth_scheme == "bearer"
    assert source.poll_interval == timedelta(seconds=15)
    assert (source.page_size, source.max_pages, source.max_refreshes_per_cycle) == (100, 20, 50)
    assert source.on_first_start == "baseline"
    assert source.retry_backoff == timedelta(milliseconds=500)
    assert settings.store.url == "sqlite:///var/lib/zaia-relay/state.db"
    assert settings.store.retention == timedelta(days=7)
    assert (settings.server.host, settings.server.port) == ("0.0.0.0", 8080)
    assert settings.server.admin_token is None
    assert settings.log.level == "info"
    assert settings.alerts.link_template == "https://app.zaia.app/executions/{execution_id}"
    assert settings.alerts.excerpt_chars == 500
    rule = settings.rules[0]
    assert rule.repeat_interval == timedelta(hours=4)
    assert not rule.windowed
    assert not rule.include_input
    assert isinstance(settings.sinks["oncall"], ConsoleSinkSettings)


def test_example_config_loads_with_its_environment() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    env = {"ZAIA_API_KEY": API_KEY, "SLACK_WEBHOOK_URL": SLACK_URL, "WEBHOOK_SECRET": secret}
    settings = load_settings(REPO / "config" / "relay.example.yaml", environ=env)
    assert len(settings.rules) >= 6
    oncall = settings.sinks["oncall"]
    assert isinstance(oncall, SlackSinkSettings)
    assert oncall.webhook_url is not None
    assert oncall.webhook_url.get_secret_value() == SLACK_URL
    assert oncall.rate_limit == RateLimit(count=1, per=timedelta(seconds=1))
    finops = settings.sinks["finops"]
    assert isinstance(finops, WebhookSinkSettings)
    assert finops.signing_key == b"k" * 32
    assert settings.rule("agent-failure-rate").window == timedelta(minutes=15)
    assert settings.silences[0].ends == datetime(2026, 12, 1, 6, tzinfo=UTC)


def test_demo_config_loads_without_any_environment() -> None:
    settings = load_settings(REPO / "config" / "demo.yaml", environ={})
    assert settings.sources[0].name == "demo"
    assert settings.sources[0].api_key.get_secret_value() == "demo-key"
    assert [rule.name for rule in settings.rules] == [
        "execution-failed",
        "execution-cancelled",
        "expensive-execution",
        "stuck-execution",
        "agent-failure-rate",
        "credit-burn",
    ]
    assert list(settings.sinks) == ["console"]


def test_settings_are_frozen_and_hide_secrets_in_repr(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL)
    with pytest.raises(ValidationError):
        settings.sources[0].name = "other"  # type: ignore[misc]
    assert API_KEY not in repr(settings)
    assert API_KEY not in settings.model_dump_json()


@pytest.mark.parametrize(
    ("text", "count", "per_s"),
    [("1/s", 1, 1), ("30/m", 30, 60), ("10/5s", 10, 5), ("0.5/s", 0.5, 1), ("100/1h", 100, 3600)],
)
def test_rate_limits(text: str, count: float, per_s: float) -> None:
    limit = parse_rate_limit(text)
    assert (limit.count, limit.per.total_seconds()) == (count, per_s)
    assert parse_rate_limit(str(limit)) == limit


# --- problems -----------------------------------------------------------------------


def test_unknown_sink_names_the_defined_ones(tmp_path: Path) -> None:
    text = MINIMAL.replace("sinks: [oncall]", "sinks: [pager]") + "  finops: {type: console}\n"
    assert only_problem(tmp_path, text) == (
        "rules.0.sinks: unknown sink 'pager'; defined sinks: finops, oncall (line 9)"
    )


def test_bad_duration_names_its_path_and_line(tmp_path: Path) -> None:
    text = MINIMAL.replace("    api_key:", "    poll_interval: 15 seconds\n    api_key:")
    assert only_problem(tmp_path, text) == (
        "sources.0.poll_interval: invalid duration '15 seconds': use a number with a unit, "
        "like 15s, 5m, 2h or 7d (line 4)"
    )


def test_a_bare_number_is_not_a_duration(tmp_path: Path) -> None:
    text = MINIMAL.replace("    api_key:", "    poll_interval: 30\n    api_key:")
    assert "sources.0.poll_interval: add a unit: write 30s" in only_problem(tmp_path, text)


def test_missing_api_key(tmp_path: Path) -> None:
    text = MINIMAL.replace(f"    api_key: {API_KEY}\n", "")
    assert only_problem(tmp_path, text) == (
        "sources.0.api_key: required (or api_key_file: a file holding it) (line 3)"
    )


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    text = MINIMAL.replace("    api_key:", "    pol_interval: 30s\n    api_key:")
    assert only_problem(tmp_path, text) == (
        "sources.0.pol_interval: unknown key (did you mean 'poll_interval'?) (line 4)"
    )


def test_unknown_key_inside_a_sink_of_a_given_type(tmp_path: Path) -> None:
    text = MINIMAL.replace("type: console", "type: console\n    colour: never")
    assert only_problem(tmp_path, text).startswith(
        "sinks.oncall.colour: unknown key (did you mean 'color'?)"
    )


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = """
    sources:
      - name: prod
        api_key: k1
        page_size: 500
      - name: prod
        api_key: k2
    server: {listen: nowhere}
    rules:
      - name: r
        when: {status: [exploded]}
        severity: high
        sinks: [nope]
    sinks:
      s: {type: slak}
    """
    found = problems(tmp_path, text)
    assert [line.split(":")[0] for line in found] == [
        "sources.0.page_size",
        "sources.1.name",
        "server.listen",
        "rules.0.when.status.0",
        "rules.0.severity",
        "rules.0.sinks",
        "sinks.s.type",
    ]
    assert "duplicate source name 'prod' (also sources.0)" in found[1]
    assert (
        "unknown type 'slak'; use one of: slack, webhook, alertmanager, console, pagerduty, teams"
        in found[6]
    )


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - name: prod\n    api_key: [oops\nstore: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    (problem,) = caught.value.problems
    assert problem.path.startswith(f"{path}:")
    assert problem.message.startswith("invalid YAML:")
    assert int(problem.path.rsplit(":", 1)[1]) in (3, 4)


def test_duplicate_keys_are_problems(tmp_path: Path) -> None:
    text = MINIMAL + "store: {retention: 1d}\nstore: {retention: 2d}\n"
    assert only_problem(tmp_path, text) == (
        "store: duplicate key: also on line 13; keep only one (line 14)"
    )


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "absent.yaml", environ={})
    assert [str(p) for p in caught.value.problems] == [f"{tmp_path / 'absent.yaml'}: no such file"]


def test_no_file_named_anywhere() -> None:
    with pytest.raises(ConfigError, match="pass -c FILE or set RELAY_CONFIG"):
        load_settings(None, environ={})


def test_relay_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL)
    settings = load_settings(None, environ={"RELAY_CONFIG": str(path)})
    assert settings.sources[0].name == "prod"


# --- rules --------------------------------------------------------------------------


def rule_problems(tmp_path: Path, rule: str) -> list[str]:
    text = MINIMAL.replace(
        "  - name: failed\n    when: {status: [failed]}\n",
        "  - name: failed\n" + textwrap.indent(textwrap.dedent(rule).strip(), "    ") + "\n",
    )
    return problems(tmp_path, text)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "when: {failure_ratio: {gt: 0.2}}",
            "rules.0.when.failure_ratio: only for windowed rules: add window:",
        ),
        (
            "when: {status: [failed]}\ngroup_by: [responder_id]",
            "rules.0.group_by: only for windowed rules",
        ),
        (
            "window: 15m\nwhen: {failure_ratio: {gt: 0.2}, running_for: {gt: 5m}}",
            "rules.0.when.running_for: not for windowed rules",
        ),
        ("window: 15m\nwhen: {types: [agent]}", "rules.0.when: a windowed rule needs"),
        ("when: {}", "rules.0.when: add at least one condition"),
        ("when: {root_only: false}", "rules.0.when: add at least one condition"),
        (
            "when: {status: [failed], running_for: {gt: 5m}}",
            "rules.0.when.running_for: applies to running executions",
        ),
        ("when: {credits_used: {gt: 1, gte: 2}}", "rules.0.when.credits_used: give exactly one"),
        ("when: {credits_used: {}}", "rules.0.when.credits_used: give exactly one"),
        ("window: 1h\nwhen: {failure_ratio: {gt: 2}}", "rules.0.when.failure_ratio.gt: should be"),
        ("when: {status: []}", "rules.0.when.status: should not be empty"),
        ("when: {origin_types: [email]}", "rules.0.when.origin_types.0: should be 'api'"),
        ("when: {status: [failed]}\nsummary: '{oops'", "rules.0.summary: invalid template"),
    ],
)
def test_rule_coherence(tmp_path: Path, rule: str, expected: str) -> None:
    found = rule_problems(tmp_path, rule)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_windowed_rule_and_shorthands(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "    when: {status: [failed]}\n",
        "    window: 15m\n    group_by: responder_id\n"
        "    when: {failure_ratio: {gte: 0.25}, min_executions: 20, types: agent}\n",
    )
    rule = load(tmp_path, text).rules[0]
    assert rule.windowed
    assert rule.group_by == ["responder_id"]
    assert rule.when.types == ["agent"]
    assert rule.when.failure_ratio is not None
    assert rule.when.failure_ratio.holds(0.25)
    assert not rule.when.failure_ratio.holds(0.24)


def test_duplicate_rule_names(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "sinks:\n  oncall",
        "  - name: failed\n    when: {status: [cancelled]}\n    severity: info\n"
        "    sinks: [oncall]\nsinks:\n  oncall",
    )
    assert only_problem(tmp_path, text).startswith(
        "rules.1.name: duplicate rule name 'failed' (also rules.0)"
    )


# --- sinks and silences -------------------------------------------------------------


@pytest.mark.parametrize(
    ("sink", "expected"),
    [
        ("{type: slack}", "sinks.oncall: give exactly one of webhook_url or bot_token"),
        ("{type: slack, bot_token: xoxb-1}", "sinks.oncall.channel: required with bot_token"),
        ("{type: slack, webhook_url: ftp://x}", "sinks.oncall.webhook_url: should be an http"),
        ("{type: slack, webhook_url: https://x, rate_limit: fast}", "sinks.oncall.rate_limit:"),
        ("{type: webhook, url: https://x, secret: 'not base64!'}", "sinks.oncall.secret:"),
        (
            "{type: webhook, url: https://x, headers: {Webhook-Signature: x}}",
            "sinks.oncall.headers: Webhook-Signature is set by the relay",
        ),
        ("{type: webhook, url: https://x, retry_initial: 10m}", "sinks.oncall.retry_initial:"),
        ("{type: webhook, url: https://x, max_retry_after: 0s}", "sinks.oncall.max_retry_after:"),
        (
            "{type: alertmanager, url: http://am, bearer_token: t, "
            "basic_auth: {username: u, password: p}}",
            "sinks.oncall.bearer_token: give basic_auth or bearer_token, not both",
        ),
        ("{type: console, color: maybe}", "sinks.oncall.color: should be 'auto'"),
        ("{color: never}", "sinks.oncall.type: required"),
        ("{type: webhook}", "sinks.oncall.url: required"),
    ],
)
def test_sink_validation(tmp_path: Path, sink: str, expected: str) -> None:
    text = MINIMAL.replace("  oncall:\n    type: console\n", f"  oncall: {sink}\n")
    found = problems(tmp_path, text)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_invalid_sink_name(tmp_path: Path) -> None:
    text = MINIMAL + '  "on call": {type: console}\n'
    assert only_problem(tmp_path, text).startswith("sinks.on call: invalid name: should be 1-64")


def test_silences(tmp_path: Path) -> None:
    base = MINIMAL + "silences:\n"
    ok = load(
        tmp_path, base + "  - matchers: {rule: failed}\n    ends: 2026-12-01T06:00:00+02:00\n"
    )
    assert ok.silences[0].ends == datetime(2026, 12, 1, 4, tzinfo=UTC)
    assert ok.silences[0].starts is None
    assert ok.silences[0].creator == "config"

    reversed_window = "  - matchers: {rule: failed}\n    starts: 2026-12-02T00:00:00Z\n"
    reversed_window += "    ends: 2026-12-01T00:00:00Z\n"
    assert only_problem(tmp_path, base + reversed_window).startswith(
        "silences.0.ends: should be after starts"
    )
    naive = "  - matchers: {severity: info}\n    ends: 2026-12-01T00:00:00\n"
    assert only_problem(tmp_path, base + naive).startswith("silences.0.ends: needs a timezone")
    empty = "  - matchers: {}\n    ends: 2026-12-01T00:00:00Z\n"
    assert only_problem(tmp_path, base + empty).startswith("silences.0.matchers: give at least")
    unknown = "  - matchers: {rule: typo}\n    ends: 2026-12-01T00:00:00Z\n"
    assert only_problem(tmp_path, base + unknown).startswith(
        "silences.0.matchers.rule: unknown rule 'typo'; defined rules: failed"
    )


# --- interpolation ------------------------------------------------------------------


def test_interpolation_with_and_without_default(tmp_path: Path) -> None:
    text = MINIMAL.replace(API_KEY, "${ZAIA_API_KEY}") + (
        "server:\n  listen: ${LISTEN:-127.0.0.1:9000}\n  admin_token: ${RELAY_ADMIN_TOKEN:-}\n"
        "alerts:\n  link_template: https://${HOST}/x/{execution_id}?a=$${literal}\n"
    )
    settings = load(tmp_path, text, {"ZAIA_API_KEY": "from-env-1234", "HOST": "app.example"})
    assert settings.sources[0].api_key.get_secret_value() == "from-env-1234"
    assert settings.server.listen == "127.0.0.1:9000"
    assert settings.server.admin_token is None  # empty means not configured
    assert settings.alerts.link_template == "https://app.example/x/{execution_id}?a=${literal}"

    env = {
        "ZAIA_API_KEY": "k-1234",
        "HOST": "h",
        "LISTEN": "0.0.0.0:1",
        "RELAY_ADMIN_TOKEN": "t" * 16,
    }
    settings = load(tmp_path, text, env)
    assert settings.server.port == 1
    assert settings.server.admin_token is not None


def test_unset_variable_names_path_and_variable(tmp_path: Path) -> None:
    text = MINIMAL.replace(API_KEY, "${ZAIA_API_KEY}")
    assert only_problem(tmp_path, text) == (
        "sources.0.api_key: environment variable ZAIA_API_KEY is not set "
        "(or write ${ZAIA_API_KEY:-default}) (line 4)"
    )


def test_malformed_reference(tmp_path: Path) -> None:
    text = MINIMAL.replace(API_KEY, "${not-a-name}")
    assert only_problem(tmp_path, text).startswith("sources.0.api_key: invalid reference")


def test_interpolated_values_are_not_reparsed(tmp_path: Path) -> None:
    # A value that looks like YAML stays the string it is.
    text = MINIMAL.replace(API_KEY, "${KEY}")
    settings = load(tmp_path, text, {"KEY": "[a, b]: #c"})
    assert settings.sources[0].api_key.get_secret_value() == "[a, b]: #c"


# --- environment overrides ----------------------------------------------------------


def test_overrides_nest_with_double_underscores(tmp_path: Path) -> None:
    env = {
        "RELAY_SERVER__LISTEN": "127.0.0.1:9090",
        "RELAY_STORE__RETENTION": "3d",
        "RELAY_SOURCES__0__POLL_INTERVAL": "30s",
        "RELAY_SOURCES__0__PAGE_SIZE": "50",
        "RELAY_SOURCES__0__RESPONDER_IDS": "[agent-1, agent-2]",
        "RELAY_SINKS__ONCALL__COLOR": "never",
        "RELAY_RULES__0__WHEN__ROOT_ONLY": "true",
        "RELAY_CONFIG": "ignored-here",
        "RELAY_ADMIN_TOKEN": "not-an-override",
    }
    settings = load(tmp_path, MINIMAL, env)
    assert settings.server.listen == "127.0.0.1:9090"
    assert settings.store.retention == timedelta(days=3)
    assert settings.sources[0].poll_interval == timedelta(seconds=30)
    assert settings.sources[0].page_size == 50
    assert settings.sources[0].responder_ids == ["agent-1", "agent-2"]
    sink = settings.sinks["oncall"]
    assert isinstance(sink, ConsoleSinkSettings)
    assert sink.color == "never"
    assert settings.rules[0].when.root_only is True


def test_override_matches_dict_keys_case_and_dash_insensitively(tmp_path: Path) -> None:
    text = MINIMAL.replace("oncall", "on-call")
    settings = load(tmp_path, text, {"RELAY_SINKS__ON_CALL__COLOR": "always"})
    sink = settings.sinks["on-call"]
    assert isinstance(sink, ConsoleSinkSettings)
    assert sink.color == "always"


def test_override_keeps_numeric_looking_secrets_verbatim(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL, {"RELAY_SOURCES__0__API_KEY": "0123e5"})
    assert settings.sources[0].api_key.get_secret_value() == "0123e5"


def test_bad_override_names_the_variable(tmp_path: Path) -> None:
    env = {"RELAY_SOURCES__3__POLL_INTERVAL": "30s", "RELAY_SOURCES__0__NAME__X": "1"}
    assert problems(tmp_path, MINIMAL, env) == [
        "RELAY_SOURCES__0__NAME__X: sources.0.name is a value, not a section",
        "RELAY_SOURCES__3__POLL_INTERVAL: sources has 1 entries: use an index from 0 to 0",
    ]


def test_override_creates_missing_sections(tmp_path: Path) -> None:
    settings = load(tmp_path, MINIMAL, {"RELAY_SERVER__ADMIN_TOKEN": "adm-7f3e9a-0b1c2d3e"})
    assert settings.server.admin_token is not None
    assert settings.server.admin_token.get_secret_value() == "adm-7f3e9a-0b1c2d3e"


def test_invalid_override_value_says_where_it_came_from(tmp_path: Path) -> None:
    found = problems(
        tmp_path, MINIMAL, {"RELAY_SOURCES__0__POLL_INTERVAL": "soon", "RELAY_LOG__LEVL": "x"}
    )
    assert found == [
        "sources.0.poll_interval: invalid duration 'soon': use a number with a unit, "
        "like 15s, 5m, 2h or 7d (set by RELAY_SOURCES__0__POLL_INTERVAL)",
        "log.levl: unknown key (did you mean 'level'?) (set by RELAY_LOG__LEVL)",
    ]


# --- secrets from files, and secrets kept out of messages ---------------------------


def test_secret_files_are_read_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "api-key").write_text(API_KEY + "\n", encoding="utf-8")
    absolute = tmp_path / "slack-url"
    absolute.write_text(SLACK_URL + "\r\n", encoding="utf-8")
    text = MINIMAL.replace(f"api_key: {API_KEY}", "api_key_file: secrets/api-key").replace(
        "type: console", f"type: slack\n    webhook_url_file: {absolute}"
    )
    settings = load(tmp_path, text)
    assert settings.sources[0].api_key.get_secret_value() == API_KEY
    sink = settings.sinks["oncall"]
    assert isinstance(sink, SlackSinkSettings)
    assert sink.webhook_url is not None
    assert sink.webhook_url.get_secret_value() == SLACK_URL


def test_secret_file_problems_name_the_field_not_the_content(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(API_KEY, encoding="utf-8")
    both = MINIMAL.replace(f"api_key: {API_KEY}", f"api_key: {API_KEY}\n    api_key_file: key")
    found = only_problem(tmp_path, both)
    assert found.startswith("sources.0.api_key: set either api_key or api_key_file, not both")
    assert API_KEY not in found

    missing = MINIMAL.replace(f"api_key: {API_KEY}", "api_key_file: /nonexistent/zaia-key")
    assert only_problem(tmp_path, missing).startswith(
        "sources.0.api_key: cannot read api_key_file '/nonexistent/zaia-key': "
        "No such file or directory"
    )
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    empty = MINIMAL.replace(f"api_key: {API_KEY}", "api_key_file: empty")
    assert "is empty" in only_problem(tmp_path, empty)


def test_file_key_only_for_secret_fields(tmp_path: Path) -> None:
    text = MINIMAL.replace("    api_key:", "    name_file: x\n    api_key:")
    assert only_problem(tmp_path, text).startswith("sources.0.name_file: unknown key")


def test_secrets_never_appear_in_problems(tmp_path: Path) -> None:
    token_url = "ftp://hooks.example.com/T0/B0/tOkEnInUrL"
    text = f"""
    sources:
      - name: prod
        api_key: {API_KEY}
        page_size: {API_KEY}
        auth_scheme: {API_KEY}
    sinks:
      a: {{type: webhook, url: "{token_url}", secret: "whsec_!!{API_KEY}", timeout: 1x}}
      b: {{type: slack, webhook_url: "{token_url}"}}
      c: {{type: slack, webhook_url: [{API_KEY}]}}
    """
    found = problems(tmp_path, text, {"RELAY_SINKS__B__WEBHOOK_URL": "tOkEnInEnV"})
    assert len(found) >= 5
    joined = "\n".join(found)
    for secret in (API_KEY, "tOkEnInUrL", "tOkEnInEnV"):
        assert secret not in joined


def test_programmatic_settings_are_cross_checked() -> None:
    data = {
        "sources": [{"name": "s", "api_key": "k"}],
        "rules": [{"name": "r", "when": {"status": "failed"}, "severity": "info", "sinks": "x"}],
    }
    with pytest.raises(ValidationError, match="unknown sink 'x'"):
        Settings.model_validate(data)
    settings = parse_settings(
        "sources: [{name: s, api_key: k}]\nsinks: {x: {type: console}}\n", environ={}
    )
    assert settings.source("s").api_key.get_secret_value() == "k"
