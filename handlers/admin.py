"""ADMIN ... — what admins see and tap. Anyone else who types "admin" gets the support hint (handlers/chat.py),
and an admin button tapped by anyone else is not understood: admin-ness is checked on every message and tap."""

from __future__ import annotations

from handlers.chat import not_understood, support
from handlers.context import Services
from handlers.grammar import parse_amount
from handlers.i18n import Translator, local_time
from handlers.withdrawals import admin_payouts
from services.admin import Admins, Correction, Decision, PaymentCase, who
from services.kinds import AccountKind, PaymentStatus
from services.messaging import Button, OutgoingMessage
from services.text import clean_name
from services.wallet import UserView

REASON_LENGTH = 200
ALWAYS_SHOWN = (AccountKind.WALLET, AccountKind.EARNINGS, AccountKind.REVENUE, AccountKind.SUSPENSE)


def _admins(services: Services, user: UserView) -> Admins | None:
    admins = services.admin
    return admins if admins is not None and admins.is_admin(user.channel, user.external_id) else None


async def admin(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """ADMIN [PEMBAYARAN | KREDIT | TOLAK | CEK | KOREKSI | VERIFIKASI | KOMPLAIN | PERPANJANG | PENARIKAN |
    BANTUAN] ..."""
    admins = _admins(services, user)
    if admins is None:
        return await support(services, user, t, args)
    word, _, rest = args.strip().partition(" ")
    word, rest = word.lower(), rest.strip()
    if not word:
        return await _dashboard(admins, t)
    if word in ("pembayaran", "payments"):
        return await _payments(admins, t)
    if word in ("kredit", "credit"):
        return await _decide(admins, user, t, rest, "kredit")
    if word in ("tolak", "refuse"):
        return await _decide(admins, user, t, rest, "tolak")
    if word in ("cek", "check"):
        code = rest.split()[0] if rest else ""
        if not code:
            return [OutgoingMessage(t("admin_usage_cek"))]
        return _checked(t, code, await admins.check(user, code))
    if word in ("koreksi", "correct"):
        return await _correction(admins, user, t, rest)
    if word in ("verifikasi", "verify"):
        return await _verify(admins, user, t, rest)
    if word in ("komplain", "complaints", "complaint"):
        return await _complaints(services, user, t, rest)
    if word in ("perpanjang", "extend"):
        return await _extend(services, user, t, rest)
    if word in ("penarikan", "payouts", "withdrawals"):
        return await admin_payouts(services, user, t, rest)
    return [OutgoingMessage(t("admin_help"))]


async def _complaints(services: Services, user: UserView, t: Translator, rest: str) -> list[OutgoingMessage]:
    """ADMIN KOMPLAIN → open complaints; ADMIN KOMPLAIN <pesanan> lepas|kembalikan|bagi <jumlah> <alasan> →
    release to the jastiper, refund to the buyer, or refund <jumlah> and release the rest."""
    escrow = services.escrow
    if escrow is None:
        return [OutgoingMessage(t("admin_not_yet", what="KOMPLAIN"))]
    parts = rest.split(maxsplit=2)
    if not parts:
        open_ = await escrow.open_complaints()
        if not open_:
            return [OutgoingMessage(t("admin_complaints_empty"))]
        lines = [t("admin_complaint_line", order=c.order, slug=c.slug, total=c.total, buyer=c.buyer,
                   reason=c.reason, since=local_time(c.since), order_state=c.status_before) for c in open_]
        return [OutgoingMessage("\n\n".join([t("admin_complaints_head", count=len(open_)), *lines,
                                               t("admin_complaints_how")]))]
    if len(parts) < 3:
        return [OutgoingMessage(t("admin_usage_komplain"))]
    code, action, tail = parts[0].upper(), parts[1].lower(), parts[2]
    found = next((c for c in await escrow.open_complaints(limit=500) if c.order == code), None)
    if found is None:
        return [OutgoingMessage(t("complaint_not_open_admin", order=code))]
    if action in ("lepas", "release"):
        refund, reason = 0, tail
    elif action in ("kembalikan", "refund"):
        refund, reason = found.total, tail
    elif action in ("bagi", "split"):
        amount_text, _, reason = tail.partition(" ")
        amount = parse_amount(amount_text)
        if amount is None:
            return [OutgoingMessage(t("admin_usage_komplain"))]
        refund = amount
    else:
        return [OutgoingMessage(t("admin_usage_komplain"))]
    refunded, released = await escrow.settle_complaint(user.id, code, refund=refund, reason=reason)
    return [OutgoingMessage(t("admin_complaint_done", order=code, refund=refunded, released=released))]


async def _extend(services: Services, user: UserView, t: Translator, rest: str) -> list[OutgoingMessage]:
    """ADMIN PERPANJANG <pesanan> <hari> [alasan] → a paid order's ship-by time (or a shipped one's release)
    moves later."""
    parts = rest.split(maxsplit=2)
    if len(parts) < 2 or not parts[1].isdigit() or services.escrow is None:
        return [OutgoingMessage(t("admin_usage_perpanjang"))]
    moved = await services.escrow.extend_by_admin(user.id, parts[0], int(parts[1]),
                                                  parts[2] if len(parts) > 2 else "-")
    return [OutgoingMessage(t("admin_extended", order=moved.code, days=int(parts[1])))]


async def admin_button(services: Services, user: UserView, t: Translator, value: str) -> list[OutgoingMessage]:
    """adm:<action>:<payment code | correction id>."""
    admins = _admins(services, user)
    if admins is None:
        return not_understood(t, "")
    action, _, target = value.partition(":")
    reason = t("admin_reason_button")
    if action == "daftar":
        return await _payments(admins, t)
    if action == "kredit":
        return _decided(t, target, await admins.credit(user, target, reason))
    if action == "tolak":
        return _decided(t, target, await admins.refuse(user, target, reason))
    if action == "luar":
        return _decided(t, target, await admins.refunded_outside(user, target, reason))
    if action == "cek":
        return _checked(t, target, await admins.check(user, target))
    if not target.isdigit():
        return not_understood(t, "")
    approval = int(target)
    if action == "ya":
        result, found = await admins.confirm_correction(user, approval)
        return _correction_result(admins, t, result, found)
    if action == "batal":
        result = await admins.cancel_correction(user, approval)
        return [OutgoingMessage(t("admin_correction_cancelled" if result == "cancelled"
                                  else "admin_correction_decided"))]
    if action in ("setuju", "tidak"):
        result, found = await admins.decide(user, approval, approve=action == "setuju")
        return _correction_result(admins, t, result, found)
    return not_understood(t, "")


# --- looking -----------------------------------------------------------------------------------------------

async def _dashboard(admins: Admins, t: Translator) -> list[OutgoingMessage]:
    d = await admins.dashboard()
    # A provider's account sits below zero in its debit-normal sign by design (hold -> provider): what a person
    # reads there is how much went out, a positive amount.
    money = "\n".join(t("admin_money_line", label=t(f"account_kind_{kind.value}"),
                         amount=-amount if kind is AccountKind.PROVIDER else amount)
                      for kind, amount in d.money.items() if amount or kind in ALWAYS_SHOWN)
    books = t("admin_books_ok") if not d.problems else t("admin_books_bad", count=d.problems)
    text = t("admin_dashboard", money=money, held=d.held, held_amount=d.held_amount, flagged=d.flagged,
             stale=d.stale_pending, owing=d.receivables, receivable_amount=d.receivable_amount, books=books,
             complaints=d.complaints, payouts=d.payouts)
    buttons = ((Button(t("btn_admin_payments"), data="adm:daftar:"),),) if d.held or d.flagged else ()
    return [OutgoingMessage(text, buttons=buttons)]


async def _payments(admins: Admins, t: Translator) -> list[OutgoingMessage]:
    cases = await admins.attention()
    if not cases:
        return [OutgoingMessage(t("admin_payments_empty"))]
    replies = [OutgoingMessage(t("admin_payments_head", count=len(cases)))]
    replies += [_case_message(t, case) for case in cases]
    return replies


def _case_message(t: Translator, case: PaymentCase) -> OutgoingMessage:
    params = {"order_id": case.order_id, "payer": case.payer, "amount": case.amount,
              "paid": case.paid_amount if case.paid_amount is not None else case.amount,
              "payment_state": case.status.value, "created": local_time(case.created_at)}
    code = case.order_id
    if case.status is PaymentStatus.HELD:
        return OutgoingMessage(t("admin_payment_case", **params), buttons=(
            (Button(t("btn_admin_credit"), data=f"adm:kredit:{code}"),
             Button(t("btn_admin_refuse"), data=f"adm:tolak:{code}")),
            (Button(t("btn_admin_check"), data=f"adm:cek:{code}"),)))
    if case.status is PaymentStatus.REFUSED:
        return OutgoingMessage(t("admin_payment_case", **params), buttons=(
            (Button(t("btn_admin_outside"), data=f"adm:luar:{code}"),),
            (Button(t("btn_admin_check"), data=f"adm:cek:{code}"),)))
    return OutgoingMessage(t("admin_payment_case_flagged", **params),
                           buttons=((Button(t("btn_admin_check"), data=f"adm:cek:{code}"),),))


def _checked(t: Translator, code: str, d: Decision) -> list[OutgoingMessage]:
    if d.result != "answered" or d.case is None:
        return _failure(t, code, d)
    case = d.case
    text = t("admin_checked", order_id=case.order_id, payer=case.payer, gateway_state=d.gateway_says or "ignored",
             paid=d.gateway_amount if d.gateway_amount is not None else case.amount,
             payment_state=case.status.value)
    if case.status not in (PaymentStatus.HELD, PaymentStatus.REFUSED):
        return [OutgoingMessage(text)]
    # What can be decided next, without asking the gateway again.
    rows = tuple(tuple(b for b in row if not (b.data or "").startswith("adm:cek:"))
                 for row in _case_message(t, case).buttons)
    return [OutgoingMessage(text, buttons=tuple(row for row in rows if row))]


# --- held payments ------------------------------------------------------------------------------------------

async def _decide(admins: Admins, user: UserView, t: Translator, rest: str, action: str) -> list[OutgoingMessage]:
    code, _, reason = rest.partition(" ")
    reason = clean_name(reason, REASON_LENGTH)
    if not code or not reason:
        return [OutgoingMessage(t(f"admin_usage_{action}"))]
    decision = await (admins.credit(user, code, reason) if action == "kredit" else admins.refuse(user, code, reason))
    return _decided(t, code, decision)


def _decided(t: Translator, code: str, d: Decision) -> list[OutgoingMessage]:
    case = d.case
    if case is None or d.result not in ("credited", "refused", "refunded", "already", "not_held",
                                        "gateway_disagrees"):
        return _failure(t, code, d)
    params = {"order_id": case.order_id, "payer": case.payer, "payment_state": case.status.value}
    if d.result == "credited":
        return [OutgoingMessage(t("admin_credited", amount=(case.paid_amount or 0) - case.refunded_amount,
                                  **params))]
    if d.result == "refused":
        return [OutgoingMessage(t("admin_refused", amount=(case.paid_amount or 0) - case.refunded_amount, **params),
                                buttons=((Button(t("btn_admin_outside"), data=f"adm:luar:{case.order_id}"),),))]
    if d.result == "refunded":
        return [OutgoingMessage(t("admin_refunded", amount=case.paid_amount or 0, **params))]
    if d.result == "gateway_disagrees":
        return [OutgoingMessage(t("admin_gateway_disagrees", order_id=case.order_id,
                                  gateway_state=d.gateway_says or "ignored",
                                  paid=d.gateway_amount if d.gateway_amount is not None else 0,
                                  expected=case.paid_amount or 0))]
    return [OutgoingMessage(t("admin_decided_before" if d.result == "already" else "admin_not_held", **params))]


def _failure(t: Translator, code: str, d: Decision) -> list[OutgoingMessage]:
    gateway = d.case.gateway if d.case is not None else "-"
    key = {"gateway_down": "admin_gateway_down", "gateway_off": "admin_gateway_off",
           "gateway_unknown": "admin_gateway_unknown"}.get(d.result, "admin_payment_unknown")
    return [OutgoingMessage(t(key, order_id=clean_name(code, 40), gateway=gateway))]


# --- people ---------------------------------------------------------------------------------------------

async def _correction(admins: Admins, user: UserView, t: Translator, rest: str) -> list[OutgoingMessage]:
    parts = rest.split(maxsplit=2)
    if len(parts) < 3:
        return [OutgoingMessage(t("admin_usage_koreksi"))]
    target_text, amount_text, reason = parts
    sign = -1 if amount_text.startswith(("-", "−")) else 1
    magnitude = parse_amount(amount_text.lstrip("+-−"))
    reason = clean_name(reason, REASON_LENGTH)
    if magnitude is None or not reason:
        return [OutgoingMessage(t("admin_usage_koreksi"))]
    if magnitude == 0:
        return [OutgoingMessage(t("admin_correction_zero"))]
    target = await admins.find(target_text)
    if target is None:
        return [OutgoingMessage(t("admin_user_unknown", who=clean_name(target_text, 40)))]
    change = sign * magnitude
    params = _person(target) | {"balance": target.balance, "change": change, "after": target.balance + change,
                                "reason": reason, "limit": admins.correction_approval}
    if target.balance + change < 0:
        return [OutgoingMessage(t("admin_correction_below_zero", **params))]
    draft = await admins.draft_correction(user, target, change, reason)
    key, yes = (("admin_correction_confirm_second", "btn_admin_send") if draft.needs_second_admin
                else ("admin_correction_confirm", "btn_admin_confirm"))
    return [OutgoingMessage(t(key, **params), buttons=((Button(t(yes), data=f"adm:ya:{draft.id}"),
                                                        Button(t("btn_no"), data=f"adm:batal:{draft.id}")),))]


def _correction_result(admins: Admins, t: Translator, result: str, found: Correction | None) -> list[OutgoingMessage]:
    if found is None:
        return [OutgoingMessage(t("admin_correction_unknown"))]
    params = _person(found.user) | {"change": found.amount, "balance": found.user.balance,
                                    "limit": admins.correction_approval}
    key = {"applied": "admin_correction_applied", "waiting": "admin_correction_waiting",
           "no_second_admin": "admin_correction_no_second", "insufficient": "admin_correction_below_zero",
           "not_yours": "admin_correction_not_yours", "own_request": "admin_correction_own",
           "rejected": "admin_correction_rejected"}.get(result, "admin_correction_decided")
    return [OutgoingMessage(t(key, **params))]


async def _verify(admins: Admins, user: UserView, t: Translator, rest: str) -> list[OutgoingMessage]:
    target_text, _, reason = rest.partition(" ")
    if not target_text:
        return [OutgoingMessage(t("admin_usage_verifikasi"))]
    target = await admins.find(target_text)
    if target is None:
        return [OutgoingMessage(t("admin_user_unknown", who=clean_name(target_text, 40)))]
    done = await admins.verify(user, target, clean_name(reason, REASON_LENGTH) or "-")
    return [OutgoingMessage(t("admin_verified" if done else "admin_verified_before", **_person(target)))]


def _person(user: UserView) -> dict[str, str]:
    return {"name": user.display_name or (f"@{user.username}" if user.username else who(user)), "user": who(user)}
