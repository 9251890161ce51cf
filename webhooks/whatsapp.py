"""GET /whatsapp/webhook (Meta's verification challenge) and POST /whatsapp/webhook (signed updates):
verify the X-Hub-Signature-256 over the raw body, answer 200 at once, process in the background."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from webhooks.deps import DEPS, WebDeps
from webhooks.payments import read_body

log = logging.getLogger(__name__)


async def challenge(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    if deps.whatsapp is None:
        return web.json_response({"error": "whatsapp channel disabled"}, status=404)
    text, status = await deps.whatsapp.challenge(
        request.query.get("hub.verify_token"), request.query.get("hub.challenge")
    )
    if status != 200:
        log.warning("WhatsApp verification refused: wrong verify token (from %s)", request.remote)
        return web.Response(text="forbidden", status=403)
    return web.Response(text=text)


async def update(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    hook = deps.whatsapp
    if hook is None:
        return web.json_response({"error": "whatsapp channel disabled"}, status=404)
    raw = await read_body(request, deps.max_body_bytes)
    if raw is None:
        return web.json_response({"error": "body too large"}, status=400)
    refused = await hook.validate(raw, request.headers.get("X-Hub-Signature-256"))
    if refused is not None:
        text, status = refused
        log.warning("WhatsApp update refused (%s): %s (from %s)", status, text, request.remote)
        return web.json_response({"error": "invalid signature"}, status=status if status in (401, 403) else 401)
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict):
        log.warning("WhatsApp update with a valid signature is not a JSON object (%d bytes); refused", len(raw))
        return web.json_response({"error": "body is not a JSON object"}, status=400)
    hook.dispatch(raw)
    return web.Response(text="ok")


def setup(app: web.Application) -> None:
    app.router.add_get("/whatsapp/webhook", challenge)
    app.router.add_post("/whatsapp/webhook", update)
