"""Driving headless Chromium (Debian `chromium`) over its DevTools protocol, with the
page's own JavaScript switched off: what a user does is clicks and typing sent as
input events at the elements' boxes (`Input.*`, `DOM.*`), so a page that needed
JavaScript to act would fail here.

One websocket to the page target (aiohttp's client); commands get their answers by id,
events wait in a queue (`next_load` takes the next `Page.loadEventFired`).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import aiohttp

from tests.tools import HEADLESS_CHROMIUM

_LISTENING = "DevTools listening on "
_TIMEOUT_S = 30.0


class Cdp:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data and data["id"] in self._waiting:
                self._waiting.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.put_nowait(data)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        await self._ws.send_str(json.dumps({"id": ident, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, _TIMEOUT_S)
        assert "error" not in answer, (method, params, answer["error"])
        result: dict[str, Any] = answer["result"]
        return result

    def forget_events(self) -> None:
        while not self.events.empty():
            self.events.get_nowait()

    async def next_load(self) -> None:
        async with asyncio.timeout(_TIMEOUT_S):
            while (await self.events.get())["method"] != "Page.loadEventFired":
                pass

    async def navigate(self, url: str) -> None:
        self.forget_events()
        await self.call("Page.navigate", url=url)
        await self.next_load()

    async def html(self) -> str:
        root = (await self.call("DOM.getDocument", depth=0))["root"]["nodeId"]
        outer: str = (await self.call("DOM.getOuterHTML", nodeId=root))["outerHTML"]
        return outer

    async def node(self, selector: str) -> int:
        root = (await self.call("DOM.getDocument", depth=0))["root"]["nodeId"]
        node_id: int = (await self.call("DOM.querySelector", nodeId=root, selector=selector))[
            "nodeId"
        ]
        assert node_id, f"nothing on the page matches {selector!r}"
        return node_id

    async def click(self, selector: str, *, navigates: bool = True) -> None:
        """A left click at the middle of the element, as a mouse would."""
        node_id = await self.node(selector)
        await self.call("DOM.scrollIntoViewIfNeeded", nodeId=node_id)
        quad = (await self.call("DOM.getBoxModel", nodeId=node_id))["model"]["content"]
        x, y = sum(quad[0::2]) / 4, sum(quad[1::2]) / 4
        self.forget_events()
        for kind in ("mousePressed", "mouseReleased"):
            await self.call(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )
        if navigates:
            await self.next_load()

    async def type(self, selector: str, text: str) -> None:
        await self.call("DOM.focus", nodeId=await self.node(selector))
        await self.call("Input.insertText", text=text)

    async def screenshot(self, path: Path, *, selector: str | None = None) -> Path:
        """A PNG of the whole page, or of one element's box."""
        if selector is None:
            size = (await self.call("Page.getLayoutMetrics"))["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"]}
        else:
            node_id = await self.node(selector)
            await self.call("DOM.scrollIntoViewIfNeeded", nodeId=node_id)
            quad = (await self.call("DOM.getBoxModel", nodeId=node_id))["model"]["border"]
            xs, ys = quad[0::2], quad[1::2]
            scroll = (await self.call("Page.getLayoutMetrics"))["cssVisualViewport"]
            clip = {
                "x": min(xs) + scroll["pageX"],
                "y": min(ys) + scroll["pageY"],
                "width": max(xs) - min(xs),
                "height": max(ys) - min(ys),
            }
        shot = await self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={**clip, "scale": 1},
        )
        _write(path, base64.b64decode(shot["data"]))
        return path

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with suppress(asyncio.CancelledError):
            await self._reader


@asynccontextmanager
async def chromium_page(chromium: str, *, profile: Path) -> AsyncIterator[Cdp]:
    """A headless Chromium with one blank page, its scripts switched off."""
    process = await asyncio.create_subprocess_exec(
        chromium,
        *HEADLESS_CHROMIUM,
        "--window-size=1280,900",
        "--remote-debugging-port=0",
        "--remote-debugging-address=127.0.0.1",
        f"--user-data-dir={profile}",
        "about:blank",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        seen: list[str] = []
        async with asyncio.timeout(_TIMEOUT_S):
            while True:
                line = (await process.stderr.readline()).decode(errors="replace")
                assert line, "chromium exited before listening:\n" + "".join(seen[-30:])
                seen.append(line)
                if _LISTENING in line:
                    browser_ws = line.split(_LISTENING, 1)[1].strip()
                    break
        drain = asyncio.create_task(_drain(process.stderr))
        http_base = "http://" + browser_ws.split("/")[2]
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{http_base}/json/list") as listing:
                targets = await listing.json()
            page = next(t for t in targets if t["type"] == "page")
            ws = await session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0)
            cdp = Cdp(ws)
            try:
                await cdp.call("Page.enable")
                await cdp.call("DOM.enable")
                await cdp.call("Emulation.setScriptExecutionDisabled", value=True)
                yield cdp
            finally:
                await cdp.close()
        drain.cancel()
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass
