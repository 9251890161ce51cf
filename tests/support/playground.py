"""A visitor of the playground, as a browser is one: it opens `/` (which gives it its signed cookie), keeps the
WebSocket open, types and taps as any persona, and collects every message the server pushes."""

from __future__ import annotations

import asyncio
import base64
import itertools
from typing import Any

import aiohttp

from tests.support.waiting import wait_for


class Visitor:
    def __init__(self, url: str) -> None:
        self.url = url
        # A browser keeps cookies for 127.0.0.1; aiohttp's jar needs unsafe=True to do the same.
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.messages: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._reader: asyncio.Task | None = None
        self._ids = itertools.count(1)

    async def open(self) -> "Visitor":
        page = await self.session.get(self.url + "/")
        assert page.status == 200, page.status
        await self.connect()
        return self

    async def connect(self) -> None:
        self.ws = await self.session.ws_connect(self.url + "/playground/ws")
        self._reader = asyncio.create_task(self._read(self.ws))
        await self.ws.send_json({"type": "hello"})

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for frame in ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            data = frame.json()
            if data["type"] == "history":
                self.messages.extend(data["messages"])
            elif data["type"] == "message":
                self.messages.append(data)
            elif data["type"] == "error":
                self.errors.append(data["text"])

    async def disconnect(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
        self.messages.clear()

    async def close(self) -> None:
        await self.disconnect()
        await self.session.close()

    async def __aenter__(self) -> "Visitor":
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- talking ------------------------------------------------------------------------------------

    async def say(self, persona: str, text: str, *, photo: bytes | None = None) -> None:
        assert self.ws is not None
        frame: dict[str, Any] = {"type": "send", "persona": persona, "text": text,
                                 "client_id": f"c{next(self._ids)}"}
        if photo is not None:
            frame["photo_b64"] = base64.b64encode(photo).decode()
        await self.ws.send_json(frame)

    async def tap(self, persona: str, button: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json({"type": "tap", "persona": persona, "button": button["data"],
                                 "label": button["label"], "client_id": f"c{next(self._ids)}"})

    async def tap_and_wait(self, persona: str, pressed: dict[str, Any], *fragments: str) -> dict[str, Any]:
        """Tap a button and wait for a *new* reply containing the fragments."""
        before = len(self.replies(persona))
        await self.tap(persona, pressed)
        return await wait_for(lambda: next((m for m in self.replies(persona)[before:]
                                            if all(f in m["text"] for f in fragments)), None))

    def replies(self, persona: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["persona"] == persona and m["direction"] == "out"]

    def texts(self, persona: str) -> list[str]:
        return [m["text"] for m in self.replies(persona)]

    async def reply_with(self, persona: str, *fragments: str, timeout: float = 10.0) -> dict[str, Any]:
        """The first reply to `persona` containing every fragment (waits for it)."""
        return await wait_for(lambda: next((m for m in self.replies(persona)
                                            if all(f in m["text"] for f in fragments)), None), timeout=timeout)

    async def ask(self, persona: str, text: str, *fragments: str, photo: bytes | None = None) -> dict[str, Any]:
        """Say `text` (with a photo) and wait for a *new* reply containing the fragments."""
        before = len(self.replies(persona))
        await self.say(persona, text, photo=photo)
        return await wait_for(lambda: next((m for m in self.replies(persona)[before:]
                                            if all(f in m["text"] for f in fragments)), None))


def button(message: dict[str, Any], label_fragment: str) -> dict[str, Any]:
    return next(b for row in message["buttons"] for b in row if label_fragment in b["label"])
