"""The container image's recipe: hadolint-clean, non-root, read-only-root friendly.

No image is built here (the test machines run no Docker daemon); the Dockerfile is linted
with hadolint and its instructions are checked against the invariants it states, and the
build context that .dockerignore lets through is checked to hold what the build copies.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy_support import (
    DOCKERFILE,
    ROOT,
    Instruction,
    exec_form,
    healthcheck_command,
    parse_dockerfile,
    require_tool,
)

DOCKERIGNORE = ROOT / ".dockerignore"
CONFIG_PATH = "/etc/zaia-relay/relay.yaml"


INSTRUCTIONS = parse_dockerfile(DOCKERFILE.read_text())
FINAL_STAGE = max(i.stage for i in INSTRUCTIONS)


def final(keyword: str) -> list[Instruction]:
    return [i for i in INSTRUCTIONS if i.keyword == keyword and i.stage == FINAL_STAGE]


def test_hadolint_finds_nothing(tmp_path: Path) -> None:
    hadolint = require_tool("hadolint")
    # An empty HOME and working directory: no user or project hadolint config can relax it.
    result = subprocess.run(
        [
            *(hadolint, "--no-color", "--format", "json", "--failure-threshold", "style"),
            *("--disable-ignore-pragma", str(DOCKERFILE)),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
        check=False,
    )
    findings = json.loads(result.stdout or "[]")
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert result.returncode == 0, result.stderr


def test_hadolint_does_find_problems(tmp_path: Path) -> None:
    """The clean result above means something: a sloppy Dockerfile is reported."""
    hadolint = require_tool("hadolint")
    sloppy = tmp_path / "Dockerfile"
    sloppy.write_text("FROM python\nRUN pip install requests\nCMD zaia-relay run\n")
    result = subprocess.run(
        [hadolint, "--no-color", "--format", "json", str(sloppy)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3006", "DL3013", "DL3025"} <= codes
    assert result.returncode != 0


def test_multi_stage_on_slim_python_311() -> None:
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert base is not None
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", base.group(1))
    froms = [i.args for i in INSTRUCTIONS if i.keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE}"]
    # The final stage takes only the built venv from the build stage.
    copies_from = [i.args for i in final("COPY") if i.args.startswith("--from")]
    assert copies_from == ["--from=build /opt/zaia-relay /opt/zaia-relay"]


def test_runs_as_uid_10001_never_root() -> None:
    users = final("USER")
    assert [u.args for u in users] == ["10001:10001"]
    # Nothing runs after the switch as another user.
    last_user = INSTRUCTIONS.index(users[-1])
    assert all(i.keyword != "USER" for i in INSTRUCTIONS[last_user + 1 :])
    setup = " ".join(i.args for i in final("RUN"))
    assert "--uid 10001" in setup
    assert "--gid 10001" in setup


def test_default_process_is_zaia_relay_run_with_the_mounted_config() -> None:
    (entrypoint,) = final("ENTRYPOINT")
    (cmd,) = final("CMD")
    command = exec_form(entrypoint) + exec_form(cmd)
    assert command[:2] == ["zaia-relay", "run"]
    assert command[2:] == ["--config", CONFIG_PATH]
    env = " ".join(i.args for i in final("ENV"))
    # Other commands (`docker run IMAGE check-config`) find the same file.
    assert f"RELAY_CONFIG={CONFIG_PATH}" in env
    assert any(i.args.endswith(f" {CONFIG_PATH}") for i in final("COPY"))


def test_read_only_root_filesystem_friendly() -> None:
    volumes = [json.loads(i.args) for i in final("VOLUME")]
    assert volumes == [["/var/lib/zaia-relay"]]
    env = " ".join(i.args for i in final("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # no .pyc written next to the code
    assert "TMPDIR=/tmp" in env
    assert "HOME=/var/lib/zaia-relay" in env
    # The bytecode is compiled at build time instead.
    build = " ".join(i.args for i in INSTRUCTIONS if i.keyword == "RUN" and i.stage == 0)
    assert "compileall" in build
    # The state directory belongs to the relay's user.
    setup = " ".join(i.args for i in final("RUN"))
    assert "chown 10001:10001 /var/lib/zaia-relay" in setup


def test_healthcheck_asks_healthz_with_python_urllib() -> None:
    (healthcheck,) = final("HEALTHCHECK")
    command = exec_form(healthcheck)
    assert command[:2] == ["python", "-c"]
    assert "urllib.request" in command[2]
    env = " ".join(i.args for i in final("ENV"))
    assert "ZAIA_RELAY_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz" in env
    assert any(i.args == "8080" for i in final("EXPOSE"))


def test_healthcheck_command_fails_when_nothing_answers() -> None:
    command = healthcheck_command()
    # Port 9 (discard) on loopback: nothing listens, so the check must exit non-zero.
    result = subprocess.run(
        [sys.executable, *command[1:]],
        env={**os.environ, "ZAIA_RELAY_HEALTHCHECK_URL": "http://127.0.0.1:9/healthz"},
        capture_output=True,
        check=False,
        timeout=30,
    )
    assert result.returncode != 0


# --- the build context ---------------------------------------------------------------


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus `**`) as a regular expression."""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            parts.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            parts.append(".*")
            i += 2
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            parts.append(pattern[i : end + 1])
            i = end + 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(parts))


def in_build_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    pieces = path.split("/")
    prefixes = ["/".join(pieces[: n + 1]) for n in range(len(pieces))]
    included = True
    for exception, regex in rules:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            included = exception
    return included


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = line.removeprefix("!").strip().strip("/")
        rules.append((exception, _pattern_regex(pattern)))
    return rules


def test_build_context_holds_what_the_build_copies_and_nothing_local() -> None:
    rules = dockerignore_rules()
    copied = [
        i.args.split()[:-1] for i in INSTRUCTIONS if i.keyword == "COPY" and "--from" not in i.args
    ]
    for sources in copied:
        for source in sources:
            assert in_build_context(source.removeprefix("./").rstrip("/"), rules), (
                f"{source} is .dockerignored"
            )
    package_files = [
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "relay").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    missing = [p for p in package_files if not in_build_context(p, rules)]
    assert missing == []
    assert in_build_context("relay/demo.yaml", rules)
    for local in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/test_dockerfile.py",
        "relay/__pycache__/cli.cpython-311.pyc",
        "state.db",
        "relay/state.db-wal",
        "config/demo.yaml",
        ".env",
    ):
        assert not in_build_context(local, rules), local


@pytest.mark.parametrize(
    ("path", "expected"),
    [("README.md", True), ("docs/install.md", False), ("relay/sim/app.py", True)],
)
def test_dockerignore_matcher(path: str, expected: bool) -> None:
    assert in_build_context(path, dockerignore_rules()) is expected


def test_the_image_default_config_is_valid() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "relay", "check-config", "-c", str(ROOT / "config/container.yaml")],
        env={**os.environ, "ZAIA_API_KEY": "dummy-key"},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("config OK")
