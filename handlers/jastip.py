"""Jastip commands for jastipers (TRIP, PRODUK, PESERTA, PESANAN, KONFIRMASI ...) and participants
(JOIN, INFO, STOP, PESAN, PESANANKU, BATAL) — what each user sees, on every channel."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from handlers.context import Services
from handlers.grammar import parse_amount
from handlers.i18n import WIB, Translator, local_time
from handlers.recap import rekap
from services.errors import UserInputError
from services.messaging import Button, OutgoingMessage
from services.trips import TripView
from services.wallet import UserView

# "JOIN jpn25 | Nama: Siti" exactly as jastip users write it: case-insensitive, spaces tolerant.
JOIN = re.compile(r"^\s*(?P<slug>[A-Za-z0-9_-]{3,10})\s*(?:\|\s*(?:nama|name)\s*[:=]?\s*(?P<name>.*?))?\s*$",
                  re.IGNORECASE)
_DEADLINE_FORMATS = ("%Y-%m-%d %H:%M", "%Y-%m-%d", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%d-%m-%Y %H:%M", "%d-%m-%Y")


def parse_deadline(text: str) -> datetime:
    """'2026-12-31 20:00' in Asia/Jakarta; a date alone means 23:59 that day."""
    cleaned = " ".join(text.replace("WIB", "").split())
    for fmt in _DEADLINE_FORMATS:
        try:
            moment = datetime.strptime(cleaned, fmt)
        except ValueError:
            continue
        if "%H" not in fmt:
            moment = moment.replace(hour=23, minute=59)
        return moment.replace(tzinfo=WIB)
    raise UserInputError("trip_deadline_invalid", text=text[:30])


def parse_join(args: str) -> tuple[str, str | None]:
    match = JOIN.match(args)
    if not match:
        raise UserInputError("join_usage")
    return match.group("slug"), (match.group("name") or None)


def _words(args: str, count: int, usage: str) -> list[str]:
    parts = args.split(maxsplit=count - 1)
    if len(parts) < count:
        raise UserInputError(usage)
    return parts


def _trip_lines(t: Translator, trip: TripView) -> str:
    lines = [t("trip_detail", slug=trip.slug, title=trip.title, deadline=local_time(trip.deadline_at),
               status=t(f"trip_status_{trip.status}"), participants=trip.participants, orders=trip.orders)]
    lines += [t("product_line", code=p.code, name=p.name, price=p.price, stock=p.stock) for p in trip.products]
    if not trip.products:
        lines.append(t("product_none"))
    return "\n".join(lines)


def share_text(services: Services, t: Translator, slug: str) -> str:
    links = [f"JOIN {slug} | Nama: ..."]
    username = services.share.telegram_username()
    if username:
        links.append(f"https://t.me/{username}?start=join_{slug}")
    if services.share.whatsapp_number:
        links.append(f"https://wa.me/{services.share.whatsapp_number}?text={quote(f'JOIN {slug}')}")
    return t("trip_share", lines="\n".join(links))


async def trip(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """TRIP → my trips; TRIP BARU <slug> <judul> | <deadline> → a new trip with share links; TRIP <slug> → details."""
    if not args:
        mine = await services.trips.mine(user.id)
        if not mine:
            return [OutgoingMessage(t("trip_none"))]
        return [OutgoingMessage("\n\n".join(_trip_lines(t, x) for x in mine))]
    head, _, rest = args.partition(" ")
    if head.lower() in ("baru", "new"):
        spec, bar, deadline = rest.partition("|")
        slug, _, title = spec.strip().partition(" ")
        if not bar or not slug or not title.strip():
            raise UserInputError("trip_usage")
        created = await services.trips.create(user.id, slug, title, parse_deadline(deadline.strip()))
        text = t("trip_created", slug=created.slug, title=created.title, deadline=local_time(created.deadline_at))
        return [OutgoingMessage(text + "\n\n" + share_text(services, t, created.slug))]
    return [OutgoingMessage(_trip_lines(t, await services.trips.detail(head)))]


async def tutup(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """TUTUP <slug> → the trip takes no more orders."""
    slug = _words(args, 1, "trip_slug_usage")[0]
    done = await services.trips.set_status(user.id, slug, "closed")
    return [OutgoingMessage(t("trip_closed_now", slug=done.slug))]


async def buka(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """BUKA <slug> → the trip takes orders again (until its deadline)."""
    slug = _words(args, 1, "trip_slug_usage")[0]
    done = await services.trips.set_status(user.id, slug, "open")
    return [OutgoingMessage(t("trip_opened_now", slug=done.slug, deadline=local_time(done.deadline_at)))]


async def deadline(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """DEADLINE <slug> <waktu> → a new deadline."""
    slug, when = _words(args, 2, "deadline_usage")
    done = await services.trips.set_deadline(user.id, slug, parse_deadline(when))
    return [OutgoingMessage(t("trip_deadline_set", slug=done.slug, deadline=local_time(done.deadline_at)))]


async def produk(services: Services, user: UserView, t: Translator, args: str,
                 photo: bytes | None = None) -> list[OutgoingMessage]:
    """PRODUK <slug> <kode> <harga> <stok> <nama> (as a photo's caption: with its picture) → a product."""
    slug, code, price_text, stock_text, name = _words(args, 5, "product_usage")
    price = parse_amount(price_text)
    if price is None or not stock_text.isdigit():
        raise UserInputError("product_usage")
    added = await services.trips.add_product(user.id, slug, code, price, int(stock_text), name, photo)
    # One tap to announce it: a paid broadcast, shown with its preview and price before anything is sent.
    announce = ((Button(t("btn_announce"), data=f"ann:{slug.lower()}:{added.code}"),),)
    return [OutgoingMessage(t("product_added", code=added.code, name=added.name, price=added.price,
                              stock=added.stock, slug=slug.lower()), buttons=announce)]


async def announce_button(services: Services, user: UserView, t: Translator, value: str) -> list[OutgoingMessage]:
    """'Announce' under a new product → the broadcast preview for a ready-made announcement."""
    slug, _, code = value.partition(":")
    trip_view = await services.trips.detail(slug)
    product = next((p for p in trip_view.products if p.code == code), None)
    if product is None:
        raise UserInputError("product_not_found", code=code)
    text = t("announce_text", name=product.name, price=product.price, code=product.code, slug=trip_view.slug)
    return await broadcast(services, user, t, f"{trip_view.slug} {text}")


async def ubah(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """UBAH <kode> harga|stok|nama <nilai>."""
    code, field, value = _words(args, 3, "product_update_invalid")
    field = field.lower()
    if field == "harga":
        amount = parse_amount(value)
        value = str(amount) if amount is not None else value
    changed = await services.trips.update_product(user.id, code, field, value)
    return [OutgoingMessage(t("product_updated", code=changed.code, name=changed.name, price=changed.price,
                              stock=changed.stock))]


async def hapus(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """HAPUS <kode> → the product is no longer sold."""
    code = await services.trips.delete_product(user.id, _words(args, 1, "product_update_invalid")[0])
    return [OutgoingMessage(t("product_deleted", code=code))]


async def peserta(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """PESERTA <slug> → who joined (and who stopped)."""
    slug = _words(args, 1, "trip_slug_usage")[0]
    people = await services.trips.participants(user.id, slug)
    if not people:
        return [OutgoingMessage(t("participants_none", slug=slug.lower()))]
    lines = [t("participant_line", name=p.name, channel=p.channel, status=t(f"participant_{p.status}"))
             for p in people]
    return [OutgoingMessage("\n".join([t("participants_title", slug=slug.lower(), count=len(people)), *lines]))]


def _order_lines(t: Translator, orders, with_buyer: bool) -> list[str]:
    return [t("order_line", order=o.code, slug=o.slug, code=o.product_code, name=o.product_name,
              quantity=o.quantity, total=o.total, status=t(f"order_status_{o.status}"),
              buyer=f" · {o.buyer}" if with_buyer and o.buyer else "") for o in orders]


async def pesanan(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """PESANAN <slug> [status] → the trip's orders (owner only)."""
    parts = args.split()
    if not parts:
        raise UserInputError("trip_slug_usage")
    slug, status = parts[0], (parts[1] if len(parts) > 1 else None)
    found = await services.orders.of_trip(user.id, slug, status)
    if not found:
        return [OutgoingMessage(t("orders_none"))]
    return [OutgoingMessage("\n".join([t("orders_title", slug=slug.lower()), *_order_lines(t, found, True)]))]


def _owner_action(action: str):
    async def handle(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
        code, _, note = args.strip().partition(" ")
        if not code:
            raise UserInputError("order_action_usage")
        moved = await services.orders.owner_move(user.id, code, action, note.strip() or None)
        return [OutgoingMessage(t(f"order_{action}_done", order=moved.code, total=moved.total))]

    handle.__doc__ = f"{action.upper()} <order> → the order moves on and its buyer is told."
    return handle


konfirmasi, tolak, kirim = _owner_action("confirm"), _owner_action("reject"), _owner_action("ship")


async def join(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """JOIN <slug> | Nama: <name> → joined (a repeat changes nothing), with the trip's products."""
    slug, name = parse_join(args)
    joined, changed = await services.trips.join(user.id, slug, name or user.display_name or "-")
    key = "join_done" if changed else "join_already"
    return [OutgoingMessage(t(key, slug=joined.slug, title=joined.title) + "\n\n" + _trip_lines(t, joined))]


async def info(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """INFO <slug> → the trip, its deadline and products with stock left, then the products' photos."""
    detail = await services.trips.detail(_words(args, 1, "trip_slug_usage")[0])
    replies = [OutgoingMessage(_trip_lines(t, detail))]
    for product in [p for p in detail.products if p.photo_path][:5]:
        try:
            picture = Path(product.photo_path).read_bytes()
        except OSError:  # the file was removed: the list above still says everything
            continue
        replies.append(OutgoingMessage(t("product_line", code=product.code, name=product.name, price=product.price,
                                         stock=product.stock), photo=picture))
    return replies


async def stop(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """STOP <slug> → no more broadcasts from this trip; JOIN again to come back."""
    slug = _words(args, 1, "trip_slug_usage")[0]
    stopped = await services.trips.stop(user.id, slug)
    return [OutgoingMessage(t("stop_done" if stopped else "stop_not_joined", slug=slug.lower()))]


async def pesan(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """PESAN <kode> [jumlah] (or PESAN <slug> <kode> [jumlah]) → a pending order with its total."""
    parts = args.split()
    if not parts or len(parts) > 3:
        raise UserInputError("order_usage")
    slug = None
    if len(parts) == 3 or (len(parts) == 2 and not parts[1].isdigit()):
        slug, parts = parts[0], parts[1:]
    quantity = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1
    if len(parts) > 1 and not parts[1].isdigit():
        raise UserInputError("order_usage")
    order = await services.orders.place(user.id, parts[0], quantity, slug)
    return [OutgoingMessage(t("order_placed", order=order.code, name=order.product_name, quantity=order.quantity,
                              total=order.total, slug=order.slug), ref=f"order:{order.code}")]


async def pesananku(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """PESANANKU → my orders with status and total."""
    mine = await services.orders.mine(user.id)
    if not mine:
        return [OutgoingMessage(t("orders_none"))]
    return [OutgoingMessage("\n".join([t("my_orders_title"), *_order_lines(t, mine, False)]))]


async def batal(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """BATAL <order> → my pending order is cancelled and its stock returned."""
    cancelled = await services.orders.cancel(user.id, _words(args, 1, "order_action_usage")[0])
    return [OutgoingMessage(t("order_cancelled_done", order=cancelled.code))]


async def broadcast(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """BROADCAST <slug> <pesan> → a preview (recipients × price, total, balance) with Confirm / Cancel buttons."""
    slug, text = _words(args, 2, "broadcast_usage")
    preview = await services.broadcasts.preview(user.id, slug, text)
    buttons = ((Button(t("btn_broadcast_send"), data=f"bc:ok:{preview.id}"),
                Button(t("btn_cancel"), data=f"bc:no:{preview.id}")),)
    return [OutgoingMessage(t("broadcast_preview", slug=preview.slug, recipients=preview.recipients,
                              price=preview.price, total=preview.total, balance=preview.balance), buttons=buttons)]


async def broadcast_button(services: Services, user: UserView, t: Translator, value: str) -> list[OutgoingMessage]:
    """The Confirm / Cancel buttons under a broadcast preview."""
    action, _, raw_id = value.partition(":")
    if not raw_id.isdigit():
        raise UserInputError("broadcast_not_found")
    if action == "no":
        cancelled = await services.broadcasts.cancel(user.id, int(raw_id))
        return [OutgoingMessage(t("broadcast_cancelled" if cancelled else "broadcast_not_found"))]
    started = await services.broadcasts.confirm(user.id, int(raw_id))
    # On Telegram this message becomes the live progress counter (handlers/progress.py).
    return [OutgoingMessage(t("broadcast_started", recipients=started.recipients, total=started.total,
                              balance=started.balance), ref=f"broadcast:{started.id}")]


async def bayar(services: Services, user: UserView, t: Translator, args: str,
                photo: bytes | None) -> list[OutgoingMessage]:
    """BAYAR <order> with a photo → the proof is stored and forwarded to the jastiper with Confirm / Reject."""
    code = args.split()[0] if args.split() else ""
    if not code:
        raise UserInputError("proof_usage")
    if photo is None:
        raise UserInputError("proof_too_large" if args else "proof_usage", maximum="5 MB")
    order = await services.orders.submit_proof(user.id, code, photo)
    return [OutgoingMessage(t("proof_received", order=order.code, total=order.total))]


async def order_button(services: Services, user: UserView, t: Translator, value: str) -> list[OutgoingMessage]:
    """Confirm / Reject under a forwarded payment proof."""
    action, _, code = value.partition(":")
    if action not in ("confirm", "reject"):
        raise UserInputError("order_action_usage")
    moved = await services.orders.owner_move(user.id, code, action)
    return [OutgoingMessage(t(f"order_{action}_done", order=moved.code, total=moved.total))]


async def bayar_text(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """BAYAR typed without a photo: explain how to send the proof (photos arrive through `bayar`)."""
    raise UserInputError("proof_usage")


FEATURES = {
    "bayar": bayar_text,
    "rekap": rekap,
    "broadcast": broadcast,
    "trip": trip, "tutup": tutup, "buka": buka, "deadline": deadline, "produk": produk, "ubah": ubah,
    "hapus": hapus, "peserta": peserta, "pesanan": pesanan, "konfirmasi": konfirmasi, "tolak": tolak,
    "kirim": kirim, "join": join, "info": info, "stop": stop, "pesan": pesan, "pesananku": pesananku,
    "batal": batal,
}
