"""`zaia-relay silences ... --url URL`: silences through a running relay's HTTP API.

With `--url` the command needs no configuration file and no access to the store: it
talks to `/api/v1/silences` like any other client, with the admin token from
`$RELAY_ADMIN_TOKEN` (never an argument, which other users of the machine could read
in the process list). That is how a newcomer tries `silences add` against the demo,
and how an operator silences a relay whose database they cannot reach.

Invariants:
- The token is sent only as `Authorization: Bearer`, never printed, and never part of
  an error message.
- The relay's answer decides the exit code: 2 when it refused the silence (its
  `problems` are printed as they came), 1 when it could not be reached or refused the
  token, 0 otherwise.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Any

import httpx

from relay.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

TOKEN_ENV = "RELAY_ADMIN_TOKEN"
_TIMEOUT_S = 10.0

__all__ = ["TOKEN_ENV", "remote_silences"]


def remote_silences(args: argparse.Namespace) -> int:
    """`silences add|list|expire` against the relay at `args.url`."""
    base = args.url.rstrip("/")
    token = os.environ.get(TOKEN_ENV, "")
    if args.action != "list" and not token:
        print(
            f"silences {args.action}: set {TOKEN_ENV} to the relay's admin token "
            "(server.admin_token; the demo prints one)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=_TIMEOUT_S) as client:
            if args.action == "list":
                return _list(client, include_expired=args.all)
            if args.action == "expire":
                if len(args.items) != 1:
                    print("silences expire: give the silence id", file=sys.stderr)
                    return EXIT_USAGE
                return _expire(client, args.items[0])
            return _add(client, args)
    except httpx.HTTPError as exc:
        # The exception's text can hold the URL, never the token: only its type is shown.
        print(
            f"silences {args.action}: cannot reach the relay at {base} ({type(exc).__name__}); "
            "is it running, and is --url its server.listen address?",
            file=sys.stderr,
        )
        return EXIT_FAILURE


def _add(client: httpx.Client, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "matchers": [*args.items, *args.matcher],
        "creator": args.creator or f"cli:{_user()}",
        "comment": args.comment,
    }
    if args.starts:
        body["starts_at"] = args.starts
    if args.ends:
        body["ends_at"] = args.ends
    else:
        body["duration"] = args.duration
    answer = client.post("/api/v1/silences", json=body)
    if answer.status_code != 201:
        return _refused("add", answer)
    silence = answer.json()
    print(f"silence {silence['id']} active until {silence['ends_at']}")
    return EXIT_OK


def _expire(client: httpx.Client, silence_id: str) -> int:
    answer = client.delete(f"/api/v1/silences/{silence_id}")
    if answer.status_code != 200:
        return _refused("expire", answer)
    print(f"silence {silence_id} expired")
    return EXIT_OK


def _list(client: httpx.Client, *, include_expired: bool) -> int:
    params = {"include_expired": "true"} if include_expired else {}
    answer = client.get("/api/v1/silences", params=params)
    if answer.status_code != 200:
        return _refused("list", answer)
    silences = answer.json()["silences"]
    if not silences:
        print("no silences")
    for s in silences:
        state = "expired" if s["expired_at"] else "active"
        recurring = ""
        if s.get("recurring"):
            now_state = "muting now" if s.get("active_now") else "not now"
            recurring = f"  recurring: {','.join(s['recurring'])} ({now_state})"
        print(
            f"{s['id']}  {state}  {s['origin']}  {','.join(s['matchers'])}"
            f"  {s['starts_at']} -> {s['ends_at'] or 'never'}{recurring}"
            f"  {s['creator']} {s['comment']}".rstrip()
        )
    return EXIT_OK


def _refused(action: str, answer: httpx.Response) -> int:
    """Print why the relay said no; exit 2 for a refused silence, 1 otherwise."""
    try:
        error = answer.json()
    except ValueError:
        error = {}
    problems = error.get("problems") if isinstance(error, dict) else None
    if problems:
        for problem in problems:
            where = problem.get("path", "")
            print(
                f"silences {action}: {where + ': ' if where else ''}{problem.get('message')}",
                file=sys.stderr,
            )
    else:
        message = error.get("message") if isinstance(error, dict) else None
        print(
            f"silences {action}: HTTP {answer.status_code} from the relay: "
            f"{message or answer.reason_phrase}",
            file=sys.stderr,
        )
    return EXIT_USAGE if answer.status_code in (400, 404, 409, 422) else EXIT_FAILURE


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return "unknown"
