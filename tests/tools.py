"""External tools some tests drive (promtool, prometheus, chromium), found on PATH.

In CI (`CI=true`) a missing tool fails the test: CI installs them with
`scripts/ensure-tools.sh`, so a missing one is a broken pipeline, not a reason to pass.
Elsewhere the test is skipped with a reason that says how to install it.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

INSTALL_HINT = (
    "run scripts/ensure-tools.sh as root "
    "(Debian packages prometheus, prometheus-alertmanager, chromium)"
)

# How the tests run Chromium: headless, in a container (no sandbox, no GPU, a small
# /dev/shm), and without reaching out to the network by itself.
HEADLESS_CHROMIUM = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
)


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def unavailable(reason: str, *, required: str = "this test must run") -> NoReturn:
    """The one way a test says something it needs is missing: a failure under
    `CI=true` (CI provides everything), a skip with `reason` elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: {required})")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    """The absolute path of `name`; fails (in CI) or skips (elsewhere) when it is missing."""
    path = shutil.which(name)
    if path is not None:
        return path
    unavailable(f"{name} is not installed; {INSTALL_HINT}", required="the tool is required")
