"""What admins do from chat, in plain values: look at the money (dashboard, daily summary), resolve payments whose
money waits in suspense (credit, refuse, refunded outside, ask the gateway), correct a wallet and verify a person.

Every action leaves an audit row (admin, action, target, reason, time) in the same commit as its effect. A held
payment's decisions go through the payment state machine (services/settlement.py), so two admins tapping at once
settle it once. A correction is a draft until its admin confirms it; a credit above `correction_approval` then
waits for a second admin:

    approval: draft --confirm--> approved (applied)                 (a debit, or a credit up to the limit)
              draft --confirm--> pending --approve (another admin)--> approved (applied)
                                 pending --reject--> rejected
              draft --cancel--> rejected
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import books, ledger
from services.clock import Clock
from services.errors import GatewayError, InsufficientFunds
from services.kinds import AccountKind, OrderStatus, PaymentStatus
from services.outbox import notice_row, queue_notices
from services.payment_machine import IN_SUSPENSE
from services.payout_machine import NEEDS_ADMIN
from services.settlement import Settlement
from services.wallet import UserView, user_views
from storage.db import Database
from storage.models import (
    Account,
    AdminAction,
    Approval,
    Client,
    Deposit,
    Order,
    OutboxMessage,
    Payment,
    Payout,
    Transfer,
    User,
)
from storage.queries import rows_changed

log = logging.getLogger(__name__)
WIB = timezone(timedelta(hours=7))
STATUS_TIMEOUT_S = 15.0
ATTENTION = (*IN_SUSPENSE,)


@dataclass(frozen=True)
class Dashboard:
    money: dict[AccountKind, int]  # every account kind's total in its normal sign
    held: int  # payments whose money waits in suspense for an admin
    held_amount: int
    flagged: int  # settled payments an admin should look at (money taken back from a spent wallet)
    stale_pending: int  # unpaid payments older than a day
    receivables: int  # people who owe money
    receivable_amount: int
    problems: int  # violated ledger invariants
    complaints: int = 0  # otomatis orders whose escrow a complaint froze
    payouts: int = 0  # withdrawals an admin must approve, check (unknown) or refund the provider for


@dataclass(frozen=True)
class PaymentCase:
    """A payment as an admin needs to see it."""

    order_id: str
    gateway: str
    amount: int  # the bill
    paid_amount: int | None  # what the gateway reported
    refunded_amount: int
    status: PaymentStatus
    payer: str  # name and where to reach them: "Siti (tg:123)"
    created_at: datetime
    flagged: bool


@dataclass(frozen=True)
class Decision:
    """What an admin's request came to: `result` names the reply, `case` is the payment after it."""

    result: str
    case: PaymentCase | None = None
    gateway_says: str | None = None  # the gateway's own status word, for ADMIN CEK
    gateway_amount: int | None = None


@dataclass(frozen=True)
class Correction:
    id: int
    user: UserView
    amount: int  # signed: + credit to the wallet, - debit from it
    reason: str
    status: str
    needs_second_admin: bool
    requested_by: int


@dataclass(frozen=True)
class Summary:
    topups: int
    topup_amount: int
    revenue: int
    held: int
    held_amount: int
    receivable_amount: int
    corrections: int
    correction_amount: int
    problems: int


def who(user: User | UserView) -> str:
    """How admins name a person: tg:<id>, wa:<number> (what ADMIN KOREKSI and ADMIN VERIFIKASI accept)."""
    prefix = "tg" if user.channel == "telegram" else "wa" if user.channel == "whatsapp" else user.channel
    return f"{prefix}:{user.external_id}"


def parse_who(text: str) -> tuple[str, str] | None:
    """`tg:<id>` | `wa:62…` (or 08…) | `@username` (or a jastiper's `@handle`) -> (how, value); None when it is
    none of those."""
    text = text.strip()
    if re.fullmatch(r"@[A-Za-z0-9_]{3,64}", text):
        return "username", text[1:]
    match = re.fullmatch(r"(tg|wa):\+?([0-9]{3,20})", text, re.IGNORECASE)
    if match is None:
        return None
    how, number = match.group(1).lower(), match.group(2)
    if how == "wa" and number.startswith("0"):
        number = "62" + number[1:]
    return ("telegram" if how == "tg" else "whatsapp"), number


