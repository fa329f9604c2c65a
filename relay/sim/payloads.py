"""Builds the JSON the Zaia API returns, from compact records, on demand.

Invariants:
- Rendering is a pure function of a record (plus its children's records): the same
  record renders the same JSON, whatever the request. Everything not stored is drawn
  from `random.Random(record.seed)` in a fixed order, so a status change does not
  reshuffle the steps that already happened.
- Every payload satisfies the OpenAPI document: agents and squads report `iteration`
  and `tool-call` events, workflows `workflow-node` events; labels are 3..50 chars;
  purged executions keep their metadata but lose inputs and outputs.
- A failed execution has exactly one failed event, carrying `{"error": {message, code}}`
  in its output; it is the step of the failed child when the failure came from one.
"""

from __future__ import annotations

import json
import random
import re
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from relay.sim.catalog import ANSWERS, ERRORS, LLMS, PROMPTS, TOOLS, uuid4
from relay.sim.clock import iso_ms
from relay.sim.records import ChildLink, ExecRecord

JsonDict = dict[str, Any]
Lookup = Callable[[str], ExecRecord | None]

# The event vocabulary has no "cancelled": a step cut short by a cancellation reads failed.
_EVENT_STATUS = {"running": "running", "completed": "completed", "failed": "failed"}
_CHILD_STEP_TYPES = ("agent", "workflow")
# Models the platform hosts itself have no provider id (the API sends null).
_PROVIDER_IDS: dict[str, str | None] = {
    provider: None if provider == "Zaia Hosted" else uuid4(random.Random(provider))
    for _, provider in LLMS
}


def _label(text: str) -> str:
    return text[:50] if len(text) >= 3 else f"{text:<3}"


def _error(message: str, code: str) -> JsonDict:
    return {"error": {"message": message, "code": code}}


class _Steps:
    """Accumulates events while keeping step times inside the execution's lifetime."""

    def __init__(self, rec: ExecRecord, end_ms: int) -> None:
        self.rec = rec
        self.end_ms = end_ms
        self.cursor_ms = rec.started_ms
        self.events: list[JsonDict] = []

    def add(
        self,
        fields: JsonDict,
        *,
        duration_ms: int,
        status: str,
        credits: float,
        input_: JsonDict | None,
        output: JsonDict | None,
    ) -> None:
        start = min(self.cursor_ms, self.end_ms)
        self.cursor_ms += duration_ms
        ended = None if status == "running" else iso_ms(min(self.cursor_ms, self.end_ms))
        purged = self.rec.is_purged
        event = {
            **fields,
            "status": status,
            "creditsUsed": round(credits, 4),
            "startedAt": iso_ms(start),
            "endedAt": ended,
            "input": None if purged else input_,
            "output": None if purged or status == "running" else output,
        }
        self.events.append(event)


def _base_step(rec: ExecRecord, rng: random.Random, index: int) -> tuple[JsonDict, JsonDict | None]:
    """The `index`th ordinary step of `rec`: its type-specific fields and its input."""
    event_id = uuid4(rng)
    if rec.kind == "workflow":
        nodes = [n for n in rec.responder.nodes if n.node_type not in _CHILD_STEP_TYPES]
        node = nodes[index % len(nodes)] if nodes else None
        fields: JsonDict = {
            "id": event_id,
            "type": "workflow-node",
            "label": _label(node.label if node else "Node"),
            "nodeType": node.node_type if node else "code",
            "workflowNodeId": node.node_id if node else uuid4(rng),
            "childExecutionId": None,
        }
        return fields, {"node": index}
    if index == 0 or rng.random() < 0.5:
        llm, provider = LLMS[int(rng.random() * len(LLMS))]
        return {
            "id": event_id,
            "type": "iteration",
            "label": f"Iteration {index + 1}",
            "llm": llm,
            "llmProvider": {"id": _PROVIDER_IDS[provider], "name": provider},
        }, None
    tool_type, label = TOOLS[int(rng.random() * len(TOOLS))]
    return {
        "id": event_id,
        "type": "tool-call",
        "label": _label(label),
        "toolType": tool_type,
        "childExecutionId": None,
    }, {"query": PROMPTS[int(rng.random() * len(PROMPTS))]}


