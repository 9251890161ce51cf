"""Jastip trips in chat — for jastipers: TRIP, PRODUK, UBAH, HAPUS, PEMBAYARAN, PESERTA, TUTUP, BUKA, DEADLINE;
for participants: JOIN, INFO, STOP. What each person sees, on every channel, with the next step."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import quote

from handlers.context import Services
from handlers.grammar import parse_amount, parse_whole
from handlers.i18n import ZONES, Translator, local_time
from services.errors import UserInputError
from services.messaging import Button, OutgoingMessage
from services.text import clean_name
from services.trips import ParticipantView, TripView
from services.wallet import UserView

# "JOIN jpn25 | Nama: Siti" exactly as jastip users write it: case-insensitive, spaces tolerant.
JOIN = re.compile(r"^\s*(?P<slug>[A-Za-z0-9_-]{3,10})\s*(?:\|\s*(?:nama|name)\s*[:=]?\s*(?P<name>.*?))?\s*$",
                  re.IGNORECASE | re.ASCII)
_DEADLINE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%d-%m-%Y %H:%M", "%d-%m-%Y")
_ZONE = re.compile(r"\b(WIB|WITA|WIT)\b\s*$", re.IGNORECASE)


def usage(command: str) -> UserInputError:
    """The command's own usage hint (never another command's example)."""
    return UserInputError(f"usage_{command}")


def words(args: str, count: int, command: str) -> list[str]:
    parts = args.split(maxsplit=count - 1)
    if len(parts) < count:
        raise usage(command)
    return parts


def parse_deadline(text: str) -> datetime:
    """'2026-12-31 20:00' in WIB (or WITA / WIT when written after it); a date alone means 23:59 that day."""
    cleaned = " ".join(text.split())
    zone = ZONES["WIB"]
    found = _ZONE.search(cleaned)
    if found:
        zone = ZONES[found.group(1).upper()]
        cleaned = cleaned[:found.start()].strip()
    for fmt in _DEADLINE_FORMATS:
        try:
            moment = datetime.strptime(cleaned, fmt)
        except ValueError:
            continue
        if "%H" not in fmt:
            moment = moment.replace(hour=23, minute=59)
        return moment.replace(tzinfo=zone)
    raise UserInputError("trip_deadline_invalid", text=clean_name(text, 30))


def parse_join(args: str) -> tuple[str, str | None]:
    match = JOIN.match(args)
    if not match:
        raise usage("join")
    return match.group("slug"), (match.group("name") or None)


def product_lines(t: Translator, trip: TripView) -> list[str]:
    lines = [t("product_line", code=p.code, name=p.name, price=p.price, stock=p.stock) if p.stock > 0
             else t("product_line_sold_out", code=p.code, name=p.name, price=p.price) for p in trip.products]
    return lines or [t("product_none")]


def trip_text(t: Translator, trip: TripView) -> str:
    head = t("trip_detail", slug=trip.slug, title=trip.title, deadline=local_time(trip.deadline_at),
             trip_state=trip.status, participants=trip.participants, orders=trip.orders)
    return "\n".join([head, *product_lines(t, trip)])


def share_text(services: Services, t: Translator, slug: str) -> str:
    links = [f"JOIN {slug} | Nama: ..."]
    username = services.share.telegram_username
    if username:
        links.append(f"https://t.me/{username}?start=join_{slug}")
    if services.share.whatsapp_number:
        links.append(f"https://wa.me/{services.share.whatsapp_number}?text={quote(f'JOIN {slug}')}")
    page = page_link(services, slug)
    if page:
        links.append(t("trip_page", url=page))
    return t("trip_share", lines="\n".join(links))


def page_link(services: Services, slug: str) -> str | None:
    """The trip's public page (products, photos, join buttons), to share on Instagram or a WhatsApp status."""
    base = services.share.page_base
    return f"{base.rstrip('/')}/t/{slug}" if base else None


