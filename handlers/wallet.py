"""Wallet commands: /topup, /saldo, /riwayat, /cek, /bahasa — what the user sees for each."""

from __future__ import annotations

import io

from handlers.grammar import parse_amount
from handlers.i18n import LANGUAGES, Translator, local_time, rupiah
from services.errors import AmountError
from services.messaging import Button, OutgoingMessage
from handlers.context import Services
from services.wallet import UserView


def _qr_png(data: str) -> bytes:
    import qrcode  # imported on use: only QRIS-returning gateways need it

    buffer = io.BytesIO()
    qrcode.make(data).save(buffer, format="PNG")
    return buffer.getvalue()


def preset_buttons(services: Services) -> tuple[tuple[Button, ...], ...]:
    presets = services.topups.rules.presets
    buttons = [Button(rupiah(amount), data=f"topup:{amount}") for amount in presets]
    return tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))


async def topup(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """/topup → preset buttons; /topup 50rb → a payment link (and a QR image when the gateway gives QRIS)."""
    rules = services.topups.rules
    if not args:
        return [
            OutgoingMessage(
                t("choose_amount", minimum=rules.min_topup, maximum=rules.max_topup),
                buttons=preset_buttons(services),
            )
        ]
    amount = parse_amount(args)
    if amount is None:
        raise AmountError("amount_invalid", text=args[:40])
    link = await services.topups.start(user_id=user.id, customer_name=user.display_name or "", amount=amount)
    expires = local_time(link.expires_at) if link.expires_at else "-"
    replies = [
        OutgoingMessage(
            t("topup_link", amount=amount, url=link.payment_url, order_id=link.order_id, expires=expires),
            buttons=((Button(t("pay_now"), url=link.payment_url),),),
        )
    ]
    if link.qr_string:
        replies.append(
            OutgoingMessage(t("qr_caption", amount=amount, order_id=link.order_id), photo=_qr_png(link.qr_string))
        )
    return replies


async def saldo(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """/saldo → 'Saldo kamu: Rp50.000'."""
    # `user` was read in the transaction that recorded this very message: its balance is current.
    return [OutgoingMessage(t("balance", balance=user.balance))]


async def riwayat(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """/riwayat → the last ten ledger entries, newest first."""
    lines = await services.wallet.history(user.id, limit=10)
    if not lines:
        return [OutgoingMessage(t("history_empty"))]
    rendered = [
        t(
            "history_line",
            sign="+" if line.amount > 0 else "-",
            amount=abs(line.amount),
            kind=t(f"kind_{line.kind}") if line.kind in ("topup", "reversal", "refund") else t("kind_debit"),
            when=local_time(line.created_at),
            balance=line.balance_after,
        )
        for line in lines
    ]
    return [OutgoingMessage("\n".join([t("history_title"), *rendered]))]


async def cek(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """/cek → asks the gateway about my unfinished payments now and says where each stands."""
    views = await services.topups.check_now(user.id)
    if not views:
        return [OutgoingMessage(t("check_none"))]
    lines = [t("check_line", order_id=v.order_id, amount=v.amount, status=t(f"status_{v.status}")) for v in views]
    return [OutgoingMessage("\n".join([t("check_title"), *lines]))]


async def bahasa(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """/bahasa en → replies switch to English; /bahasa alone → language buttons."""
    choice = args.strip().lower()[:2] if args.strip() else ""
    if not choice:
        buttons = ((Button("Bahasa Indonesia", data="lang:id"), Button("English", data="lang:en")),)
        return [OutgoingMessage(t("choose_language"), buttons=buttons)]
    if choice not in LANGUAGES:
        return [OutgoingMessage(t("language_unknown", text=args.strip()[:20]))]
    await services.wallet.set_language(user.id, choice)
    return [OutgoingMessage(Translator(choice, t.channel)("language_set"))]
