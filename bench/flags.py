"""What the benches share: the flags a run was given, printed first so that a figure from
a non-default run says so."""

from __future__ import annotations

import argparse


def non_default_flags(args: argparse.Namespace, parser: argparse.ArgumentParser) -> list[str]:
    return [
        f"--{name.replace('_', '-')}={value}"
        for name, value in sorted(vars(args).items())
        if value != parser.get_default(name)
    ]
