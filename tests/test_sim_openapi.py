"""The simulator answers what the OpenAPI document promises, over real HTTP.

Every response body (successes and errors) is validated against the schema the document
gives for that path and status, with formats checked (strict RFC 3339 date-times and
UUID v4 ids), and parsed with the relay's own models. The document is OpenAPI 3.1 but
still says `nullable: true` in places; the schemas are rewritten so null is allowed
there, as the authors meant.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from relay.domain.models import ApiErrorBody, Execution, ExecutionTree
from relay.sim import Fault, SimServer, SimWorkspace

SPEC_PATH = Path(__file__).parent / "data" / "zaia-executions.openapi.json"
LIST = "/api/v1/executions"
GET = "/api/v1/executions/{id}"
NESTINGS = "/api/v1/executions/nestings"

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE
)


def allow_nullable(node: Any) -> Any:
    """Rewrite OpenAPI's `nullable: true` into JSON Schema that accepts null."""
    if isinstance(node, list):
        return [allow_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: allow_nullable(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        if isinstance(out.get("type"), str) and "enum" not in out:
            out["type"] = [out["type"], "null"]
        elif set(out) - {"description"}:
            out = {"anyOf": [out, {"type": "null"}]}
        # Otherwise the schema constrains nothing and accepts null already.
    return out


def _format_checker() -> FormatChecker:
    checker = FormatChecker()

    # Registered here rather than through rfc3339-validator so the check is always on.
    @checker.checks("date-time", raises=ValueError)
    def is_date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        return bool(_RFC3339.match(value))

    # The document says "A UUID v4 string"; hold the simulator to it.
    @checker.checks("uuid", raises=ValueError)
    def is_uuid_v4(value: object) -> bool:
        if not isinstance(value, str):
            return True
        return uuid.UUID(value).version == 4 and str(uuid.UUID(value)) == value.lower()

    return checker


class Spec:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._checker = _format_checker()
        self._validators: dict[tuple[str, int], Draft202012Validator] = {}

    def schema(self, path: str, status: int) -> dict[str, Any]:
        response = self.document["paths"][path]["get"]["responses"][str(status)]
        schema: dict[str, Any] = response["content"]["application/json"]["schema"]
        return schema

    def validator(self, path: str, status: int) -> Draft202012Validator:
        key = (path, status)
        if key not in self._validators:
            schema = allow_nullable(self.schema(path, status))
            Draft202012Validator.check_schema(schema)
            self._validators[key] = Draft202012Validator(schema, format_checker=self._checker)
        return self._validators[key]

    def check(self, path: str, response: httpx.Response, *, status: int) -> Any:
        """The response's JSON, after asserting its status and validating its body."""
        assert response.status_code == status, response.text[:500]
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        errors = sorted(
            self.validator(path, status).iter_errors(body), key=lambda e: list(e.absolute_path)
        )
        assert not errors, "\n".join(
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors[:10]
        )
        return body


@pytest.fixture(scope="module")
def spec() -> Spec:
    return Spec(json.loads(SPEC_PATH.read_text(encoding="utf-8")))


@pytest.fixture
async def api(sim_server: SimServer) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {sim_server.workspace.api_key}"}
    async with httpx.AsyncClient(base_url=sim_server.url, headers=headers) as client:
        yield client


def _events(execution: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from execution["detail"]["events"]


# --- the schema rewriting itself -------------------------------------------------------


def test_allow_nullable_rewrites() -> None:
    assert allow_nullable({"type": "string", "nullable": True}) == {"type": ["string", "null"]}
    assert allow_nullable({"nullable": True}) == {}
    assert allow_nullable({"enum": ["a"], "type": "string", "nullable": True}) == {
        "anyOf": [{"enum": ["a"], "type": "string"}, {"type": "null"}]
    }
    assert allow_nullable({"type": "object", "nullable": False}) == {"type": "object"}


def test_format_checks_are_strict(spec: Spec) -> None:
    checker = _format_checker()
    assert checker.conforms("2026-03-02T09:00:00.000Z", "date-time")
    assert checker.conforms("2026-03-02T09:00:00+00:00", "date-time")
    assert not checker.conforms("2026-03-02 09:00:00", "date-time")
    assert not checker.conforms("2026-13-02T09:00:00Z", "date-time")
    assert checker.conforms(str(uuid.uuid4()), "uuid")
    assert not checker.conforms(str(uuid.uuid1()), "uuid")
    assert not checker.conforms("not-a-uuid", "uuid")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("createdAt",), "2026-03-02 09:00"),
        (("id",), "not-a-uuid"),
        (("status",), "paused"),
        (("creditsUsed",), -1),
        (("detail", "events", 0, "label"), "ab"),
        (("detail", "origin", "type"), "email"),
        (("detail", "type"), "robot-execution"),
    ],
)
def test_the_validator_is_not_vacuous(
    spec: Spec, sim_workspace: SimWorkspace, path: tuple[str | int, ...], value: object
) -> None:
    body = sim_workspace.raw(sim_workspace.execution_ids(kind="agent")[0])
    assert not list(spec.validator(GET, 200).iter_errors(body))
    node: Any = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert list(spec.validator(GET, 200).iter_errors(body))


