"""Acting from the status page in a real browser: headless Chromium (Debian `chromium`),
its JavaScript switched off, driven by clicks and typing over the DevTools protocol
(`tests.cdp_kit`): sign in, silence an alert, see the silence listed, expire it.

Screenshots (PNG) go to the test's tmp_path, printed, and are copied to
$RELAY_SCREENS_DIR (default /tmp/screens) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from aiohttp import web

from relay.http.runner import serve_app
from relay.http.status_actions import OPERATOR
from tests.cdp_kit import chromium_page
from tests.http_rig import ADMIN_TOKEN, commit_alerts, http_rig
from tests.operator_kit import form_to, forms, labelled_alert
from tests.test_server_api import make_dead_letters
from tests.tools import require_tool


async def test_an_operator_signs_in_silences_and_expires_in_chromium(tmp_path: Path) -> None:
    chromium = require_tool("chromium")
    screens = tmp_path / "screens"
    screens.mkdir()
    async with http_rig(tmp_path) as rig, chromium_page(chromium, profile=tmp_path / "p") as page:
        alert = labelled_alert(7, rig=rig, summary="Agent run failed <b>loudly</b>")
        await commit_alerts(rig.store, [alert], at=rig.clock())
        await make_dead_letters(rig, 1)
        base = rig.server.url

        # Signed out: the pages show what is there, and no form.
        await page.navigate(f"{base}/")
        html = await page.html()
        assert forms(html) == []
        assert "sign in to act" in html
        await page.screenshot(screens / "1-signed-out-status.png")

        # Sign in: follow the link, type the token, press the button.
        await page.click("#signin-link")
        await page.type("#token", ADMIN_TOKEN)
        await page.click("#signin-form button")
        html = await page.html()
        assert 'id="flash"' in html
        assert "Signed in." in html
        assert ADMIN_TOKEN not in html

        # The alert's page, signed in: silence it for an hour.
        await page.navigate(f"{base}/alerts/{alert.id}")
        assert 'id="silence-quick"' in await page.html()
        await page.screenshot(screens / "2-signed-in-alert.png")
        await page.click('#silence-quick button[value="1h"]')
        html = await page.html()
        assert "Silence created" in html
        assert 'id="silence-now"' in html
        [silence] = await rig.store.list_silences(now=rig.clock())
        assert silence.creator == OPERATOR

        # The status page lists it, with its Expire button.
        await page.navigate(f"{base}/")
        html = await page.html()
        assert f'data-silence="{silence.id}"' in html
        await page.screenshot(screens / "3-silences-after-silencing.png", selector="#silences")
        await page.screenshot(screens / "3b-status-signed-in.png")
        await page.click(f'tr[data-silence="{silence.id}"] button')
        html = await page.html()
        assert "Silence expired." in html
        assert f'data-silence="{silence.id}"' not in html
        assert await rig.store.list_silences(now=rig.clock()) == []
        expired = await rig.store.get_silence(silence.id)
        assert expired is not None
        assert expired.expired_at == rig.clock()

        # Another site's page with a form posting to the relay, even one that somehow
        # holds a valid CSRF token: the browser marks it cross-site, so it is refused.
        csrf = form_to(html, "/signout").fields["csrf"]
        evil = evil_form(f"{base}/alerts/{alert.id}/ack", csrf=csrf)
        served = await serve_app(evil, host="127.0.0.1", port=0, shutdown_timeout_s=1)
        try:
            await page.navigate(f"http://localhost:{served.port}/")
            await page.click("#evil button")
        finally:
            await served.stop()
        refused = await page.html()
        assert "Refused: Sec-Fetch-Site says the form was posted from another site" in refused
        await page.screenshot(screens / "4-cross-site-refused.png")
        stored = await rig.store.get_alert(alert.id)
        assert stored is not None
        assert stored.acknowledgement is None

    copies = _check_and_keep(screens)
    print(f"screenshots: {screens} (copied to {copies})")


def evil_form(action: str, *, csrf: str) -> web.Application:
    """A page on another site (localhost is not 127.0.0.1) posting to the relay."""
    body = (
        f'<!doctype html><form id="evil" method="post" action="{action}">'
        f'<input type="hidden" name="csrf" value="{csrf}"><button>win a prize</button></form>'
    )

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", index)
    return app


def _check_and_keep(screens: Path) -> Path:
    shots = sorted(screens.glob("*.png"))
    assert [p.name for p in shots] == [
        "1-signed-out-status.png",
        "2-signed-in-alert.png",
        "3-silences-after-silencing.png",
        "3b-status-signed-in.png",
        "4-cross-site-refused.png",
    ]
    for shot in shots:
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert shot.stat().st_size > 2000, shot
    copies = Path(os.environ.get("RELAY_SCREENS_DIR", "/tmp/screens"))
    copies.mkdir(parents=True, exist_ok=True)
    for shot in shots:
        shutil.copy(shot, copies / shot.name)
    return copies
