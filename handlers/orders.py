"""Jastip orders in chat — for buyers: PESAN, PESANANKU, BATAL and payment proofs (BAYAR); for jastipers:
PESANAN, KONFIRMASI, TOLAK, KIRIM and the proof buttons. Every reply says what happens next."""

from __future__ import annotations

from handlers.context import Services
from handlers.grammar import parse_whole
from handlers.i18n import Translator, local_time
from handlers.trips import usage
from services.errors import UserInputError
from services.messaging import Button, OutgoingMessage
from services.orders import ACTIVE, PROOF_REASONS, OrderView, looks_like_order_code, parse_order_code
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
    "diterima": ("received",), "selesai": ("received",), "received": ("received",),
    "dikembalikan": ("refunded",), "refunded": ("refunded",),
}


def order_lines(t: Translator, orders: list[OrderView], with_buyer: bool) -> list[str]:
    return [t("order_line", order=o.code, slug=o.slug, code=o.product_code, name=o.product_name,
              quantity=o.quantity, total=o.total, order_state=o.status,
              buyer=f" · {o.buyer}" if with_buyer and o.buyer else "") for o in orders]


def pay_choice(t: Translator, order: OrderView, balance: int, link_limit: int | None = None) -> OutgoingMessage:
    """An otomatis order waiting for its money: pay from the wallet if it is enough, else top up the difference
    (the gateways' link, the same path as every top-up) and pay after."""
    when = order.expires_at
    if order.status == "dp_paid":  # the rest: due after TIBA, or any time until the trip's deadline before it
        when = order.final_due_at or order.deadline_at
    expires = local_time(when) if when else "-"
    due = order.due
    dp_note = ("\n" + t("order_pay_dp_note", dp=order.dp_amount, total=order.total, rest=order.total - order.dp_amount)
               if order.dp_amount and order.status == "pending" else "")
    # The gateways take at most `link_limit` in one payment: above it, say so and offer the balance only.
    over = link_limit is not None and due > link_limit
    links = () if over else ((Button(t("btn_pay_link"), data=f"ord:link:{order.code}"),),)
    if over:
        dp_note += "\n" + t("order_over_link_limit", limit=link_limit)
    if balance >= due:
        pay = Button(t("btn_pay_wallet"), data=f"ord:pay:{order.code}")
        return OutgoingMessage(t("order_pay_otomatis", order=order.code, total=due, balance=balance,
                                 expires=expires) + dp_note, buttons=((pay,), *links), ref=f"order:{order.code}")
    short = due - balance
    topup = () if over else ((Button(t("btn_topup_short", short=short), data=f"topup:{short}"),),)
    return OutgoingMessage(t("order_pay_otomatis_short", order=order.code, total=due, balance=balance,
                             short=short, expires=expires) + dp_note, buttons=(*links, *topup),
                           ref=f"order:{order.code}")


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
    order = await services.orders.place(user.id, parts[0], quantity, slug,
                                        link_limit=services.topups.rules.max_topup, balance=user.balance)
    placed = t("order_placed", order=order.code, name=order.product_name, quantity=order.quantity,
               total=order.total, slug=order.slug)
    if order.payment_mode == "otomatis":
        return [OutgoingMessage(placed), pay_choice(t, order, user.balance, services.topups.rules.max_topup)]
    return [OutgoingMessage(placed + "\n\n" + how_to_pay(t, order), ref=f"order:{order.code}")]


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
    mine = await _my_order(services, user, code)
    if mine is not None and mine.payment_mode == "otomatis" and mine.status in ("confirmed", "dp_paid"):
        # Paid: cancelling refunds it (until the deadline); ask before money moves.
        return [OutgoingMessage(t("order_cancel_refund_ask", order=mine.code, total=mine.total),
                                buttons=((Button(t("btn_cancel_refund_yes"), data=f"ord:bt:{mine.code}"),
                                          Button(t("btn_no"), data=f"ord:keep:{mine.code}")),))]
    cancelled = await services.orders.cancel(user.id, code)
    return [OutgoingMessage(t("order_cancelled_done", order=cancelled.code))]


async def _my_order(services: Services, user: UserView, code: str) -> OrderView | None:
    return next((o for o in await services.orders.mine(user.id) if o.code == code.upper()), None)


async def komplain(services: Services, user: UserView, t: Translator, args: str,
                   photo: bytes | None = None) -> list[OutgoingMessage]:
    """KOMPLAIN <pesanan> <alasan> (as a photo's caption: with the photo) → the order's escrow is frozen until an
    admin decides; jastiper and admins are told."""
    code, _, reason = args.strip().partition(" ")
    if not reason.strip():
        raise usage("komplain")
    if not looks_like_order_code(code):
        # A payment code (TT…): a top-up or an order payment that went wrong reaches the admins.
        if services.admin is not None and await services.admin.payment_complaint(user, code, reason.strip()):
            return [OutgoingMessage(t("complaint_payment_received", payment=code.strip()))]
        raise usage("komplain")
    if services.escrow is None:
        raise usage("komplain")
    frozen = await services.escrow.complain(user.id, code, reason, photo)
    return [OutgoingMessage(t("complaint_received", order=frozen.code, total=frozen.total))]