# --- successes -------------------------------------------------------------------------


async def test_every_list_page_matches_the_schema(
    spec: Spec, api: httpx.AsyncClient, sim_workspace: SimWorkspace
) -> None:
    items: list[dict[str, Any]] = []
    page_number = 1
    while True:
        response = await api.get(LIST, params={"pageNumber": page_number, "pageSize": 100})
        page = spec.check(LIST, response, status=200)
        items.extend(page)
        if len(page) < 100:
            break
        page_number += 1
    assert len(items) == len(sim_workspace)
    for item in items:
        Execution.model_validate(item)

    # The seeded data covers what the schema allows, so the validation above means something.
    kinds = {
        "agent-execution": "agent",
        "squad-execution": "squad",
        "workflow-execution": "workflow",
    }
    seen = {(kinds[i["detail"]["type"]], i["status"]) for i in items}
    assert seen == {
        (k, s)
        for k in ("agent", "squad", "workflow")
        for s in ("running", "completed", "failed", "cancelled")
    }
    origins = {i["detail"]["origin"]["type"] for i in items}
    assert origins == {
        "api",
        "chat-message",
        "delegation",
        "agentic-execution-node",
        "webhook-request",
        "agent-tool-request",
    }
    events = [e for i in items for e in _events(i)]
    assert {e["type"] for e in events} == {"iteration", "tool-call", "workflow-node"}
    assert {e["status"] for e in events} == {"running", "completed", "failed"}
    assert any(e["childExecutionId"] for e in events if e["type"] == "tool-call")
    assert any(e["childExecutionId"] for e in events if e["type"] == "workflow-node")
    assert any(e["llmProvider"]["id"] is None for e in events if e["type"] == "iteration")
    assert any(i["isPurged"] for i in items)
    assert any(i["parentId"] for i in items)
    assert all(i["endedAt"] is None for i in items if i["status"] == "running")


async def test_default_page_and_responder_filters_match_the_schema(
    spec: Spec, api: httpx.AsyncClient, sim_workspace: SimWorkspace
) -> None:
    page = spec.check(LIST, await api.get(LIST), status=200)
    assert len(page) == 10
    first, second = sim_workspace.responder_ids()[:2]
    single = spec.check(LIST, await api.get(LIST, params={"responderIds": first}), status=200)
    assert single
    assert {i["responderId"] for i in single} == {first}
    both = spec.check(
        LIST,
        await api.get(LIST, params=[("responderIds", first), ("responderIds", second)]),
        status=200,
    )
    assert {i["responderId"] for i in both} == {first, second}


async def test_every_execution_by_id_matches_the_schema(
    spec: Spec, api: httpx.AsyncClient, sim_workspace: SimWorkspace
) -> None:
    for execution_id in sim_workspace.execution_ids():
        body = spec.check(GET, await api.get(f"{LIST}/{execution_id}"), status=200)
        assert body == sim_workspace.raw(execution_id)
        assert Execution.model_validate(body).id == execution_id


async def test_every_tree_matches_the_schema(
    spec: Spec, api: httpx.AsyncClient, sim_workspace: SimWorkspace
) -> None:
    parents = sim_workspace.execution_ids(with_children=True)
    assert any(sim_workspace.raw(p)["parentId"] for p in parents), "expected grandchildren"
    for execution_id in parents:
        response = await api.get(NESTINGS, params={"executionId": execution_id})
        body = spec.check(NESTINGS, response, status=200)
        tree = ExecutionTree.model_validate(body)
        assert {node.id for node in tree.walk()} >= {execution_id}
        assert [c.id for c in tree.children if c] == sim_workspace.children_of(execution_id)
    leaf = sim_workspace.execution_ids(roots_only=True)[0]
    body = spec.check(NESTINGS, await api.get(NESTINGS, params={"executionId": leaf}), status=200)
    assert body["children"] == []


async def test_tree_by_chat_message_matches_the_schema(
    spec: Spec, api: httpx.AsyncClient, sim_workspace: SimWorkspace
) -> None:
    by_chat = [
        sim_workspace.raw(i)
        for i in sim_workspace.execution_ids()
        if sim_workspace.raw(i)["detail"]["origin"]["type"] == "chat-message"
    ]
    assert by_chat
    for execution in by_chat[:20]:
        chat_message_id = execution["detail"]["origin"]["chatMessageId"]
        response = await api.get(NESTINGS, params={"chatMessageId": chat_message_id})
        assert spec.check(NESTINGS, response, status=200)["id"] == execution["id"]


