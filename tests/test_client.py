"""The Zaia API client, against real HTTP servers on loopback.

Cases the simulator produces are tested against it (the last section); cases it cannot
(a page with invalid items, a 403, a key echoed by the server, a broken connection) use
a scripted API: `tests.delivery_kit.Receiver` answering with scripted replies.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

import aiohttp
import pytest
from structlog.testing import capture_logs

from relay.errors import (
    SourceError,
    SourceInvalidResponse,
    SourceNotFound,
    SourceRateLimited,
    SourceRejected,
    SourceUnauthorized,
    SourceUnavailable,
)
from relay.settings import SourceSettings
from relay.sim.app import SimServer
from relay.sim.faults import Fault
from relay.sim.workspace import SimWorkspace
from relay.source import ClientConfig, RequestOutcome, RetryPolicy, ZaiaClient
from relay.source.pages import ExecutionPage, PageMemo
from tests.delivery_kit import Received, Receiver, Reply, Responder

KEY = "zk_live_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
ID = "0b5f3c1e-8a7d-4c2b-9e1f-6a5b4c3d2e1f"


def execution_json(execution_id: str = ID, **overrides: Any) -> dict[str, Any]:
    """A minimal valid agent execution as the API sends it."""
    body: dict[str, Any] = {
        "id": execution_id,
        "workspaceId": "ws-1",
        "responderId": "resp-1",
        "parentId": None,
        "status": "failed",
        "isAgentic": False,
        "isPurged": False,
        "creditsUsed": 12.5,
        "createdAt": "2026-03-01T11:59:00.000Z",
        "updatedAt": "2026-03-01T11:59:30.000Z",
        "startedAt": "2026-03-01T11:59:00.000Z",
        "endedAt": "2026-03-01T11:59:30.000Z",
        "detail": {
            "type": "agent-execution",
            "agentId": "agent-1",
            "input": {},
            "output": None,
            "events": [],
            "origin": {"type": "api", "apiKeyId": "key-1"},
        },
    }
    body.update(overrides)
    return body


def error_json(name: str, message: str) -> dict[str, Any]:
    return {"name": name, "message": message, "feedback": {"enUs": message}}


def json_reply(body: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status, json.dumps(body), {"Content-Type": "application/json", **headers})


class Sleeps:
    """An injected sleep that records the delays instead of waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays.append(delay_s)


def script(*replies: Reply) -> Responder:
    """Answers with `replies` in turn, then with the last one for ever."""
    queue = list(replies)

    def answer(_: Received) -> Reply:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return answer


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_config(**overrides: Any) -> ClientConfig:
    fields: dict[str, Any] = {
        "name": "prod",
        "base_url": "http://zaia.test",
        "api_key": KEY,
        "page_size": 3,
        "max_retries": 3,
        "retry_backoff_s": 0.5,
        "retry_backoff_max_s": 30.0,
        "config_path": "sources.0",
    }
    fields.update(overrides)
    return ClientConfig(**fields)


class Harness:
    def __init__(self) -> None:
        self.sleeps = Sleeps()
        self.outcomes: list[tuple[str, RequestOutcome]] = []

    def record(self, endpoint: str, outcome: RequestOutcome) -> None:
        self.outcomes.append((endpoint, outcome))

    def client(self, **overrides: Any) -> ZaiaClient:
        return ZaiaClient(
            make_config(**overrides),
            sleep=self.sleeps,
            rng=random.Random(1),
            now=lambda: NOW,
            on_request=self.record,
        )


@pytest.fixture
def harness() -> Harness:
    return Harness()


@asynccontextmanager
async def scripted(
    harness: Harness, *replies: Reply, **overrides: Any
) -> AsyncIterator[tuple[ZaiaClient, Receiver]]:
    """A client of an API on loopback that answers with `replies` (see `script`)."""
    async with (
        Receiver(script(*replies)) as api,
        harness.client(base_url=api.url, **overrides) as client,
    ):
        yield client, api


async def call_endpoint(client: ZaiaClient, endpoint: str) -> object:
    if endpoint == "list":
        return await client.list_page(1)
    if endpoint == "get":
        return await client.get_execution(ID)
    return await client.get_nestings(ID)


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def assert_key_free(exc: BaseException) -> None:
    for link in exception_chain(exc):
        for text in (str(link), repr(link), repr(link.args), repr(vars(link))):
            assert KEY not in text
        assert not isinstance(link, aiohttp.ClientError), "aiohttp errors carry the request"


