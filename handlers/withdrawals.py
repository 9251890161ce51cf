"""REKENING and TARIK: a verified jastiper withdraws earned money to a bank or e-wallet; ADMIN PENARIKAN for the
payouts a person must decide. Every step that moves money is confirmed with a button first."""

from __future__ import annotations

import re

from handlers.context import Services
from handlers.grammar import parse_amount
from handlers.i18n import Translator, local_time
from handlers.trips import usage
from services.errors import UserInputError
from services.messaging import Button, OutgoingMessage
from services.payouts.banks import BANKS
from services.wallet import UserView
from services.withdrawals import PayoutView, Withdrawals

# "bca 1234567890 a.n. Siti Aminah", "dana 0812-3456-7890 an Siti", "bank jago 10203040 atas nama Siti"
_ACCOUNT = re.compile(r"^(?P<bank>[a-z][a-z .\-]*?)\s+(?P<number>\+?\d[\d .\-]*\d)\s+"
                      r"(?:a\.?\s?n\.?|atas\s+nama)\s+(?P<name>.+)$", re.IGNORECASE)


def _service(services: Services) -> Withdrawals:
    if services.withdrawals is None or not services.withdrawals.enabled:
        raise UserInputError("payouts_off")
    return services.withdrawals


def _banks() -> str:
    return ", ".join(b.name for b in BANKS)


