"""The least CPU one API request can cost on the relay's stack, next to the 1.5 ms a
request that `bench/cadence.py` asks of the relay.

    .venv/bin/python bench/cpu_floor.py [--requests 50] [--page-size 100] [--pace 1.0]

No relay runs. A client process does less than the relay must do for one read of the
cadence bench, against the same simulator (the small workload's workspace: 100,000
ended executions of history below 20 running), served on loopback by this process,
whose CPU is not counted:
- read: GET one page of `--page-size` executions (aiohttp, one kept-alive connection)
  and decode each item's id, status, credits, update time and purge flag in one pass
  (msgspec), unless the page is the same bytes as last time (the relay's client keeps
  recent pages too; it decodes each item on its own and parses its times);
- + cursor check (idle): one SELECT of one row through aiosqlite, as the relay's read
  of its cursor; an idle read of the relay commits nothing;
- + commit and N notifications: one SQLite transaction (WAL, `synchronous = FULL`, as
  the relay's store) that upserts one row and enqueues the N notifications, one that
  claims them, a webhook POST of a small JSON body each to a receiver in this process,
  and one transaction that settles them: the relay's outbox round, with one row where
  the relay writes the execution, its transition and its alert.
The rows are the cadence workloads' steady states: idle (no notification a request),
small (about one a request: 80 failures over 80 requests) and deep (about two: 395
endings over about 200 requests). The rows take turns, one request a `--pace` (the
relay reads about once a second; idle, every five: a shorter pace costs less). Each
figure is the client's utime+stime (getrusage) over its `--requests` requests, after
10 that warm up, divided by them; it is printed beside the target with FAIL where even
this floor is above it (and the exit code is then 1). About four minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import aiosqlite
import msgspec
from cadence import small_workspace  # bench/, run as a script
from flags import non_default_flags
from rig import API_KEY, Receiver, SimHost

TARGET_MS = 1.5
WARM_UP = 10
# (row, notifications a request; None: the read alone)
ROWS = (
    ("read", None),
    ("read + cursor check (idle)", 0),
    ("read + commit + 1 notification (small)", 1),
    ("read + commit + 2 notifications (deep)", 2),
)


class Head(msgspec.Struct):
    """What the relay's client decodes of every item (`relay.source.pages.PageEntry`)."""

    id: str
    status: str
    creditsUsed: float  # the API's names
    updatedAt: str
    isPurged: bool


HEADS = msgspec.json.Decoder(list[Head])


class LastPage:
    """The page read last and what it decoded to: a page that comes back byte for byte
    is not decoded again (the relay's `PageMemo`)."""

    def __init__(self) -> None:
        self.content = b""
        self.heads: list[Head] = []

    def decode(self, content: bytes) -> list[Head]:
        if content != self.content:
            self.content, self.heads = content, HEADS.decode(content)
        return self.heads


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def one_request(
    http: aiohttp.ClientSession,
    db: aiosqlite.Connection,
    *,
    list_url: str,
    hook_url: str,
    page_size: int,
    notifications: int | None,
    n: int,
    last_page: LastPage,
) -> None:
    query = {"pageNumber": "1", "pageSize": str(page_size)}
    async with http.get(list_url, params=query) as response:
        heads = last_page.decode(await response.read())
    if notifications is None:
        return
    await db.execute_fetchall("SELECT at FROM seen WHERE id = 'cursor'")
    if not notifications:
        return
    ids = [(f"m{n}-{k}",) for k in range(notifications)]
    marks = ", ".join("?" * notifications)
    await db.execute("BEGIN IMMEDIATE")
    await db.execute("INSERT INTO seen VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET at = ?",
                     (heads[0].id, time.time(), time.time()))  # fmt: skip
    await db.executemany("INSERT INTO outbox VALUES (?, 'pending')", ids)
    await db.execute("COMMIT")
    await transaction(db, f"UPDATE outbox SET state = 'claimed' WHERE id IN ({marks})", ids)
    for (message_id,) in ids:
        body = msgspec.json.encode({"id": message_id, "status": "failed"})
        headers = {"content-type": "application/json", "webhook-id": message_id}
        async with http.post(hook_url, data=body, headers=headers) as response:
            await response.read()
    await transaction(db, f"UPDATE outbox SET state = 'sent' WHERE id IN ({marks})", ids)


