"""GET / (the playground's chat page), GET /playground/ws (its live connection), GET /playground/files/{id}
(photos and documents the bot sent there). Development only: without a playground every route answers 404.

The visitor is a random id in the signed cookie `titip_playground`; the page may be open in several tabs, and
each gets every message of the visitor's personas as it is stored.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

from aiohttp import WSMsgType, web

from services.playground import PERSONAS
from webhooks.deps import DEPS, PlaygroundHook, WebDeps
from webhooks.templating import render, translator

log = logging.getLogger(__name__)
COOKIE = "titip_playground"
COOKIE_MAX_AGE = 90 * 24 * 3600


def _hook(request: web.Request) -> PlaygroundHook:
    deps: WebDeps = request.app[DEPS]
    if deps.playground is None:
        raise web.HTTPNotFound(text="playground disabled")
    return deps.playground


async def page(request: web.Request) -> web.Response:
    hook = _hook(request)
    t = translator(request)
    personas = [{"key": p.key, "label": t(p.label_key)} for p in PERSONAS]
    response = render("playground.html", request, {"t": t, "personas": personas})
    response.headers["Cache-Control"] = "no-store"
    if hook.cookie.visitor(request.cookies.get(COOKIE)) is None:
        _, value = hook.cookie.issue()
        response.set_cookie(COOKIE, value, max_age=COOKIE_MAX_AGE, httponly=True, samesite="Lax", path="/")
    return response


def _incoming(raw: str, hook: PlaygroundHook) -> dict[str, Any] | str:
    """A frame from the page as the adapter takes it, or the catalog key of why it is refused."""
    try:
        data = json.loads(raw)
    except ValueError:
        return "pg_bad_frame"
    if not isinstance(data, dict):
        return "pg_bad_frame"
    photo = data.pop("photo_b64", None)
    if photo:
        if not isinstance(photo, str) or len(photo) > hook.max_photo_bytes * 4 // 3 + 8:
            return "pg_photo_too_large"
        try:
            data["photo"] = base64.b64decode(photo, validate=True)
        except (binascii.Error, ValueError):
            return "pg_bad_frame"
    return data


async def socket(request: web.Request) -> web.WebSocketResponse:
    hook = _hook(request)
    visitor = hook.cookie.visitor(request.cookies.get(COOKIE))
    if visitor is None:
        raise web.HTTPUnauthorized(text="open / first: it gives this browser its playground cookie")
    t = translator(request)
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=hook.max_photo_bytes * 2)
    await ws.prepare(request)

    async def push(data: dict[str, Any]) -> None:
        await ws.send_json(data)

    hook.attach(visitor, push)
    try:
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            data = _incoming(frame.data, hook)
            if isinstance(data, str):
                await ws.send_json({"type": "error", "text": t(data)})
                continue
            if data.get("type") == "hello":
                await ws.send_json({"type": "history", "messages": await hook.replay(visitor)})
                continue
            refused = await hook.receive(visitor, data)
            if refused is not None:
                await ws.send_json({"type": "error", "text": t(refused)})
    finally:
        hook.detach(visitor, push)
    return ws


async def file(request: web.Request) -> web.Response:
    hook = _hook(request)
    visitor = hook.cookie.visitor(request.cookies.get(COOKIE))
    try:
        message_id = int(request.match_info["message_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    found = await hook.attachment(message_id, visitor) if visitor else None
    if found is None:
        raise web.HTTPNotFound()
    data, body = found
    headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    if body.get("document"):
        name = "".join(c for c in str(body["document"]) if c.isalnum() or c in "._-") or "file"
        headers["Content-Disposition"] = f'attachment; filename="{name}"'
        return web.Response(body=data, content_type="application/octet-stream", headers=headers)
    kind = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    return web.Response(body=data, content_type=kind, headers=headers)


def setup(app: web.Application) -> None:
    app.router.add_get("/", page)
    app.router.add_get("/playground/ws", socket)
    app.router.add_get(r"/playground/files/{message_id:\d{1,18}}", file)
