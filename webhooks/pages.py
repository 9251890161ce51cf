"""Public pages people share: /t/<slug> (a trip and its products), /j/<handle> (a jastiper's profile and track
record), the trip's preview card and story poster, and product photos by product id.

Nothing here shows a participant, a phone number or an order (services/public.py has no field for them); no
route takes a file path; payment proofs are served by no route at all. Pages are cacheable: an ETag over the
rendered bytes (so any change to the trip or a product changes it) and a short max-age.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aiohttp import web

from handlers import WIB, Translator
from services.money import rupiah
from services.public import PublicProfile, PublicTrip
from webhooks.cards import card_jpeg, poster_png
from webhooks.deps import DEPS, WebDeps
from webhooks.templating import not_found, render, translator

log = logging.getLogger(__name__)
PAGE_MAX_AGE = 60  # seconds: a shared link shows a stock change within a minute
IMAGE_MAX_AGE = 300
_IMAGES: OrderedDict[str, bytes] = OrderedDict()  # drawn cards and posters by the hash of what they show
_IMAGES_KEPT = 64


def _cached(request: web.Request, body: bytes, content_type: str, max_age: int) -> web.Response:
    """`body` with a strong ETag; 304 when the client already has it."""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={max_age}", "X-Content-Type-Options": "nosniff"}
    if etag in [tag.strip() for tag in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=content_type, headers=headers,
                        charset="utf-8" if content_type.startswith("text/") else None)


def _html(request: web.Request, response: web.Response) -> web.Response:
    assert response.body is not None
    return _cached(request, bytes(response.body), "text/html", PAGE_MAX_AGE)


def deadline_text(t: Translator, deadline: datetime) -> tuple[str, str]:
    """('31-12-2026 20:00 WIB', '3 hari lagi' / 'hari ini' / '')."""
    shown = deadline.astimezone(WIB).strftime("%d-%m-%Y %H:%M WIB")
    now = datetime.now(UTC)
    if deadline <= now:
        return shown, ""
    days = (deadline.astimezone(WIB).date() - now.astimezone(WIB).date()).days
    return shown, t("web_days_left", days=days) if days > 0 else t("web_today")


def join_links(deps: WebDeps, slug: str) -> tuple[str | None, str | None]:
    share = deps.share
    telegram = (f"https://t.me/{share.telegram_username}?start=join_{slug}"
                if share and share.telegram_username else None)
    whatsapp = (f"https://wa.me/{share.whatsapp_number}?text={quote(f'JOIN {slug}')}"
                if share and share.whatsapp_number else None)
    return telegram, whatsapp


def order_links(deps: WebDeps, slug: str, code: str) -> tuple[str | None, str | None]:
    share = deps.share
    start = f"order_{slug}_{code}"
    telegram = (f"https://t.me/{share.telegram_username}?start={start}"
                if share and share.telegram_username and len(start) <= 64 else None)
    whatsapp = (f"https://wa.me/{share.whatsapp_number}?text={quote(f'PESAN {slug} {code}')}"
                if share and share.whatsapp_number else None)
    return telegram, whatsapp


def price_range(trip: PublicTrip) -> str:
    prices = sorted(p.price for p in trip.products)
    if not prices:
        return ""
    return rupiah(prices[0]) if prices[0] == prices[-1] else f"{rupiah(prices[0])} - {rupiah(prices[-1])}"


async def _trip(request: web.Request) -> tuple[WebDeps, PublicTrip | None]:
    deps: WebDeps = request.app[DEPS]
    if deps.public is None:
        return deps, None
    return deps, await deps.public.trip(request.match_info["slug"])


async def trip_page(request: web.Request) -> web.Response:
    deps, trip = await _trip(request)
    if trip is None:
        return not_found(request, playground=deps.playground is not None)
    t = translator(request)
    base = deps.public_url.rstrip("/")
    lang = "?lang=en" if t.language == "en" else ""
    deadline, days_left = deadline_text(t, trip.deadline_at)
    products = []
    for p in trip.products:
        telegram, whatsapp = order_links(deps, trip.slug, p.code)
        products.append({"id": p.id, "code": p.code, "name": p.name, "has_photo": p.has_photo, "stock": p.stock,
                         "price_text": rupiah(p.price),
                         "stock_text": t("web_stock", stock=p.stock) if p.stock > 0 else t("web_sold_out"),
                         "telegram": telegram, "whatsapp": whatsapp})
    telegram_join, whatsapp_join = join_links(deps, trip.slug)
    description = t("web_trip_description", owner=trip.owner_name, count=len(trip.products), deadline=deadline,
                    prices=price_range(trip) or "-")
    context: dict[str, Any] = {
        "t": t, "trip": trip, "products": products, "deadline": deadline, "days_left": days_left,
        "telegram_join": telegram_join, "whatsapp_join": whatsapp_join, "description": description,
        "page_url": f"{base}/t/{trip.slug}", "card_url": f"{base}/t/{trip.slug}/card.jpg",
        "lang_query": lang, "other_lang_url": f"/t/{trip.slug}" + ("" if lang else "?lang=en"),
    }
    return _html(request, render("trip.html", request, context))


async def _photos(deps: WebDeps, trip: PublicTrip, limit: int) -> list[bytes]:
    assert deps.public is not None
    found = []
    for product in [p for p in trip.products if p.has_photo][:limit]:
        data = await deps.public.product_photo(product.id)
        if data is not None:
            found.append(data)
    return found


async def _image(key: str, draw) -> bytes:
    image = _IMAGES.get(key)
    if image is None:
        image = await asyncio.to_thread(draw)  # Pillow off the event loop
        _IMAGES[key] = image
        while len(_IMAGES) > _IMAGES_KEPT:
            _IMAGES.popitem(last=False)
    else:
        _IMAGES.move_to_end(key)
    return image


async def card(request: web.Request) -> web.Response:
    deps, trip = await _trip(request)
    if trip is None:
        return not_found(request, playground=deps.playground is not None)
    t = translator(request)
    photos = await _photos(deps, trip, 3)
    facts = dict(title=trip.title, owner=trip.owner_name,
                 deadline=t("web_deadline") + ": " + deadline_text(t, trip.deadline_at)[0], prices=price_range(trip))
    key = hashlib.sha256(repr(("card", facts)).encode() + b"".join(hashlib.sha256(p).digest() for p in photos))
    body = await _image(key.hexdigest(), lambda: card_jpeg(**facts, photos=photos))
    return _cached(request, body, "image/jpeg", IMAGE_MAX_AGE)


async def poster(request: web.Request) -> web.Response:
    deps, trip = await _trip(request)
    if trip is None:
        return not_found(request, playground=deps.playground is not None)
    t = translator(request)
    telegram, whatsapp = join_links(deps, trip.slug)
    target = telegram or whatsapp or f"{deps.public_url.rstrip('/')}/t/{trip.slug}"
    facts = dict(title=trip.title, owner=trip.owner_name,
                 deadline=t("web_deadline") + ": " + deadline_text(t, trip.deadline_at)[0], join_url=target,
                 how=t("web_poster_how", slug=trip.slug))
    key = hashlib.sha256(repr(("poster", facts)).encode()).hexdigest()
    body = await _image(key, lambda: poster_png(**facts))
    return _cached(request, body, "image/png", IMAGE_MAX_AGE)


async def profile_page(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    found: PublicProfile | None = await deps.public.profile(request.match_info["handle"]) if deps.public else None
    if found is None:
        return not_found(request, playground=deps.playground is not None)
    t = translator(request)
    share = found.record.on_time_share
    trips = [{"slug": trip.slug, "title": trip.title, "deadline": deadline_text(t, trip.deadline_at)[0]}
             for trip in found.open_trips]
    context: dict[str, Any] = {
        "t": t, "profile": found, "trips": trips,
        "on_time": f"{round(share * 100)}%" if share is not None else t("web_no_record"),
        "since": found.record.member_since.astimezone(WIB).strftime("%m-%Y"),
        "description": t("web_profile_description", name=found.name, trips=len(found.open_trips)),
        "page_url": f"{deps.public_url.rstrip('/')}/j/{found.handle}",
        "lang_query": "?lang=en" if t.language == "en" else "",
    }
    return _html(request, render("profile.html", request, context))


async def product_photo(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    try:
        product_id = int(request.match_info["product_id"])
    except ValueError:
        raise web.HTTPNotFound() from None
    data = await deps.public.product_photo(product_id) if deps.public else None
    if data is None:
        raise web.HTTPNotFound()
    return _cached(request, data, "image/jpeg", IMAGE_MAX_AGE)


def setup(app: web.Application) -> None:
    app.router.add_get("/t/{slug}", trip_page)
    app.router.add_get("/t/{slug}/card.jpg", card)
    app.router.add_get("/t/{slug}/poster.png", poster)
    app.router.add_get("/j/{handle}", profile_page)
    app.router.add_get(r"/media/products/{product_id:\d{1,18}}.jpg", product_photo)
