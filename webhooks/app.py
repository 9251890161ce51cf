"""Builds the aiohttp application from its dependencies; lifetimes are attached by the composition root."""

from __future__ import annotations

from aiohttp import web

from webhooks import api, health, pages, payments, payouts, playground, sandbox, telegram, templating, whatsapp
from webhooks.deps import DEPS, WebDeps


def create_app(deps: WebDeps) -> web.Application:
    # client_max_size bounds form posts; the callback routes enforce max_body_bytes themselves.
    app = web.Application(client_max_size=deps.max_body_bytes)
    app[DEPS] = deps
    health.setup(app)
    payments.setup(app)
    telegram.setup(app)
    whatsapp.setup(app)
    sandbox.setup(app)
    payouts.setup(app)
    api.setup(app)
    templating.setup(app)
    pages.setup(app)
    playground.setup(app)
    return app
