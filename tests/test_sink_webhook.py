"""The webhook sink against a real HTTP receiver on loopback: Standard Webhooks signatures
verified by the independent `standardwebhooks` package, custom headers, batching, and how
each kind of answer is classified."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from relay.errors import SinkError
from relay.settings import WebhookSinkSettings
from relay.sinks.webhook import WebhookSink, sign
from tests.delivery_kit import Receiver, Reply, make_notification

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
TOKEN = "URLTOKEN-s3cr3t-77aa"


def settings_for(url: str, **extra: Any) -> WebhookSinkSettings:
    return WebhookSinkSettings.model_validate({"type": "webhook", "url": url, **extra})


async def test_signed_body_verifies_with_standardwebhooks() -> None:
    async with Receiver() as receiver:
        sink = WebhookSink("hook", settings_for(f"{receiver.url}/hook", secret=SECRET))
        notification = make_notification()
        try:
            await sink.send([notification])
        finally:
            await sink.aclose()
    (request,) = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-id"] == notification.id
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["user-agent"].startswith("zaia-relay/")
    # The independent implementation accepts it, with the whsec_ secret as configured...
    payload = Webhook(SECRET).verify(request.body, request.headers)
    assert payload["id"] == notification.id
    assert payload["alert"]["id"] == notification.alert.id
    # ...and with the raw key, and rejects it under another key or a changed body.
    Webhook(KEY).verify(request.body, request.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(base64.b64encode(b"another key of 32 bytes........!").decode()).verify(
            request.body, request.headers
        )
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(request.body.replace(b"critical", b"info"), request.headers)


def test_signature_matches_the_spec_example() -> None:
    # The example of the Standard Webhooks specification (and of the svix libraries).
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    signature = sign(key, msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek", timestamp=1614265330, body=body)
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


async def test_unsigned_without_secret() -> None:
    async with Receiver() as receiver:
        sink = WebhookSink("hook", settings_for(f"{receiver.url}/hook"))
        try:
            await sink.send([make_notification()])
        finally:
            await sink.aclose()
    headers = receiver.requests[0].headers
    assert "webhook-signature" not in headers
    assert {"webhook-id", "webhook-timestamp"} <= set(headers)


async def test_custom_headers_are_sent() -> None:
    async with Receiver() as receiver:
        settings = settings_for(
            f"{receiver.url}/hook",
            secret=SECRET,
            headers={"Authorization": "Bearer rcv-token", "X-Team": "ai-platform"},
        )
        sink = WebhookSink("hook", settings)
        try:
            await sink.send([make_notification()])
        finally:
            await sink.aclose()
    headers = receiver.requests[0].headers
    assert headers["authorization"] == "Bearer rcv-token"
    assert headers["x-team"] == "ai-platform"
    Webhook(SECRET).verify(receiver.requests[0].body, headers)


async def test_same_webhook_id_on_every_attempt() -> None:
    async with Receiver() as receiver:
        sink = WebhookSink("hook", settings_for(f"{receiver.url}/hook", secret=SECRET))
        notification = make_notification()
        try:
            await sink.send([notification])
            await sink.send([notification])
        finally:
            await sink.aclose()
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == notification.id
    assert first.body == second.body


async def test_batches_carry_a_stable_batch_id() -> None:
    async with Receiver() as receiver:
        settings = settings_for(f"{receiver.url}/hook", secret=SECRET, max_alerts_per_request=10)
        sink = WebhookSink("hook", settings)
        items = [make_notification() for _ in range(3)]
        try:
            assert sink.max_batch == 10
            await sink.send(items)
            await sink.send(list(reversed(items)))
            await sink.send(items[:1])
        finally:
            await sink.aclose()
    first, again, single = receiver.requests
    assert first.headers["webhook-id"] == again.headers["webhook-id"]
    assert first.headers["webhook-id"].startswith("msg_batch_")
    body = Webhook(SECRET).verify(first.body, first.headers)
    assert body["type"] == "alert.batch"
    assert [n["id"] for n in body["notifications"]] == [n.id for n in items]
    # Batching configured: even a lone notification comes in the batch envelope.
    assert single.json()["type"] == "alert.batch"


async def test_redirects_are_not_followed() -> None:
    def reply(request: Any) -> Reply:
        if request.path == "/old":
            return Reply(status=308, body="", headers={"Location": "/new"})
        return Reply()

    async with Receiver(reply) as receiver:
        sink = WebhookSink("hook", settings_for(f"{receiver.url}/old?token={TOKEN}"))
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send([make_notification()])
        finally:
            await sink.aclose()
    assert [r.path for r in receiver.requests] == ["/old"]  # never /new
    assert caught.value.retryable is False
    message = str(caught.value)
    assert "redirects are not followed" in message
    assert "sinks.hook.url" in message
    assert "zaia-relay deliveries retry" in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    ("reply", "retryable", "retry_after_s", "words"),
    [
        (Reply(500, "boom"), True, None, "HTTP 500 from the webhook receiver: boom"),
        (Reply(503, "", {"Retry-After": "7"}), True, 7.0, "HTTP 503"),
        (Reply(429, "slow down", {"Retry-After": "5"}), True, 5.0, "HTTP 429"),
        (Reply(408, ""), True, None, "HTTP 408"),
        (Reply(400, "bad payload"), False, None, "refused the message (HTTP 400: bad payload)"),
        (Reply(401, ""), False, None, "HTTP 401"),
        (Reply(404, "no such hook"), False, None, "HTTP 404"),
        (Reply(410, ""), False, None, "HTTP 410"),
    ],
)
async def test_answers_are_classified(
    reply: Reply, retryable: bool, retry_after_s: float | None, words: str
) -> None:
    async with Receiver(lambda _: reply) as receiver:
        sink = WebhookSink("hook", settings_for(f"{receiver.url}/h?token={TOKEN}"))
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send([make_notification()])
        finally:
            await sink.aclose()
    assert caught.value.retryable is retryable
    assert caught.value.retry_after_s == retry_after_s
    assert words in str(caught.value)
    assert TOKEN not in str(caught.value)


async def test_receiver_echoing_the_secret_is_scrubbed() -> None:
    async with Receiver(lambda r: Reply(400, f"bad request to {r.query}")) as receiver:
        sink = WebhookSink("hook", settings_for(f"{receiver.url}/h?token={TOKEN}"))
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send([make_notification()])
        finally:
            await sink.aclose()
    assert TOKEN not in str(caught.value)
    assert "[redacted]" in str(caught.value)


async def test_timeout_is_retryable() -> None:
    async with Receiver(lambda _: Reply(delay_s=1.0)) as receiver:
        sink = WebhookSink("hook", settings_for(f"{receiver.url}/h", timeout="200ms"))
        try:
            with pytest.raises(SinkError) as caught:
                await sink.send([make_notification()])
        finally:
            await sink.aclose()
    assert caught.value.retryable is True
    assert "no answer from the webhook receiver within 0.2s" in str(caught.value)


async def test_connection_refused_is_retryable() -> None:
    async with Receiver() as receiver:
        url = f"{receiver.url}/h?token={TOKEN}"
    # The receiver is gone: nothing listens on that port any more.
    sink = WebhookSink("hook", settings_for(url))
    try:
        with pytest.raises(SinkError) as caught:
            await sink.send([make_notification()])
    finally:
        await sink.aclose()
    assert caught.value.retryable is True
    assert "cannot reach the webhook receiver" in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None


def test_repr_hides_the_url() -> None:
    sink_settings = settings_for(f"https://hooks.example.com/h?token={TOKEN}")
    assert TOKEN not in repr(WebhookSink("hook", sink_settings))


async def test_proxy_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    async with Receiver() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        sink = WebhookSink("hook", settings_for("http://hooks.example.invalid/zaia"))
        try:
            await sink.send([make_notification()])
        finally:
            await sink.aclose()
    (request,) = proxy.requests
    assert request.headers["host"] == "hooks.example.invalid"
    assert request.path == "/zaia"


async def test_no_proxy_exempts_a_host(monkeypatch: pytest.MonkeyPatch) -> None:
    async with Receiver() as receiver:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        sink = WebhookSink("hook", settings_for(f"{receiver.url}/h"))
        try:
            await sink.send([make_notification()])
        finally:
            await sink.aclose()
    assert len(receiver.requests) == 1
