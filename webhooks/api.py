"""The deposit API for other bots (only when api.enabled; otherwise none of these routes exists: 404).

    POST /api/v1/deposits              create (201), or the same deposit again (200)
    GET  /api/v1/deposits/{deposit_id}  read, with how its forwarding goes
    GET  /api/v1/openapi.json, /api/docs
    POST /deposit/create, GET /deposit/status, GET /health   the top-up Worker's routes and shapes (--worker clients)

Every request: read the raw body (bounded), authenticate (key, and the signature when present or required),
count it against the client's rate, parse, one service call, answer. Errors, never a 500:
    401 credentials or signature   400 malformed   404 not this client's   409 idempotent retry that differs
    422 amount outside the client's limits   429 over api.rate_per_minute (Retry-After)
    503 gateways or database down (the Worker's create: 502 in its shape)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiohttp import web

from services.clients import ClientView
from services.deposits import DepositRequest, DepositView
from services.errors import (
    AllGatewaysFailed,
    AmountError,
    BadRequest,
    GatewayError,
    IdempotencyConflict,
    NotFound,
    RateLimited,
    StorageUnavailable,
    Unauthorized,
)
from services.forwarding import worker_status
from services.kinds import DepositFormat
from webhooks import api_docs
from webhooks.deps import DEPS, ApiHook, WebDeps
from webhooks.payments import read_body

log = logging.getLogger(__name__)
MAX_API_BODY = 16_384
CORS_HEADERS = "Authorization, Content-Type, X-Timestamp, X-Nonce, X-Signature"


def _api(request: web.Request) -> ApiHook:
    hook = request.app[DEPS].api
    assert hook is not None, "API routes exist only when the API is enabled"
    return hook


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _ms(value: datetime | None) -> int | None:
    return int(value.timestamp() * 1000) if value is not None else None


async def _client(request: web.Request, raw: bytes, *, creating: bool, worker: bool = False) -> ClientView:
    """The authenticated client, counted against its rate; Unauthorized or RateLimited otherwise."""
    api = _api(request)
    client = await api.clients.authenticate(request.headers.get("Authorization"), request.headers, raw,
                                            creating=creating)
    if worker and not client.worker:
        raise Unauthorized("the Worker's routes are for clients added with --worker")
    wait = api.limiter.check(client.name, api.monotonic())
    if wait:
        raise RateLimited(wait)
    return client


def _cors(request: web.Request, response: web.StreamResponse, client: ClientView | None) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin and client is not None and origin in client.origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
    return response


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("body is not a JSON object")
    return data


def _text(data: dict[str, Any], key: str, *, required: bool = False, numbers: bool = False) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise BadRequest(f"{key} is required")
        return None
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # a bot that sends its user id as a number means the same id
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def _amount(data: dict[str, Any]) -> int:
    value = data.get("amount")
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest("amount must be a whole number of Rupiah")
    return value


def deposit_json(view: DepositView, *, full: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"deposit_id": view.deposit_id, "status": view.status, "amount": view.amount}
    if not full:
        body["payment_url"] = view.payment_url
        if view.qr_string:
            body["qr_string"] = view.qr_string
        body["expires_at"] = _when(view.expires_at)
        return body
    if view.paid_at is not None:
        body["paid_at"] = _when(view.paid_at)
    f = view.forwarding
    forwarding: dict[str, Any] = {"delivered": f.delivered, "attempts": f.attempts}
    for key, value in (("event", f.event), ("last_status", f.last_status), ("last_error", f.last_error),
                       ("next_attempt_at", _when(f.next_attempt_at)), ("delivered_at", _when(f.delivered_at))):
        if value is not None:
            forwarding[key] = value
    body.update(forwarding=forwarding, user_ref=view.user_ref, reference=view.reference,
                payment_url=view.payment_url, expires_at=_when(view.expires_at), created_at=_when(view.created_at),
                events=[{"event": e.event, "delivered": e.delivered, "attempts": e.attempts,
                         "last_status": e.last_status} for e in view.events])
    return body


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _answering(worker: bool) -> Callable[[Handler], Handler]:
    """Maps the error tree to status codes (the Worker's routes answer in its `{"ok": false, ...}` shape)."""

    def wrap(handler: Handler) -> Handler:
        async def answer(request: web.Request) -> web.StreamResponse:
            def error(status: int, code: str, message: str, **extra: Any) -> web.Response:
                body = ({"ok": False, "message": message, **extra} if worker
                        else {"error": code, "message": message, **extra})
                return web.json_response(body, status=status)

            try:
                return await handler(request)
            except Unauthorized as exc:
                log.info("API %s refused: %s (from %s)", request.path, exc, request.remote)
                response = error(401, "unauthorized", "Unauthorized")
                response.headers["WWW-Authenticate"] = "Bearer"
                return response
            except BadRequest as exc:
                return error(400, "bad_request", str(exc))
            except NotFound:
                return error(404, "not_found", "Deposit not found")
            except IdempotencyConflict as exc:
                return error(409, "conflict", str(exc))
            except AmountError as exc:
                return error(422, "amount_out_of_limits", "amount outside this client's limits",
                             **{k: v for k, v in exc.params.items() if k in ("minimum", "maximum")})
            except RateLimited as exc:
                response = error(429, "rate_limited", str(exc))
                response.headers["Retry-After"] = str(exc.retry_after)
                return response
            except (AllGatewaysFailed, GatewayError, StorageUnavailable) as exc:
                log.warning("API %s: %s", request.path, exc)
                if worker and request.method == "POST":
                    return web.json_response({"ok": False, "message": "Gagal membuat invoice",
                                              "detail": {"raw": str(exc)[:300]}}, status=502)
                return error(503, "unavailable", "temporarily unavailable; retry later")
            except Exception:
                log.exception("API %s failed unexpectedly", request.path)
                return error(503, "unavailable", "temporarily unavailable; retry later")

        return answer

    return wrap


async def _body(request: web.Request) -> bytes:
    raw = await read_body(request, MAX_API_BODY)
    if raw is None:
        raise BadRequest(f"body larger than {MAX_API_BODY} bytes")
    return raw


@_answering(worker=False)
async def create_deposit(request: web.Request) -> web.StreamResponse:
    raw = await _body(request)
    client = await _client(request, raw, creating=True)
    data = _json_object(raw)
    customer = data.get("customer") or {}
    if not isinstance(customer, dict):
        raise BadRequest("customer must be an object")
    view = await _api(request).deposits.create(client, DepositRequest(
        user_ref=_text(data, "user_ref", required=True, numbers=True) or "", amount=_amount(data),
        deposit_id=_text(data, "deposit_id"), description=_text(data, "description"),
        email=_text(customer, "email"), phone=_text(customer, "phone", numbers=True)))
    return _cors(request, web.json_response(deposit_json(view, full=False), status=201 if view.created else 200),
                 client)


@_answering(worker=False)
async def read_deposit(request: web.Request) -> web.StreamResponse:
    raw = await _body(request)
    client = await _client(request, raw, creating=False)
    view = await _api(request).deposits.read(client.id, request.match_info["deposit_id"][:64])
    return _cors(request, web.json_response(deposit_json(view, full=True)), client)


async def preflight(request: web.Request) -> web.Response:
    """A browser asks before a cross-origin call; it names no client, so any enabled client's origin may."""
    origin = request.headers.get("Origin")
    response = web.Response(status=204)
    try:
        allowed = origin is not None and origin in await _api(request).clients.allowed_origins()
    except StorageUnavailable:
        allowed = False
    if allowed and origin is not None:
        response.headers.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                                 "Access-Control-Allow-Methods": "GET, POST",
                                 "Access-Control-Allow-Headers": CORS_HEADERS, "Access-Control-Max-Age": "600"})
    return response