# --- auth and paging ----------------------------------------------------------------


@pytest.mark.parametrize(("scheme", "header"), [("bearer", f"Bearer {KEY}"), ("raw", KEY)])
async def test_auth_header(harness: Harness, scheme: str, header: str) -> None:
    async with scripted(harness, json_reply([]), auth_scheme=scheme) as (client, api):
        await client.list_page(1)
    (request,) = api.requests
    assert request.headers["authorization"] == header
    assert request.headers["accept"] == "application/json"
    assert request.headers["user-agent"].startswith("zaia-relay/")


async def test_list_page_sends_paging_and_responder_filter(harness: Harness) -> None:
    page = [execution_json(f"id-{n}") for n in range(3)]
    replies = (json_reply(page), json_reply(page[:1]))
    async with scripted(harness, *replies, responder_ids=("r1", "r2")) as (client, api):
        first = await client.list_page(1)
        second = await client.list_page(2, page_size=50)
    assert [e.id for e in first.items] == ["id-0", "id-1", "id-2"]
    assert (first.raw_count, first.is_full, first.problems) == (3, True, ())
    assert (second.raw_count, second.page_size, second.is_full) == (1, 50, False)
    params = [parse_qsl(r.query) for r in api.requests]
    assert params[0] == [
        ("pageNumber", "1"),
        ("pageSize", "3"),
        ("responderIds", "r1"),
        ("responderIds", "r2"),
    ]
    assert (dict(params[1])["pageNumber"], dict(params[1])["pageSize"]) == ("2", "50")
    assert api.requests[0].path == "/api/v1/executions"
    assert harness.outcomes == [("list", 200), ("list", 200)]


async def test_invalid_items_are_skipped_and_reported(harness: Harness) -> None:
    bad_detail = execution_json("bad-1", detail={"type": "teleport", "input": {}})
    missing = execution_json("bad-2")
    del missing["status"]
    body = [execution_json("ok-1"), bad_detail, "not an object", missing, {"id": 7}]
    async with scripted(harness, json_reply(body)) as (client, _):
        page = await client.list_page(1)
    assert [e.id for e in page.items] == ["ok-1"]
    assert page.raw_count == 5  # still a full page for the pager
    assert [(p.index, p.execution_id) for p in page.problems] == [
        (1, "bad-1"),
        (2, None),
        (3, "bad-2"),
        (4, None),
    ]
    assert "detail" in page.problems[0].message
    assert page.problems[1].message == "item is a JSON string"
    assert page.problems[2].message.startswith("status: Field required")
    assert "and " in page.problems[3].message  # many errors are summarised, not dumped


async def test_an_item_only_the_page_splitter_accepts_loses_that_item_alone(
    harness: Harness,
) -> None:
    # A number out of range, and invalid UTF-8 in an item whose status is unknown: the
    # page still splits into items, and only those items are lost.
    good = json.dumps(execution_json("ok-1")).encode()
    huge = json.dumps(execution_json("bad-1", creditsUsed=12.5)).replace("12.5", "1e400")
    teleported = json.dumps(execution_json("bad-2", status="teleported")).encode()
    bad_utf8 = teleported[:-1] + b', "x": "\xff"}'
    body = b"[" + b",".join([good, huge.encode(), bad_utf8]) + b"]"
    async with scripted(harness, Reply(200, body)) as (client, _):
        page = await client.list_page(1)
    assert [e.id for e in page.items] == ["ok-1"]
    assert [p.index for p in page.problems] == [1, 2]


async def test_deeply_nested_data_in_a_page_item_is_accepted(harness: Harness) -> None:
    nested: object = "bottom"
    for _ in range(300):
        nested = {"n": nested}
    item = execution_json("deep")
    item["detail"] = {**item["detail"], "input": nested}
    async with scripted(harness, json_reply([item])) as (client, _):
        page = await client.list_page(1)
    assert page.problems == ()
    assert [e.id for e in page.items] == ["deep"]


