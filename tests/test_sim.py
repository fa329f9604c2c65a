"""Behaviour of the simulated Zaia workspace: state changes, paging, auth, faults and the
control API, through the workspace itself and over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from relay.sim import (
    DEFAULT_RESPONDERS,
    Fault,
    ManualClock,
    SimServer,
    SimWorkspace,
    UnknownExecutionError,
    create_app,
)

LIST = "/api/v1/executions"
NESTINGS = "/api/v1/executions/nestings"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def ws(clock: ManualClock) -> SimWorkspace:
    """An empty workspace, for tests that build exactly what they need."""
    return SimWorkspace(api_key="k", seed=7, now=clock)


@pytest.fixture
async def http(ws: SimWorkspace) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        SimServer(ws) as server,
        httpx.AsyncClient(base_url=server.url, headers={"Authorization": "k"}) as client,
    ):
        yield client


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def failed_events(execution: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in execution["detail"]["events"] if e["status"] == "failed"]


# --- state ----------------------------------------------------------------------------


def test_new_execution_is_running_and_shaped_by_kind(ws: SimWorkspace) -> None:
    agent = ws.raw(ws.create_execution())
    assert (agent["status"], agent["endedAt"], agent["parentId"]) == ("running", None, None)
    assert agent["createdAt"] == agent["startedAt"] == iso(T0)
    assert agent["detail"]["type"] == "agent-execution"
    assert {e["type"] for e in agent["detail"]["events"]} <= {"iteration", "tool-call"}
    assert agent["detail"]["events"][-1]["status"] == "running"
    squad = ws.raw(ws.create_execution(kind="squad"))
    assert squad["detail"]["squadId"]
    workflow = ws.raw(ws.create_execution(kind="workflow"))
    assert {e["type"] for e in workflow["detail"]["events"]} == {"workflow-node"}
    assert workflow["detail"]["origin"]["type"] in ("webhook-request", "agent-tool-request")


def test_status_moves_set_ended_and_bump_updated_even_on_a_frozen_clock(
    ws: SimWorkspace, clock: ManualClock
) -> None:
    execution_id = ws.create_execution()
    ws.set_status(execution_id, "completed")
    done = ws.raw(execution_id)
    assert done["endedAt"] == done["updatedAt"] == "2026-03-02T09:00:00.001Z"
    assert all(e["status"] == "completed" for e in done["detail"]["events"])
    ws.set_status(execution_id, "completed")  # not a change
    assert ws.raw(execution_id)["updatedAt"] == done["updatedAt"]
    clock.advance(seconds=5)
    ws.set_status(execution_id, "running")
    again = ws.raw(execution_id)
    assert (again["endedAt"], again["updatedAt"]) == (None, "2026-03-02T09:00:05.000Z")


def test_failure_adds_one_failed_step_with_the_error(ws: SimWorkspace) -> None:
    execution_id = ws.create_execution(kind="workflow")
    ws.set_status(execution_id, "failed", error="SMTP refused", error_code="SMTP_ERROR")
    execution = ws.raw(execution_id)
    [step] = failed_events(execution)
    error = {"error": {"message": "SMTP refused", "code": "SMTP_ERROR"}}
    assert step["output"] == execution["detail"]["output"] == error
    assert step["type"] == "workflow-node"
    assert step["childExecutionId"] is None


def test_failure_without_message_uses_a_realistic_error(ws: SimWorkspace) -> None:
    execution_id = ws.create_execution(status="failed")
    [step] = failed_events(ws.raw(execution_id))
    assert step["output"]["error"]["message"]
    assert step["output"]["error"]["code"].isupper()


def test_a_failed_child_is_the_failing_step_of_its_parent(ws: SimWorkspace) -> None:
    parent = ws.create_execution(kind="agent")
    ok_child = ws.spawn_child(parent, status="completed")
    bad_child = ws.spawn_child(parent, kind="workflow")
    ws.set_status(bad_child, "failed", error="ERP timed out")
    ws.set_status(parent, "failed")
    [step] = failed_events(ws.raw(parent))
    assert step["type"] == "tool-call"
    assert step["toolType"] == "workflow"
    assert step["childExecutionId"] == bad_child
    assert step["output"]["error"]["message"] == "Child execution failed: ERP timed out"
    assert ws.children_of(parent) == [ok_child, bad_child]


def test_children_show_in_the_parent_and_its_tree(ws: SimWorkspace) -> None:
    root = ws.create_execution(kind="workflow")
    child = ws.spawn_child(root)
    grandchild = ws.spawn_child(child, kind="workflow")
    assert ws.raw(child)["parentId"] == root
    assert ws.raw(child)["detail"]["origin"]["type"] == "agentic-execution-node"
    assert ws.raw(grandchild)["detail"]["origin"]["type"] == "agent-tool-request"
    node_step = ws.raw(root)["detail"]["events"][-1]
    assert (node_step["type"], node_step["nodeType"]) == ("workflow-node", "agent")
    assert node_step["childExecutionId"] == child
    assert node_step["workflowNodeId"] == ws.raw(child)["detail"]["origin"]["workflowNodeId"]
    tree = ws.raw_tree(root)
    assert tree["children"][0]["id"] == child
    assert tree["children"][0]["children"][0]["id"] == grandchild
    assert tree["children"][0]["children"][0]["children"] == []


def test_a_running_parent_follows_its_child_and_an_ended_one_is_frozen(ws: SimWorkspace) -> None:
    parent = ws.create_execution()
    child = ws.spawn_child(parent)
    before = ws.raw(parent)
    ws.set_status(child, "completed")
    after = ws.raw(parent)
    assert after["updatedAt"] > before["updatedAt"]
    assert after["detail"]["events"][-1]["status"] == "completed"
    ws.set_status(parent, "completed")
    ended = ws.raw(parent)
    ws.set_status(child, "failed")
    assert ws.raw(parent) == ended


def test_credits_grow_and_are_split_over_steps(ws: SimWorkspace) -> None:
    execution_id = ws.create_execution(credits_used=1.0)
    first = ws.raw(execution_id)
    ws.add_credits(execution_id, 2.5)
    ws.add_credits(execution_id, 0.25)
    grown = ws.raw(execution_id)
    assert grown["creditsUsed"] == 3.75
    assert grown["updatedAt"] > first["updatedAt"]
    assert sum(e["creditsUsed"] for e in grown["detail"]["events"]) == pytest.approx(3.75, abs=1e-3)
    with pytest.raises(ValueError, match="credits"):
        ws.add_credits(execution_id, -1)
    with pytest.raises(ValueError, match="credits"):
        ws.add_credits(execution_id, float("nan"))


def test_purge_strips_data_but_keeps_the_execution_listed(ws: SimWorkspace) -> None:
    execution_id = ws.create_execution(status="failed")
    ws.purge(execution_id)
    purged = ws.raw(execution_id)
    assert purged["isPurged"] is True
    assert (purged["detail"]["input"], purged["detail"]["output"]) == ({}, None)
    assert all(e["input"] is None and e["output"] is None for e in purged["detail"]["events"])
    assert ws.execution_ids() == [execution_id]


def test_delete_forgets_the_execution_but_not_its_parents_step(ws: SimWorkspace) -> None:
    parent = ws.create_execution()
    child = ws.spawn_child(parent)
    ws.delete(child)
    assert child not in ws
    assert ws.execution_ids() == [parent]
    assert ws.children_of(parent) == []
    assert ws.raw_tree(parent)["children"] == []
    assert ws.raw(parent)["detail"]["events"][-1]["childExecutionId"] == child
    for action in (ws.raw, ws.delete, ws.purge, lambda i: ws.set_status(i, "failed")):
        with pytest.raises(UnknownExecutionError):
            action(child)
    assert ws.counts_by_status()["running"] == 1


def test_invalid_arguments_are_refused(ws: SimWorkspace) -> None:
    with pytest.raises(ValueError, match="status"):
        ws.create_execution(status="paused")
    with pytest.raises(ValueError, match="origin"):
        ws.create_execution(kind="workflow", origin_type="chat-message")
    agent = DEFAULT_RESPONDERS[0]
    with pytest.raises(ValueError, match="is a agent"):
        ws.create_execution(kind="workflow", responder_id=agent.responder_id)
    with pytest.raises(UnknownExecutionError):
        ws.spawn_child("nope")
    with pytest.raises(ValueError, match="order"):
        SimWorkspace(order="random")  # type: ignore[arg-type]


def test_a_new_responder_id_becomes_a_responder_of_that_kind(ws: SimWorkspace) -> None:
    responder_id = "5f0f7a4e-8f39-4c43-9a43-7a3f5f2e1c11"
    execution_id = ws.create_execution(kind="squad", responder_id=responder_id)
    assert ws.raw(execution_id)["responderId"] == responder_id
    assert responder_id in ws.responder_ids("squad")
    again = ws.create_execution(responder_id=responder_id)
    assert ws.raw(again)["detail"]["type"] == "squad-execution"


def test_every_origin_type_can_be_asked_for(ws: SimWorkspace) -> None:
    for origin in ("api", "chat-message", "delegation", "agentic-execution-node"):
        assert ws.raw(ws.create_execution(origin_type=origin))["detail"]["origin"]["type"] == origin
    for origin in ("webhook-request", "agent-tool-request"):
        execution_id = ws.create_execution(kind="workflow", origin_type=origin)
        assert ws.raw(execution_id)["detail"]["origin"]["type"] == origin


def test_same_seed_same_workspace_and_another_seed_another(clock: ManualClock) -> None:
    def build(seed: int) -> bytes:
        ws = SimWorkspace(seed=seed, now=clock)
        ws.seed_history(300, running=10, purged=3)
        ws.set_status(ws.execution_ids(status="running")[0], "failed")
        return ws.page_json(page_number=1, page_size=100) + ws.page_json(
            page_number=3, page_size=100
        )

    assert build(1) == build(1)
    assert build(1) != build(2)


def test_history_is_realistic(clock: ManualClock) -> None:
    ws = SimWorkspace(seed=3, now=clock)
    ws.seed_history(2_000, running=50, purged=20, child_ratio=0.2)
    counts = ws.counts_by_status()
    assert sum(counts.values()) == len(ws) == 2_000
    assert counts["running"] >= 50
    assert counts["failed"] > 0
    assert counts["cancelled"] > 0
    newest = [ws.raw(i) for i in ws.execution_ids()[:200]]
    assert sum(e["status"] == "running" for e in newest) >= 50
    oldest = ws.raw(ws.execution_ids()[-1])
    assert oldest["isPurged"] is True
    assert oldest["createdAt"] >= iso(T0 - timedelta(days=3))
    for execution_id in ws.execution_ids(with_children=True):
        execution = ws.raw(execution_id)
        for child_id in ws.children_of(execution_id):
            child = ws.raw(child_id)
            assert child["createdAt"] >= execution["createdAt"]
            if execution["endedAt"] and child["endedAt"]:
                assert execution["endedAt"] >= child["endedAt"]
        if execution["status"] == "failed":
            assert len(failed_events(execution)) == 1


def test_seed_history_is_fast(clock: ManualClock) -> None:
    ws = SimWorkspace(seed=1, now=clock)
    started = time.process_time()
    ws.seed_history(20_000, running=200)
    seeded_s = time.process_time() - started
    ws.page_json(page_number=1, page_size=100)
    started = time.process_time()
    for page_number in range(1, 11):
        ws.page_json(page_number=page_number, page_size=100)
    paged_s = time.process_time() - started
    # Generous bounds (20k in ~0.2 s and ~5 ms a cold page on a laptop): this catches
    # accidental O(n) work per item, not machine speed.
    assert seeded_s < 3.0
    assert paged_s / 10 < 0.05


# --- ordering -------------------------------------------------------------------------


def test_list_is_newest_created_first_with_stable_ties(ws: SimWorkspace) -> None:
    old = ws.create_execution(created_at=T0 - timedelta(hours=1))
    tie_a = ws.create_execution(created_at=T0 - timedelta(minutes=5))
    tie_b = ws.create_execution(created_at=T0 - timedelta(minutes=5))
    new = ws.create_execution()
    middle = ws.create_execution(created_at=T0 - timedelta(minutes=30))
    assert ws.execution_ids() == [new, tie_b, tie_a, middle, old]
    ws.add_credits(old, 5)
    assert ws.execution_ids()[-1] == old


def test_updated_order_moves_changed_executions_to_the_top(clock: ManualClock) -> None:
    ws = SimWorkspace(seed=2, now=clock, order="updated")
    ws.seed_history(50, running=5)
    last = ws.execution_ids()[-1]
    ws.add_credits(last, 1)
    assert ws.execution_ids()[0] == last
    running = ws.execution_ids(status="running")[-1]
    ws.set_status(running, "completed")
    assert ws.execution_ids()[:2] == [running, last]
    page = json.loads(ws.page_json(page_number=1, page_size=100))
    updated = [e["updatedAt"] for e in page]
    assert updated == sorted(updated, reverse=True)
    assert len(page) == 50


# --- HTTP: paging, filters, auth ------------------------------------------------------


async def test_pages_cover_everything_once_in_order(
    sim_server: SimServer, sim_workspace: SimWorkspace
) -> None:
    headers = {"Authorization": sim_workspace.api_key}
    async with httpx.AsyncClient(base_url=sim_server.url, headers=headers) as client:
        seen: list[str] = []
        for page_number in range(1, 100):
            response = await client.get(LIST, params={"pageNumber": page_number, "pageSize": 7})
            page = response.json()
            seen.extend(item["id"] for item in page)
            if len(page) < 7:
                break
        beyond = await client.get(LIST, params={"pageNumber": 10_000, "pageSize": 100})
        single = await client.get(LIST, params={"pageSize": 1})
        default = await client.get(LIST)
    assert seen == sim_workspace.execution_ids()
    assert len(set(seen)) == len(seen)
    assert beyond.json() == []
    assert [i["id"] for i in single.json()] == seen[:1]
    assert [i["id"] for i in default.json()] == seen[:10]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"pageNumber": "0"}, "pageNumber must be at least 1"),
        ({"pageNumber": "-1"}, "pageNumber must be a whole number"),
        ({"pageNumber": "x"}, "pageNumber must be a whole number"),
        ({"pageSize": "0"}, "pageSize must be between 1 and 100"),
        ({"pageSize": "101"}, "pageSize must be between 1 and 100"),
        ({"pageSize": ""}, "pageSize must be a whole number"),
        ({"responderIds": "r1"}, "responderIds must be UUIDs"),
    ],
)
async def test_bad_list_parameters_are_400(
    http: httpx.AsyncClient, params: dict[str, str], fragment: str
) -> None:
    response = await http.get(LIST, params=params)
    assert response.status_code == 400
    body = response.json()
    assert fragment in body["message"]
    assert set(body["feedback"]) == {"enUs", "esEs", "ptBr"}


async def test_responder_filter_single_repeated_and_comma_separated(
    http: httpx.AsyncClient, ws: SimWorkspace
) -> None:
    first, second, third = ws.responder_ids("agent")[:3]
    by_responder = {r: ws.create_execution(responder_id=r) for r in (first, second, third)}
    unknown = "0f8b0c50-6a53-4b8e-8b55-1f0c83b0a111"

    async def ids(params: Any) -> list[str]:
        return [item["id"] for item in (await http.get(LIST, params=params)).json()]

    assert await ids({"responderIds": first}) == [by_responder[first]]
    assert await ids([("responderIds", third), ("responderIds", first)]) == [
        by_responder[third],
        by_responder[first],
    ]
    assert await ids({"responderIds": f"{first},{second}"}) == [
        by_responder[second],
        by_responder[first],
    ]
    assert await ids({"responderIds": unknown}) == []
    assert await ids([("responderIds", unknown), ("responderIds", first)]) == [by_responder[first]]


@pytest.mark.parametrize("authorization", ["k", "Bearer k", "bearer k", "Bearer   k"])
async def test_both_auth_schemes_are_accepted(
    ws: SimWorkspace, http: httpx.AsyncClient, authorization: str
) -> None:
    ws.create_execution()
    response = await http.get(LIST, headers={"Authorization": authorization})
    assert response.status_code == 200


@pytest.mark.parametrize("authorization", ["K", "Bearer", "Bearer kk", "Token k", "Basic k"])
async def test_wrong_keys_are_401_and_counted(
    ws: SimWorkspace, http: httpx.AsyncClient, authorization: str
) -> None:
    response = await http.get(LIST, headers={"Authorization": authorization})
    assert response.status_code == 401
    assert response.json()["name"] == "UnauthorizedException"
    assert "k" not in response.json()["message"].split()
    assert ws.requests == {"list": 1, "get": 0, "nestings": 0}


async def test_get_and_nestings_over_http(http: httpx.AsyncClient, ws: SimWorkspace) -> None:
    root = ws.create_execution(origin_type="chat-message")
    child = ws.spawn_child(root)
    chat_message_id = ws.raw(root)["detail"]["origin"]["chatMessageId"]
    follow_up = ws.add_follow_up_message()

    got = await http.get(f"{LIST}/{root}")
    assert got.json() == ws.raw(root)
    by_id = await http.get(NESTINGS, params={"executionId": root})
    by_chat = await http.get(NESTINGS, params={"chatMessageId": chat_message_id})
    assert by_id.json() == by_chat.json() == ws.raw_tree(root)
    assert by_id.json()["children"][0]["id"] == child
    both = await http.get(NESTINGS, params={"executionId": child, "chatMessageId": follow_up})
    assert both.json()["id"] == child
    assert (await http.get(NESTINGS, params={"chatMessageId": follow_up})).status_code == 412
    assert (await http.get(NESTINGS)).status_code == 400
    ws.delete(root)
    assert (await http.get(f"{LIST}/{root}")).status_code == 404
    assert (await http.get(NESTINGS, params={"executionId": root})).status_code == 404
    assert (await http.get(NESTINGS, params={"chatMessageId": chat_message_id})).status_code == 404
    assert ws.requests == {"list": 0, "get": 2, "nestings": 7}


# --- faults ---------------------------------------------------------------------------


async def test_status_fault_applies_times_then_clears(
    http: httpx.AsyncClient, ws: SimWorkspace
) -> None:
    execution_id = ws.create_execution()
    ws.inject_fault(Fault("status", endpoint="list", times=2, status=500))
    assert (await http.get(f"{LIST}/{execution_id}")).status_code == 200
    statuses = [(await http.get(LIST)).status_code for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert ws.requests == {"list": 3, "get": 1, "nestings": 0}
    assert ws.stats()["faults_pending"] == 0


@pytest.mark.parametrize("retry_after", [None, "7", "Mon, 02 Mar 2026 09:00:30 GMT"])
async def test_rate_limit_fault_sends_retry_after(
    http: httpx.AsyncClient, ws: SimWorkspace, retry_after: str | None
) -> None:
    ws.inject_fault(Fault("retry_after", retry_after=retry_after))
    limited = await http.get(NESTINGS)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == (retry_after or "1")
    assert limited.json()["name"] == "TooManyRequestsException"
    assert (await http.get(NESTINGS)).status_code == 400


async def test_non_json_fault_serves_an_html_page(
    http: httpx.AsyncClient, ws: SimWorkspace
) -> None:
    ws.inject_fault(Fault("non_json", endpoint="get"))
    ws.inject_fault(Fault("non_json", endpoint="get", status=504))
    first = await http.get(f"{LIST}/whatever")
    second = await http.get(f"{LIST}/whatever")
    assert (first.status_code, second.status_code) == (502, 504)
    assert first.headers["content-type"].startswith("text/html")
    assert "502 Bad Gateway" in first.text
    assert "504 Gateway Timeout" in second.text
    with pytest.raises(json.JSONDecodeError):
        first.json()


async def test_faults_come_before_auth(ws: SimWorkspace, http: httpx.AsyncClient) -> None:
    ws.inject_fault(Fault("status"))
    response = await http.get(LIST, headers={"Authorization": "wrong"})
    assert response.status_code == 503
    assert response.json()["cta"]["type"] == "support-contact"


async def test_delay_fault_delays_then_answers(http: httpx.AsyncClient, ws: SimWorkspace) -> None:
    ws.create_execution()
    ws.inject_fault(Fault("delay", endpoint="list", delay_s=0.05))
    started = time.monotonic()
    response = await http.get(LIST)
    assert time.monotonic() - started >= 0.05
    assert response.status_code == 200
    assert len(response.json()) == 1


async def test_closing_the_server_cuts_delays_short(ws: SimWorkspace) -> None:
    ws.inject_fault(Fault("delay", delay_s=60))
    server = SimServer(ws)
    await server.start()
    async with httpx.AsyncClient(base_url=server.url) as client:
        request = asyncio.create_task(client.get(LIST, headers={"Authorization": "k"}))
        # Wait (polling the counter, bounded) until the handler is inside its delay.
        for _ in range(5_000):
            if ws.requests["list"]:
                break
            await asyncio.sleep(0.001)
        started = time.monotonic()
        await server.close()
        response = await request
    assert response.status_code == 503
    assert time.monotonic() - started < 5
    await server.close()  # a second close is harmless


def test_fault_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="kind"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="endpoint"):
        Fault("status", endpoint="stats")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times"):
        Fault("status", times=0)
    with pytest.raises(ValueError, match="HTTP status"):
        Fault("status", status=700)
    assert Fault("retry_after").effective_status == 429
    assert Fault("non_json").effective_status == 502
    assert Fault("status").effective_status == 503


# --- server and control API -----------------------------------------------------------


async def test_server_url_and_port(ws: SimWorkspace) -> None:
    server = SimServer(ws)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    async with server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.port > 0


async def test_control_api_drives_the_workspace(ws: SimWorkspace, http: httpx.AsyncClient) -> None:
    created = await http.post(
        "/_sim/executions",
        json={"kind": "squad", "credits_used": 2, "created_at": "2026-03-02T08:00:00Z"},
    )
    assert created.status_code == 201
    root = created.json()["id"]
    assert created.json()["execution"]["createdAt"] == "2026-03-02T08:00:00.000Z"
    child = (await http.post(f"/_sim/executions/{root}/children", json={})).json()["id"]
    credited = await http.post(f"/_sim/executions/{root}/credits", json={"amount": 3})
    assert credited.json()["execution"]["creditsUsed"] == 5
    failed = await http.post(
        f"/_sim/executions/{child}/status", json={"status": "failed", "error": "boom"}
    )
    assert failed.json()["execution"]["status"] == "failed"
    await http.post(f"/_sim/executions/{root}/purge")
    assert ws.raw(root)["isPurged"] is True
    listed = await http.get("/_sim/executions", params={"status": "failed"})
    assert listed.json() == {"ids": [child]}
    assert (await http.post(f"/_sim/executions/{child}/delete")).json()["deleted"] is True
    assert child not in ws

    follow_up = (await http.post("/_sim/follow-ups", json={})).json()["chat_message_id"]
    assert (await http.get(NESTINGS, params={"chatMessageId": follow_up})).status_code == 412
    fault = await http.post("/_sim/faults", json={"kind": "status", "endpoint": "get"})
    assert fault.json()["faults_pending"] == 1
    assert (await http.delete("/_sim/faults")).json()["faults_pending"] == 0
    seeded = await http.post("/_sim/seed", json={"count": 40, "running": 4})
    assert seeded.json()["executions"] == 41

    stats = (await http.get("/_sim/stats")).json()
    assert stats["requests"] == {"list": 0, "get": 0, "nestings": 1}
    assert sum(stats["statuses"].values()) == 41


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/_sim/executions", {"kind": "robot"}, 400),
        ("POST", "/_sim/executions", {"colour": "red"}, 400),
        ("POST", "/_sim/executions", [1, 2], 400),
        ("POST", "/_sim/executions/nope/status", {"status": "failed"}, 404),
        ("POST", "/_sim/executions/nope/credits", {"amount": 1}, 404),
        ("POST", "/_sim/faults", {"kind": "explode"}, 400),
        ("POST", "/_sim/faults", {}, 400),
        ("GET", "/_sim/executions?kind=robot", None, 400),
    ],
)
async def test_control_api_refuses_bad_requests(
    http: httpx.AsyncClient, method: str, path: str, body: Any, status: int
) -> None:
    response = await http.request(method, path, json=body)
    assert response.status_code == status
    assert response.json()["error"]


async def test_control_api_refuses_bad_credits(http: httpx.AsyncClient, ws: SimWorkspace) -> None:
    execution_id = ws.create_execution()
    for amount in ("3", True, -2):
        response = await http.post(
            f"/_sim/executions/{execution_id}/credits", json={"amount": amount}
        )
        assert response.status_code == 400


async def test_control_api_is_only_mounted_on_request(ws: SimWorkspace) -> None:
    assert any(r.canonical == "/_sim/stats" for r in create_app(ws).router.resources())
    assert not any(
        r.canonical.startswith("/_sim") for r in create_app(ws, control=False).router.resources()
    )
    async with (
        SimServer(ws, control=False) as server,
        httpx.AsyncClient(base_url=server.url) as client,
    ):
        assert (await client.get("/_sim/stats")).status_code == 404
