"""Delivery throughput and latency through the real worker and a SQLite outbox.

    .venv/bin/python bench/deliver.py [--count 5000] [--rate 100] [--seconds 10]

Starts a webhook receiver as a separate process (so its CPU is not counted against the
relay), then, in this process, a `DeliveryWorker` for a signed webhook sink (batching
off, `max_alerts_per_request: 1`) over a `SqliteStore` in a temporary directory, and
prints:
- deliveries per second when `--count` notifications are already queued
  (target >= 1,000/s);
- p50/p99 latency from enqueue (the committed cycle) to delivered (marked in the
  outbox) at `--rate` alerts a second for `--seconds` (target p99 <= 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import math
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from relay.delivery.worker import DeliveryResult, DeliveryWorker
from relay.domain.alerts import Alert, ExecutionFacts, FailureCause, Notification
from relay.domain.alerts import execution_alert_id as alert_id_for
from relay.domain.state import SourceCursor
from relay.settings import WebhookSinkSettings
from relay.sinks.webhook import WebhookSink
from relay.store import CycleResult, SqliteStore
from relay.telemetry.logs import configure_logging

SECRET = "whsec_" + base64.b64encode(b"bench-secret-0123456789abcdef!!").decode()


def serve(port: int) -> None:
    """The receiver: answers 204 to every POST, as fast as aiohttp can."""
    from aiohttp import web

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", handle)

    async def main() -> None:
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        print(f"RECEIVER_URL=http://127.0.0.1:{runner.addresses[0][1]}/hook", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_receiver() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, __file__, "--serve"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("RECEIVER_URL="):
        process.kill()
        raise SystemExit(f"the receiver did not start: {line!r}")
    return process, line.removeprefix("RECEIVER_URL=")


def notification(n: int, *, now: datetime) -> Notification:
    execution_id = f"exec-{n:07d}"
    alert = Alert(
        id=alert_id_for(rule="execution-failed", source="bench", execution_id=execution_id),
        rule="execution-failed",
        severity="critical",
        state="firing",
        source="bench",
        summary=f"Agent support-bot failed (execution {execution_id})",
        description="The execution failed at step 'Look up the customer' after 42s.",
        started_at=now,
        labels={"rule": "execution-failed", "severity": "critical", "source": "bench"},
        execution=ExecutionFacts(
            id=execution_id,
            kind="agent",
            status="failed",
            responder_id="resp-1",
            agent_id="agent-1",
            workflow_id=None,
            parent_id=None,
            origin_type="api",
            credits_used=12.5,
            started_at=now,
            ended_at=now,
        ),
        cause=FailureCause(
            step_label="Look up the customer",
            step_type="tool-call",
            tool_type="http",
            error_excerpt="HTTP 502 from upstream " * 10,
            chain=(execution_id,),
        ),
        link=f"https://app.zaia.example/executions/{execution_id}",
    )
    return Notification.about(alert, sink="bench", kind="firing", created_at=now)


async def enqueue(store: SqliteStore, items: list[Notification], *, now: datetime) -> None:
    cursor = SourceCursor(source="bench", first_poll_done=True, last_success_at=now)
    await store.commit_cycle(
        CycleResult("bench", states=[], transitions=[], cursor=cursor, notifications=items)
    )


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


async def run(args: argparse.Namespace, url: str) -> tuple[float, float]:
    delivered: dict[str, float] = {}
    done = asyncio.Event()
    expected = 0

    def on_result(result: DeliveryResult) -> None:
        if result.outcome != "delivered":
            print(f"!! {result.outcome}: {result.error}")
            return
        at = time.perf_counter()
        for n in result.notifications:
            delivered[n.id] = at
        if len(delivered) >= expected:
            done.set()

    settings = WebhookSinkSettings.model_validate(
        {"type": "webhook", "url": url, "secret": SECRET, "max_alerts_per_request": 1}
    )
    with tempfile.TemporaryDirectory() as folder:
        async with SqliteStore(Path(folder) / "state.db") as store:
            sink = WebhookSink("bench", settings)
            worker = DeliveryWorker(sink, outbox=store, on_result=on_result)
            task = asyncio.create_task(worker.run(), name="bench-worker")
            try:
                # 1. Throughput: everything queued up front.
                now = datetime.now(UTC)
                batch = [notification(n, now=now) for n in range(args.count)]
                expected = args.count
                await enqueue(store, batch, now=now)
                started = time.perf_counter()
                worker.wake()
                await asyncio.wait_for(done.wait(), timeout=120)
                throughput = args.count / (time.perf_counter() - started)
                print(f"throughput: {args.count} deliveries in {args.count / throughput:.2f} s")

                # 2. Latency at a steady rate: one alert every 1/rate seconds.
                total = int(args.rate * args.seconds)
                delivered.clear()
                done.clear()
                expected = total
                enqueued_at: dict[str, float] = {}
                interval_s = 1.0 / args.rate
                next_at = time.perf_counter()
                for n in range(args.count, args.count + total):
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                    next_at += interval_s
                    item = notification(n, now=datetime.now(UTC))
                    enqueued_at[item.id] = time.perf_counter()
                    await enqueue(store, [item], now=item.created_at)
                    worker.wake()  # as the engine does after committing a cycle
                await asyncio.wait_for(done.wait(), timeout=60)
                latencies_ms = [(delivered[i] - enqueued_at[i]) * 1000 for i in enqueued_at]
                p50 = percentile(latencies_ms, 0.50)
                p99 = percentile(latencies_ms, 0.99)
                print(
                    f"latency at {args.rate:g}/s over {total} alerts: "
                    f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max {max(latencies_ms):.1f} ms"
                )
            finally:
                await worker.drain(grace_s=5)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                await sink.aclose()
    return throughput, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=5000, help="notifications for throughput")
    parser.add_argument("--rate", type=float, default=100.0, help="alerts a second for latency")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the rate lasts")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(0)
        return
    configure_logging(level="warning", fmt="console")
    process, url = start_receiver()
    try:
        throughput, p99 = asyncio.run(run(args, url))
    finally:
        process.terminate()
        process.wait()
    print()
    print(f"deliveries/s (batching off):        {throughput:8.0f}   target >= 1000")
    print(f"p99 enqueue -> delivered at {args.rate:g}/s: {p99:8.1f} ms target <= 50")
    ok = throughput >= 1000 and p99 <= 50
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