async def test_problem_messages_quote_no_values(harness: Harness) -> None:
    secret_input = "customer password hunter2"
    item = execution_json("bad", creditsUsed=secret_input)
    async with scripted(harness, json_reply([item])) as (client, _):
        page = await client.list_page(1)
    assert secret_input not in page.problems[0].message


async def test_unknown_fields_are_ignored(harness: Harness) -> None:
    item = execution_json(newTopLevel={"x": 1}, status="cancelled")
    item["detail"] = {**item["detail"], "brandNewField": [1, 2]}
    item["detail"]["origin"] = {**item["detail"]["origin"], "extra": True}
    async with scripted(harness, json_reply([item])) as (client, _):
        page = await client.list_page(1)
    assert page.problems == ()
    assert page.items[0].status == "cancelled"


@pytest.mark.parametrize("body", [b'{"items": []}', b'"text"', b"null", b"3"])
async def test_a_page_that_is_not_an_array_is_refused_without_retry(
    harness: Harness, body: bytes
) -> None:
    async with scripted(harness, Reply(200, body)) as (client, api):
        with pytest.raises(SourceInvalidResponse, match="not the documented array") as caught:
            await client.list_page(1)
    assert len(api.requests) == 1
    assert caught.value.source == "prod"


async def test_paging_arguments_are_checked(harness: Harness) -> None:
    async with scripted(harness, json_reply([])) as (client, api):
        with pytest.raises(ValueError, match="page_number"):
            await client.list_page(0)
        with pytest.raises(ValueError, match="page_size"):
            await client.list_page(1, page_size=101)
    assert api.requests == []
    with pytest.raises(ValueError, match="page_size"):
        make_config(page_size=0)


# --- single executions --------------------------------------------------------------


async def test_get_execution(harness: Harness) -> None:
    async with scripted(harness, json_reply(execution_json())) as (client, api):
        execution = await client.get_execution(ID)
    assert (execution.id, execution.status, execution.kind) == (ID, "failed", "agent")
    assert api.requests[0].path == f"/api/v1/executions/{ID}"
    assert harness.outcomes == [("get", 200)]


async def test_get_execution_quotes_the_id(harness: Harness) -> None:
    async with scripted(harness, json_reply(execution_json())) as (client, api):
        await client.get_execution("../nestings?x=1")
    assert api.requests[0].raw_path == "/api/v1/executions/..%2Fnestings%3Fx%3D1"


async def test_get_nestings_returns_the_tree(harness: Harness) -> None:
    grandchild = {**execution_json("gc"), "parentId": "child", "children": [None]}
    child = {**execution_json("child"), "parentId": ID, "children": [grandchild]}
    tree = {**execution_json(), "children": [child]}
    async with scripted(harness, json_reply(tree)) as (client, api):
        root = await client.get_nestings(ID)
    assert [node.id for node in root.walk()] == [ID, "child", "gc"]
    request = api.requests[0]
    assert (request.path, dict(parse_qsl(request.query))["executionId"]) == (
        "/api/v1/executions/nestings",
        ID,
    )
    assert harness.outcomes == [("nestings", 200)]


async def test_an_invalid_execution_body_is_reported_without_values(harness: Harness) -> None:
    body = execution_json(status="exploded", detail={"type": "agent-execution"})
    async with scripted(harness, json_reply(body)) as (client, _):
        with pytest.raises(SourceInvalidResponse, match="status") as caught:
            await client.get_execution(ID)
    assert "exploded" not in str(caught.value)
    assert caught.value.__context__ is None


# --- errors that are answered at once ----------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
async def test_unauthorized_names_the_source_and_not_the_key(harness: Harness, status: int) -> None:
    # A careless server echoes the key it refused; the message must not carry it on.
    body = error_json("Unauthorized", f"invalid api key {KEY}")
    async with scripted(harness, json_reply(body, status)) as (client, api):
        with pytest.raises(SourceUnauthorized) as caught:
            await client.list_page(1)
    error = caught.value
    assert "check the API key for source 'prod' (sources.0.api_key)" in str(error)
    assert f"HTTP {status} Unauthorized" in str(error)
    assert (error.source, error.status_code) == ("prod", status)
    assert len(api.requests) == 1
    assert harness.sleeps.delays == []
    assert_key_free(error)


