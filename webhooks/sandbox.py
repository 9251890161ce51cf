"""GET /pay/sandbox/{order_id}: the sandbox gateway's checkout page; its buttons make the sandbox send us
a signed callback, exactly as a real gateway would. GET /pay/done: where gateways send the payer back."""

from __future__ import annotations

import html
import logging

from aiohttp import web

from handlers import Translator
from services.errors import GatewayUnavailable
from services.money import rupiah
from webhooks.deps import DEPS, WebDeps

log = logging.getLogger(__name__)

_PAGE = """<!doctype html><html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}
button{{font-size:1.1rem;padding:.6rem 1.4rem;margin:.3rem}}.amount{{font-size:2rem;font-weight:bold}}</style>
</head><body><h1>{title}</h1>{content}</body></html>"""


def _page(t: Translator, content: str, status: int = 200) -> web.Response:
    return web.Response(
        text=_PAGE.format(lang=t.language, title=html.escape(t("sandbox_title")), content=content),
        content_type="text/html",
        status=status,
    )


def _translator(request: web.Request) -> Translator:
    return Translator("en" if request.query.get("lang") == "en" else "id", "telegram")


async def checkout(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    t = _translator(request)
    if deps.sandbox is None:
        raise web.HTTPNotFound(text="sandbox gateway disabled")
    order_id = request.match_info["order_id"]
    view = await deps.topups.describe(order_id)
    if view is None or view.gateway != "sandbox":
        return _page(t, f"<p>{html.escape(t('sandbox_unknown'))}</p>", status=404)
    if view.status not in ("created", "pending"):
        text = t("sandbox_final", order_id=order_id, status=t(f"payment_status_{view.status}"))
        return _page(t, f"<p>{html.escape(text)}</p>")
    action = html.escape(f"/pay/sandbox/{order_id}")
    content = (
        f'<p class="amount">{html.escape(rupiah(view.amount))}</p><p><code>{html.escape(order_id)}</code></p>'
        f'<form method="post" action="{action}">'
        f'<button name="outcome" value="paid">{html.escape(t("sandbox_pay"))}</button>'
        f'<button name="outcome" value="failed">{html.escape(t("sandbox_fail"))}</button></form>'
    )
    return _page(t, content)


async def complete(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    t = _translator(request)
    if deps.sandbox is None:
        raise web.HTTPNotFound(text="sandbox gateway disabled")
    order_id = request.match_info["order_id"]
    form = await request.post()
    outcome = form.get("outcome")
    if outcome not in ("paid", "failed"):
        raise web.HTTPBadRequest(text="outcome must be paid or failed")
    view = await deps.topups.describe(order_id)
    if view is None or view.gateway != "sandbox":
        return _page(t, f"<p>{html.escape(t('sandbox_unknown'))}</p>", status=404)
    try:
        status = await deps.sandbox.complete(order_id, view.amount, str(outcome))
    except GatewayUnavailable as exc:
        # The reconciler will pick the outcome up from the sandbox's status API.
        log.warning("sandbox callback for %s did not reach us: %s", order_id, exc)
        status = 0
    view = await deps.topups.describe(order_id)
    shown = t(f"payment_status_{view.status}") if view else "?"
    log.info("sandbox %s pressed for %s; our notify answered %s", outcome, order_id, status)
    return _page(t, f"<p>{html.escape(t('sandbox_done', order_id=order_id, status=shown))}</p>")


async def done(request: web.Request) -> web.Response:
    return web.Response(text="Terima kasih! Silakan kembali ke chat. / Thank you! You can return to the chat.")


def setup(app: web.Application) -> None:
    app.router.add_get("/pay/sandbox/{order_id}", checkout)
    app.router.add_post("/pay/sandbox/{order_id}", complete)
    app.router.add_get("/pay/done", done)
