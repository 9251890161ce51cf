"""Pages rendered with Jinja2 (aiohttp-jinja2, autoescaping on: every value people typed is escaped), the
static files they use, and the page language (Indonesian, `?lang=en` for English)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from handlers import Translator

HERE = Path(__file__).parent
STATIC_MAX_AGE = 3600


def setup(app: web.Application) -> None:
    aiohttp_jinja2.setup(app, loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
                         trim_blocks=True, lstrip_blocks=True)
    app.router.add_static("/static/", HERE / "static", name="static", append_version=False)


def translator(request: web.Request) -> Translator:
    """Pages speak Indonesian unless asked otherwise (`?lang=en`)."""
    return Translator("en" if request.query.get("lang") == "en" else "id", "playground")


def render(name: str, request: web.Request, context: dict[str, Any], *, status: int = 200) -> web.Response:
    context.setdefault("t", translator(request))
    response = aiohttp_jinja2.render_template(name, request, context, status=status)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def not_found(request: web.Request, *, playground: bool = False) -> web.Response:
    return render("not_found.html", request, {"playground": playground}, status=404)
