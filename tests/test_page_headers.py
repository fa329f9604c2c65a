"""Every HTML page refuses to be framed and loads nothing (CSP), and every response,
JSON, metrics and redirects too, says `nosniff` and `Referrer-Policy: same-origin`."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.http_rig import http_rig
from tests.operator_kit import SAME_ORIGIN, an_alert, sign_in

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "form-action 'self'; frame-ancestors 'none'"
)


def assert_page(response: httpx.Response) -> None:
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Content-Security-Policy"] == CSP
    assert_every(response)


def assert_every(response: httpx.Response) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


async def test_every_page_refuses_framing_and_every_response_is_nosniff(tmp_path: Path) -> None:
    async with http_rig(tmp_path) as rig:
        alert_id = await an_alert(rig)
        anonymous = [
            await rig.client.get("/"),
            await rig.client.get(f"/alerts/{alert_id}"),
            await rig.client.get("/alerts/alert_nosuch"),
            await rig.client.get("/signin"),
            await rig.client.post(
                "/signin", data={"token": "wrong", "next": "/"}, headers=SAME_ORIGIN
            ),
        ]
        assert [r.status_code for r in anonymous] == [200, 200, 404, 200, 401]
        operator = await sign_in(rig)
        signed_in = [
            await rig.client.get("/", headers=operator.headers),
            await rig.client.get(f"/alerts/{alert_id}", headers=operator.headers),
        ]
        assert "Silence 24h" in signed_in[1].text, "the page still renders its forms"
        for page in [*anonymous, *signed_in]:
            assert_page(page)

        others = [
            await rig.client.get("/healthz"),
            await rig.client.get("/metrics"),
            await rig.client.get("/api/v1/alerts"),
            await rig.client.get("/no/such/endpoint"),
            await rig.client.post("/signin", data={"token": "x", "next": "/"}),  # cross-site
        ]
        redirect = await rig.client.post(
            "/signout", data={"csrf": operator.csrf}, headers={**SAME_ORIGIN, **operator.headers}
        )
        assert redirect.status_code == 303
        for response in [*others, redirect]:
            assert_every(response)
        assert "X-Frame-Options" not in others[2].headers, "JSON is no page"
