"""`zaia-relay check-config`: run as a real subprocess (as an operator or CI would) for
the exit codes and output format, and in-process for the cheaper cases."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from relay.cli.main import COMMANDS, main

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "zaia-relay"
API_KEY = "zk-live-0b1c2d3e4f5a"
SLACK_URL = "https://hooks.slack.com/services/T0001/B0001/pRiVaTePaTh"
EXAMPLE_ENV = {
    "ZAIA_API_KEY": API_KEY,
    "SLACK_WEBHOOK_URL": SLACK_URL,
    "WEBHOOK_SECRET": "whsec_" + base64.b64encode(b"s" * 32).decode(),
}

VALID = f"""
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
    type: slack
    webhook_url: {SLACK_URL}
"""


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # A clean environment: no RELAY_* variable of the developer's shell leaks in.
    base = {key: value for key, value in os.environ.items() if not key.startswith("RELAY_")}
    return subprocess.run(
        [str(CLI), *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relay.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.mark.slow
def test_example_config_passes(tmp_path: Path) -> None:
    result = run_cli(
        "check-config", "-c", str(REPO / "config" / "relay.example.yaml"), env=EXAMPLE_ENV
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config OK: 1 source, ")
    assert result.stderr == ""


@pytest.mark.slow
def test_demo_config_passes_from_relay_config_env() -> None:
    result = run_cli("check-config", env={"RELAY_CONFIG": str(REPO / "config" / "demo.yaml")})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "config OK: 1 source, 6 rules, 1 sink, 3 routes\n"


@pytest.mark.slow
def test_python_dash_m_relay_runs_the_same_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relay", "check-config", "-c", str(REPO / "config" / "demo.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config OK")


@pytest.mark.slow
def test_each_problem_is_one_line_on_stderr_and_no_secret_leaks(tmp_path: Path) -> None:
    text = f"""
    sources:
      - name: prod
        pol_interval: 15s
        request_timeout: 10 sec
        page_size: {API_KEY}
    rules:
      - name: failed
        when: {{status: [failed]}}
        severity: critical
        sinks: [pager]
    sinks:
      oncall:
        type: slack
        webhook_url: {SLACK_URL}
        group_wait: {SLACK_URL}
      finops:
        type: webhook
        url: ${{FINOPS_URL}}
        secret: whsec_!!{API_KEY}
    """
    result = run_cli("check-config", "-c", str(write(tmp_path, text)))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        "sources.0.api_key",
        "sources.0.pol_interval",
        "sources.0.request_timeout",
        "sources.0.page_size",
        "rules.0.sinks",
        "sinks.oncall.group_wait",
        "sinks.finops.url",
    ]
    joined = result.stderr
    assert "sources.0.api_key: required (or api_key_file: a file holding it)" in joined
    assert "sources.0.pol_interval: unknown key (did you mean 'poll_interval'?)" in joined
    assert "sources.0.request_timeout: invalid duration '10 sec'" in joined
    assert "rules.0.sinks: unknown sink 'pager'; defined sinks: finops, oncall" in joined
    assert "sinks.finops.url: environment variable FINOPS_URL is not set" in joined
    assert "sinks.oncall.group_wait: invalid duration '[redacted]'" in joined
    assert API_KEY not in joined
    assert SLACK_URL not in joined
    assert "pRiVaTePaTh" not in joined


@pytest.mark.slow
def test_malformed_yaml_shows_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "sources:\n  - name: prod\n    api_key: 'unterminated\nstore: {}\n")
    result = run_cli("check-config", "-c", str(path))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"{path}:")
    assert ": invalid YAML: " in line
    assert line.split(":")[1].isdigit()


@pytest.mark.slow
def test_missing_file(tmp_path: Path) -> None:
    result = run_cli("check-config", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert result.stderr == f"{tmp_path / 'nope.yaml'}: no such file\n"


@pytest.mark.slow
def test_environment_interpolation_and_overrides(tmp_path: Path) -> None:
    text = VALID.replace(API_KEY, "${KEY}").replace(
        "sources:", "server:\n  listen: ${LISTEN:-127.0.0.1:9000}\nsources:"
    )
    path = write(tmp_path, text)
    assert run_cli("check-config", "-c", str(path)).returncode == 2
    env = {"KEY": API_KEY, "RELAY_SOURCES__0__POLL_INTERVAL": "30s"}
    assert run_cli("check-config", "-c", str(path), env=env).returncode == 0
    bad = run_cli(
        "check-config", "-c", str(path), env={**env, "RELAY_SINKS__ONCALL__GROUP_WAIT": "x"}
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("sinks.oncall.group_wait: invalid duration 'x'")
    assert "(set by RELAY_SINKS__ONCALL__GROUP_WAIT)" in bad.stderr


# --- in-process ---------------------------------------------------------------------


def test_secret_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "api-key").write_text(API_KEY + "\n", encoding="utf-8")
    path = write(tmp_path, VALID.replace(f"api_key: {API_KEY}", "api_key_file: api-key"))
    assert main(["check-config", "-c", str(path)]) == 0
    assert capsys.readouterr().out == "config OK: 1 source, 1 rule, 1 sink\n"

    (tmp_path / "api-key").unlink()
    assert main(["check-config", "-c", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sources.0.api_key: cannot read api_key_file")
    assert "No such file or directory" in err


def test_no_command_prints_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "check-config" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("zaia-relay ")


def test_commands_are_a_registry() -> None:
    assert "check-config" in COMMANDS
    assert COMMANDS["check-config"].help


# --- what can never work, and YAML that would quote a secret --------------------------


@pytest.mark.parametrize(
    "value",
    [
        "!s3cr3t-T0ken-value",
        "*s3cr3t-T0ken-value",
        "!!int s3cr3t-T0ken-value",
        "!!timestamp s3cr3t-T0ken-value",  # PyYAML raises AttributeError here
        "@s3cr3t-T0ken",
    ],
)
def test_a_yaml_error_never_prints_the_value(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, VALID.replace(f"api_key: {API_KEY}", f"api_key: {value}"))
    assert main(["check-config", "-c", str(path)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"{path}:4: invalid YAML: ")
    assert "s3cr3t" not in line
    assert "quote" in line  # the hint: quote the value (or drop its tag)


def test_config_that_can_never_deliver_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = VALID + textwrap.indent(
        textwrap.dedent(
            """
            hook:
              type: webhook
              url: https://relay:hunter2-pass@hooks.example.com/in
              headers: {Authorization: Bearer hdr-T0ken-123456}
            am:
              type: alertmanager
              url: https://relay:hunter2-pass@am.example.com
              bearer_token: am-T0ken-123456
              labels: {team-name: sre, team_name: sre, 0day: x}
            """
        ),
        "  ",
    )
    text += "server:\n  admin_token: a\n"
    assert main(["check-config", "-c", str(write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    problems = {line.split(": ", 1)[0]: line for line in err.splitlines()}
    assert sorted(problems) == [
        "server.admin_token",
        "sinks.am.bearer_token",
        "sinks.am.labels.0day",
        "sinks.am.labels.team-name",
        "sinks.hook.headers.Authorization",
    ]
    assert "the HTTP client refuses to send both" in problems["sinks.hook.headers.Authorization"]
    assert "[a-zA-Z_][a-zA-Z0-9_]*" in problems["sinks.am.labels.team-name"]
    assert "at least 16 characters" in problems["server.admin_token"]
    for secret in ("hunter2-pass", "hdr-T0ken-123456", "am-T0ken-123456"):
        assert secret not in err
