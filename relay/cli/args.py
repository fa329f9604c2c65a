"""Argument helpers shared by the commands: the `nargs="*"` positional that takes
whatever words are left.

Invariant: a command has at most one such positional (`add_rest`), and `join_rest`
gives it every word argparse left over after an option (argparse stops filling a
`nargs="*"` positional at the first option, so `silences add --duration 1h team=x` or
`routes test rule=x --at T team=y` would otherwise leave the last words unrecognised).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

__all__ = ["add_rest", "join_rest"]

# The namespace attribute naming the dest of the command's `add_rest` positional.
_REST_DEST = "rest_dest"


def add_rest(parser: argparse.ArgumentParser, dest: str, **kwargs: Any) -> None:
    """The positional `dest` (`nargs="*"`) that takes the command's leftover words too."""
    parser.add_argument(dest, nargs="*", **kwargs)
    parser.set_defaults(**{_REST_DEST: dest})


def join_rest(args: argparse.Namespace, extra: Sequence[str]) -> bool:
    """Append the words `parse_known_args` left over to the command's `add_rest`
    positional; False (nothing joined) when it has none or a word looks like an option."""
    dest = getattr(args, _REST_DEST, None)
    if not extra or dest is None or any(word.startswith("-") for word in extra):
        return False
    setattr(args, dest, [*getattr(args, dest), *extra])
    return True
