"""POST /payouts/{provider}/notify: payout providers' callbacks, with the payment callbacks' status-code rules
(bad signature 401, unparseable 400, nothing of ours 200, applied-and-committed 200, database down 503).
GET/POST /pay/sandbox/payouts/{payout_id}: the sandbox provider's page (development only), whose buttons make the
sandbox send a signed callback, exactly as a real provider would."""

from __future__ import annotations

import logging

from aiohttp import web

from services.errors import BadSignature, GatewayUnavailable, MalformedCallback, StorageUnavailable
from services.money import rupiah
from webhooks.deps import DEPS, WebDeps
from webhooks.payments import read_body
from webhooks.templating import render, translator

log = logging.getLogger(__name__)
# What the sandbox page offers in each state: (outcome, label key, button style).
OFFERS = {
    "processing": (("completed", "sandbox_payout_complete", "primary"), ("failed", "sandbox_payout_fail", "secondary"),
                   ("no_funds", "sandbox_payout_no_funds", "secondary")),
    "completed": (("reversed", "sandbox_payout_reverse", "secondary"),),
}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def notify(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    name = request.match_info["provider"]
    withdrawals = deps.withdrawals
    provider = withdrawals.provider if withdrawals else None
    if withdrawals is None or provider is None or provider.name != name:
        return _error(404, f"payout provider {name!r} is not enabled")
    raw = await read_body(request, deps.max_body_bytes)
    if raw is None:
        return _error(400, "body too large")
    try:
        await withdrawals.callback(name, raw, request.headers)
    except BadSignature as exc:
        log.warning("%s payout callback refused: %s (from %s)", name, exc, request.remote)
        return _error(401, "invalid signature")
    except MalformedCallback as exc:
        log.warning("%s payout callback malformed: %s", name, exc)
        return _error(400, f"malformed callback: {exc}")
    except (GatewayUnavailable, StorageUnavailable) as exc:
        log.error("%s payout callback: %s; answering 503 so the provider retries", name, exc)
        return _error(503, "temporarily unavailable")
    except Exception:
        log.exception("%s payout callback failed unexpectedly", name)
        return _error(503, "temporarily unavailable")
    return web.Response(text=provider.callback_answer.body, content_type=provider.callback_answer.content_type)


async def _page(request: web.Request, deps: WebDeps, payout_id: int, message: str = "") -> web.Response:
    t = translator(request)
    back = "/" if deps.playground is not None else "/pay/done"
    view = await deps.withdrawals.describe(payout_id) if deps.withdrawals else None
    if view is None:
        return render("sandbox_payout.html", request, {"state": "unknown", "t": t, "back_url": back}, status=404)
    outcomes = [(value, t(label), style) for value, label, style in OFFERS.get(view.status, ())]
    return render("sandbox_payout.html", request, {
        "state": view.status, "payout_id": view.id, "amount": rupiah(view.amount), "bank": view.bank,
        "number": view.number, "name": view.holder_name, "outcomes": outcomes, "back_url": back, "t": t,
        "message": message or t("sandbox_payout_state", payout_state=view.status)})


def _payout_id(request: web.Request) -> int:
    raw = request.match_info["payout_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise web.HTTPNotFound(text="no such payout")
    return int(raw)


async def page(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    if deps.sandbox_payouts is None:
        raise web.HTTPNotFound(text="sandbox payouts disabled")
    return await _page(request, deps, _payout_id(request))


async def press(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    sandbox, withdrawals = deps.sandbox_payouts, deps.withdrawals
    if sandbox is None or withdrawals is None:
        raise web.HTTPNotFound(text="sandbox payouts disabled")
    payout_id = _payout_id(request)
    form = await request.post()
    outcome = str(form.get("outcome") or "")
    view = await withdrawals.describe(payout_id)
    key = await withdrawals.attempt_key(payout_id)
    if view is None or key is None:
        return await _page(request, deps, payout_id)
    if outcome not in {value for value, _, _ in OFFERS.get(view.status, ())}:
        raise web.HTTPBadRequest(text="that outcome is not offered for this payout now")
    try:
        status = await sandbox.complete(key, view.amount, outcome)
    except GatewayUnavailable as exc:
        log.warning("sandbox payout callback for %s did not reach us: %s", payout_id, exc)
        status = 0
    log.info("sandbox payout %s pressed for %s; our notify answered %s", outcome, payout_id, status)
    return await _page(request, deps, payout_id)


def setup(app: web.Application) -> None:
    app.router.add_post("/payouts/{provider}/notify", notify)
    app.router.add_get("/pay/sandbox/payouts/{payout_id}", page)
    app.router.add_post("/pay/sandbox/payouts/{payout_id}", press)
