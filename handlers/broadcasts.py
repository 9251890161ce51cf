"""Paid broadcasts in chat: BROADCAST <slug> <pesan> shows exactly what will be sent, to how many, for how
much; "Kirim siaran" sends exactly that (or shows a fresh preview if the audience changed meanwhile)."""

from __future__ import annotations

from handlers.context import Services
from handlers.i18n import Translator
from handlers.trips import words
from services.broadcasts import Preview
from services.errors import InsufficientFunds, UserInputError
from services.messaging import Button, OutgoingMessage
from services.wallet import UserView


def _topup_amount(services: Services, needed: int) -> int:
    """What to suggest topping up: the shortfall, at least the minimum top-up, rounded up to Rp1.000."""
    rules = services.topups.rules
    return min(rules.max_topup, max(rules.min_topup, -(-needed // 1000) * 1000))


def preview_message(services: Services, t: Translator, preview: Preview, *, key: str = "broadcast_preview") -> \
        OutgoingMessage:
    buttons: list[tuple[Button, ...]] = [(Button(t("btn_broadcast_send"), data=f"bc:ok:{preview.id}"),
                                          Button(t("btn_broadcast_cancel"), data=f"bc:no:{preview.id}"))]
    text = t(key, slug=preview.slug, recipients=preview.recipients, price=preview.price, total=preview.total,
             balance=preview.balance, text=preview.text)
    if preview.balance < preview.total:
        amount = _topup_amount(services, preview.total - preview.balance)
        text += "\n\n" + t("broadcast_short", needed=preview.total - preview.balance)
        buttons.append((Button(t("btn_topup_amount", amount=amount), data=f"topup:{amount}"),))
    return OutgoingMessage(text, buttons=tuple(buttons))


async def broadcast(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """BROADCAST <slug> <pesan> → a preview (the message, recipients × price, total, balance) with Send / Cancel."""
    slug, text = words(args, 2, "broadcast")
    preview = await services.broadcasts.preview(user.id, slug, text)
    return [preview_message(services, t, preview)]


async def broadcast_button(services: Services, user: UserView, t: Translator, value: str) -> list[OutgoingMessage]:
    """"Kirim siaran" / "Batalkan siaran" under a broadcast preview."""
    action, _, raw_id = value.partition(":")
    if not (raw_id.isascii() and raw_id.isdigit()):
        raise UserInputError("broadcast_not_found")
    if action == "no":
        cancelled = await services.broadcasts.cancel(user.id, int(raw_id))
        return [OutgoingMessage(t("broadcast_cancelled" if cancelled else "broadcast_not_found"))]
    try:
        done = await services.broadcasts.confirm(user.id, int(raw_id))
    except InsufficientFunds as exc:
        amount = _topup_amount(services, exc.needed - exc.balance)
        return [OutgoingMessage(t("broadcast_insufficient", balance=exc.balance, needed=exc.needed),
                                buttons=((Button(t("btn_topup_amount", amount=amount), data=f"topup:{amount}"),),))]
    if done.fresh is not None:
        key = "broadcast_preview_expired" if done.reason == "expired" else "broadcast_preview_changed"
        return [preview_message(services, t, done.fresh, key=key)]
    started = done.started
    assert started is not None
    # On Telegram this message becomes the live progress counter (handlers/progress.py).
    return [OutgoingMessage(t("broadcast_started", recipients=started.recipients, total=started.total,
                              balance=started.balance), ref=f"broadcast:{started.id}")]


async def announce_button(services: Services, user: UserView, t: Translator, value: str) -> list[OutgoingMessage]:
    """"Umumkan ke peserta" under a new product → the broadcast preview of a ready-made announcement."""
    slug, _, code = value.partition(":")
    trip = await services.trips.detail(slug)
    product = next((p for p in trip.products if p.code == code), None)
    if product is None:
        raise UserInputError("product_not_found", code=code)
    text = t("announce_text", name=product.name, price=product.price, code=product.code, slug=trip.slug)
    return await broadcast(services, user, t, f"{trip.slug} {text}")
