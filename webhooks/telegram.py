"""POST /telegram/webhook: check Telegram's secret-token header, queue the update, answer 200 at once."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from services.signing import same_secret
from webhooks.deps import DEPS, WebDeps
from webhooks.payments import read_body

log = logging.getLogger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


async def telegram_webhook(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    hook = deps.telegram
    if hook is None:
        return web.json_response({"error": "telegram channel disabled"}, status=404)
    if not same_secret(hook.secret, request.headers.get(SECRET_HEADER)):
        log.warning("telegram webhook refused: wrong secret token (from %s)", request.remote)
        return web.json_response({"error": "forbidden"}, status=403)
    raw = await read_body(request, deps.max_body_bytes)
    if raw is None:
        return web.json_response({"error": "body too large"}, status=400)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        log.warning("telegram webhook: body is not JSON (%d bytes)", len(raw))
        return web.json_response({"error": "body is not JSON"}, status=400)
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int) or isinstance(
            data.get("update_id"), bool):
        log.warning("telegram webhook: not a Telegram update")
        return web.json_response({"error": "not a Telegram update"}, status=400)
    if not hook.ready():
        # Not connected to the Bot API yet: Telegram keeps the update and retries.
        return web.json_response({"error": "starting"}, status=503)
    # An update from the right sender that cannot be read is acknowledged (logged by feed), so Telegram
    # does not resend it forever.
    await hook.feed(data)
    return web.json_response({"ok": True})


def setup(app: web.Application) -> None:
    app.router.add_post("/telegram/webhook", telegram_webhook)