async def trip(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """TRIP → my trips with their products; TRIP BARU <slug> <judul> | <deadline> → a new trip with share
    links; TRIP <slug> → that trip."""
    if not args:
        mine = await services.trips.mine(user.id)
        if not mine:
            return [OutgoingMessage(t("trip_none"))]
        return [OutgoingMessage("\n\n".join(trip_text(t, x) for x in mine) + "\n\n" + t("trip_list_next"))]
    head, _, rest = args.partition(" ")
    if head.lower() in ("baru", "new"):
        spec, bar, deadline_text = rest.partition("|")
        slug, _, title = spec.strip().partition(" ")
        if not bar or not slug or not title.strip():
            raise usage("trip")
        created = await services.trips.create(user.id, slug, title, parse_deadline(deadline_text.strip()))
        text = t("trip_created", slug=created.slug, title=created.title, deadline=local_time(created.deadline_at))
        return [OutgoingMessage(text + "\n\n" + share_text(services, t, created.slug) + "\n\n"
                                + t("trip_created_next", slug=created.slug))]
    detail = await services.trips.detail(head)
    text = trip_text(t, detail)
    page = page_link(services, detail.slug)
    if page:
        text += "\n\n" + t("trip_page", url=page)
    return [OutgoingMessage(text)]


async def profil(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """PROFIL → my handle and public page; PROFIL <handle> → choose it (3–30 of a-z, 0-9, _; unique)."""
    public = services.public
    if public is None:
        return [OutgoingMessage(t("profil_unavailable"))]
    base = (services.share.page_base or "").rstrip("/")
    if args.strip():
        handle = await public.set_handle(user.id, args.strip().split()[0])
        return [OutgoingMessage(t("profil_set", handle=handle, url=f"{base}/j/{handle}"))]
    handle = await public.handle_of(user.id)
    if handle is None:
        return [OutgoingMessage(t("profil_none"))]
    return [OutgoingMessage(t("profil_show", handle=handle, url=f"{base}/j/{handle}"))]


async def tutup(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """TUTUP <slug> → the trip takes no more orders."""
    slug = words(args, 1, "tutup")[0]
    done = await services.trips.set_status(user.id, slug, "closed")
    return [OutgoingMessage(t("trip_closed_now", slug=done.slug))]


async def buka(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """BUKA <slug> → the trip takes orders again (until its deadline; past it, says how to move it)."""
    slug = words(args, 1, "buka")[0]
    done = await services.trips.set_status(user.id, slug, "open")
    return [OutgoingMessage(t("trip_opened_now", slug=done.slug, deadline=local_time(done.deadline_at)))]


async def deadline(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """DEADLINE <slug> <waktu> → a new deadline."""
    slug, when = words(args, 2, "deadline")
    done = await services.trips.set_deadline(user.id, slug, parse_deadline(when))
    return [OutgoingMessage(t("trip_deadline_set", slug=done.slug, deadline=local_time(done.deadline_at)))]


async def pembayaran(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """PEMBAYARAN <slug> manual <instruksi transfer> → how buyers pay this trip's new orders."""
    parts = args.split(maxsplit=2)
    if len(parts) < 2:
        raise usage("pembayaran")
    slug, mode = parts[0], parts[1].lower()
    if mode in ("otomatis", "auto", "automatic"):
        done = await services.trips.set_payment(user.id, slug, "otomatis", None)
        return [OutgoingMessage(t("payment_otomatis_set", slug=done.slug))]
    if mode != "manual":
        raise usage("pembayaran")
    done = await services.trips.set_payment(user.id, slug, "manual", parts[2] if len(parts) > 2 else None)
    if not done.payment_instructions:
        return [OutgoingMessage(t("payment_manual_no_instructions", slug=done.slug))]
    return [OutgoingMessage(t("payment_manual_set", slug=done.slug, instructions=done.payment_instructions))]


async def produk(services: Services, user: UserView, t: Translator, args: str,
                 photo: bytes | None = None) -> list[OutgoingMessage]:
    """PRODUK <slug> <kode> <harga> <stok> <nama> (as a photo's caption: with its picture) → a product."""
    slug, code, price_text, stock_text, name = words(args, 5, "produk")
    price = parse_amount(price_text)
    if price is None:
        raise UserInputError("product_price_unreadable", text=clean_name(price_text, 30))
    stock = parse_whole(stock_text)
    if stock is None:
        raise UserInputError("product_stock_unreadable", text=clean_name(stock_text, 30))
    added = await services.trips.add_product(user.id, slug, code, price, stock, name, photo)
    # One tap to announce it: a paid broadcast, shown with its preview and price before anything is sent.
    announce = ((Button(t("btn_announce"), data=f"ann:{slug.lower()}:{added.code}"),),)
    return [OutgoingMessage(t("product_added", code=added.code, name=added.name, price=added.price,
                              stock=added.stock, slug=slug.lower()), buttons=announce)]


async def ubah(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """UBAH <kode> harga|stok|nama <nilai>."""
    code, field, value = words(args, 3, "ubah")
    field = {"price": "harga", "stock": "stok", "name": "nama"}.get(field.lower(), field.lower())
    new_value: str | int = value
    if field == "harga":
        amount = parse_amount(value)
        if amount is None:
            raise UserInputError("product_price_unreadable", text=clean_name(value, 30))
        new_value = amount
    elif field == "stok":
        count = parse_whole(value)
        if count is None:
            raise UserInputError("product_stock_unreadable", text=clean_name(value, 30))
        new_value = count
    elif field != "nama":
        raise usage("ubah")
    changed = await services.trips.update_product(user.id, code, field, new_value)
    return [OutgoingMessage(t("product_updated", code=changed.code, name=changed.name, price=changed.price,
                              stock=changed.stock))]


async def hapus(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """HAPUS <kode> → the product is no longer sold."""
    code = await services.trips.delete_product(user.id, words(args, 1, "hapus")[0])
    return [OutgoingMessage(t("product_deleted", code=code))]


def contact(t: Translator, person: ParticipantView) -> str:
    """How the jastiper reaches a participant: a WhatsApp number, or a Telegram @username."""
    if person.channel == "whatsapp":
        return t("contact_whatsapp", number=f"+{person.external_id}")
    if person.channel == "telegram":
        return t("contact_telegram", username=f"@{person.username}") if person.username \
            else t("contact_telegram_no_username")
    return t("contact_other")


async def peserta(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """PESERTA <slug> → who joined (and who stopped), with how to reach each."""
    slug = words(args, 1, "peserta")[0]
    people = await services.trips.participants(user.id, slug)
    if not people:
        return [OutgoingMessage(t("participants_none", slug=slug.lower()))]
    lines = [t("participant_line", name=p.name, contact=contact(t, p), participant_state=p.status) for p in people]
    return [OutgoingMessage("\n".join([t("participants_title", slug=slug.lower(), count=len(people)), *lines]))]


async def join(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """JOIN <slug> | Nama: <name> → joined (a repeat changes nothing), the products, what is shared with the
    jastiper, and how to order."""
    slug, name = parse_join(args)
    joined, changed = await services.trips.join(user.id, slug, name or user.display_name or "-")
    key = "join_done" if changed else "join_already"
    text = "\n\n".join([t(key, slug=joined.slug, title=joined.title), trip_text(t, joined),
                        t("join_privacy"), t("join_next", slug=joined.slug,
                                             code=joined.products[0].code if joined.products else "KODE")])
    return [OutgoingMessage(text)]


async def info(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """INFO <slug> → the trip, its deadline and products with stock left, then the products' photos."""
    detail = await services.trips.detail(words(args, 1, "info")[0])
    replies = [OutgoingMessage(trip_text(t, detail) + "\n\n" + t("info_next", slug=detail.slug))]
    for product, picture in await services.trips.photos(detail.slug):
        replies.append(OutgoingMessage(t("product_line", code=product.code, name=product.name, price=product.price,
                                         stock=product.stock), photo=picture))
    return replies


async def stop(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """STOP <slug> → no more broadcasts from this trip; JOIN again to come back."""
    slug = words(args, 1, "stop")[0]
    stopped = await services.trips.stop(user.id, slug)
    return [OutgoingMessage(t("stop_done" if stopped else "stop_not_joined", slug=slug.lower()))]
