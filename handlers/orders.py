"""Jastip orders in chat — for buyers: PESAN, PESANANKU, BATAL and payment proofs (BAYAR); for jastipers:
PESANAN, KONFIRMASI, TOLAK, KIRIM and the proof buttons. Every reply says what happens next."""

from __future__ import annotations

from handlers.context import Services
from handlers.grammar import parse_whole
from handlers.i18n import Translator, local_time
from handlers.trips import usage
from services.errors import UserInputError
from services.messaging import Button, OutgoingMessage
from services.orders import ACTIVE, PROOF_REASONS, OrderView, looks_like_order_code
from services.text import clean_name
from services.wallet import UserView

# PESANAN <slug> <status>: the words a jastiper may filter by, Indonesian first.
STATUS_WORDS: dict[str, tuple[str, ...]] = {
    "aktif": ACTIVE, "active": ACTIVE,
    "menunggu": ("pending",), "belumbayar": ("pending",), "pending": ("pending",),
    "bukti": ("proof_submitted",), "proof": ("proof_submitted",),
    "dikonfirmasi": ("confirmed",), "lunas": ("confirmed",), "confirmed": ("confirmed",),
    "dikirim": ("shipped",), "shipped": ("shipped",),
    "ditolak": ("rejected",), "rejected": ("rejected",),
    "dibatalkan": ("cancelled",), "batal": ("cancelled",), "cancelled": ("cancelled",),
    "kedaluwarsa": ("expired",), "expired": ("expired",),
}


def order_lines(t: Translator, orders: list[OrderView], with_buyer: bool) -> list[str]:
    return [t("order_line", order=o.code, slug=o.slug, code=o.product_code, name=o.product_name,
              quantity=o.quantity, total=o.total, order_state=o.status,
              buyer=f" · {o.buyer}" if with_buyer and o.buyer else "") for o in orders]


def how_to_pay(t: Translator, order: OrderView) -> str:
    expires = local_time(order.expires_at) if order.expires_at else "-"
    if order.payment_instructions:
        return t("order_pay_manual", instructions=order.payment_instructions, expires=expires, order=order.code)
    return t("order_pay_ask_jastiper", expires=expires, order=order.code, slug=order.slug)


