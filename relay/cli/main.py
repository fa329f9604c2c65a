"""The command line: `zaia-relay COMMAND [options]` (also `python -m relay`).

Commands live in `COMMANDS`, one `Command` each (help text, arguments, and the function
that runs it and returns the exit code); adding a command is adding an entry.

Exit codes: 0 success; 1 the command failed at run time; 2 usage or configuration
error. Configuration problems are printed one a line, `path.to.field: message`, on
standard error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TextIO

from relay import __version__
from relay.app import run_daemon, run_once
from relay.cli import ops as cli_ops
from relay.cli import routes as cli_routes
from relay.cli.args import join_rest
from relay.cli.remote import remote_silences
from relay.cli.report import format_cycle
from relay.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, ConfigError, RelayError
from relay.settings import Settings, config_warnings
from relay.settings.loader import load_settings
from relay.telemetry import configure_logging


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    del parser


@dataclass(frozen=True)
class Command:
    help: str
    run: Callable[[argparse.Namespace], int]
    add_arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """The `-c FILE` option shared by every command that reads the configuration."""
    parser.add_argument(
        "-c",
        "--config",
        type=Path,
        metavar="FILE",
        help="configuration file (default: the path in $RELAY_CONFIG)",
    )


def load_or_report(path: Path | None) -> Settings | None:
    """Load the settings, or print every problem to stderr and return None."""
    try:
        return load_settings(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return None


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def summarize(settings: Settings) -> str:
    parts = [
        _count(len(settings.sources), "source"),
        _count(len(settings.rules), "rule"),
        _count(len(settings.sinks), "sink"),
    ]
    if settings.routes:
        parts.append(_count(len(settings.routes), "route"))
    if settings.silences:
        parts.append(_count(len(settings.silences), "silence"))
    return ", ".join(parts)


def _check_config(args: argparse.Namespace) -> int:
    settings = load_or_report(args.config)
    if settings is None:
        return EXIT_USAGE
    # Warnings go to stderr and keep exit 0: the configuration runs, perhaps not as meant.
    warnings = config_warnings(settings)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    tail = f" ({_count(len(warnings), 'warning')})" if warnings else ""
    print(f"config OK: {summarize(settings)}{tail}")
    return EXIT_OK


def _configure_logs(settings: Settings, *, stream: TextIO | None = None) -> None:
    configure_logging(
        level=settings.log.level,
        fmt=settings.log.format,
        secrets=settings.secret_values(),
        stream=stream,
    )


def _run(args: argparse.Namespace) -> int:
    settings = load_or_report(args.config)
    if settings is None:
        return EXIT_USAGE
    _configure_logs(settings)
    secrets = set(settings.secret_values())

    def reloaded(new: Settings) -> None:
        # The log settings only change on a restart; the secrets to redact may grow.
        secrets.update(new.secret_values())
        configure_logging(level=new.log.level, fmt=new.log.format, secrets=secrets)

    try:
        asyncio.run(
            run_daemon(settings, reload=partial(load_settings, args.config), on_reloaded=reloaded)
        )
    except Exception as exc:
        for error in _leaf_errors(exc):
            print(f"zaia-relay: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


def _leaf_errors(exc: BaseException) -> list[BaseException]:
    """The errors inside (possibly nested) exception groups, raised by task groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaf_errors(inner)]
    return [exc]


def _add_once_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print what the cycle finds, store nothing and send nothing",
    )


def _once(args: argparse.Namespace) -> int:
    settings = load_or_report(args.config)
    if settings is None:
        return EXIT_USAGE
    # Logs go to stderr so that stdout carries only the report.
    _configure_logs(settings, stream=sys.stderr)
    try:
        reports = asyncio.run(run_once(settings, dry_run=args.dry_run))
    except RelayError as exc:
        print(f"zaia-relay: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    for report in reports:
        print(format_cycle(report, responder_names=settings.responders))
    if args.dry_run:
        print("dry run: nothing was stored or sent")
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    del args
    # Imported here: the demo pulls in the simulator, which `run` never needs.
    from relay.cli.demo import demo_settings_text, run_demo
    from relay.settings.loader import parse_settings

    settings = parse_settings(demo_settings_text(), environ={}, source="demo.yaml")
    _configure_logs(settings)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_demo())
    return EXIT_OK


def _with_settings(
    work: Callable[[Settings, argparse.Namespace], int],
) -> Callable[[argparse.Namespace], int]:
    """A command that needs the configuration: load it (exit 2 on problems), set up logs
    on stderr, then run."""

    def run(args: argparse.Namespace) -> int:
        settings = load_or_report(args.config)
        if settings is None:
            return EXIT_USAGE
        _configure_logs(settings, stream=sys.stderr)
        return work(settings, args)

    return run


def _with_config_argument(
    add: Callable[[argparse.ArgumentParser], None],
) -> Callable[[argparse.ArgumentParser], None]:
    def both(parser: argparse.ArgumentParser) -> None:
        add(parser)
        add_config_argument(parser)

    return both


def _silences(args: argparse.Namespace) -> int:
    """Through a running relay's API with `--url` (no configuration needed), else on
    the store the configuration names."""
    if args.url:
        return remote_silences(args)
    return _with_settings(cli_ops.silences)(args)


COMMANDS: dict[str, Command] = {
    "demo": Command(
        help="run a simulated Zaia workspace, the relay and a console sink on this machine",
        run=_demo,
    ),
    "run": Command(
        help="run the daemon: poll every source, detect, alert; stop on SIGTERM/SIGINT",
        run=_run,
        add_arguments=add_config_argument,
    ),
    "once": Command(
        help="run one poll cycle per source, print the transitions found, then exit",
        run=_once,
        add_arguments=_add_once_arguments,
    ),
    "test-sink": Command(
        help="send one clearly marked test alert through a configured sink",
        run=_with_settings(lambda settings, args: cli_ops.test_sink(settings, args.name)),
        add_arguments=_with_config_argument(cli_ops.add_test_sink_arguments),
    ),
    "deliveries": Command(
        help="the dead-letter queue: list, retry (ids or --all), purge (ids or --all)",
        run=_with_settings(cli_ops.deliveries),
        add_arguments=_with_config_argument(cli_ops.add_deliveries_arguments),
    ),
    "silences": Command(
        help="silences: add MATCHER... (like 'team=~\"pay.*\"' severity=critical) "
        "[--duration 2h], list [--all], expire ID",
        run=_silences,
        add_arguments=_with_config_argument(cli_ops.add_silences_arguments),
    ),
    "routes": Command(
        help="routes test LABEL=VALUE...: the routes and sinks an alert with those labels takes",
        run=_with_settings(cli_routes.routes),
        add_arguments=partial(cli_routes.add_routes_arguments, config=add_config_argument),
    ),
    "check-config": Command(
        help="validate the configuration file; exit 2 listing every problem",
        run=_check_config,
        add_arguments=add_config_argument,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zaia-relay",
        description="Watches Zaia executions and alerts on failures, cost and hangs.",
    )
    parser.add_argument("--version", action="version", version=f"zaia-relay {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub = subparsers.add_parser(name, help=command.help, description=command.help)
        command.add_arguments(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        # Words left after an option join the command's `nargs="*"` positional (see
        # `relay.cli.args`); anything else left over is an error, as parse_args says.
        if extra and not join_rest(args, extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return COMMANDS[args.command].run(args)