async def belumsampai(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """BELUMSAMPAI <pesanan> → the auto-release moves `escrow.extend_days` later, once; the jastiper is told."""
    code = args.split()[0] if args.split() else ""
    if not looks_like_order_code(code) or services.escrow is None:
        raise usage("belumsampai")
    return _extended(t, await services.escrow.extend(user.id, code))


def _extended(t: Translator, order: OrderView) -> list[OutgoingMessage]:
    until = local_time(order.release_at) if order.release_at else "-"
    return [OutgoingMessage(t("order_extended", order=order.code, release_at=until))]


async def dp(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """DP <slug> <persen> [kembali|hangus] → new orders on this otomatis trip pay a down payment first; DP <slug>
    0 → none."""
    parts = args.lower().split()
    if len(parts) not in (2, 3) or not parts[1].rstrip("%").isdigit():
        raise usage("dp")
    policy = parts[2] if len(parts) == 3 else "kembali"
    done = await services.trips.set_dp(user.id, parts[0], int(parts[1].rstrip("%")), policy)
    if not done.dp_percent:
        return [OutgoingMessage(t("dp_off", slug=done.slug))]
    return [OutgoingMessage(t("dp_set", slug=done.slug, percent=done.dp_percent,
                              policy_key=f"dp_policy_{done.dp_policy}"))]


async def tiba(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """TIBA <slug> → the goods arrived: every order with only its DP paid is asked for the rest."""
    slug = args.split()[0] if args.split() else ""
    if not slug or services.escrow is None:
        raise usage("tiba")
    asked = await services.escrow.arrive(user.id, slug)
    return [OutgoingMessage(t("tiba_done", slug=slug.lower(), count=asked,
                              days=int(services.escrow.final_payment_days)))]


async def batalkan(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """BATALKAN <slug> <alasan> → asks with a button, then cancels the trip: paid otomatis orders refunded,
    unpaid ones cancelled, stock back, trip closed."""
    slug, _, reason = args.strip().partition(" ")
    if not slug or not reason.strip():
        raise usage("batalkan")
    trip = await services.trips.find(slug)
    if trip is None or trip.owner_id != user.id:
        raise UserInputError("trip_not_owner" if trip else "trip_not_found", slug=slug.lower()[:10])
    data = f"ord:bk:{trip.slug}:{reason.strip()[:40]}"
    return [OutgoingMessage(t("trip_cancel_ask", slug=trip.slug, title=trip.title, orders=trip.orders),
                            buttons=((Button(t("btn_trip_cancel_yes"), data=data),
                                      Button(t("btn_no"), data=f"ord:keep:{trip.slug}")),))]


async def terima(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """TERIMA <pesanan> → asks "Ya, sudah diterima" before the escrow is released (never without a code)."""
    code = args.split()[0] if args.split() else ""
    if not looks_like_order_code(code):
        raise usage("terima")
    return [_receive_ask(t, code.upper())]


def _receive_ask(t: Translator, code: str) -> OutgoingMessage:
    return OutgoingMessage(t("order_receive_ask", order=code),
                           buttons=((Button(t("btn_received_yes"), data=f"ord:recvok:{code}"),
                                     Button(t("btn_no"), data=f"ord:keep:{code}")),))


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
        if action == "reject":
            found = await services.orders.of_trip_order(user.id, code)
            part, _, rest = note.strip().partition(" ")
            if (found is not None and found.payment_mode == "otomatis" and found.status == "confirmed"
                    and part.lower().startswith("x") and part[1:].isdigit()):
                count = int(part[1:])
                if count < found.quantity:  # x<all> is the whole order: the confirmation below
                    unit = found.total // found.quantity
                    return [OutgoingMessage(
                        t("order_part_refund_ask", order=found.code, quantity=count, of=found.quantity,
                          name=found.product_name, refund=count * unit),
                        buttons=((Button(t("btn_part_refund_yes", quantity=count), data=f"ord:rp:{found.code}:"
                                         f"{count}:{rest.strip()[:30]}"),
                                  Button(t("btn_no"), data=f"ord:keep:{found.code}")),))]
                note = rest
            if found is not None and found.payment_mode == "otomatis" and found.status in ("confirmed", "dp_paid"):
                reason = note.strip()[:40]
                return [OutgoingMessage(t("order_refund_ask", order=found.code, total=found.total,
                                          quantity=found.quantity, name=found.product_name),
                                        buttons=((Button(t("btn_refund_yes", total=found.total),
                                                         data=f"ord:rf:{found.code}:{reason}"),
                                                  Button(t("btn_no"), data=f"ord:keep:{found.code}")),))]
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
    """BAYAR <pesanan> typed: on an otomatis trip, the way to pay again (wallet or top-up); on a manual one,
    how to send the proof (photos arrive through `bayar`)."""
    code = args.split()[0] if args.split() else ""
    mine = await _my_order(services, user, code) if looks_like_order_code(code) else None
    if mine is not None and mine.payment_mode == "otomatis":
        if not mine.due:
            raise UserInputError("order_already_paid", order=mine.code)
        return [pay_choice(t, mine, user.balance, services.topups.rules.max_topup)]
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
        return await batal(services, user, t, code)
    escrow = services.escrow
    if escrow is None:
        raise usage("pesanan")
    if action == "pay":  # "Bayar dari saldo": ask before money moves
        mine = await _my_order(services, user, code)
        if mine is None:
            raise UserInputError("order_not_found", order=code)
        if not mine.due:
            raise UserInputError("order_already_paid", order=mine.code)
        return [OutgoingMessage(t("order_pay_ask", order=mine.code, total=mine.due, balance=user.balance),
                                buttons=((Button(t("btn_pay_yes"), data=f"ord:payok:{mine.code}"),
                                          Button(t("btn_no"), data=f"ord:keep:{mine.code}")),))]
    if action == "payok":
        paid = await escrow.pay_from_wallet(user.id, code)
        if paid.status == "dp_paid":
            return [OutgoingMessage(t("order_dp_received", order=paid.code, dp=paid.dp_amount,
                                      rest=paid.total - paid.dp_amount, slug=paid.slug))]
        return [OutgoingMessage(t("order_paid_done", order=paid.code, total=paid.total, slug=paid.slug))]
    if action == "link":  # pay by the gateways' link / QRIS: the money goes through the wallet into escrow
        mine = await _my_order(services, user, code)
        if mine is None:
            raise UserInputError("order_not_found", order=code)
        if mine.payment_mode != "otomatis" or not mine.due:
            raise UserInputError("order_already_paid" if mine.payment_mode == "otomatis" else "order_not_otomatis",
                                 order=mine.code)
        until = mine.final_due_at if mine.status == "dp_paid" and mine.final_due_at else mine.expires_at
        assert until is not None
        if mine.status == "dp_paid" and mine.final_due_at is None:
            until = mine.deadline_at or until  # before TIBA: the rest may be paid early, until the trip's deadline
        link = await services.topups.start(user_id=user.id, customer_name=user.display_name or "",
                                           amount=mine.due,
                                           for_order=(parse_order_code(mine.code), mine.code, until))
        expires = local_time(link.expires_at) if link.expires_at else "-"
        return [OutgoingMessage(t("order_link", order=mine.code, total=mine.due, url=link.payment_url,
                                  payment=link.order_id, expires=expires),
                                buttons=((Button(t("pay_now"), url=link.payment_url),),))]
    if action == "recv":  # "Sudah diterima" under the shipped notice
        return [_receive_ask(t, code)]
    if action == "recvok":
        received = await escrow.receive(user.id, code)
        if received.status == "shipped" and received.release_at is not None:  # a card payment still settling
            return [OutgoingMessage(t("order_release_after_settle", order=received.code,
                                      release_at=local_time(received.release_at)))]
        return [OutgoingMessage(t("order_received_done", order=received.code, total=received.total))]
    if action == "bt":
        refunded = await escrow.refund(user.id, code, as_owner=False)
        return [OutgoingMessage(t("order_cancel_refund_done", order=refunded.code, total=refunded.total))]
    if action == "rf":
        refunded = await escrow.refund(user.id, code, as_owner=True, reason=reason or None)
        return [OutgoingMessage(t("order_refund_done", order=refunded.code, total=refunded.total))]
    if action == "ext":
        return _extended(t, await escrow.extend(user.id, code))
    if action == "rp":  # a part refused: ord:rp:<code>:<quantity>:<reason>
        count_text, _, why = reason.partition(":")
        part = await escrow.refund_part(user.id, code, int(count_text) if count_text.isdigit() else 0, why or None)
        return [OutgoingMessage(t("order_part_refund_done", order=part.code, quantity=int(count_text),
                                  total=part.total))]
    if action == "bk":  # ord:bk:<slug>:<reason>
        refunded, cancelled, left = await escrow.cancel_trip(user.id, code, reason or "-")
        return [OutgoingMessage(t("trip_cancel_done", slug=code.lower(), refunded_orders=refunded, cancelled=cancelled,
                                  left=left))]
    if action == "keep":
        if not looks_like_order_code(code):
            return [OutgoingMessage(t("trip_kept", slug=code.lower()))]
        return [OutgoingMessage(t("order_kept", order=code))]
    raise usage("pesanan")
