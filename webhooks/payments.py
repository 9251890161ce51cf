"""POST /payments/{gateway}/notify: verify first, apply idempotently, answer 200 only once it is committed.

    bad or missing signature -> 401   unparseable body -> 400   unknown order -> 200 (nothing credited)
    database unavailable -> 503 (gateways retry it; a transient fault is never a 500)
"""

from __future__ import annotations

import logging

from aiohttp import web

from services.errors import BadSignature, GatewayUnavailable, MalformedCallback, StorageUnavailable
from webhooks.deps import DEPS, WebDeps

log = logging.getLogger(__name__)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def read_body(request: web.Request, limit: int) -> bytes | None:
    """The raw body, read once; None when it is larger than `limit` (refused without reading it all)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    try:
        body = await request.content.read(limit + 1)
    except (ValueError, ConnectionError):
        return None
    return None if len(body) > limit else body


async def notify(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    name = request.match_info["gateway"]
    if deps.settlement.gateway(name) is None:
        return _error(404, f"gateway {name!r} is not enabled")
    raw = await read_body(request, deps.max_body_bytes)
    if raw is None:
        return _error(400, "body too large")
    try:
        reply = await deps.settlement.receive_callback(name, raw, request.headers)
    except BadSignature as exc:
        log.warning("%s callback refused: %s (from %s)", name, exc, request.remote)
        return _error(401, "invalid signature")
    except MalformedCallback as exc:
        log.warning("%s callback malformed: %s", name, exc)
        return _error(400, f"malformed callback: {exc}")
    except GatewayUnavailable as exc:
        log.warning("%s callback: could not confirm it with the gateway (%s); answering 503", name, exc)
        return _error(503, "temporarily unavailable")
    except StorageUnavailable as exc:
        log.error("%s callback: database unavailable (%s); answering 503 so the gateway retries", name, exc)
        return _error(503, "temporarily unavailable")
    except Exception:
        # Unexpected, but the gateway must retry rather than give up: never a 500 to a gateway.
        log.exception("%s callback failed unexpectedly", name)
        return _error(503, "temporarily unavailable")
    return web.Response(text=reply.answer.body, content_type=reply.answer.content_type)


def setup(app: web.Application) -> None:
    app.router.add_post("/payments/{gateway}/notify", notify)