async def test_an_echoed_key_is_scrubbed_before_the_message_is_cut(harness: Harness) -> None:
    # The key straddles where the detail is cut: cut first, its start would be left.
    body = error_json("BadRequest", "x" * 270 + f" Bearer {KEY} {quote(KEY, safe='')}")
    async with scripted(harness, json_reply(body, 400)) as (client, _):
        with pytest.raises(SourceError) as caught:
            await client.list_page(1)
    assert "HTTP 400 BadRequest: xxx" in str(caught.value)
    assert KEY[:8] not in str(caught.value)
    assert_key_free(caught.value)


@pytest.mark.parametrize(
    ("endpoint", "status", "name", "message", "error_type"),
    [
        ("get", 404, "NotFoundException", "Execution not found.", SourceNotFound),
        ("nestings", 404, "NotFoundException", "Execution not found.", SourceNotFound),
        ("nestings", 400, "BadRequestException", "executionId is required", SourceRejected),
        ("nestings", 412, "PreconditionFailed", "follow-up response", SourceRejected),
        ("list", 400, "BadRequestException", "pageSize must be <= 100", SourceRejected),
        ("list", 404, "NotFoundException", "Cannot GET /api/v1/executions", SourceRejected),
    ],
)
async def test_documented_error_bodies_are_parsed(
    harness: Harness,
    endpoint: str,
    status: int,
    name: str,
    message: str,
    error_type: type[SourceError],
) -> None:
    reply = json_reply(error_json(name, message), status)
    async with scripted(harness, reply) as (client, api):
        with pytest.raises(error_type) as caught:
            await call_endpoint(client, endpoint)
    assert type(caught.value) is error_type
    assert f"HTTP {status} {name}: {message}" in str(caught.value)
    assert caught.value.status_code == status
    assert len(api.requests) == 1
    assert harness.outcomes == [(endpoint, status)]


async def test_a_404_on_the_list_points_at_the_base_url(harness: Harness) -> None:
    async with scripted(harness, Reply(404, "nope")) as (client, _):
        with pytest.raises(SourceRejected, match=r"check the base_url \(sources.0.base_url\)"):
            await client.list_page(1)


async def test_a_redirect_is_not_followed(harness: Harness) -> None:
    reply = Reply(301, "", {"Location": "https://elsewhere.test/"})
    async with scripted(harness, reply) as (client, api):
        with pytest.raises(SourceRejected, match="HTTP 301"):
            await client.list_page(1)
    assert len(api.requests) == 1


# --- retries ------------------------------------------------------------------------


async def test_5xx_is_retried_with_bounded_jittered_backoff(harness: Harness) -> None:
    replies = (
        json_reply(error_json("ServiceUnavailable", "down"), 503),
        Reply(502, "<html>bad gateway</html>"),
        Reply(500, ""),
        json_reply([execution_json()]),
    )
    async with scripted(harness, *replies) as (client, _):
        page = await client.list_page(1)
    assert [e.id for e in page.items] == [ID]
    policy = RetryPolicy(max_retries=3, backoff_s=0.5, backoff_max_s=30.0)
    assert len(harness.sleeps.delays) == 3
    for attempt, delay_s in enumerate(harness.sleeps.delays):
        assert 0.0 <= delay_s <= policy.backoff_cap_s(attempt)
    assert harness.outcomes == [("list", 503), ("list", 502), ("list", 500), ("list", 200)]


async def test_backoff_is_capped(harness: Harness) -> None:
    replies = (*(Reply(500, ""),) * 6, json_reply([]))
    async with scripted(
        harness, *replies, max_retries=6, retry_backoff_s=1.0, retry_backoff_max_s=2.5
    ) as (client, _):
        await client.list_page(1)
    assert len(harness.sleeps.delays) == 6
    assert all(0.0 <= d <= 2.5 for d in harness.sleeps.delays)


async def test_persistent_5xx_raises_unavailable_after_the_retries(harness: Harness) -> None:
    reply = json_reply(error_json("ServiceUnavailable", f"key {KEY} broke"), 503)
    async with scripted(harness, reply, max_retries=2) as (client, api):
        with capture_logs() as logs, pytest.raises(SourceUnavailable) as caught:
            await client.get_execution(ID)
    assert [event["event"] for event in logs] == ["source.retry", "source.retry"]
    assert KEY not in repr(logs)
    error = caught.value
    assert type(error) is SourceUnavailable
    assert "HTTP 503 ServiceUnavailable" in str(error)
    assert "after 3 attempts" in str(error)
    assert error.status_code == 503
    assert len(api.requests) == 3
    assert len(harness.sleeps.delays) == 2
    assert_key_free(error)


