"""Wallet commands: /topup, /saldo, /riwayat, /cek, /bahasa — what the user sees for each."""

from __future__ import annotations

import io

from handlers.context import Services
from handlers.grammar import parse_amount
from handlers.i18n import LANGUAGES, Translator, local_time, rupiah
from services.errors import AmountError
from services.messaging import Button, OutgoingMessage
from services.text import clean_name
from services.wallet import UserView

# /bahasa <choice>: the words people use for each language.
LANGUAGE_WORDS = {"id": "id", "indonesia": "id", "indo": "id", "bahasa indonesia": "id", "ind": "id",
                  "en": "en", "english": "en", "inggris": "en", "eng": "en", "bahasa inggris": "en"}
# Ledger kinds as a person reads them in /riwayat (each with what it was for).
HISTORY_KINDS = {"topup": "kind_topup", "reversal": "kind_reversal", "refund": "kind_refund",
                 "hold": "kind_broadcast_hold", "release": "kind_broadcast_release", "repay": "kind_repay",
                 "held-credit": "kind_held_credit", "order-pay": "kind_order_pay",
                 "order-release": "kind_order_release", "order-refund": "kind_order_refund",
                 "payout-hold": "kind_payout_hold", "payout-void": "kind_payout_void",
                 "payout-reverse": "kind_payout_reverse", "payout-fee-back": "kind_payout_fee_back"}


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
    """/topup → preset buttons; /topup 50rb → a payment link (and a QR image when the gateway gives QRIS);
    the same amount again while the first link is unpaid → that link again."""
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
        raise AmountError("amount_invalid", text=clean_name(args, 40))
    link = await services.topups.start(user_id=user.id, customer_name=user.display_name or "", amount=amount)
    expires = local_time(link.expires_at) if link.expires_at else "-"
    key = "topup_link_again" if link.reused else "topup_link"
    replies = [
        OutgoingMessage(
            t(key, amount=amount, url=link.payment_url, order_id=link.order_id, expires=expires),
            buttons=((Button(t("pay_now"), url=link.payment_url),),),
        )
    ]
    if link.qr_string:
        replies.append(
            OutgoingMessage(t("qr_caption", amount=amount, order_id=link.order_id), photo=_qr_png(link.qr_string))
        )
    return replies


async def saldo(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """/saldo → 'Saldo kamu: Rp50.000', and how to add to it."""
    # `user` was read in the transaction that recorded this very message: its balance is current.
    text = t("balance", balance=user.balance)
    if user.earnings:
        text += "\n" + t("balance_earnings", earned=user.earnings)
    return [OutgoingMessage(text,
                            buttons=((Button(t("btn_topup"), data="cmd:topup"),
                                      Button(t("btn_history"), data="cmd:riwayat")),))]


async def riwayat(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """/riwayat → the last ten ledger entries, newest first, each saying what it was for."""
    lines = await services.wallet.history(user.id, limit=10)
    payouts = await services.withdrawals.history(user.id, limit=5) if services.withdrawals else []
    shown_payouts = [t("payout_history_line", payout=p.id, amount=p.amount, bank=p.bank, number=p.number,
                       payout_state=p.status, when=local_time(p.created_at)) for p in payouts]
    if not lines and not payouts:
        return [OutgoingMessage(t("history_empty"))]
    if not lines:
        return [OutgoingMessage("\n".join([t("payout_history_title"), *shown_payouts]))]
    rendered = [
        t(
            "history_line",
            sign="+" if line.amount > 0 else "-",
            amount=abs(line.amount),
            kind=t(HISTORY_KINDS.get(line.kind, "kind_other"), subject=line.subject or "-"),
            when=local_time(line.created_at),
            balance=line.balance_after,
        )
        for line in lines
    ]
    if shown_payouts:
        rendered += ["", t("payout_history_title"), *shown_payouts]
    return [OutgoingMessage("\n".join([t("history_title"), *rendered]))]


async def cek(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """/cek → asks the gateway about my unfinished payments now, says where each stands, and how to pay it."""
    views = await services.topups.check_now(user.id)
    if not views:
        return [OutgoingMessage(t("check_none"))]
    lines = [t("check_title")]
    payable = [v for v in views if v.status in ("created", "pending") and v.payment_url]
    for v in views:
        lines.append(t("check_line", order_id=v.order_id, amount=v.amount, payment_state=v.status))
        if v in payable:
            expires = local_time(v.expires_at) if v.expires_at else "-"
            lines.append(t("check_pay_line", url=v.payment_url, expires=expires))
    buttons = ((Button(t("pay_now"), url=payable[0].payment_url),),) if payable else ()
    return [OutgoingMessage("\n".join(lines), buttons=buttons)]


async def bahasa(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """/bahasa en (or "english", "indonesia") → replies switch language; /bahasa alone → language buttons."""
    words = " ".join(args.lower().split())
    if not words:
        buttons = ((Button("Bahasa Indonesia", data="lang:id"), Button("English", data="lang:en")),)
        return [OutgoingMessage(t("choose_language"), buttons=buttons)]
    choice = LANGUAGE_WORDS.get(words)
    if choice not in LANGUAGES:
        return [OutgoingMessage(t("language_unknown", text=clean_name(args, 20)))]
    await services.wallet.set_language(user.id, choice)
    return [OutgoingMessage(Translator(choice, t.channel)("language_set"))]