async def pesan(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """PESAN <kode> [jumlah] (or PESAN <slug> <kode> [jumlah]) → a pending order, how and by when to pay."""
    parts = args.split()
    if not parts or len(parts) > 3:
        raise usage("pesan")
    slug = None
    if len(parts) == 3:
        slug, parts = parts[0], parts[1:]
    elif len(parts) == 2 and parse_whole(parts[1]) is None:
        if await services.trips.find(parts[0]) is not None:  # PESAN jpn25 KK1
            slug, parts = parts[0], parts[1:]
        else:  # PESAN TK2 dua
            raise UserInputError("order_quantity_unreadable", code=clean_name(parts[0], 16).upper(),
                                 text=clean_name(parts[1], 20))
    quantity = 1
    if len(parts) > 1:
        count = parse_whole(parts[1])
        if count is None:
            raise UserInputError("order_quantity_unreadable", code=clean_name(parts[0], 16).upper(),
                                 text=clean_name(parts[1], 20))
        quantity = count
    order = await services.orders.place(user.id, parts[0], quantity, slug)
    text = t("order_placed", order=order.code, name=order.product_name, quantity=order.quantity,
             total=order.total, slug=order.slug) + "\n\n" + how_to_pay(t, order)
    return [OutgoingMessage(text, ref=f"order:{order.code}")]


async def pesananku(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """PESANANKU → my orders with status and total."""
    mine = await services.orders.mine(user.id)
    if not mine:
        return [OutgoingMessage(t("my_orders_none"))]
    return [OutgoingMessage("\n".join([t("my_orders_title"), *order_lines(t, mine, False), "", t("my_orders_next")]))]


async def batal(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """BATAL <pesanan> → my unpaid order is cancelled and its stock returned; BATAL alone → which one?"""
    code = args.split()[0] if args.split() else ""
    if not looks_like_order_code(code):
        pending = await services.orders.pending_of(user.id)
        if not pending:
            return [OutgoingMessage(t("cancel_nothing"))]
        buttons = tuple((Button(t("btn_cancel_order", order=o.code), data=f"ord:cancel:{o.code}"),)
                        for o in pending[:10])
        return [OutgoingMessage("\n".join([t("cancel_which"), *order_lines(t, pending, False)]), buttons=buttons)]
    cancelled = await services.orders.cancel(user.id, code)
    return [OutgoingMessage(t("order_cancelled_done", order=cancelled.code))]


async def pesanan(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """PESANAN <slug> [status] → the trip's orders (owner only), optionally only those in one state."""
    parts = args.split()
    if not parts:
        raise usage("pesanan")
    statuses = None
    if len(parts) > 1:
        statuses = STATUS_WORDS.get(parts[1].lower())
        if statuses is None:
            raise UserInputError("orders_filter_unknown", text=clean_name(parts[1], 20))
    found = await services.orders.of_trip(user.id, parts[0], statuses)
    if not found:
        return [OutgoingMessage(t("orders_none" if statuses is None else "orders_none_filtered",
                                  slug=parts[0].lower()))]
    return [OutgoingMessage("\n".join([t("orders_title", slug=parts[0].lower()), *order_lines(t, found, True)]))]


def _owner_action(action: str, command: str):
    async def handle(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
        code, _, note = args.strip().partition(" ")
        if not looks_like_order_code(code):
            if command == "kirim" and not await services.trips.owns_any(user.id):
                # "kirim bukti" from a buyer: KIRIM marks an order shipped; say how to send a proof instead.
                return [OutgoingMessage(t("kirim_buyer_hint"))]
            raise usage(command)
        moved = await services.orders.owner_move(user.id, code, action, note.strip() or None)
        return [OutgoingMessage(t(f"order_{action}_done", order=moved.code, total=moved.total))]

    handle.__doc__ = f"{command.upper()} <pesanan> → the order moves on and its buyer is told."
    return handle


konfirmasi = _owner_action("confirm", "konfirmasi")
tolak = _owner_action("reject", "tolak")
kirim = _owner_action("ship", "kirim")


async def bayar(services: Services, user: UserView, t: Translator, args: str,
                photo: bytes | None) -> list[OutgoingMessage]:
    """A photo captioned BAYAR <pesanan> (or answering the order message) → the proof, kept and forwarded to
    the jastiper with buttons; a newer proof replaces it."""
    code = args.split()[0] if args.split() else ""
    if not code:
        raise usage("bayar")
    if photo is None:
        raise UserInputError("proof_too_large" if args else "usage_bayar", maximum="5 MB")
    order = await services.orders.submit_proof(user.id, code, photo)
    return [OutgoingMessage(t("proof_received", order=order.code, total=order.total))]


async def bayar_text(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """BAYAR typed without a photo: explain how to send the proof (photos arrive through `bayar`)."""
    raise usage("bayar")


async def order_button(services: Services, user: UserView, t: Translator, value: str) -> list[OutgoingMessage]:
    """The buttons about one order: "Bukti sah" / "Bukti tidak sah" (then why) under a proof, and
    "Batalkan pesanan" under BATAL's list."""
    action, _, rest = value.partition(":")
    code, _, reason = rest.partition(":")
    if action in ("ok", "confirm"):
        moved = await services.orders.owner_move(user.id, code, "confirm")
        return [OutgoingMessage(t("order_confirm_done", order=moved.code, total=moved.total))]
    if action in ("no", "reject"):
        if reason in PROOF_REASONS:
            moved = await services.orders.reject_proof(user.id, code, reason)
            return [OutgoingMessage(t("proof_rejected_done", order=moved.code, reason_key=reason))]
        buttons = tuple((Button(t(key), data=f"ord:no:{code}:{key}"),) for key in PROOF_REASONS)
        return [OutgoingMessage(t("proof_reject_why", order=code), buttons=buttons)]
    if action == "cancel":
        cancelled = await services.orders.cancel(user.id, code)
        return [OutgoingMessage(t("order_cancelled_done", order=cancelled.code))]
    raise usage("pesanan")