async def test_a_body_that_is_not_json_is_retried(harness: Harness) -> None:
    html = Reply(200, "<html>maintenance</html>", {"Content-Type": "text/html"})
    async with scripted(harness, html, max_retries=1) as (client, api):
        with pytest.raises(SourceUnavailable, match=r"not JSON \(HTTP 200, text/html") as caught:
            await client.list_page(1)
    assert len(api.requests) == 2
    assert "maintenance" not in str(caught.value)

    harness.sleeps.delays.clear()
    async with scripted(harness, html, json_reply([])) as (client, api):
        page = await client.list_page(1)
    assert (page.raw_count, len(harness.sleeps.delays)) == (0, 1)


@pytest.mark.parametrize(
    "broken",
    [
        Reply(cut="close"),  # the server closes the connection without a word
        Reply(cut="reset"),  # ... or resets it
        Reply(body=json.dumps([execution_json()]), cut="truncate"),  # stops mid-body
        Reply(delay_s=30.0),  # never answers within the timeout
    ],
    ids=["closed", "reset", "truncated", "hung"],
)
async def test_transport_errors_are_retried_and_never_chained(
    harness: Harness, broken: Reply
) -> None:
    async with scripted(harness, broken, max_retries=2, request_timeout_s=0.2) as (client, _):
        with pytest.raises(SourceUnavailable, match="after 3 attempts") as caught:
            await client.list_page(1)
    assert harness.outcomes == [("list", "error")] * 3
    assert caught.value.status_code is None
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    assert_key_free(caught.value)


@pytest.mark.parametrize(
    ("retry_after", "expected_s"),
    [("3", 3.0), ("Sun, 01 Mar 2026 12:00:07 GMT", 7.0), ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0)],
)
async def test_429_obeys_retry_after(harness: Harness, retry_after: str, expected_s: float) -> None:
    replies = (
        Reply(429, "", {"Retry-After": retry_after}),
        json_reply([]),
    )
    async with scripted(harness, *replies) as (client, _):
        await client.list_page(1)
    assert harness.sleeps.delays == [expected_s]
    assert harness.outcomes == [("list", 429), ("list", 200)]


async def test_429_without_retry_after_backs_off(harness: Harness) -> None:
    replies = (Reply(429, ""), json_reply([]))
    async with scripted(harness, *replies) as (client, _):
        await client.list_page(1)
    (delay_s,) = harness.sleeps.delays
    assert 0.0 <= delay_s <= 0.5


async def test_persistent_429_raises_rate_limited_with_the_wait(harness: Harness) -> None:
    reply = Reply(429, "", {"Retry-After": "2"})
    async with scripted(harness, reply, max_retries=2) as (client, _):
        with pytest.raises(SourceRateLimited, match="after 3 attempts") as caught:
            await client.list_page(1)
    assert (caught.value.retry_after_s, caught.value.status_code) == (2.0, 429)
    assert isinstance(caught.value, SourceUnavailable)
    assert harness.sleeps.delays == [2.0, 2.0]


async def test_a_retry_after_longer_than_the_cap_is_handed_to_the_caller(
    harness: Harness,
) -> None:
    reply = Reply(429, "", {"Retry-After": "120"})
    async with scripted(harness, reply) as (client, api):
        with pytest.raises(SourceRateLimited, match="asked to wait 120s") as caught:
            await client.list_page(1)
    assert caught.value.retry_after_s == 120.0
    assert len(api.requests) == 1
    assert harness.sleeps.delays == []


async def test_503_with_retry_after_is_obeyed(harness: Harness) -> None:
    replies = (
        Reply(503, "", {"Retry-After": "4"}),
        json_reply(execution_json()),
    )
    async with scripted(harness, *replies) as (client, _):
        await client.get_execution(ID)
    assert harness.sleeps.delays == [4.0]


# --- the connection itself -----------------------------------------------------------