async def transaction(db: aiosqlite.Connection, statement: str, ids: list[tuple[str]]) -> None:
    await db.execute("BEGIN IMMEDIATE")
    await db.execute(statement, [message_id for (message_id,) in ids])
    await db.execute("COMMIT")


async def measure(
    sim_url: str, hook_url: str, *, requests: int, page_size: int, pace_s: float
) -> int:
    """The client: each row's CPU per request, printed; 1 when any is above the target."""
    failed = False
    with tempfile.TemporaryDirectory() as folder:
        db = await aiosqlite.connect(Path(folder) / "floor.db", isolation_level=None)
        await db.execute("PRAGMA journal_mode = WAL")
        await db.execute("PRAGMA synchronous = FULL")
        await db.execute("CREATE TABLE seen (id TEXT PRIMARY KEY, at REAL)")
        await db.execute("CREATE TABLE outbox (id TEXT PRIMARY KEY, state TEXT)")
        await db.execute("INSERT INTO seen VALUES ('cursor', 0)")
        last_page = LastPage()
        headers = {"authorization": API_KEY}
        spent_s = dict.fromkeys(ROWS, 0.0)
        async with aiohttp.ClientSession(headers=headers) as http:

            async def one(n: int, notifications: int | None) -> None:
                await one_request(
                    http,
                    db,
                    list_url=f"{sim_url}/api/v1/executions",
                    hook_url=hook_url,
                    page_size=page_size,
                    notifications=notifications,
                    n=n,
                    last_page=last_page,
                )
                # Paced as the relay reads (about one a second): an event loop woken
                # for each request costs more than one kept busy.
                await asyncio.sleep(pace_s)

            for n in range(WARM_UP):
                await one(n, ROWS[-1][1])
            # The rows take turns, so that whatever drifts on the machine drifts for all.
            for n in range(WARM_UP, WARM_UP + requests * len(ROWS)):
                row = ROWS[n % len(ROWS)]
                began_s = cpu_s()
                await one(n, row[1])
                spent_s[row] += cpu_s() - began_s
        for row, spent in spent_s.items():
            per_request_ms = spent * 1000 / requests
            missed = per_request_ms > TARGET_MS
            failed |= missed
            verdict = "FAIL" if missed else "ok"
            print(f"{row[0]:42} {per_request_ms:6.2f} ms {verdict:4} (target <= {TARGET_MS} ms)")
        await db.close()
    print("FAIL: the floor is above the target" if failed else "the floor is below the target")
    return 1 if failed else 0


async def main(args: argparse.Namespace, flags: list[str]) -> int:
    print(f"flags: {' '.join(flags) if flags else 'none (the default run)'}")
    # Flushed: the client prints to the same stdout.
    print(f"CPU per API request at the least, page_size {args.page_size}:", flush=True)
    workspace, _running = small_workspace(seed=1)
    async with SimHost(workspace) as sim, Receiver() as hook:
        client = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--client", sim.url, hook.url,
            "--requests", str(args.requests), "--page-size", str(args.page_size),
            "--pace", str(args.pace),
        )  # fmt: skip
        return await client.wait()


def parse_args() -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=50, help="measured requests a row")
    parser.add_argument("--page-size", type=int, default=100, help="as bench/cadence.py")
    parser.add_argument("--pace", type=float, default=1.0, help="seconds between requests")
    parser.add_argument(
        "--client", nargs=2, metavar=("SIM_URL", "HOOK_URL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    return args, non_default_flags(args, parser)


if __name__ == "__main__":
    arguments, changed = parse_args()
    if arguments.client:
        sim_url, hook_url = arguments.client
        client = measure(
            sim_url, hook_url, requests=arguments.requests,
            page_size=arguments.page_size, pace_s=arguments.pace,
        )  # fmt: skip
        sys.exit(asyncio.run(client))
    sys.exit(asyncio.run(main(arguments, changed)))