class Admins:
    def __init__(self, db: Database, clock: Clock, settlement: Settlement, *, admins: Sequence[tuple[str, str]],
                 correction_approval: int, summary_hour: int = 8,
                 on_notice: Callable[[], None] = lambda: None,
                 also_admin: Callable[[str, str], bool] | None = None) -> None:
        self._db = db
        self._on_notice = on_notice
        self._also_admin = also_admin  # a rule beside the configured ids (the playground's Admin persona)
        self._clock = clock
        self._settlement = settlement
        self._admins = list(admins)
        self.correction_approval = correction_approval
        self.summary_hour = summary_hour

    def is_admin(self, channel: str, external_id: str) -> bool:
        return (channel, external_id) in self._admins or (
            self._also_admin is not None and self._also_admin(channel, external_id))

    async def payment_complaint(self, user: UserView, payment_code: str, reason: str) -> bool:
        """KOMPLAIN <kode_pembayaran> <alasan> from the payer: every admin is told, with the payment's state;
        False when the code is not one of this person's payments."""
        now = self._clock.now()
        async with self._db.write() as session:
            payment = await session.scalar(select(Payment).where(Payment.order_id == payment_code.strip()[:50],
                                                                 Payment.user_id == user.id))
            if payment is None:
                return False
            params = {"order_id": payment.order_id, "amount": payment.amount, "payment_state": payment.status,
                      "who": who(user), "reason": reason[:300]}
            await queue_notices(session, [
                notice_row(channel=c, chat_id=i, language="id", template="admin_payment_complaint", params=params,
                           now=now, dedupe_key=f"admin:pay-complaint:{payment.id}:{now.isoformat()}:{c}:{i}")
                for c, i in self._admins])
        self._on_notice()
        return True

    # --- looking ------------------------------------------------------------------------------------

    async def dashboard(self) -> Dashboard:
        money = await books.money_by_kind(self._db)
        problems = len(await books.check(self._db))
        day_ago = self._clock.now() - timedelta(days=1)
        async with self._db.read() as session:
            held, held_amount = (await session.execute(
                select(func.count(), func.coalesce(func.sum(Payment.paid_amount - Payment.refunded_amount), 0))
                .where(Payment.status.in_([s.value for s in IN_SUSPENSE])))).one()
            flagged = await session.scalar(select(func.count()).where(
                Payment.flag_reason.is_not(None), Payment.status.not_in([s.value for s in IN_SUSPENSE])))
            stale = await session.scalar(select(func.count()).where(
                Payment.status.in_(("created", "pending")), Payment.created_at < day_ago))
            owing, owed = (await session.execute(
                select(func.count(), func.coalesce(func.sum(Account.balance), 0))
                .where(Account.kind == AccountKind.RECEIVABLE.value, Account.balance > 0))).one()
            complaints = await session.scalar(select(func.count()).select_from(Order).where(
                Order.status == OrderStatus.DISPUTED))
            payouts = await session.scalar(select(func.count()).select_from(Payout).where(
                Payout.status.in_(NEEDS_ADMIN)))
        return Dashboard(money, int(held or 0), int(held_amount or 0), int(flagged or 0), int(stale or 0),
                         int(owing or 0), int(owed or 0), problems, int(complaints or 0), int(payouts or 0))

    async def attention(self, limit: int = 10) -> list[PaymentCase]:
        """Payments an admin must decide (held, refused) first, then flagged ones; oldest first."""
        async with self._db.read() as session:
            rows = (await session.execute(
                _cases()
                .where(or_(Payment.status.in_([s.value for s in ATTENTION]), Payment.flag_reason.is_not(None)))
                .order_by(Payment.status.in_([s.value for s in ATTENTION]).desc(), Payment.id)
                .limit(limit))).all()
        return [_case(p, u, client, ref) for p, u, client, ref in rows]

    async def payment(self, order_id: str) -> PaymentCase | None:
        async with self._db.read() as session:
            row = (await session.execute(_cases()
                                         .where(Payment.order_id == order_id))).first()
        return None if row is None else _case(row[0], row[1], row[2], row[3])

    # --- held payments -------------------------------------------------------------------------------

    async def credit(self, admin: UserView, order_id: str, reason: str) -> Decision:
        """Ask the gateway again; if it still says paid (the amount it reported), move that money from suspense
        to the payment's account."""
        case = await self.payment(order_id)
        if case is None:
            return Decision("unknown")
        if case.status is not PaymentStatus.HELD:
            return await self._not_held(case)
        asked = await self._ask_gateway(case)
        if asked.result != "answered":
            return Decision(asked.result, case)
        if asked.gateway_amount != case.paid_amount or asked.gateway_says != "paid":
            return Decision("gateway_disagrees", case, asked.gateway_says, asked.gateway_amount)
        outcome = await self._settlement.admin_event(order_id, "admin_credit", admin_id=admin.id, reason=reason)
        return Decision("credited" if outcome.result == "credited" else "already", await self.payment(order_id))

    async def refuse(self, admin: UserView, order_id: str, reason: str) -> Decision:
        """The money stays in suspense until the gateway's refund arrives or an admin says it went back."""
        case = await self.payment(order_id)
        if case is None:
            return Decision("unknown")
        if case.status is not PaymentStatus.HELD:
            return await self._not_held(case)
        outcome = await self._settlement.admin_event(order_id, "admin_refuse", admin_id=admin.id, reason=reason)
        return Decision("refused" if outcome.result == "refused" else "already", await self.payment(order_id))

    async def refunded_outside(self, admin: UserView, order_id: str, reason: str) -> Decision:
        case = await self.payment(order_id)
        if case is None:
            return Decision("unknown")
        if case.status not in IN_SUSPENSE:
            return await self._not_held(case)
        outcome = await self._settlement.admin_event(order_id, "admin_refunded_outside", admin_id=admin.id,
                                                     reason=reason)
        return Decision("refunded" if outcome.result == "refunded" else "already", await self.payment(order_id))

    async def _not_held(self, case: PaymentCase) -> Decision:
        """Nothing to decide: because an admin decided already, or because it never was held."""
        async with self._db.read() as session:
            decided = await session.scalar(select(func.count()).where(
                AdminAction.target == case.order_id,
                AdminAction.action.in_(("credit", "refuse", "refunded_outside"))))
        return Decision("already" if decided else "not_held", case)

    async def check(self, admin: UserView, order_id: str) -> Decision:
        """ADMIN CEK: what the gateway says now, applied like any status answer."""
        case = await self.payment(order_id)
        if case is None:
            return Decision("unknown")
        asked = await self._ask_gateway(case, apply=True)
        await self._audit(admin.id, "check", order_id, None, asked.gateway_says or asked.result)
        return Decision(asked.result, await self.payment(order_id), asked.gateway_says, asked.gateway_amount)

    async def _ask_gateway(self, case: PaymentCase, *, apply: bool = False) -> Decision:
        gateway = self._settlement.gateway(case.gateway)
        if gateway is None:
            return Decision("gateway_off")
        async with self._db.read() as session:
            ref = await session.scalar(select(Payment.gateway_ref).where(Payment.order_id == case.order_id))
        try:
            said = await asyncio.wait_for(gateway.fetch_status(case.order_id, ref), STATUS_TIMEOUT_S)
        except (GatewayError, TimeoutError) as exc:
            log.warning("admin: status of %s: %s", case.order_id, exc or "timeout")
            return Decision("gateway_down")
        if said is None:
            return Decision("gateway_unknown")
        if apply:
            await self._settlement.apply(said, source="admin")
        return Decision("answered", case, said.status, said.amount)

    # --- people ---------------------------------------------------------------------------------------

    async def find(self, text: str) -> UserView | None:
        parsed = parse_who(text)
        if parsed is None:
            return None
        how, value = parsed
        async with self._db.read() as session:
            query = (select(User).where(func.lower(User.username) == value.lower()) if how == "username" else
                     select(User).where(User.channel == how, User.external_id == value))
            user = (await session.scalars(query.order_by(User.id).limit(1))).first()
            if user is None and how == "username":
                # A jastiper's public handle (PROFIL, /j/<handle>) names them too: it is how admins know the
                # playground's and WhatsApp's jastipers, who have no Telegram username.
                user = await session.scalar(select(User).where(User.handle == value.lower()))
            if user is None:
                return None
            return (await user_views(session, [user]))[user.id]

    async def verify(self, admin: UserView, user: UserView, reason: str) -> bool:
        """Mark a person whose identity was checked outside Titip; False when they already were."""
        now = self._clock.now()
        async with self._db.write() as session:
            done = rows_changed(await session.execute(update(User).where(User.id == user.id, User.verified_at.is_(None))
                                          .values(verified_at=now)))
            if done:
                await self._audit_in(session, admin.id, "verify", who(user), None, reason, now)
                await queue_notices(session, [notice_row(
                    channel=user.channel, chat_id=user.external_id, language=user.language,
                    template="account_verified", params={}, now=now, dedupe_key=f"verified:{user.id}")])
        return bool(done)

    # --- corrections ----------------------------------------------------------------------------------

    async def draft_correction(self, admin: UserView, user: UserView, amount: int, reason: str) -> Correction:
        if amount == 0:
            raise ValueError("a correction moves money")
        now = self._clock.now()
        async with self._db.write() as session:
            row = Approval(action="correction", params={"user_id": user.id, "amount": amount, "reason": reason},
                           requested_by=admin.id, status="draft", created_at=now)
            session.add(row)
            await session.flush()
            return Correction(row.id, user, amount, reason, "draft", self._needs_second(amount), admin.id)

    async def correction(self, approval_id: int) -> Correction | None:
        async with self._db.read() as session:
            row = await session.get(Approval, approval_id)
            if row is None or row.action != "correction":
                return None
            user = await session.get(User, int(row.params["user_id"]))
            if user is None:
                return None
            view = (await user_views(session, [user]))[user.id]
            amount = int(row.params["amount"])
            return Correction(row.id, view, amount, str(row.params["reason"]), row.status,
                              self._needs_second(amount), row.requested_by)

    def _needs_second(self, amount: int) -> bool:
        return amount > self.correction_approval

    async def confirm_correction(self, admin: UserView, approval_id: int) -> tuple[str, Correction | None]:
        """The requesting admin's "Ya": apply it, or send it to the other admins when it needs a second one."""
        found = await self.correction(approval_id)
        if found is None:
            return "unknown", None
        if found.requested_by != admin.id:
            return "not_yours", found
        if found.needs_second_admin:
            now = self._clock.now()
            async with self._db.write() as session:
                moved = rows_changed(await session.execute(update(Approval).where(Approval.id == approval_id,
                                                                      Approval.status == "draft")
                                               .values(status="pending")))
                if not moved:
                    return "already", found
                await self._audit_in(session, admin.id, "correction_request", who(found.user), found.amount,
                                     found.reason, now)
                others = [(c, i) for c, i in self._admins if (c, i) != (admin.channel, admin.external_id)]
                if others:
                    await queue_notices(session, [
                        notice_row(channel=c, chat_id=i, language="id", template="admin_approval_request",
                                   params={"admin": admin.display_name or who(admin), "name": found.user.display_name
                                           or who(found.user), "user": who(found.user), "change": found.amount,
                                           "reason": found.reason, "approval": approval_id},
                                   now=now, dedupe_key=f"approval:{approval_id}:{c}:{i}") for c, i in others])
            if others:
                self._on_notice()
            return ("waiting" if others else "no_second_admin"), found
        return await self._apply(admin, found, from_status="draft")

    async def decide(self, admin: UserView, approval_id: int, approve: bool) -> tuple[str, Correction | None]:
        """A second admin's decision on a pending correction (never the admin who asked for it)."""
        found = await self.correction(approval_id)
        if found is None:
            return "unknown", None
        if found.status != "pending":
            return "already", found
        if found.requested_by == admin.id:
            return "own_request", found
        if approve:
            return await self._apply(admin, found, from_status="pending")
        now = self._clock.now()
        async with self._db.write() as session:
            moved = rows_changed(await session.execute(update(Approval).where(Approval.id == approval_id,
                                                                  Approval.status == "pending")
                                           .values(status="rejected", decided_by=admin.id, decided_at=now)))
            if moved:
                await self._audit_in(session, admin.id, "reject", who(found.user), found.amount, found.reason, now)
        return ("rejected" if moved else "already"), found

    async def cancel_correction(self, admin: UserView, approval_id: int) -> str:
        now = self._clock.now()
        async with self._db.write() as session:
            moved = rows_changed(await session.execute(update(Approval).where(Approval.id == approval_id,
                                                                  Approval.requested_by == admin.id,
                                                                  Approval.status == "draft")
                                           .values(status="rejected", decided_by=admin.id, decided_at=now)))
        return "cancelled" if moved else "already"

    async def _apply(self, admin: UserView, found: Correction, *, from_status: str) -> tuple[str, Correction | None]:
        """wallet <-> adjustment, once: the approval's conditional status update is the guard, the transfer's
        reference the second one. Never earnings: no admin can create withdrawable money."""
        now = self._clock.now()
        target = ledger.wallet(found.user.id)
        move = (ledger.Move(f"correction:{found.id}", ledger.ADJUSTMENT, target, found.amount, "adjust")
                if found.amount > 0 else
                ledger.Move(f"correction:{found.id}", target, ledger.ADJUSTMENT, -found.amount, "adjust"))
        try:
            async with self._db.write() as session:
                accounts = await ledger.accounts(session, [target], now)
                moved = rows_changed(await session.execute(update(Approval).where(Approval.id == found.id,
                                                                      Approval.status == from_status)
                                               .values(status="approved", decided_by=admin.id,
                                                       decided_at=now)))
                if not moved:
                    return "already", found
                await ledger.post(session, [move], now, known=accounts)
                await self._audit_in(session, admin.id, "correction", who(found.user), found.amount, found.reason,
                                     now)
                balance = accounts[target].balance
                await queue_notices(session, [notice_row(
                    channel=found.user.channel, chat_id=found.user.external_id, language=found.user.language,
                    template="balance_corrected", params={"change": found.amount, "balance": balance,
                                                          "reason": found.reason},
                    now=now, dedupe_key=f"correction:{found.id}")])
        except InsufficientFunds:
            return "insufficient", found
        self._on_notice()
        return "applied", await self.correction(found.id)

    # --- the daily summary ------------------------------------------------------------------------------

    async def summary(self) -> Summary:
        """The last 24 hours: top-ups, revenue and corrections; what is held and owed now; the invariant."""
        since = self._clock.now() - timedelta(days=1)
        moved = await books.money_by_kind(self._db, since)
        dash = await self.dashboard()
        async with self._db.read() as session:
            topups, topup_amount = (await session.execute(
                select(func.count(), func.coalesce(func.sum(Transfer.amount), 0))
                .where(Transfer.kind.in_(books.SETTLING), Transfer.created_at >= since))).one()
            corrections, correction_amount = (await session.execute(
                select(func.count(), func.coalesce(func.sum(AdminAction.amount), 0))
                .where(AdminAction.action == "correction", AdminAction.created_at >= since))).one()
        return Summary(int(topups or 0), int(topup_amount or 0), moved[AccountKind.REVENUE], dash.held,
                       dash.held_amount, dash.receivable_amount, int(corrections or 0), int(correction_amount or 0),
                       dash.problems)

    async def send_daily_summary(self) -> bool:
        """Queue today's summary to every admin once, from `summary_hour` WIB on (a job calls this often; the
        dedupe key makes it once a day whichever process gets there first). True when it was queued now."""
        local = self._clock.now().astimezone(WIB)
        if local.hour < self.summary_hour or not self._admins:
            return False
        day = local.date().isoformat()
        keys = [f"admin-summary:{day}:{c}:{i}" for c, i in self._admins]
        async with self._db.read() as session:
            if await session.scalar(select(func.count()).where(OutboxMessage.dedupe_key.in_(keys))) == len(keys):
                return False
        s = await self.summary()
        params: dict[str, Any] = {"day": day, "topups": s.topups, "topup_amount": s.topup_amount,
                                  "revenue": s.revenue, "held": s.held, "held_amount": s.held_amount,
                                  "receivable_amount": s.receivable_amount, "corrections": s.corrections,
                                  "correction_amount": s.correction_amount, "problems": s.problems}
        now = self._clock.now()
        async with self._db.write() as session:
            await queue_notices(session, [
                notice_row(channel=c, chat_id=i, language="id", template="admin_summary", params=params, now=now,
                           dedupe_key=key) for (c, i), key in zip(self._admins, keys, strict=True)])
        self._on_notice()
        return True

    # --- audit ----------------------------------------------------------------------------------------

    async def _audit(self, admin_id: int, action: str, target: str, amount: int | None, reason: str) -> None:
        async with self._db.write() as session:
            await self._audit_in(session, admin_id, action, target, amount, reason, self._clock.now())

    @staticmethod
    async def _audit_in(session: AsyncSession, admin_id: int, action: str, target: str, amount: int | None,
                        reason: str, now: datetime) -> None:
        session.add(AdminAction(admin_id=admin_id, action=action, target=target[:128], amount=amount,
                                reason=reason, created_at=now))


def _cases() -> Select[Payment, User, str, str]:
    """Payments with who paid: a Titip user, or (a deposit) a client bot's user."""
    return (select(Payment, User, Client.name, Deposit.user_ref).outerjoin(User, User.id == Payment.user_id)
            .outerjoin(Deposit, Deposit.id == Payment.deposit_id).outerjoin(Client, Client.id == Deposit.client_id))


def _case(p: Payment, u: User | None, client: str | None = None, user_ref: str | None = None) -> PaymentCase:
    if u is None:  # a deposit: the client bot's own user, named as that bot names them
        payer = f"bot {client} ({user_ref})"
    else:
        name = u.display_name or (f"@{u.username}" if u.username else "")
        payer = f"{name} ({who(u)})" if name else who(u)
    return PaymentCase(p.order_id, p.gateway, p.amount, p.paid_amount, p.refunded_amount, PaymentStatus(p.status),
                       payer, p.created_at, p.flag_reason is not None)