async def test_a_slow_answer_times_out_and_is_retried(harness: Harness) -> None:
    # The delay ends early when the API closes, after the test.
    replies = (Reply(delay_s=30.0), json_reply([execution_json()]))
    async with scripted(harness, *replies, request_timeout_s=0.2) as (client, api):
        page = await client.list_page(1)
    assert [e.id for e in page.items] == [ID]
    assert len(api.requests) == 2
    assert harness.outcomes == [("list", "error"), ("list", 200)]
    assert len(harness.sleeps.delays) == 1


async def test_the_timeout_runs_to_the_last_byte(harness: Harness) -> None:
    # The headers come at once, the rest of the body after the timeout: too late.
    stalled = Reply(body=json.dumps([execution_json()]), stall_s=1.0)
    async with scripted(harness, stalled, json_reply([]), request_timeout_s=0.2) as (client, _):
        page = await client.list_page(1)
    assert page.raw_count == 0
    assert harness.outcomes == [("list", "error"), ("list", 200)]


async def test_a_connection_closed_before_the_answer_is_tried_again_in_the_attempt(
    harness: Harness,
) -> None:
    # aiohttp sends a GET again, once, when the connection breaks before the answer (as a
    # pooled one the server closed does): the module docstring says so.
    replies = (Reply(cut="close"), json_reply([]))
    async with scripted(harness, *replies, max_retries=0) as (client, api):
        await client.list_page(1)
    assert len(api.requests) == 2
    assert harness.outcomes == [("list", 200)]


async def test_a_refused_connection_is_unavailable_and_key_free(harness: Harness) -> None:
    # Nothing listens on the port: every attempt is refused.
    async with harness.client(base_url=f"http://127.0.0.1:{free_port()}", max_retries=1) as client:
        with pytest.raises(SourceUnavailable, match="ClientConnectorError") as caught:
            await client.get_execution(ID)
    assert harness.outcomes == [("get", "error")] * 2
    assert_key_free(caught.value)