async def rekening(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """REKENING → my payout account; REKENING <bank> <nomor> a.n. <nama> → asks "Ya, simpan rekening" first."""
    withdrawals = _service(services)
    text = " ".join(args.split())
    if not text:
        current = await withdrawals.account(user.id)
        if current is None:
            return [OutgoingMessage(t("payout_account_none", banks=_banks()))]
        return [OutgoingMessage(t("payout_account_show", bank=current.bank, number=current.number,
                                  name=current.holder_name,
                                  usable_from=local_time(current.usable_from) if current.usable_from else "-"))]
    match = _ACCOUNT.match(text)
    if match is None:
        raise usage("rekening")
    draft = await withdrawals.draft_account(user.id, match["bank"], match["number"], match["name"])
    key = "payout_account_ask_checked" if draft.checked_name else "payout_account_ask"
    lines = [t(key, bank=draft.bank, number=draft.number, name=draft.holder_name, checked=draft.checked_name or "")]
    if _hours(withdrawals):
        lines[0] += "\n" + t("payout_account_hold_note", hours=_hours(withdrawals))
    if not user.verified:
        lines.append(t("payout_account_unverified_note"))
    return [OutgoingMessage("\n\n".join(lines), buttons=(
        (Button(t("btn_payout_account_yes"), data=f"wd:acc:{draft.id}"), Button(t("btn_no"), data="wd:no:")),))]


def _hours(withdrawals: Withdrawals) -> int:
    return round(withdrawals.account_hold_hours)


async def tarik(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """TARIK <jumlah|semua> → what would be sent where, with "Ya, tarik …" to confirm."""
    withdrawals = _service(services)
    text = args.strip().lower()
    if not text:
        raise usage("tarik")
    amount = None if text in ("semua", "all", "semuanya") else parse_amount(text)
    if amount is None and text not in ("semua", "all", "semuanya"):
        raise usage("tarik")
    quote = await withdrawals.quote(user.id, amount)
    return [OutgoingMessage(
        t("payout_ask", amount=quote.amount, fee=quote.fee, bank=quote.account.bank, number=quote.account.number,
          name=quote.account.holder_name, earned=quote.earnings, total=quote.amount + quote.fee),
        buttons=((Button(t("btn_payout_yes", amount=quote.amount), data=f"wd:ok:{quote.amount}:{quote.key}"),
                  Button(t("btn_no"), data="wd:no:")),))]


async def withdraw_button(services: Services, user: UserView, t: Translator, value: str) -> list[OutgoingMessage]:
    """wd:acc:<id> (save the account), wd:ok:<amount>:<key> (withdraw), wd:no:, and the admins' wd:adm:…"""
    withdrawals = _service(services)
    action, _, rest = value.partition(":")
    if action == "no":
        return [OutgoingMessage(t("payout_not_now"))]
    if action == "acc" and rest.isdigit():
        account = await withdrawals.confirm_account(user.id, int(rest))
        return [OutgoingMessage(t("payout_account_saved", bank=account.bank, number=account.number,
                                  name=account.holder_name,
                                  usable_from=local_time(account.usable_from) if account.usable_from else "-"))]
    if action == "ok":
        amount, _, key = rest.partition(":")
        if not amount.isdigit() or not key:
            raise UserInputError("payout_button_stale")
        payout = await withdrawals.request(user.id, int(amount), key)
        return [_requested(t, withdrawals, payout)]
    if action == "adm":
        return await admin_decide(services, user, t, rest.replace(":", " "))
    raise UserInputError("payout_button_stale")


def _requested(t: Translator, withdrawals: Withdrawals, payout: PayoutView) -> OutgoingMessage:
    key = "payout_waiting_approval" if payout.status == "awaiting_approval" else "payout_requested"
    text = t(key, payout=payout.id, amount=payout.amount, bank=payout.bank, number=payout.number)
    if withdrawals.page_url is not None:
        # Development: the sandbox provider's page, where the outcome is chosen as a real provider would send it.
        url = withdrawals.page_url(payout.id)
        return OutgoingMessage(text + "\n\n" + t("payout_sandbox_hint", url=url),
                               buttons=((Button(t("btn_payout_sandbox"), url=url),),))
    return OutgoingMessage(text)


# --- admins -------------------------------------------------------------------------------------------------

HOW = {"awaiting_approval": "admin_payout_how_awaiting_approval", "unknown": "admin_payout_how_unknown",
       "waiting_funds": "admin_payout_how_waiting_funds"}
ADMIN_WORDS = {"setuju": "setuju", "approve": "setuju", "tolak": "tolak", "reject": "tolak",
               "berhasil": "berhasil", "sent": "berhasil", "gagal": "gagal", "failed": "gagal"}


async def admin_payouts(services: Services, user: UserView, t: Translator, rest: str) -> list[OutgoingMessage]:
    """ADMIN PENARIKAN → payouts waiting for approval, in doubt, or waiting for the provider's balance;
    ADMIN PENARIKAN <no> setuju|tolak|berhasil|gagal <alasan>; ADMIN PENARIKAN SALDO."""
    if services.withdrawals is None or not services.withdrawals.enabled:
        return [OutgoingMessage(t("admin_payouts_off"))]
    if rest.strip():
        return await admin_decide(services, user, t, rest)
    withdrawals = _service(services)
    waiting = await withdrawals.needing_admin()
    if not waiting:
        return [OutgoingMessage(t("admin_payouts_empty"))]
    replies = [OutgoingMessage(t("admin_payouts_head", count=len(waiting)))]
    for p in waiting:
        text = t("admin_payout_case", payout=p.id, user=p.user, amount=p.amount, bank=p.bank, number=p.number,
                 name=p.holder_name, payout_state=p.status, reason=p.failure or "-", when=local_time(p.created_at))
        if p.status == "awaiting_approval":
            buttons = ((Button(t("btn_admin_payout_approve"), data=f"wd:adm:{p.id}:setuju"),
                        Button(t("btn_admin_payout_reject"), data=f"wd:adm:{p.id}:tolak")),)
        elif p.status == "unknown":
            buttons = ((Button(t("btn_admin_payout_sent"), data=f"wd:adm:{p.id}:berhasil"),
                        Button(t("btn_admin_payout_failed"), data=f"wd:adm:{p.id}:gagal")),)
        else:
            buttons = ((Button(t("btn_admin_payout_funds"), data="wd:adm:saldo"),),)
        replies.append(OutgoingMessage(text + "\n" + t(HOW[p.status], payout=p.id), buttons=buttons))
    return replies


async def admin_decide(services: Services, user: UserView, t: Translator, rest: str) -> list[OutgoingMessage]:
    admins = services.admin  # admin-ness is checked on every message and tap
    if admins is None or not admins.is_admin(user.channel, user.external_id):
        return [OutgoingMessage(t("payout_button_stale"))]
    admin_id = user.id
    withdrawals = _service(services)
    parts = rest.split(maxsplit=2)
    if parts and parts[0].lower() in ("saldo", "balance"):
        count = await withdrawals.funds_added(admin_id)
        return [OutgoingMessage(t("admin_payouts_retried", count=count))]
    if len(parts) < 2 or not parts[0].lstrip("#").isdigit() or parts[1].lower() not in ADMIN_WORDS:
        return [OutgoingMessage(t("admin_usage_penarikan"))]
    decision = ADMIN_WORDS[parts[1].lower()]
    if decision == "tolak" and len(parts) < 3:
        # The person is told why: a rejection needs the admin's own words, never a placeholder.
        return [OutgoingMessage(t("admin_payout_reason_needed", payout=parts[0].lstrip("#")))]
    reason = parts[2] if len(parts) > 2 else (t("admin_reason_button") if decision != "setuju" else "")
    target = await withdrawals.decide(admin_id, int(parts[0].lstrip("#")), decision, reason)
    return [OutgoingMessage(t("admin_payout_decided", payout=parts[0].lstrip("#"), payout_state=target))]
