"""The HTTP server on loopback: probes, readiness reasons, admin auth, JSON errors, and
that no response ever carries a secret of the configuration."""

from __future__ import annotations

import asyncio
import hmac
import html
import json
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from relay.http.server import HttpServer
from relay.scrub import SecretScrubber
from tests.http_rig import (
    ADMIN_TOKEN,
    HEADER_SECRET,
    SECRETS,
    SLACK_URL,
    SOURCE_KEY,
    SOURCE_KEY_2,
    WEBHOOK_SECRET,
    WEBHOOK_URL,
    commit_alerts,
    http_rig,
    make_alert,
    make_settings,
)

SILENCE = {"matchers": {"rule": "execution-failed"}, "duration": "2h", "comment": "deploy"}


def assert_json_error(response: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return body  # type: ignore[no-any-return]


async def test_healthz_answers_while_nothing_else_is_ready(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        response = await rig.client.get("/healthz")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        head = await rig.client.head("/healthz")
        assert head.status_code == 200


async def test_readyz_waits_for_a_first_successful_poll_of_every_source(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        response = await rig.client.get("/readyz")
        assert response.status_code == 503
        reasons = response.json()["reasons"]
        assert [(r["source"], r["reason"]) for r in reasons] == [
            ("prod", "source_stale"),
            ("staging", "source_stale"),
        ]
        assert "has not been polled successfully yet" in reasons[0]["message"]

        rig.mark_polled("prod")
        rig.mark_polled("staging")
        response = await rig.client.get("/readyz")
        assert response.status_code == 200, response.text
        assert response.json() == {
            "status": "ready",
            "checks": {"store": "ok", "sources": {"prod": "ok", "staging": "ok"}},
        }


async def test_readyz_reports_a_source_stale_beyond_three_intervals(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        rig.mark_polled("prod")
        rig.mark_polled("staging")
        rig.clock.advance(seconds=45)  # exactly 3 intervals of prod: still ready
        assert (await rig.client.get("/readyz")).status_code == 200
        rig.clock.advance(seconds=1)
        rig.health["prod"].last_error = "page 1 of executions: HTTP 503 after 4 attempts"
        response = await rig.client.get("/readyz")
        assert response.status_code == 503
        (reason,) = response.json()["reasons"]
        assert reason["check"] == "source"
        assert reason["source"] == "prod"
        assert reason["reason"] == "source_stale"
        assert "46s" in reason["message"]
        assert "3 poll intervals of 15s" in reason["message"]
        assert "HTTP 503 after 4 attempts" in reason["message"]


async def test_readyz_names_an_unauthorized_source(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        rig.mark_polled("prod")
        rig.mark_polled("staging")
        health = rig.health["staging"]
        health.unauthorized = True
        health.consecutive_failures = 1
        health.last_error = "the Zaia API refused the key; check sources.1.api_key"
        response = await rig.client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["reasons"] == [
            {
                "check": "source",
                "source": "staging",
                "reason": "source_unauthorized",
                "message": "the Zaia API refused the key; check sources.1.api_key",
            }
        ]


async def test_readyz_reports_an_unreachable_store(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        rig.mark_polled("prod")
        rig.mark_polled("staging")
        await rig.store.close()
        response = await rig.client.get("/readyz")
        assert response.status_code == 503
        reasons = response.json()["reasons"]
        assert [r["reason"] for r in reasons] == ["store_unreachable"]
        assert reasons[0]["check"] == "store"
        # The probes and metrics keep answering with the store down.
        assert (await rig.client.get("/healthz")).status_code == 200
        assert (await rig.client.get("/metrics")).status_code == 200
        # An API call that needs the store says so, as JSON.
        assert_json_error(await rig.client.get("/api/v1/alerts"), 503, "store_unavailable")


async def test_mutations_are_refused_when_no_admin_token_is_configured(tmp_path: Path) -> None:
    async with http_rig(tmp_path, admin_token=None) as rig:
        for headers in (
            {},
            {"Authorization": "Bearer x"},
            {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ):
            response = await rig.client.post("/api/v1/silences", json=SILENCE, headers=headers)
            body = assert_json_error(response, 403, "admin_disabled")
            assert "server.admin_token" in str(body["message"])
        response = await rig.client.delete("/api/v1/silences/sil_x", headers=rig.admin)
        assert_json_error(response, 403, "admin_disabled")
        response = await rig.client.post("/api/v1/deliveries/retry", json={"all": True})
        assert_json_error(response, 403, "admin_disabled")
        # Reading needs no token.
        assert (await rig.client.get("/api/v1/silences")).status_code == 200


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong-token",
        f"Bearer {ADMIN_TOKEN}x",
        f"Bearer {ADMIN_TOKEN[:-1]}",
        f"Basic {ADMIN_TOKEN}",
        ADMIN_TOKEN,
    ],
)
async def test_mutations_need_the_exact_admin_token(
    tmp_path: Path, authorization: str | None
) -> None:
    async with http_rig(tmp_path) as rig:
        headers = {} if authorization is None else {"Authorization": authorization}
        for method, path in (
            ("POST", "/api/v1/silences"),
            ("DELETE", "/api/v1/silences/sil_x"),
            ("POST", "/api/v1/deliveries/retry"),
            ("POST", "/api/v1/deliveries/msg_x/retry"),
            ("POST", "/api/v1/deliveries/purge"),
            ("PUT", "/api/v1/nothing-here"),
        ):
            response = await rig.client.request(method, path, json=SILENCE, headers=headers)
            assert_json_error(response, 401, "unauthorized")
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert await rig.store.list_silences(now=rig.clock()) == []


async def test_the_admin_token_is_compared_in_constant_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    async with http_rig(tmp_path) as rig:
        response = await rig.client.post("/api/v1/silences", json=SILENCE, headers=rig.admin)
        assert response.status_code == 201, response.text
        response = await rig.client.post(
            "/api/v1/silences", json=SILENCE, headers={"Authorization": "Bearer nope"}
        )
        assert response.status_code == 401
    assert compared == [
        (ADMIN_TOKEN.encode(), ADMIN_TOKEN.encode()),
        (b"nope", ADMIN_TOKEN.encode()),
    ]


async def test_every_error_is_json(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        assert_json_error(await rig.client.get("/nope"), 404, "not_found")
        assert_json_error(await rig.client.get("/api/v1/alerts/alert_unknown"), 404, "not_found")
        response = await rig.client.put("/healthz", headers=rig.admin)
        assert_json_error(response, 405, "method_not_allowed")
        assert "GET" in response.headers["Allow"]
        response = await rig.client.post(
            "/api/v1/silences",
            content=b"{not json",
            headers={**rig.admin, "Content-Type": "application/json"},
        )
        assert_json_error(response, 400, "bad_request")
        response = await rig.client.post(
            "/api/v1/silences", json={"matchers": {"rule": "x"}}, headers=rig.admin
        )
        body = assert_json_error(response, 422, "invalid")
        assert body["problems"] == [
            {
                "path": "body",
                "message": "give exactly one of ends_at (a time) or duration (like 2h)",
            }
        ]
        response = await rig.client.post(
            "/api/v1/silences", json={**SILENCE, "colour": "red"}, headers=rig.admin
        )
        body = assert_json_error(response, 422, "invalid")
        assert body["problems"] == [{"path": "colour", "message": "Extra inputs are not permitted"}]
        response = await rig.client.get("/api/v1/alerts", params={"limt": "3"})
        body = assert_json_error(response, 400, "bad_request")
        assert "limt" in str(body["message"])
        for limit in ("0", "501", "ten", "-1"):
            response = await rig.client.get("/api/v1/alerts", params={"limit": limit})
            assert_json_error(response, 400, "bad_request")
        response = await rig.client.post(
            "/api/v1/silences",
            content=b'{"comment": "' + b"x" * 70_000 + b'"}',
            headers={**rig.admin, "Content-Type": "application/json"},
        )
        assert_json_error(response, 413, "payload_too_large")


async def test_no_response_carries_a_secret(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        rig.mark_polled("prod")
        # Even when an error message quotes a secret by accident, it does not leave.
        rig.health["staging"].last_error = f"upstream echoed Authorization: Bearer {SOURCE_KEY}"
        rig.health["staging"].unauthorized = True
        await commit_alerts(
            rig.store,
            [make_alert(1, excerpt=f"posting to {WEBHOOK_URL} failed")],
            at=rig.clock(),
            sinks=("oncall", "finops"),
        )
        (item,) = await rig.store.claim_due("oncall", now=rig.clock(), limit=10, lease_s=30)
        await rig.store.mark_dead(
            "oncall",
            item.notification.id,
            reason=f"HTTP 404 from {SLACK_URL}",
            now=rig.clock(),
        )
        responses: list[httpx.Response] = []
        for path in (
            "/",
            "/healthz",
            "/readyz",
            "/metrics",
            "/api/v1/alerts",
            f"/api/v1/alerts/{item.notification.alert.id}",
            "/api/v1/silences?include_expired=true",
            "/api/v1/deliveries",
            "/nope",
        ):
            responses.append(await rig.client.get(path))
        created = await rig.client.post("/api/v1/silences", json=SILENCE, headers=rig.admin)
        responses.append(created)
        responses.append(
            await rig.client.delete(f"/api/v1/silences/{created.json()['id']}", headers=rig.admin)
        )
        responses.append(
            await rig.client.post(
                "/api/v1/deliveries/retry", json={"ids": [item.notification.id]}, headers=rig.admin
            )
        )
        responses.append(
            await rig.client.post("/api/v1/silences", json=SILENCE, headers={"Authorization": "x"})
        )
        for response in responses:
            assert response.status_code != 500, (response.url, response.text)
            text = response.text + json.dumps(dict(response.headers))
            for secret in SECRETS:
                assert secret not in text, (response.url, secret)
        readyz = responses[2].json()
        assert "[redacted]" in readyz["reasons"][0]["message"]


async def test_the_server_frees_its_port_when_stopped(tmp_path: Path) -> None:
    app = web.Application()
    server = HttpServer(app, host="127.0.0.1", port=0)
    await server.start()
    port = server.port
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{server.url}/")).status_code == 404
    await server.stop()
    await server.stop()  # idempotent
    again = HttpServer(app, host="127.0.0.1", port=port)
    async with again:
        assert again.port == port
    with pytest.raises(RuntimeError):
        _ = HttpServer(app, host="127.0.0.1", port=0).port


async def test_a_taken_port_raises_oserror(tmp_path: Path) -> None:
    first = HttpServer(web.Application(), host="127.0.0.1", port=0)
    async with first:
        second = HttpServer(web.Application(), host="127.0.0.1", port=first.port)
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await second.start()
        # Nothing half-started is left behind.
        await second.stop()


async def test_serve_runs_until_cancelled(tmp_path: Path) -> None:
    server = HttpServer(web.Application(), host="127.0.0.1", port=0)
    task = asyncio.create_task(server.serve(), name="http")
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            try:
                await client.get(f"{server.url}/")
                break
            except (RuntimeError, httpx.ConnectError):
                await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    with pytest.raises(RuntimeError):
        _ = server.port


def test_the_scrubber_knows_every_secret_of_the_configuration(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    settings = settings.model_copy(
        update={
            "store": settings.store.model_copy(
                update={"url": "postgresql://relay:DBPASSWORD-31337@db/relay"}
            )
        }
    )
    scrubber = SecretScrubber.from_settings(settings)
    configured = (SOURCE_KEY, SOURCE_KEY_2, ADMIN_TOKEN, SLACK_URL, WEBHOOK_URL)
    for secret in (*configured, WEBHOOK_SECRET, HEADER_SECRET, "DBPASSWORD-31337"):
        assert scrubber.scrub_text(f"a {secret} b") == "a [redacted] b", secret
    # Escaped for JSON or HTML, a secret is still found.
    tricky = 'pa"ss&w<o>rd\\42'
    only = SecretScrubber.of([tricky, "short"])
    assert only.scrub_text(json.dumps({"x": tricky})) == '{"x": "[redacted]"}'
    assert only.scrub_text(html.escape(tricky)) == "[redacted]"
    # Too short to scrub without mangling ordinary text.
    assert only.scrub_text("short") == "short"
    assert SecretScrubber.of([]).scrub(b"nothing") == b"nothing"


def test_a_wildcard_listen_address_gives_a_loopback_url() -> None:
    app = web.Application()
    for host, url in (
        ("0.0.0.0", "http://127.0.0.1:8080"),
        ("::", "http://[::1]:8080"),
        ("127.0.0.1", "http://127.0.0.1:8080"),
        ("::1", "http://[::1]:8080"),
        ("relay.local", "http://relay.local:8080"),
    ):
        server = HttpServer(app, host=host, port=8080)
        server._port = 8080  # as after start(), without binding a real port 8080
        assert server.url == url