async def test_the_proxy_comes_from_the_environment(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Receiver(script(json_reply([]))) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with harness.client(base_url="http://zaia.example.invalid") as client:
            await client.list_page(1)
    (request,) = proxy.requests
    assert (request.headers["host"], request.path) == ("zaia.example.invalid", "/api/v1/executions")


# --- configuration ------------------------------------------------------------------


async def test_the_key_stays_out_of_reprs() -> None:
    config = make_config()
    assert KEY not in repr(config)
    async with ZaiaClient(config) as client:
        assert KEY not in repr(client)
        assert "prod" in repr(client)


async def test_closing_the_client_closes_its_connections(harness: Harness) -> None:
    async with Receiver(script(json_reply([]))) as api:
        client = harness.client(base_url=api.url)
        async with client:
            await client.list_page(1)
        with pytest.raises(RuntimeError, match="closed"):
            await client.list_page(1)
        await client.aclose()  # a second close is harmless
    assert len(api.requests) == 1
    assert harness.outcomes == [("list", 200)]


def test_a_client_made_outside_an_event_loop_opens_its_session_inside_one() -> None:
    # aiohttp sessions need a running loop: the client makes its own on first use.
    harness = Harness()
    client = harness.client(base_url=f"http://127.0.0.1:{free_port()}", max_retries=0)

    async def use() -> None:
        async with client:
            with pytest.raises(SourceUnavailable, match="ClientConnectorError"):
                await client.list_page(1)

    asyncio.run(use())
    assert harness.outcomes == [("list", "error")]


def test_from_settings_converts_units_and_keeps_the_key_hidden() -> None:
    source = SourceSettings.model_validate(
        {
            "name": "staging",
            "base_url": "http://zaia.test/",
            "api_key": KEY,
            "auth_scheme": "raw",
            "page_size": 50,
            "responder_ids": ["r1"],
            "request_timeout": "5s",
            "max_retries": 5,
            "retry_backoff": "250ms",
            "retry_backoff_max": "1m",
        }
    )
    config = ClientConfig.from_settings(source, index=2)
    assert config == ClientConfig(
        name="staging",
        base_url="http://zaia.test",
        api_key=KEY,
        auth_scheme="raw",
        page_size=50,
        responder_ids=("r1",),
        request_timeout_s=5.0,
        max_retries=5,
        retry_backoff_s=0.25,
        retry_backoff_max_s=60.0,
        config_path="sources.2",
    )
    assert config.field_path("api_key") == "sources.2.api_key"
    assert ClientConfig.from_settings(source).field_path("api_key") == "api_key of this source"
    assert KEY not in repr(config)


# --- against the simulator over real HTTP --------------------------------------------


@asynccontextmanager
async def sim_client(
    harness: Harness, workspace: SimWorkspace, **overrides: Any
) -> AsyncIterator[ZaiaClient]:
    async with (
        SimServer(workspace) as server,
        harness.client(base_url=server.url, **overrides) as c,
    ):
        yield c


@pytest.fixture
def workspace() -> SimWorkspace:
    return SimWorkspace(api_key=KEY, seed=3, now=lambda: NOW)


@pytest.mark.parametrize("scheme", ["bearer", "raw"])
async def test_sim_accepts_both_auth_schemes(
    harness: Harness, workspace: SimWorkspace, scheme: str
) -> None:
    execution_id = workspace.create_execution(status="failed", error="boom")
    async with sim_client(harness, workspace, auth_scheme=scheme) as client:
        page = await client.list_page(1)
    assert [e.id for e in page.items] == [execution_id]
    assert page.problems == ()


async def test_sim_refuses_a_wrong_key_without_repeating_it(
    harness: Harness, workspace: SimWorkspace
) -> None:
    workspace.api_key = "the-right-key"
    async with sim_client(harness, workspace) as client:
        with pytest.raises(SourceUnauthorized, match=r"source 'prod' \(sources.0.api_key\)") as c:
            await client.list_page(1)
    assert c.value.status_code == 401
    assert workspace.requests["list"] == 1
    assert_key_free(c.value)


async def test_sim_paging_reads_every_execution_once_newest_first(
    harness: Harness, workspace: SimWorkspace
) -> None:
    for minutes in range(7):
        workspace.create_execution(
            status="completed", created_at=NOW - timedelta(minutes=10 - minutes)
        )
    async with sim_client(harness, workspace) as client:
        pages = [await client.list_page(n) for n in (1, 2, 3)]
    assert [(p.raw_count, p.is_full) for p in pages] == [(3, True), (3, True), (1, False)]
    ids = [e.id for p in pages for e in p.items]
    assert ids == workspace.execution_ids()
    created = [e.created_at for p in pages for e in p.items]
    assert created == sorted(created, reverse=True)
    assert harness.outcomes == [("list", 200)] * 3


async def test_sim_responder_filter(harness: Harness, workspace: SimWorkspace) -> None:
    first, second = workspace.responder_ids("agent")[:2]
    wanted = workspace.create_execution(responder_id=first)
    workspace.create_execution(responder_id=second)
    async with sim_client(harness, workspace, responder_ids=(first,)) as client:
        page = await client.list_page(1)
    assert [e.id for e in page.items] == [wanted]


async def test_sim_get_and_vanished_execution(harness: Harness, workspace: SimWorkspace) -> None:
    execution_id = workspace.create_execution(kind="workflow", status="running")
    async with sim_client(harness, workspace) as client:
        execution = await client.get_execution(execution_id)
        assert (execution.kind, execution.status, execution.ended_at) == (
            "workflow",
            "running",
            None,
        )
        workspace.delete(execution_id)
        with pytest.raises(SourceNotFound, match="not found"):
            await client.get_execution(execution_id)
    assert harness.outcomes == [("get", 200), ("get", 404)]


async def test_sim_nestings_tree(harness: Harness, workspace: SimWorkspace) -> None:
    root = workspace.create_execution(kind="squad")
    child = workspace.spawn_child(root)
    grandchild = workspace.spawn_child(child, status="failed")
    async with sim_client(harness, workspace) as client:
        tree = await client.get_nestings(root)
        with pytest.raises(SourceRejected, match=r"HTTP 400 \w+: executionId must be a UUID"):
            await client.get_nestings("not-a-uuid")
    assert {node.id for node in tree.walk()} == {root, child, grandchild}
    assert tree.children[0] is not None
    assert tree.children[0].parent_id == root


async def test_sim_5xx_then_success(harness: Harness, workspace: SimWorkspace) -> None:
    workspace.create_execution()
    workspace.inject_fault(Fault("status", endpoint="list", times=2, status=503))
    workspace.inject_fault(Fault("non_json", endpoint="list"))
    async with sim_client(harness, workspace) as client:
        page = await client.list_page(1)
    assert page.raw_count == 1
    assert harness.outcomes == [("list", 503), ("list", 503), ("list", 502), ("list", 200)]
    assert len(harness.sleeps.delays) == 3
    assert all(0 <= d <= 0.5 * 2**n for n, d in enumerate(harness.sleeps.delays))


async def test_sim_persistent_outage(harness: Harness, workspace: SimWorkspace) -> None:
    execution_id = workspace.create_execution()
    workspace.inject_fault(Fault("status", endpoint="get", times=10, status=502))
    async with sim_client(harness, workspace, max_retries=2) as client:
        with pytest.raises(SourceUnavailable, match=r"HTTP 502 .* after 3 attempts"):
            await client.get_execution(execution_id)
    assert workspace.requests["get"] == 3


@pytest.mark.parametrize(
    ("retry_after", "expected_s"), [("2", 2.0), ("Sun, 01 Mar 2026 12:00:09 GMT", 9.0)]
)
async def test_sim_retry_after(
    harness: Harness, workspace: SimWorkspace, retry_after: str, expected_s: float
) -> None:
    workspace.create_execution()
    workspace.inject_fault(Fault("retry_after", endpoint="any", retry_after=retry_after))
    async with sim_client(harness, workspace) as client:
        await client.list_page(1)
    assert harness.sleeps.delays == [expected_s]
    assert harness.outcomes == [("list", 429), ("list", 200)]


async def test_sim_delay_times_out_then_succeeds(harness: Harness, workspace: SimWorkspace) -> None:
    execution_id = workspace.create_execution()
    workspace.inject_fault(Fault("delay", endpoint="nestings", delay_s=30.0))
    async with sim_client(harness, workspace, request_timeout_s=0.2) as client:
        tree = await client.get_nestings(execution_id)
    assert tree.id == execution_id
    assert harness.outcomes == [("nestings", "error"), ("nestings", 200)]


async def test_a_page_read_again_unchanged_is_not_parsed_again(
    harness: Harness, workspace: SimWorkspace
) -> None:
    ids = [workspace.create_execution() for _ in range(3)]
    async with sim_client(harness, workspace) as client:
        first = await client.list_page(1)
        again = await client.list_page(1)
        other_size = await client.list_page(1, page_size=2)
        workspace.set_status(ids[0], "failed")
        changed = await client.list_page(1)
    assert again is first  # the same bytes: the page parsed last time
    assert other_size is not first
    assert len(other_size.entries) == 2
    assert changed is not first
    assert {e.id: e.status for e in changed.entries}[ids[0]] == "failed"
    assert {e.id: e.status for e in first.entries}[ids[0]] == "running"


def test_the_page_memo_keeps_only_the_pages_read_most_recently() -> None:
    memo = PageMemo(capacity=2)
    pages = {n: ExecutionPage(n, 3, (), (), raw_count=0) for n in (1, 2, 3)}
    for number, page in pages.items():
        memo.remember(b"[]", page)
        assert memo.recall(number, 3, b"[]") is page
    assert memo.recall(1, 3, b"[]") is None  # the oldest went when the third came
    assert memo.recall(2, 3, b"[ ]") is None  # other bytes are another answer
    assert memo.recall(2, 100, b"[]") is None  # another page size, another page


async def test_a_proxy_password_never_reaches_an_error(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The proxy refuses the tunnel: aiohttp's error quotes the proxy URL it was given.
    async with Receiver(script(Reply(407, "proxy says no"))) as proxy:
        port = proxy.url.rsplit(":", 1)[1].split("/")[0]
        monkeypatch.setenv("HTTPS_PROXY", f"http://bob:hunter2secret@127.0.0.1:{port}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with harness.client(base_url="https://zaia.example.invalid", max_retries=0) as c:
            with pytest.raises(SourceUnavailable) as caught:
                await c.list_page(1)
    text = f"{caught.value} {caught.value!r} {caught.value.__cause__!r}"
    assert "127.0.0.1" in text  # the error still says which proxy refused
    assert "hunter2secret" not in text
    assert "bob:" not in text
