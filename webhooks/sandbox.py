"""GET /pay/sandbox/{order_id}: the sandbox gateway's checkout page; its buttons make the sandbox send us
a signed callback, exactly as a real gateway would. GET /pay/done: where gateways send the payer back."""

from __future__ import annotations

import logging

from aiohttp import web

from handlers import Translator
from services.errors import GatewayUnavailable
from services.money import rupiah
from webhooks.deps import DEPS, WebDeps
from webhooks.templating import render, translator

log = logging.getLogger(__name__)
OPEN = ("created", "pending")


def _speaking(request: web.Request, language: str | None) -> Translator:
    """The payer's language, unless the page was asked for one (?lang=en)."""
    if "lang" in request.query or language not in ("id", "en"):
        return translator(request)
    return Translator(language, "playground")


def _page(request: web.Request, deps: WebDeps, *, state: str, t: Translator | None = None, order_id: str = "",
          amount: int = 0, message: str = "", status: int = 200) -> web.Response:
    # Back to the chat: the playground when it runs (it is where a newcomer paid from), else the messenger.
    back = "/" if deps.playground is not None else "/pay/done"
    return render("sandbox.html", request, {"state": state, "order_id": order_id, "amount": rupiah(amount),
                                            "message": message, "back_url": back, "t": t or translator(request)},
                  status=status)


async def checkout(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    if deps.sandbox is None:
        raise web.HTTPNotFound(text="sandbox gateway disabled")
    order_id = request.match_info["order_id"]
    view = await deps.topups.describe(order_id)
    if view is None or view.gateway != "sandbox":
        return _page(request, deps, state="unknown", status=404)
    t = _speaking(request, view.language)
    if view.status not in OPEN:
        # A final payment never offers Bayar again.
        text = t("sandbox_final", order_id=order_id, status=t(f"payment_status_{view.status}"))
        return _page(request, deps, state="final", order_id=order_id, amount=view.amount, message=text, t=t)
    return _page(request, deps, state="open", order_id=order_id, amount=view.amount, t=t)


async def complete(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    if deps.sandbox is None:
        raise web.HTTPNotFound(text="sandbox gateway disabled")
    order_id = request.match_info["order_id"]
    form = await request.post()
    outcome = form.get("outcome")
    if outcome not in ("paid", "failed"):
        raise web.HTTPBadRequest(text="outcome must be paid or failed")
    view = await deps.topups.describe(order_id)
    if view is None or view.gateway != "sandbox":
        return _page(request, deps, state="unknown", status=404)
    try:
        status = await deps.sandbox.complete(order_id, view.amount, str(outcome))
    except GatewayUnavailable as exc:
        # The reconciler will pick the outcome up from the sandbox's status API.
        log.warning("sandbox callback for %s did not reach us: %s", order_id, exc)
        status = 0
    view = await deps.topups.describe(order_id)
    t = _speaking(request, view.language if view else None)
    shown = t(f"payment_status_{view.status}") if view else "?"
    log.info("sandbox %s pressed for %s; our notify answered %s", outcome, order_id, status)
    return _page(request, deps, state="done", order_id=order_id, amount=view.amount if view else 0,
                 message=t("sandbox_done", order_id=order_id, status=shown), t=t)


async def done(request: web.Request) -> web.Response:
    return web.Response(text="Terima kasih! Silakan kembali ke chat. / Thank you! You can return to the chat.")


def setup(app: web.Application) -> None:
    app.router.add_get("/pay/sandbox/{order_id}", checkout)
    app.router.add_post("/pay/sandbox/{order_id}", complete)
    app.router.add_get("/pay/done", done)