def _child_step(rec: ExecRecord, link: ChildLink, child: ExecRecord | None) -> JsonDict:
    child_kind = child.kind if child is not None else "agent"
    step_type = "workflow" if child_kind == "workflow" else "agent"
    name = child.responder.name if child is not None else "deleted execution"
    if rec.kind == "workflow":
        node = next((n for n in rec.responder.nodes if n.node_type == step_type), None)
        return {
            "id": f"{link.child_id[:24]}{rec.id[24:]}",
            "type": "workflow-node",
            "label": _label(node.label if node else f"Run {name}"),
            "nodeType": step_type,
            "workflowNodeId": node.node_id if node else rec.responder.responder_id,
            "childExecutionId": link.child_id,
        }
    verb = "Run workflow" if step_type == "workflow" else "Delegate to"
    return {
        "id": f"{link.child_id[:24]}{rec.id[24:]}",
        "type": "tool-call",
        "label": _label(f"{verb} {name}"),
        "toolType": step_type,
        "childExecutionId": link.child_id,
    }


def _child_status(rec: ExecRecord, link: ChildLink, child: ExecRecord | None) -> str:
    if link.frozen_status is not None:
        status = link.frozen_status
    elif child is not None:
        status = child.status
    else:
        status = "completed"
    if status == "cancelled":
        return "failed"
    if status == "running" and rec.status != "running":
        # A parent that ended while its child still ran reports the step as cut short.
        return "completed" if rec.status == "completed" else "failed"
    return _EVENT_STATUS[status]


def failure_of(rec: ExecRecord) -> tuple[str, str]:
    """The (message, code) a failed execution reports; drawn from the seed if unset."""
    if rec.error is not None:
        return rec.error
    return ERRORS[rec.seed % (len(ERRORS) - 1)]


def render_execution(rec: ExecRecord, *, workspace_id: str, lookup: Lookup) -> JsonDict:
    rng = random.Random(rec.seed)
    # Draws happen in a fixed order, before anything that depends on the status.
    prompt = PROMPTS[int(rng.random() * len(PROMPTS))]
    answer = ANSWERS[int(rng.random() * len(ANSWERS))]
    step_count = 1 + rng.randrange(4)
    base = [_base_step(rec, rng, i) for i in range(step_count)]
    durations = [rng.randint(300, 8000) for _ in base]
    weights = [rng.random() + 0.2 for _ in base]
    failing_fields, failing_input = _base_step(rec, rng, step_count)

    end_ms = rec.ended_ms if rec.ended_ms is not None else rec.updated_ms
    steps = _Steps(rec, end_ms)
    total_weight = sum(weights)
    running_last = rec.status == "running" and not rec.children
    for i, (fields, step_input) in enumerate(base):
        status = "running" if running_last and i == step_count - 1 else "completed"
        output: JsonDict = {"content": answer} if fields["type"] == "iteration" else {"ok": True}
        steps.add(
            fields,
            duration_ms=durations[i],
            status=status,
            credits=rec.credits * weights[i] / total_weight,
            input_=step_input,
            output=output,
        )

    message, code = failure_of(rec) if rec.status == "failed" else ("", "")
    failed_step_done = False
    for link in rec.children or ():
        child = lookup(link.child_id)
        status = _child_status(rec, link, child)
        failing = rec.status == "failed" and link.child_id == rec.failed_child_id
        failed_step_done = failed_step_done or failing
        steps.cursor_ms = max(steps.cursor_ms, link.started_ms)
        child_end = child.ended_ms if child is not None and child.ended_ms is not None else None
        steps.add(
            _child_step(rec, link, child),
            duration_ms=max(0, (child_end or end_ms) - steps.cursor_ms),
            status="failed" if failing else status,
            credits=0.0,
            input_={"childExecutionId": link.child_id},
            output=_error(message, code) if failing else {"childStatus": status},
        )
    if rec.status == "failed" and not failed_step_done:
        steps.add(
            failing_fields,
            duration_ms=max(0, end_ms - steps.cursor_ms),
            status="failed",
            credits=0.0,
            input_=failing_input,
            output=_error(message, code),
        )

    detail: JsonDict = {"events": steps.events}
    responder = rec.responder
    if rec.kind == "workflow":
        detail["type"] = "workflow-execution"
        detail["workflowId"] = responder.workflow_id
        detail["workflowImplementationId"] = responder.implementation_id
        detail["input"] = {"body": {"message": prompt, "source": "sim"}}
    else:
        detail["type"] = f"{rec.kind}-execution"
        detail["agentId"] = responder.agent_id
        if rec.kind == "squad":
            detail["squadId"] = responder.squad_id
        detail["input"] = {"message": prompt}
    detail["origin"] = _origin(rec)
    if rec.status == "completed":
        detail["output"] = {"content": answer} if rec.kind != "workflow" else {"ok": True}
    elif rec.status == "failed":
        detail["output"] = _error(message, code)
    else:
        detail["output"] = None
    if rec.is_purged:
        detail["input"] = {}
        detail["output"] = None

    return {
        "id": rec.id,
        "workspaceId": workspace_id,
        "responderId": responder.responder_id,
        "parentId": rec.parent_id,
        "status": rec.status,
        "isAgentic": rec.is_agentic,
        "isPurged": rec.is_purged,
        "creditsUsed": round(rec.credits, 4),
        "createdAt": iso_ms(rec.created_ms),
        "updatedAt": iso_ms(rec.updated_ms),
        "startedAt": iso_ms(rec.started_ms),
        "endedAt": iso_ms(rec.ended_ms) if rec.ended_ms is not None else None,
        "detail": detail,
    }