async def test_live_changes_keep_matching_the_schema(
    spec: Spec, api: httpx.AsyncClient, sim_workspace: SimWorkspace
) -> None:
    """A story: an agent delegates, its child calls a workflow that fails, everything
    fails upward; then one is purged. Every intermediate answer is valid."""
    ws = sim_workspace
    root = ws.create_execution(kind="agent", origin_type="chat-message", is_agentic=True)
    child = ws.spawn_child(root, kind="agent")
    workflow = ws.spawn_child(child, kind="workflow")
    agent_in_workflow = ws.spawn_child(workflow, kind="agent")

    async def check_all(*execution_ids: str) -> None:
        for execution_id in execution_ids or (root, child, workflow, agent_in_workflow):
            body = spec.check(GET, await api.get(f"{LIST}/{execution_id}"), status=200)
            Execution.model_validate(body)
        response = await api.get(NESTINGS, params={"executionId": root})
        ExecutionTree.model_validate(spec.check(NESTINGS, response, status=200))
        spec.check(LIST, await api.get(LIST, params={"pageSize": 100}), status=200)

    await check_all()
    ws.add_credits(root, 12.5)
    ws.set_status(agent_in_workflow, "completed")
    await check_all()
    ws.set_status(workflow, "failed", error="Node 'Send confirmation email' failed: SMTP 550")
    ws.set_status(child, "failed")
    ws.set_status(root, "failed")
    await check_all()
    ws.purge(child)
    await check_all()
    ws.set_status(agent_in_workflow, "cancelled")
    ws.delete(agent_in_workflow)
    await check_all(root, child, workflow)


# --- errors ----------------------------------------------------------------------------


def _as_error(body: Any) -> ApiErrorBody:
    return ApiErrorBody.model_validate(body)


@pytest.mark.parametrize("path", [LIST, GET, NESTINGS])
@pytest.mark.parametrize(
    "authorization", [None, "wrong-key", "Bearer wrong-key", "Basic {key}", "Bearer", ""]
)
async def test_unauthorized_matches_the_schema(
    spec: Spec,
    sim_server: SimServer,
    sim_workspace: SimWorkspace,
    path: str,
    authorization: str | None,
) -> None:
    execution_id = sim_workspace.execution_ids()[0]
    url = path.replace("{id}", execution_id)
    params = {"executionId": execution_id} if path == NESTINGS else {}
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization.format(key=sim_workspace.api_key)
    async with httpx.AsyncClient(base_url=sim_server.url) as client:
        response = await client.get(url, params=params, headers=headers)
    assert _as_error(spec.check(path, response, status=401)).name == "UnauthorizedException"


@pytest.mark.parametrize(
    "execution_id", [str(uuid.UUID(int=7, version=4)), "not-a-uuid", "00000000"]
)
async def test_unknown_execution_matches_the_schema(
    spec: Spec, api: httpx.AsyncClient, execution_id: str
) -> None:
    body = spec.check(GET, await api.get(f"{LIST}/{execution_id}"), status=404)
    assert _as_error(body).message == "Execution not found."


@pytest.mark.parametrize(
    "params",
    [
        {"executionId": str(uuid.UUID(int=7, version=4))},
        {"chatMessageId": str(uuid.UUID(int=8, version=4))},
    ],
)
async def test_unknown_tree_matches_the_schema(
    spec: Spec, api: httpx.AsyncClient, params: dict[str, str]
) -> None:
    _as_error(spec.check(NESTINGS, await api.get(NESTINGS, params=params), status=404))


@pytest.mark.parametrize(
    "params", [{}, {"executionId": "nope"}, {"chatMessageId": "123"}, {"executionId": ""}]
)
async def test_bad_tree_request_matches_the_schema(
    spec: Spec, api: httpx.AsyncClient, params: dict[str, str]
) -> None:
    body = spec.check(NESTINGS, await api.get(NESTINGS, params=params), status=400)
    assert _as_error(body).name == "BadRequestException"


async def test_follow_up_chat_message_matches_the_schema(
    spec: Spec, api: httpx.AsyncClient, sim_workspace: SimWorkspace
) -> None:
    follow_up = sim_workspace.add_follow_up_message()
    response = await api.get(NESTINGS, params={"chatMessageId": follow_up})
    assert "follow-up" in _as_error(spec.check(NESTINGS, response, status=412)).message


@pytest.mark.parametrize(
    "params",
    [
        {"pageNumber": "0"},
        {"pageNumber": "abc"},
        {"pageSize": "0"},
        {"pageSize": "101"},
        {"pageSize": "2.5"},
        {"responderIds": "not-a-uuid"},
    ],
)
async def test_bad_list_request_has_the_error_shape(
    spec: Spec, api: httpx.AsyncClient, params: dict[str, str]
) -> None:
    # The document lists no 400 for this path; the body has the shape of every other
    # documented error ("a known exception"), the same schema as nestings' 400.
    response = await api.get(LIST, params=params)
    assert response.status_code == 400
    errors = list(spec.validator(NESTINGS, 400).iter_errors(response.json()))
    assert not errors
    _as_error(response.json())


@pytest.mark.parametrize(
    "fault", [Fault("status", status=503), Fault("status", status=500), Fault("retry_after")]
)
async def test_fault_bodies_have_the_error_shape(
    spec: Spec, api: httpx.AsyncClient, sim_workspace: SimWorkspace, fault: Fault
) -> None:
    sim_workspace.inject_fault(fault)
    response = await api.get(LIST)
    assert response.status_code == fault.effective_status
    assert not list(spec.validator(NESTINGS, 400).iter_errors(response.json()))
    _as_error(response.json())
