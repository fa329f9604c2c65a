"""Operator commands: `test-sink`, `deliveries list|retry|purge`, `silences add|list|expire`.

They work on the same store as a running relay (and its HTTP API), so an operator can
inspect and replay dead letters or silence a noisy rule from a shell. A replayed dead
letter is picked up by the running relay's delivery worker within seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from relay.cli.args import add_rest
from relay.clock import utcnow
from relay.domain.alerts import Notification
from relay.domain.silences import active, config_silences, end_after, new_silence
from relay.durations import parse_duration, utc_iso
from relay.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, SinkError
from relay.matchers import canonical
from relay.scrub import SecretScrubber
from relay.settings import (
    AlertmanagerSinkSettings,
    EmailSinkSettings,
    MatcherProblems,
    PagerDutySinkSettings,
    Settings,
    SinkSettings,
    WebhookSinkSettings,
    read_matchers,
)
from relay.sinks import build_targets, send_test
from relay.sinks.email_words import MESSAGE_ID_DOMAIN
from relay.sinks.registry import test_notification
from relay.sinks.webhook import webhook_id
from relay.store import Store, open_store

T = TypeVar("T")


def _with_store(settings: Settings, work: Callable[[Store], Awaitable[T]]) -> T:
    async def run() -> T:
        async with open_store(settings.store.url) as store:
            return await work(store)

    return asyncio.run(run())


# --- test-sink ----------------------------------------------------------------------


def test_sink(settings: Settings, name: str) -> int:
    """Send one test alert through sink `name`: to every delivery target (each URL of
    an Alertmanager HA cluster), each reported on its own line when there are several;
    a failure on any target fails the command."""
    if name not in settings.sinks:
        known = ", ".join(sorted(settings.sinks)) or "none"
        print(f"sinks.{name}: no such sink; configured sinks: {known}", file=sys.stderr)
        return EXIT_USAGE
    scrub = SecretScrubber.from_settings(settings).scrub_text

    async def send() -> tuple[Notification, dict[str, str | None]]:
        targets = build_targets(name, settings.sinks[name])
        notification = test_notification(name, now=utcnow())
        errors: dict[str, str | None] = {}
        try:
            for target, sink in targets.items():
                try:
                    await send_test(sink, now=notification.created_at, notification=notification)
                    errors[target] = None
                except SinkError as exc:
                    errors[target] = scrub(str(exc))
        finally:
            for sink in targets.values():
                await sink.aclose()
        return notification, errors

    notification, errors = asyncio.run(send())
    found_by = _test_id_words(settings.sinks[name], notification)
    if list(errors) == [name]:  # one target: the sink itself
        if (error := errors[name]) is not None:
            print(f"zaia-relay: test alert not delivered: {error}", file=sys.stderr)
            return EXIT_FAILURE
        print(f"sent a test alert through sink {name!r} ({found_by})")
        return EXIT_OK
    for target, error in errors.items():
        where = target  # `am[host:port]`: which Alertmanager, never its credentials
        if error is None:
            print(f"{where}: sent a test alert ({found_by})")
        else:
            print(f"{where}: test alert not delivered: {error}", file=sys.stderr)
    failed = sum(error is not None for error in errors.values())
    if failed:
        print(
            f"zaia-relay: {failed} of {len(errors)} targets of sink {name!r} failed",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    print(f"sent a test alert through every target of sink {name!r}")
    return EXIT_OK


def _test_id_words(sink: SinkSettings, notification: Notification) -> str:
    """How the receiver names the test alert, to find it there: the webhook's
    `webhook-id`, the mail's `Message-ID`, PagerDuty's `dedup_key` and Alertmanager's
    `alert_id` label (the alert id)."""
    if isinstance(sink, WebhookSinkSettings):
        return f"webhook-id {webhook_id([notification], batched=sink.batched)}"
    if isinstance(sink, AlertmanagerSinkSettings):
        return f"label alert_id={notification.alert.id}"
    if isinstance(sink, EmailSinkSettings):
        return f"Message-ID <{notification.id}@{MESSAGE_ID_DOMAIN}>"
    if isinstance(sink, PagerDutySinkSettings):
        return f"dedup_key {notification.alert.id}"
    return f"notification {notification.id}"


# --- deliveries ---------------------------------------------------------------------


def deliveries(settings: Settings, args: argparse.Namespace) -> int:
    action: str = args.action
    # `--sink am` covers every delivery target of sink am; `--sink 'am[host:port]'` one of them.
    sink = None if args.sink is None else settings.targets_of(args.sink)
    if action == "list":
        return _list_dead(settings, sink=sink, limit=args.limit)
    ids = list(args.ids) or None
    if ids is None and not args.all:
        print(f"deliveries {action}: give notification ids, or --all", file=sys.stderr)
        return EXIT_USAGE
    if action == "retry":
        count = _with_store(
            settings, lambda store: store.retry_dead(now=utcnow(), sink=sink, ids=ids)
        )
        print(f"{count} dead letter(s) queued for delivery again")
    else:
        count = _with_store(settings, lambda store: store.purge_dead(sink=sink, ids=ids))
        print(f"{count} dead letter(s) dropped")
    return EXIT_OK


def _list_dead(settings: Settings, *, sink: tuple[str, ...] | None, limit: int) -> int:
    letters = _with_store(settings, lambda store: store.dead_letters(sink=sink, limit=limit))
    if not letters:
        print("no dead letters")
        return EXIT_OK
    # Rows stored by an older release may hold what is scrubbed today.
    scrub = SecretScrubber.from_settings(settings).scrub_text
    for letter in letters:
        n = letter.notification
        print(
            f"{n.id}  sink={n.sink}  {n.kind}  attempts={letter.attempts}"
            f"  dead_at={utc_iso(letter.dead_at, timespec='seconds')}\n"
            f"    {scrub(n.alert.summary)}\n    reason: {scrub(letter.reason)}"
        )
    return EXIT_OK


# --- silences -----------------------------------------------------------------------


def silences(settings: Settings, args: argparse.Namespace) -> int:
    if args.action == "list":
        if args.items:
            print("silences list: takes no arguments (only --all)", file=sys.stderr)
            return EXIT_USAGE
        return _list_silences(settings, include_expired=args.all)
    if args.action == "expire":
        if len(args.items) != 1:
            print("silences expire: give the silence id", file=sys.stderr)
            return EXIT_USAGE
        [silence_id] = args.items
        expired = _with_store(
            settings, lambda store: store.expire_silence(silence_id, now=utcnow())
        )
        if not expired:
            print(f"no active runtime silence {silence_id!r}", file=sys.stderr)
            return EXIT_FAILURE
        print(f"silence {silence_id} expired")
        return EXIT_OK
    return _add_silence(settings, args)


def _add_silence(settings: Settings, args: argparse.Namespace) -> int:
    # Matchers as amtool takes them (`'team=~"pay.*"' severity=critical`), positional or
    # with the older `--matcher` (where `rule=x` still reads: a bare value).
    given = [*args.items, *args.matcher]
    try:
        matchers = read_matchers(given).matchers
    except MatcherProblems as exc:
        for loc, message in exc.problems:
            where = given[loc[0]] if loc and isinstance(loc[0], int) else "matchers"
            print(f"silences add: {where}: {message}", file=sys.stderr)
        return EXIT_USAGE
    now = utcnow()
    try:
        starts = datetime.fromisoformat(args.starts) if args.starts else now
        ends = (
            datetime.fromisoformat(args.ends)
            if args.ends
            else end_after(starts, parse_duration(args.duration))
        )
        silence = new_silence(
            matchers,
            starts_at=starts,
            ends_at=ends,
            now=now,
            creator=args.creator,
            comment=args.comment,
        )
    except ValueError as exc:
        print(f"silences add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _with_store(settings, lambda store: store.add_silence(silence))
    print(f"silence {silence.id} active until {utc_iso(silence.ends_at, timespec='seconds')}")
    return EXIT_OK


def _list_silences(settings: Settings, *, include_expired: bool) -> int:
    now = utcnow()
    stored = _with_store(
        settings, lambda store: store.list_silences(now=now, include_expired=include_expired)
    )
    found = [*config_silences(settings.silences, intervals=settings.intervals()), *stored]
    if not found:
        print("no silences")
    for silence in found:
        matchers = ",".join(canonical(silence.matchers))
        state = "expired" if silence.expired_at is not None else "active"
        ends = "never" if silence.open_ended else utc_iso(silence.ends_at, timespec="seconds")
        recurring = ""
        if silence.recurring:
            now_state = "muting now" if active(silence, now) else "not now"
            recurring = f"  recurring: {','.join(silence.recurring)} ({now_state})"
        print(
            f"{silence.id}  {state}  {silence.origin}  {matchers}"
            f"  {utc_iso(silence.starts_at, timespec='seconds')} -> {ends}{recurring}"
            f"  {silence.creator} {silence.comment}".rstrip()
        )
    return EXIT_OK


# --- argument parsing -----------------------------------------------------------------


def add_test_sink_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "name", help="the sink's name under `sinks:` (an Alertmanager: every URL of it)"
    )


def add_deliveries_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("list", "retry", "purge"))
    add_rest(parser, "ids", help="notification ids (retry/purge)")
    parser.add_argument("--all", action="store_true", help="every dead letter (retry/purge)")
    parser.add_argument(
        "--sink",
        help="only this sink's dead letters (every target of it, or one: 'am[host:9093]')",
    )
    parser.add_argument("--limit", type=int, default=100, help="at most this many (list)")


def add_silences_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("add", "list", "expire"))
    add_rest(
        parser,
        "items",
        metavar="MATCHER|ID",
        help="add: matchers in Alertmanager's syntax over any alert label, like "
        "'team=~\"pay.*\"' severity!=info rule=execution-failed; expire: the silence id",
    )
    parser.add_argument(
        "--matcher",
        action="append",
        default=[],
        metavar="MATCHER",
        help="one more matcher, like rule=NAME (repeatable; the same as a positional one)",
    )
    parser.add_argument("--duration", default="2h", help="how long (default 2h)")
    parser.add_argument("--starts", help="ISO 8601 start (default now)")
    parser.add_argument("--ends", help="ISO 8601 end (instead of --duration)")
    parser.add_argument("--creator", default="", help="who is silencing")
    parser.add_argument("--comment", default="", help="why")
    parser.add_argument("--all", action="store_true", help="list expired silences too")
    parser.add_argument(
        "--url",
        metavar="URL",
        help="a running relay (like http://127.0.0.1:8080) to ask through its HTTP API "
        "instead of the store; the admin token comes from $RELAY_ADMIN_TOKEN",
    )


__all__ = [
    "add_deliveries_arguments",
    "add_silences_arguments",
    "add_test_sink_arguments",
    "deliveries",
    "silences",
    "test_sink",
]