class JsonRenderer:
    """Serialises records to the API's JSON, caching each by `version` (bounded LRU), so
    the pages a poller reads again and again cost a dictionary lookup per item."""

    def __init__(self, *, workspace_id: str, lookup: Lookup, size: int = 4096) -> None:
        self._workspace_id = workspace_id
        self._lookup = lookup
        self._size = size
        self._cache: OrderedDict[str, tuple[int, bytes]] = OrderedDict()

    def item(self, rec: ExecRecord) -> bytes:
        cached = self._cache.get(rec.id)
        if cached is not None and cached[0] == rec.version:
            self._cache.move_to_end(rec.id)
            return cached[1]
        payload = render_execution(rec, workspace_id=self._workspace_id, lookup=self._lookup)
        data = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        self._cache[rec.id] = (rec.version, data)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return data

    def tree(self, rec: ExecRecord) -> bytes:
        """The item with its `children`, recursively (the `/nestings` answer)."""
        children = [self._lookup(link.child_id) for link in rec.children or ()]
        nested = b",".join(self.tree(child) for child in children if child is not None)
        # The item ends with "}": reopen it to append the children array.
        return self.item(rec)[:-1] + b',"children":[' + nested + b"]}"

    def forget(self, execution_id: str) -> None:
        self._cache.pop(execution_id, None)


_ORIGIN_FIELD = {
    "api": "apiKeyId",
    "chat-message": "chatMessageId",
    "delegation": "agentId",
    "agentic-execution-node": "workflowNodeId",
    "webhook-request": "workflowTriggerId",
    "agent-tool-request": "workflowTriggerId",
}


def _origin(rec: ExecRecord) -> JsonDict:
    return {"type": rec.origin_type, _ORIGIN_FIELD[rec.origin_type]: rec.origin_ref}


# --- errors ---------------------------------------------------------------------------

_ERRORS_BY_STATUS: dict[int, tuple[str, str, str, str]] = {
    # status: (name, enUs, esEs, ptBr)
    400: (
        "BadRequestException",
        "The request is invalid.",
        "La solicitud no es válida.",
        "A requisição é inválida.",
    ),
    401: (
        "UnauthorizedException",
        "Invalid API key.",
        "Clave de API no válida.",
        "Chave de API inválida.",
    ),
    404: (
        "NotFoundException",
        "Execution not found.",
        "Ejecución no encontrada.",
        "Execução não encontrada.",
    ),
    412: (
        "PreconditionFailedException",
        "Use the chat message that triggered the executions.",
        "Use el mensaje de chat que inició las ejecuciones.",
        "Use a mensagem de chat que iniciou as execuções.",
    ),
    429: (
        "TooManyRequestsException",
        "Too many requests, slow down.",
        "Demasiadas solicitudes.",
        "Muitas requisições.",
    ),
}
_SERVER_ERROR = (
    "InternalServerErrorException",
    "Something went wrong on our side.",
    "Algo salió mal de nuestro lado.",
    "Algo deu errado do nosso lado.",
)


def _snake_upper(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def error_body(status: int, message: str, *, code: str | None = None) -> JsonDict:
    """The documented "known exception" body: name, message, code, feedback (+ cta on 5xx)."""
    name, en, es, pt = _ERRORS_BY_STATUS.get(status, _SERVER_ERROR)
    body: JsonDict = {
        "name": name,
        "message": message,
        "code": code or _snake_upper(name.removesuffix("Exception")),
        "feedback": {"enUs": en, "esEs": es, "ptBr": pt},
    }
    if status >= 500:
        body["cta"] = {"type": "support-contact", "url": "https://zaia.app/support"}
    return body


def html_error_page(status: int) -> str:
    """What a reverse proxy serves when the backend is down: HTML, not JSON."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    title = f"{status} {phrase}"
    return (
        f"<html><head><title>{title}</title></head><body><center><h1>{title}</h1></center>"
        "<hr><center>nginx</center></body></html>\n"
    )
