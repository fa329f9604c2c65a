"""Test kit for delivery: alert factories, a recording HTTP receiver and a fake Slack Web
API, both real aiohttp servers on loopback. The receiver also plays a scripted Zaia API
for the client tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self

from aiohttp import web

from relay.domain.alerts import (
    Alert,
    ExecutionFacts,
    FailureCause,
    Notification,
    execution_alert_id,
    group_alert_id,
)
from relay.domain.state import SourceCursor
from relay.store import CycleResult, SqliteStore
from relay.vocab import AlertState, NotificationKind, Severity

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_counter = itertools.count(1)


def make_alert(
    *,
    rule: str = "execution-failed",
    severity: Severity = "critical",
    state: AlertState = "firing",
    source: str = "prod",
    execution_id: str | None = None,
    error_excerpt: str | None = "Tool 'crm.lookup' failed: HTTP 502 from upstream",
    summary: str | None = None,
    started_at: datetime = T0,
    link: str | None = "https://app.zaia.example/executions/{id}",
    windowed: bool = False,
) -> Alert:
    """A realistic per-execution alert (or a windowed one with `windowed=True`)."""
    n = next(_counter)
    exec_id = execution_id or f"exec-{n:05d}"
    if windowed:
        return Alert(
            id=group_alert_id(rule=rule, source=source, group_key=f"responder_id=r{n}", episode=1),
            rule=rule,
            severity=severity,
            state=state,
            source=source,
            summary=summary or f"Failure ratio of responder r{n} is 0.4 over 15m",
            description="8 of 20 executions failed in the last 15m (threshold 0.2).",
            started_at=started_at,
            labels={"rule": rule, "severity": severity, "source": source, "responder_id": f"r{n}"},
            group={"responder_id": f"r{n}"},
            value=0.4,
            ended_at=started_at + timedelta(minutes=20) if state == "resolved" else None,
        )
    cause = None
    if error_excerpt is not None:
        cause = FailureCause(
            step_label="Look up the customer",
            step_type="tool-call",
            tool_type="http",
            error_excerpt=error_excerpt,
            chain=(exec_id,),
        )
    return Alert(
        id=execution_alert_id(rule=rule, source=source, execution_id=exec_id),
        rule=rule,
        severity=severity,
        state=state,
        source=source,
        summary=summary or f"Agent support-bot failed (execution {exec_id})",
        description="The execution failed at step 'Look up the customer' after 42s.",
        started_at=started_at,
        labels={"rule": rule, "severity": severity, "source": source, "type": "agent"},
        execution=ExecutionFacts(
            id=exec_id,
            kind="agent",
            status="failed",
            responder_id="resp-1",
            agent_id="agent-support-bot",
            workflow_id=None,
            parent_id=None,
            origin_type="api",
            credits_used=12.5,
            started_at=started_at - timedelta(seconds=42),
            ended_at=started_at,
        ),
        cause=cause,
        link=None if link is None else link.format(id=exec_id),
    )


def make_notification(
    alert: Alert | None = None,
    *,
    sink: str = "hook",
    kind: NotificationKind = "firing",
    created_at: datetime = T0,
    sequence: int = 0,
) -> Notification:
    return Notification.about(
        alert or make_alert(), sink=sink, kind=kind, created_at=created_at, sequence=sequence
    )


async def enqueue(
    store: SqliteStore, notifications: Sequence[Notification], *, at: datetime
) -> int:
    """Put notifications in the outbox the way the engine does: in a committed cycle."""
    by_source: dict[str, list[Notification]] = {}
    for n in notifications:
        by_source.setdefault(n.alert.source, []).append(n)
    enqueued = 0
    for source, items in by_source.items():
        cursor = SourceCursor(source=source, first_poll_done=True, last_success_at=at)
        outcome = await store.commit_cycle(
            CycleResult(source, states=[], transitions=[], cursor=cursor, notifications=items)
        )
        enqueued += outcome.enqueued
    return enqueued


# --- a recording receiver -------------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    raw_path: str  # as sent: still percent-encoded, with the query
    query: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() when it arrived

    def json(self) -> Any:
        return json.loads(self.body)


# How a reply breaks the connection instead of answering: "close" before any byte of the
# answer, "reset" likewise but with a TCP RST, "truncate" after the headers and half of
# the body.
Cut = Literal["close", "reset", "truncate"]


@dataclass
class Reply:
    status: int = 200
    body: str | bytes = "ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0  # before the answer
    cut: Cut | None = None
    stall_s: float = 0.0  # after the headers and half of the body, before the rest


Responder = Callable[[Received], Reply]


def _response(answer: Reply) -> web.Response:
    if isinstance(answer.body, bytes):
        return web.Response(status=answer.status, body=answer.body, headers=answer.headers)
    return web.Response(status=answer.status, text=answer.body, headers=answer.headers)


def _drop(request: web.Request, *, reset: bool) -> None:
    transport = request.transport
    assert transport is not None
    if reset:  # no lingering: the peer gets a RST rather than a FIN
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.close()


class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers with `reply`
    (a function of the request; 200 `ok` by default). A delayed or stalled answer ends
    early when the receiver closes, so closing never waits out a delay the client gave
    up on."""

    def __init__(self, reply: Responder | None = None) -> None:
        self.reply: Responder = reply or (lambda _: Reply())
        self.requests: list[Received] = []
        self._arrived = asyncio.Condition()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        received = Received(
            method=request.method,
            path=request.path,
            raw_path=request.raw_path,
            query=request.query_string,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.read(),
            at=time.time(),
        )
        answer = self.reply(received)
        async with self._arrived:
            self.requests.append(received)
            self._arrived.notify_all()
        await self._wait(answer.delay_s)
        if answer.cut in ("close", "reset"):
            _drop(request, reset=answer.cut == "reset")
            return web.Response()  # never sent: the connection is gone
        if answer.cut == "truncate" or answer.stall_s:
            return await self._in_halves(request, answer)
        return _response(answer)

    async def _wait(self, delay_s: float) -> None:
        if delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=delay_s)

    async def _in_halves(self, request: web.Request, answer: Reply) -> web.StreamResponse:
        """The headers and half of the body, then the rest after `stall_s`, or nothing
        more (the connection closed) for a "truncate" cut."""
        body = answer.body.encode() if isinstance(answer.body, str) else answer.body
        response = web.StreamResponse(status=answer.status, headers=answer.headers)
        response.content_length = len(body)
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        if answer.cut == "truncate":
            _drop(request, reset=False)
            return response
        await self._wait(answer.stall_s)
        with contextlib.suppress(ConnectionError):  # the client may have given up
            await response.write(body[len(body) // 2 :])
        return response

    async def wait_for(self, count: int, *, timeout_s: float = 10.0) -> list[Received]:
        async with asyncio.timeout(timeout_s), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return list(self.requests)

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._closing.set()
        if self._runner is not None:
            await asyncio.shield(self._runner.cleanup())


# --- a fake Slack Web API -------------------------------------------------------------------


@dataclass
class SlackPost:
    method: str
    channel: str
    ts: str
    payload: dict[str, Any]


class FakeSlack:
    """`chat.postMessage` and `chat.update` of the Slack Web API, on loopback.

    Checks the bearer token; keeps every message by ts with its thread replies; answers
    `{"ok": false, "error": ...}` the way Slack does. `fail_next` queues error codes (or
    HTTP statuses as ints) to answer the next calls with."""

    def __init__(self, *, token: str, channels: Sequence[str] = ("C0ALERTS",)) -> None:
        self.token = token
        self.channels = set(channels)
        self.calls: list[SlackPost] = []
        self.messages: dict[str, dict[str, Any]] = {}
        self.replies: dict[str, list[dict[str, Any]]] = {}
        self.fail_next: list[str | int] = []
        self._ts = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.api_url = ""

    def _answer(self, body: dict[str, Any], status: int = 200) -> web.Response:
        return web.json_response(body, status=status)

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._answer({"ok": False, "error": "invalid_auth"})
        if self.fail_next:
            failure = self.fail_next.pop(0)
            if isinstance(failure, int):
                return self._answer({"ok": False, "error": "ratelimited"}, status=failure)
            return self._answer({"ok": False, "error": failure})
        payload = await request.json()
        channel = payload.get("channel", "")
        if channel not in self.channels:
            return self._answer({"ok": False, "error": "channel_not_found"})
        if method == "chat.postMessage":
            ts = f"1700000000.{next(self._ts):06d}"
            thread = payload.get("thread_ts")
            if thread is not None:
                if thread not in self.messages:
                    return self._answer({"ok": False, "error": "thread_not_found"})
                self.replies.setdefault(thread, []).append(payload)
            else:
                self.messages[ts] = payload
            self.calls.append(SlackPost(method, channel, ts, payload))
            return self._answer({"ok": True, "channel": channel, "ts": ts})
        if method == "chat.update":
            ts = payload.get("ts", "")
            if ts not in self.messages:
                return self._answer({"ok": False, "error": "message_not_found"})
            self.messages[ts] = payload
            self.calls.append(SlackPost(method, channel, ts, payload))
            return self._answer({"ok": True, "channel": channel, "ts": ts})
        return self._answer({"ok": False, "error": "unknown_method"})

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.api_url = f"http://127.0.0.1:{port}/api"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._runner is not None:
            await asyncio.shield(self._runner.cleanup())