# --- the top-up Worker's routes ---------------------------------------------------------------------------


@_answering(worker=True)
async def worker_create(request: web.Request) -> web.StreamResponse:
    raw = await _body(request)
    client = await _client(request, raw, creating=True, worker=True)
    data = _json_object(raw)
    view = await _api(request).deposits.create(client, DepositRequest(
        user_ref=_text(data, "userId", required=True, numbers=True) or "", amount=_amount(data),
        deposit_id=_text(data, "depositId"), description=_text(data, "productDetails"),
        email=_text(data, "email"), phone=_text(data, "msisdn", numbers=True), format=DepositFormat.WORKER))
    return web.json_response({"ok": True, "depositId": view.deposit_id,
                              "reference": view.gateway_reference or view.reference, "paymentUrl": view.payment_url})


@_answering(worker=True)
async def worker_status_route(request: web.Request) -> web.StreamResponse:
    client = await _client(request, await _body(request), creating=False, worker=True)
    deposit_id = request.query.get("depositId", "")
    if not deposit_id:
        raise BadRequest("depositId is required")
    view = await _api(request).deposits.read(client.id, deposit_id[:64])
    paid = next((e for e in view.events if e.event == "deposit.paid"), None)
    credit: dict[str, Any] | None = None
    if paid is not None and paid.delivered:
        credit = {"ok": True}
    elif paid is not None and paid.attempts:
        credit = {"ok": False, "error": paid.last_error or "not delivered", "detail": {"status": paid.last_status}}
    return web.json_response({
        "ok": True, "depositId": view.deposit_id, "userId": view.user_ref, "amount": view.amount,
        "status": worker_status(view.payment_status), "credited": bool(paid and paid.delivered),
        "paymentUrl": view.payment_url, "reference": view.gateway_reference or view.reference,
        "createdAt": _ms(view.created_at), "callbackReceived": view.gateway_said,
        "creditedAt": _ms(paid.delivered_at) if paid else None, "creditResult": credit})


async def health(request: web.Request) -> web.Response:
    api = _api(request)
    return web.json_response({"ok": True, "service": "titip", "version": api.version,
                              "timestamp": int(api.wall_clock() * 1000),
                              "replayProtection": {"enforceTimestamp": api.signatures_required,
                                                   "nonceKvEnabled": True}})


def setup(app: web.Application) -> None:
    deps: WebDeps = app[DEPS]
    if deps.api is None:
        return
    app.router.add_post("/api/v1/deposits", create_deposit)
    app.router.add_get("/api/v1/deposits/{deposit_id}", read_deposit)
    app.router.add_route("OPTIONS", "/api/v1/{tail:.*}", preflight)
    app.router.add_get("/api/v1/openapi.json", api_docs.openapi)
    app.router.add_get("/api/docs", api_docs.docs)
    app.router.add_post("/deposit/create", worker_create)
    app.router.add_get("/deposit/status", worker_status_route)
    app.router.add_get("/health", health)
