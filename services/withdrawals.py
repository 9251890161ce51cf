"""Withdrawals: a verified jastiper's earned money (the `earnings` account, never the wallet) sent to their bank
or e-wallet through a disbursement provider, at most once.

    REKENING  -> a draft payout account (with the holder's name when the provider can look it up) -> confirmed
                 with a button; no payout goes to it for `new_account_hold_hours`; admins are told.
    TARIK     -> a quote (checks) -> confirmed with a button (its key makes a double tap one payout) -> in one
                 transaction: the payout row and a hold of amount + fee (earnings -> hold `payout:<id>`).
    sending   -> each provider call is an attempt with its own number, committed as `sending` before the call.
                 An outcome that is not known is never sent blind again: the provider's status API decides
                 (Xendit by the attempt's reference, Duitku by disburseId), and the same attempt is re-sent only
                 when the provider has no record of it and its adapter is `resend_safe`; otherwise (Midtrans) the
                 payout goes to `unknown` and an admin resolves it.
    outcome   -> completed: hold -> provider (amount) and hold -> revenue (fee); failed / rejected / cancelled:
                 hold -> earnings (everything back); reversed after completion: provider -> earnings and
                 revenue -> earnings; no_funds (the provider's own balance): `waiting_funds`, hold kept, a new
                 attempt when an admin says it was topped up or on the reconciler's next pass.

Every state move is the state machine's (services/payout_machine.py) conditional UPDATE, and the hold's status
moves from pending once, so a repeated callback or two processes racing move the money once.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import ledger
from services.clock import Clock
from services.errors import DataConflict, GatewayUnavailable, InsufficientFunds, TitipError, UserInputError
from services.kinds import HoldStatus, PayoutStatus
from services.outbox import notice_row, queue_notices
from services.payout_machine import FINAL, NEEDS_ADMIN, POSTS_HOLD, VOIDS_HOLD, PayoutEvent, sources, step
from services.payouts import PayoutOrder, PayoutProvider, PayoutReport, parse_key
from services.payouts.banks import BY_WORD, find_bank, masked, normal_number
from services.text import clean_text
from services.trips import notify_user
from storage.db import Database
from storage.models import Account, AdminAction, Payout, PayoutAccount, PayoutAttempt, User
from storage.queries import rows_changed

log = logging.getLogger(__name__)
WIB = timezone(timedelta(hours=7))
DRAFT_VALID = timedelta(hours=1)  # a REKENING draft must be confirmed within this long
NAME_LENGTH = 100
REASON_LENGTH = 300
EVENT_OF = {"accepted": PayoutEvent.ACCEPTED, "completed": PayoutEvent.COMPLETED, "failed": PayoutEvent.FAILED,
            "no_funds": PayoutEvent.NO_FUNDS, "cancelled": PayoutEvent.CANCELLED, "reversed": PayoutEvent.REVERSED}
NOTICE_OF = {PayoutStatus.COMPLETED: "payout_completed", PayoutStatus.FAILED: "payout_failed",
             PayoutStatus.CANCELLED: "payout_failed", PayoutStatus.REJECTED: "payout_rejected",
             PayoutStatus.REVERSED: "payout_reversed", PayoutStatus.WAITING_FUNDS: "payout_delayed",
             PayoutStatus.UNKNOWN: "payout_delayed"}
# What a person is told a provider's refusal means (the code itself goes to admins).
REASON_OF = {PayoutStatus.FAILED: "payout_reason_failed", PayoutStatus.CANCELLED: "payout_reason_cancelled"}
ADMIN_NOTICE_OF = {PayoutStatus.UNKNOWN: "admin_payout_unknown", PayoutStatus.WAITING_FUNDS: "admin_payout_no_funds",
                   PayoutStatus.REVERSED: "admin_payout_reversed"}


@dataclass(frozen=True)
class AccountView:
    id: int
    bank: str  # as people read it: "BCA", "DANA"
    number: str  # masked: ****1234
    holder_name: str
    checked_name: str | None  # what the provider says the bank knows
    confirmed: bool
    usable_from: datetime | None


@dataclass(frozen=True)
class Quote:
    """What TARIK would do, for the confirmation: `key` goes into the button."""

    amount: int
    fee: int
    earnings: int
    account: AccountView
    key: str


@dataclass(frozen=True)
class PayoutView:
    id: int
    amount: int
    fee: int
    status: str
    bank: str
    number: str  # masked
    holder_name: str
    created_at: datetime
    failure: str | None = None
    user: str = ""  # for admins: who asked


def _account_view(row: PayoutAccount) -> AccountView:
    return AccountView(row.id, BY_WORD[row.bank].label, masked(row.number), row.holder_name, row.checked_name,
                       row.confirmed_at is not None, row.usable_from)


def _view(row: Payout, user: str = "") -> PayoutView:
    return PayoutView(row.id, row.amount, row.fee, row.status, BY_WORD[row.bank].label, masked(row.number),
                      row.holder_name, row.created_at, row.failure, user)


def _order(payout: Payout, attempt: PayoutAttempt | None) -> PayoutOrder:
    return PayoutOrder(payout.id, payout.attempt, payout.amount, payout.bank, payout.number, payout.holder_name,
                       description=f"Titip penarikan {payout.id}",
                       provider_ref=attempt.provider_ref if attempt else None,
                       context=dict(attempt.context or {}) if attempt else {})


def _hold(payout: Payout) -> ledger.Ref:
    return ledger.hold(f"payout:{payout.id}", payout.user_id)


class Withdrawals:
    def __init__(self, db: Database, clock: Clock, provider: PayoutProvider | None, *, min_amount: int = 50_000,
                 fee: int = 0, approval_above: int = 5_000_000, new_account_hold_hours: float = 24.0,
                 admins: Sequence[tuple[str, str]] = (), check_every_s: float = 300.0,
                 unknown_after_hours: float = 24.0, lease_s: float = 120.0, concurrency: int = 8,
                 page_url: Callable[[int], str] | None = None, on_notice: Callable[[], None] | None = None) -> None:
        self._db = db
        self._clock = clock
        self.provider = provider
        self.min_amount = min_amount
        self.fee = fee
        self._approval_above = approval_above
        self._account_hold = timedelta(hours=new_account_hold_hours)
        self._admins = list(admins)
        self._check_every = timedelta(seconds=check_every_s)
        self._unknown_after = timedelta(hours=unknown_after_hours)
        self._lease = timedelta(seconds=lease_s)
        self._concurrency = max(1, concurrency)  # provider calls at once (reconcile.concurrency)
        self.page_url = page_url  # the sandbox provider's page for a payout (development)
        self._on_notice = on_notice or (lambda: None)

    @property
    def account_hold_hours(self) -> float:
        return self._account_hold.total_seconds() / 3600

    @property
    def enabled(self) -> bool:
        return self.provider is not None

    def _require_provider(self) -> PayoutProvider:
        if self.provider is None:
            raise UserInputError("payouts_off")
        return self.provider

    # --- payout accounts (REKENING) ---------------------------------------------------------------------

    async def draft_account(self, user_id: int, bank_word: str, number: str, holder: str) -> AccountView:
        """A registration to confirm: the bank known, the number normalised, the holder's name looked up where the
        provider can. UserInputError for an unknown bank, a bad number or an account the provider says is wrong."""
        provider = self._require_provider()
        bank = find_bank(bank_word)
        if bank is None:
            raise UserInputError("payout_bank_unknown", bank=clean_text(bank_word, 20))
        digits = normal_number(bank, number)
        if digits is None:
            raise UserInputError("payout_number_invalid_ewallet" if bank.ewallet else "payout_number_invalid",
                                 bank=bank.label)
        holder = clean_text(holder, NAME_LENGTH)
        if len(holder) < 3:
            raise UserInputError("payout_holder_missing")
        try:
            checked = await provider.validate(bank.name, digits)
        except GatewayUnavailable as exc:
            log.warning("payout account check at %s unavailable (%s) for %s", provider.name, exc, masked(digits))
            checked = None
        now = self._clock.now()
        async with self._db.write() as session:
            row = PayoutAccount(user_id=user_id, bank=bank.name, number=digits, holder_name=holder,
                                checked_name=(checked or None) and clean_text(checked, NAME_LENGTH), created_at=now)
            session.add(row)
            await session.flush()
            return _account_view(row)

    async def confirm_account(self, user_id: int, account_id: int) -> AccountView:
        """The owner confirmed the draft: it replaces the previous account and is usable after the hold; the user
        and the admins are told (a hijacked chat must not redirect money unnoticed)."""
        now = self._clock.now()
        async with self._db.write() as session:
            row = await session.get(PayoutAccount, account_id)
            if row is None or row.user_id != user_id or row.replaced_at is not None:
                raise UserInputError("payout_account_draft_gone")
            if row.confirmed_at is not None:
                return _account_view(row)  # a second tap
            if row.created_at < now - DRAFT_VALID:
                raise UserInputError("payout_account_draft_gone")
            await session.execute(update(PayoutAccount).where(
                PayoutAccount.user_id == user_id, PayoutAccount.id != row.id, PayoutAccount.replaced_at.is_(None))
                .values(replaced_at=now))
            row.confirmed_at, row.usable_from = now, now + self._account_hold
            user = await session.get_one(User, user_id)
            params = {"bank": BY_WORD[row.bank].label, "number": masked(row.number), "name": row.holder_name,
                      "usable_from": _wib(row.usable_from)}
            await notify_user(session, user_id, "payout_account_changed", params, now,
                              dedupe_key=f"payout-account:{row.id}")
            await queue_notices(session, [
                notice_row(channel=c, chat_id=i, language="id", template="admin_payout_account",
                           params={**params, "user": _who(user)}, now=now,
                           dedupe_key=f"payout-account:{row.id}:admin:{c}:{i}") for c, i in self._admins])
            await session.flush()
            view = _account_view(row)
        self._on_notice()
        return view

    async def account(self, user_id: int) -> AccountView | None:
        async with self._db.read() as session:
            row = await _current_account(session, user_id)
            return _account_view(row) if row else None

    # --- requesting (TARIK) -----------------------------------------------------------------------------

    async def quote(self, user_id: int, amount: int | None) -> Quote:
        """What TARIK <amount> (None: everything) would withdraw, after every check; nothing is written."""
        self._require_provider()
        async with self._db.read() as session:
            return await self._checked(session, user_id, amount, secrets.token_hex(6))

    async def _checked(self, session: AsyncSession, user_id: int, amount: int | None, key: str) -> Quote:
        user = await session.get_one(User, user_id)
        if user.verified_at is None:
            raise UserInputError("payout_not_verified")
        account = await _current_account(session, user_id)
        if account is None:
            raise UserInputError("payout_no_account")
        now = self._clock.now()
        if account.usable_from is not None and account.usable_from > now:
            raise UserInputError("payout_account_waiting", usable_from=_wib(account.usable_from),
                                 number=masked(account.number))
        earned = (await ledger.balances(session, [user_id]))[user_id][1]
        if amount is None:
            amount = earned - self.fee
        if amount < self.min_amount:
            raise UserInputError("payout_below_minimum", minimum=self.min_amount, earned=earned, fee=self.fee)
        if amount + self.fee > earned:
            raise UserInputError("payout_short", earned=earned, amount=amount, fee=self.fee)
        return Quote(amount, self.fee, earned, _account_view(account), key)

    async def request(self, user_id: int, amount: int, key: str) -> PayoutView:
        """The confirmed TARIK: the payout and its hold in one transaction; a repeated key (a double tap) returns
        the payout it made. Above the day's approval limit it waits for an admin."""
        provider = self._require_provider()
        key = key[:32]
        now = self._clock.now()
        try:
            async with self._db.write() as session:
                earlier = await session.scalar(select(Payout).where(Payout.user_id == user_id,
                                                                    Payout.request_key == key))
                if earlier is not None:
                    return _view(earlier)
                quote = await self._checked(session, user_id, amount, key)
                account = await session.get_one(PayoutAccount, quote.account.id)
                today = now.astimezone(WIB).replace(hour=0, minute=0, second=0, microsecond=0)
                so_far = await session.scalar(select(func.coalesce(func.sum(Payout.amount), 0)).where(
                    Payout.user_id == user_id, Payout.created_at >= today,
                    Payout.status.not_in([PayoutStatus.FAILED, PayoutStatus.REJECTED, PayoutStatus.CANCELLED])))
                needs_approval = int(so_far or 0) + amount > self._approval_above
                payout = Payout(user_id=user_id, request_key=key, account_id=account.id, bank=account.bank,
                                number=account.number, holder_name=account.holder_name, amount=amount,
                                fee=quote.fee, provider=provider.name, attempt=0,
                                status=PayoutStatus.AWAITING_APPROVAL if needs_approval else PayoutStatus.REQUESTED,
                                created_at=now, updated_at=now)
                session.add(payout)
                await session.flush()
                # Earnings only: the wallet (top-ups, refunds) is never withdrawable. The database refuses a
                # negative earnings balance whatever two devices do at once.
                await ledger.post(session, [ledger.Move(f"payout:{payout.id}:hold", ledger.earnings(user_id),
                                                        _hold(payout), amount + quote.fee, "payout-hold")], now)
                if needs_approval:
                    user = await session.get_one(User, user_id)
                    await self._tell_admins(session, payout, "admin_payout_approval", now, user=_who(user))
                return _view(payout)
        except InsufficientFunds:
            raise UserInputError("payout_short", earned=0, amount=amount, fee=self.fee) from None
        except DataConflict:
            async with self._db.read() as session:  # the same key from another device, committed first
                found = await session.scalar(select(Payout).where(Payout.user_id == user_id,
                                                                  Payout.request_key == key))
                if found is None:
                    raise
                return _view(found)
        finally:
            self._on_notice()

    async def history(self, user_id: int, limit: int = 10) -> list[PayoutView]:
        async with self._db.read() as session:
            rows = (await session.scalars(select(Payout).where(Payout.user_id == user_id)
                                          .order_by(Payout.id.desc()).limit(limit))).all()
            return [_view(r) for r in rows]

    async def describe(self, payout_id: int) -> PayoutView | None:
        async with self._db.read() as session:
            row = await session.get(Payout, payout_id)
            return _view(row) if row else None

    async def attempt_key(self, payout_id: int) -> str | None:
        """The current attempt's reference at the provider (the sandbox page's buttons use it)."""
        async with self._db.read() as session:
            row = await session.get(Payout, payout_id)
            if row is None or row.attempt == 0:
                return None
            return _order(row, None).key

    # --- sending and checking (the "payouts" job) ------------------------------------------------------

    async def run(self) -> int:
        """Send requested payouts and check those whose outcome is due a look; returns how many were handled.
        Each is claimed with a lease first, so two processes never handle the same payout at once."""
        if self.provider is None:
            return 0
        now = self._clock.now()
        async with self._db.read() as session:
            ids = list((await session.scalars(select(Payout.id).where(
                or_(Payout.status == PayoutStatus.REQUESTED,
                    Payout.status.in_([PayoutStatus.SENDING, PayoutStatus.PROCESSING, PayoutStatus.WAITING_FUNDS])
                    & (Payout.next_check_at <= now)),
                or_(Payout.lease_until.is_(None), Payout.lease_until <= now)).order_by(Payout.id).limit(50))).all())
        gate = asyncio.Semaphore(self._concurrency)

        async def one(payout_id: int) -> bool:
            async with gate:
                try:
                    return await self.advance(payout_id)
                except TitipError:
                    log.exception("payout %s: could not be advanced now; tried again later", payout_id)
                    return False

        return sum(await asyncio.gather(*(one(i) for i in ids)))

    async def _claim(self, payout_id: int) -> Payout | None:
        now = self._clock.now()
        async with self._db.write() as session:
            won = rows_changed(await session.execute(update(Payout).where(
                Payout.id == payout_id, or_(Payout.lease_until.is_(None), Payout.lease_until <= now))
                .values(lease_until=now + self._lease)))
            if not won:
                return None
            payout = await session.get_one(Payout, payout_id)
            session.expunge(payout)
            return payout

    async def _release(self, payout_id: int, next_check: datetime | None) -> None:
        async with self._db.write() as session:
            values: dict[str, Any] = {"lease_until": None}
            if next_check is not None:
                values["next_check_at"] = next_check
            await session.execute(update(Payout).where(Payout.id == payout_id).values(**values))

    async def advance(self, payout_id: int) -> bool:
        """One step for one payout: send its next attempt, or find out how its current one ended."""
        payout = await self._claim(payout_id)
        if payout is None:
            return False
        next_check: datetime | None = None
        try:
            if payout.status == PayoutStatus.WAITING_FUNDS:
                await self._move(payout.id, payout.attempt, PayoutEvent.RETRY)
                payout.status = PayoutStatus.REQUESTED
            if payout.status == PayoutStatus.REQUESTED:
                next_check = await self._send_new_attempt(payout)
            elif payout.status in (PayoutStatus.SENDING, PayoutStatus.PROCESSING):
                next_check = await self._check(payout)
        finally:
            await self._release(payout.id, next_check)
        return True

    async def _send_new_attempt(self, payout: Payout) -> datetime | None:
        now = self._clock.now()
        async with self._db.write() as session:
            # Committed before the provider is called: a crash from here on leaves `sending`, never a blind resend.
            won = rows_changed(await session.execute(update(Payout).where(
                Payout.id == payout.id, Payout.status.in_(sources(PayoutEvent.SEND)))
                .values(status=PayoutStatus.SENDING, attempt=Payout.attempt + 1, provider_ref=None,
                        next_check_at=now + self._check_every, updated_at=now)))
            if not won:
                return None
            attempt_no = payout.attempt + 1
            session.add(PayoutAttempt(payout_id=payout.id, number=attempt_no, provider=payout.provider,
                                      outcome="sending", created_at=now, updated_at=now))
        # As committed: "unknown for too long" counts from this attempt's start, not from the request.
        payout.attempt, payout.status, payout.updated_at = attempt_no, PayoutStatus.SENDING, now
        return await self._call(payout, None)

    async def _call(self, payout: Payout, attempt: PayoutAttempt | None) -> datetime | None:
        """Send (or re-send, as the same attempt) to the provider and apply what it says."""
        provider = self._require_provider()
        order = _order(payout, attempt)

        async def remember(provider_ref: str, context: dict[str, Any]) -> None:
            async with self._db.write() as session:
                await session.execute(update(PayoutAttempt).where(
                    PayoutAttempt.payout_id == payout.id, PayoutAttempt.number == order.attempt)
                    .values(provider_ref=provider_ref[:64], context=context, updated_at=self._clock.now()))
                await session.execute(update(Payout).where(Payout.id == payout.id, Payout.attempt == order.attempt)
                                      .values(provider_ref=provider_ref[:64]))

        try:
            report = await provider.send(order, remember)
        except GatewayUnavailable as exc:
            return await self._not_known(payout, f"send: {exc}")
        await self.apply(payout.id, order.attempt, report)
        return self._clock.now() + self._check_every

    async def _not_known(self, payout: Payout, why: str) -> datetime:
        """The attempt's outcome is not known: look again later; a provider that cannot be asked safely
        (Midtrans), or an attempt unknown for too long, goes to an admin."""
        log.warning("payout %s attempt %s at %s: outcome not known (%s)", payout.id, payout.attempt,
                    payout.provider, why)
        provider = self._require_provider()
        now = self._clock.now()
        if not provider.resend_safe or payout.updated_at < now - self._unknown_after:
            await self._move(payout.id, payout.attempt, PayoutEvent.UNKNOWN, detail=why[:200])
            return now + self._check_every
        # Still in flight: the money stays held, and the person hears once that it is delayed.
        async with self._db.write() as session:
            await notify_user(session, payout.user_id, "payout_delayed",
                              {"amount": payout.amount, "fee": payout.fee, "bank": BY_WORD[payout.bank].label,
                               "number": masked(payout.number), "payout": payout.id, "reason": "-"}, now,
                              dedupe_key=f"payout:{payout.id}:{PayoutStatus.UNKNOWN}:{payout.attempt}")
        self._on_notice()
        return now + self._check_every

    async def _check(self, payout: Payout) -> datetime | None:
        provider = self._require_provider()
        async with self._db.read() as session:
            attempt = await session.scalar(select(PayoutAttempt).where(
                PayoutAttempt.payout_id == payout.id, PayoutAttempt.number == payout.attempt))
        order = _order(payout, attempt)
        try:
            report = await provider.status(order)
        except GatewayUnavailable as exc:
            return await self._not_known(payout, f"status: {exc}")
        if report is None:
            if payout.status == PayoutStatus.SENDING and provider.resend_safe:
                # The provider has no record of this attempt: it was never made. The same attempt again (same
                # key / disburseId), never a new one.
                log.info("payout %s attempt %s: not at %s; sent again as the same attempt", payout.id,
                         payout.attempt, provider.name)
                return await self._call(payout, attempt)
            return await self._not_known(payout, "status: no record at the provider")
        await self.apply(payout.id, payout.attempt, report)
        return self._clock.now() + self._check_every

    # --- outcomes ---------------------------------------------------------------------------------------

    async def callback(self, provider_name: str, raw_body: bytes, headers: Any) -> bool:
        """A provider's callback: verified (BadSignature / MalformedCallback otherwise), matched to its payout
        and attempt, applied once. False when it matches nothing of ours (logged, answered 200)."""
        provider = self.provider
        if provider is None or provider.name != provider_name:
            return False
        report = provider.parse_callback(raw_body, headers)
        if report is None:
            return True
        async with self._db.read() as session:
            found = await _find(session, provider_name, report)
        if found is None:
            log.warning("%s payout callback for nothing of ours (%s, %s)", provider_name, report.key,
                        report.provider_ref)
            return False
        payout_id, attempt_no = found
        if provider.confirm_callbacks:
            async with self._db.read() as session:
                payout = await session.get_one(Payout, payout_id)
                attempt = await session.scalar(select(PayoutAttempt).where(
                    PayoutAttempt.payout_id == payout_id, PayoutAttempt.number == attempt_no))
                order = _order(payout, attempt)
            confirmed = await provider.status(order)
            if confirmed is None or confirmed.outcome != report.outcome:
                log.warning("%s payout callback for %s says %s; its status API says %s: not applied",
                            provider_name, payout_id, report.outcome, confirmed and confirmed.outcome)
                return True
        await self.apply(payout_id, attempt_no, report)
        return True

    async def apply(self, payout_id: int, attempt_no: int, report: PayoutReport) -> str | None:
        """What the provider said about one attempt, applied once; returns the payout's new status (None: a no-op:
        a repeated or late report, or one about an attempt that is no longer the current one)."""
        event = EVENT_OF[report.outcome]
        provider = self.provider
        now = self._clock.now()
        async with self._db.read() as session:
            payout = await session.get(Payout, payout_id)
            if payout is None:
                return None
            current, status = payout.attempt, payout.status
        if attempt_no != current:
            if report.outcome in ("completed", "accepted"):
                # An attempt we took as definitely failed is said to have gone through: a person must look.
                log.error("payout %s: attempt %s reported %s while attempt %s is current", payout_id, attempt_no,
                          report.outcome, current)
                async with self._db.write() as session:
                    row = await session.get_one(Payout, payout_id)
                    await self._tell_admins(session, row, "admin_payout_stale_attempt", now, attempt=attempt_no)
                self._on_notice()
            return None
        if (event is PayoutEvent.FAILED and status == PayoutStatus.COMPLETED and provider is not None
                and provider.failure_after_success_reverses):
            event = PayoutEvent.REVERSED
        async with self._db.write() as session:
            await session.execute(update(PayoutAttempt).where(
                PayoutAttempt.payout_id == payout_id, PayoutAttempt.number == attempt_no,
                PayoutAttempt.outcome.not_in(["completed", "failed"]))
                .values(outcome=report.outcome if report.outcome != "cancelled" else "failed",
                        provider_ref=report.provider_ref or PayoutAttempt.provider_ref,
                        detail=(report.code or report.detail or None) and (report.code or report.detail)[:200],
                        updated_at=now))
        return await self._move(payout_id, attempt_no, event, detail=report.code or report.detail or None,
                                provider_ref=report.provider_ref)

    async def _move(self, payout_id: int, attempt_no: int, event: PayoutEvent, *, detail: str | None = None,
                    provider_ref: str | None = None, admin_id: int | None = None) -> str | None:
        """The state machine's move as a conditional UPDATE, with its money and notices in the same transaction."""
        now = self._clock.now()
        async with self._db.write() as session:
            payout = await session.get_one(Payout, payout_id)
            target = step(payout.status, event)
            if target is None or payout.attempt != attempt_no:
                return None
            hold = _hold(payout)
            known = await ledger.accounts(session, [hold, ledger.earnings(payout.user_id)], now)
            values: dict[str, Any] = {"status": target, "updated_at": now}
            if detail:
                values["failure"] = detail[:200]
            if provider_ref:
                values["provider_ref"] = provider_ref[:64]
            if admin_id is not None:
                values["decided_by"] = admin_id
            if target in FINAL:
                values["next_check_at"] = None
            if target == PayoutStatus.COMPLETED:
                values["completed_at"] = now
            if target == PayoutStatus.WAITING_FUNDS:
                values["next_check_at"] = now + self._check_every
            won = rows_changed(await session.execute(update(Payout).where(
                Payout.id == payout.id, Payout.status.in_(sources(event)), Payout.attempt == attempt_no)
                .values(**values)))
            if not won:
                return None
            await self._money(session, payout, target, known, now)
            template = "payout_approved" if event is PayoutEvent.APPROVE else NOTICE_OF.get(target)
            params: dict[str, Any] = {"amount": payout.amount, "fee": payout.fee, "bank": BY_WORD[payout.bank].label,
                                      "number": masked(payout.number), "payout": payout.id,
                                      "reason": (detail or "-")[:REASON_LENGTH]}
            if template:
                # A provider's failure code (INVALID_DESTINATION, 002, -510…) is for admins; the person reads why in
                # their own language. An admin's reason (a rejection) is meant for them and stays as written.
                reason_key = "payout_reason_admin" if admin_id is not None else REASON_OF.get(
                    PayoutStatus(target), "payout_reason_none")
                told = {k: v for k, v in params.items() if k != "reason" or admin_id is not None}
                told["reason_key"] = reason_key
                await notify_user(session, payout.user_id, template, told, now,
                                  dedupe_key=f"payout:{payout.id}:{target}:{payout.attempt}")
            if target in ADMIN_NOTICE_OF:
                user = await session.get_one(User, payout.user_id)
                await self._tell_admins(session, payout, ADMIN_NOTICE_OF[target], now, user=_who(user),
                                        reason=(detail or "-")[:REASON_LENGTH])
        self._on_notice()
        return target

    async def _money(self, session: AsyncSession, payout: Payout, target: str,
                     known: dict[ledger.Ref, ledger.AccountRow], now: datetime) -> None:
        hold, earned = _hold(payout), ledger.earnings(payout.user_id)
        provider = ledger.provider(payout.provider)
        if target in POSTS_HOLD or target in VOIDS_HOLD:
            resolved = HoldStatus.POSTED if target in POSTS_HOLD else HoldStatus.VOIDED
            # The hold is resolved once, whoever asks: a conditional update on its status.
            if not rows_changed(await session.execute(update(Account).where(
                    Account.id == known[hold].id, Account.status == HoldStatus.PENDING.value)
                    .values(status=resolved.value))):
                log.error("payout %s: its hold was resolved before; no money moved now", payout.id)
                return
            if resolved is HoldStatus.POSTED:
                await ledger.post(session, [
                    ledger.Move(f"payout:{payout.id}:send", hold, provider, payout.amount, "payout"),
                    ledger.Move(f"payout:{payout.id}:fee", hold, ledger.REVENUE, payout.fee, "payout-fee")], now, known)
            else:
                await ledger.post(session, [ledger.Move(f"payout:{payout.id}:void", hold, earned,
                                                        payout.amount + payout.fee, "payout-void")], now, known)
        elif target == PayoutStatus.REVERSED:
            await ledger.post(session, [
                ledger.Move(f"payout:{payout.id}:reverse", provider, earned, payout.amount, "payout-reverse"),
                ledger.Move(f"payout:{payout.id}:fee-back", ledger.REVENUE, earned, payout.fee, "payout-fee-back")],
                now)

    async def _tell_admins(self, session: AsyncSession, payout: Payout, template: str, now: datetime,
                           **extra: Any) -> None:
        params = {"payout": payout.id, "amount": payout.amount, "bank": BY_WORD[payout.bank].label,
                  "number": masked(payout.number), "provider": payout.provider, **extra}
        await queue_notices(session, [
            notice_row(channel=c, chat_id=i, language="id", template=template, params=params, now=now,
                       dedupe_key=f"payout:{payout.id}:{template}:{payout.attempt}:admin:{c}:{i}")
            for c, i in self._admins])

    # --- admins (ADMIN PENARIKAN) -----------------------------------------------------------------------

    async def needing_admin(self) -> list[PayoutView]:
        async with self._db.read() as session:
            rows = (await session.execute(select(Payout, User).join(User, User.id == Payout.user_id)
                                          .where(Payout.status.in_(NEEDS_ADMIN)).order_by(Payout.id)
                                          .limit(20))).all()
            return [_view(p, _who(u)) for p, u in rows]

    async def count_needing_admin(self) -> int:
        async with self._db.read() as session:
            return int(await session.scalar(select(func.count()).select_from(Payout)
                                            .where(Payout.status.in_(NEEDS_ADMIN))) or 0)

    async def decide(self, admin_id: int, payout_id: int, decision: str, reason: str) -> str:
        """An admin's decision: `setuju` / `tolak` for one awaiting approval; `berhasil` / `gagal` for one in
        `unknown` (after checking the provider's dashboard); `saldo` (the provider's balance was topped up: every
        payout waiting for funds gets a new attempt). Recorded with its reason; returns the new status."""
        reason = clean_text(reason, REASON_LENGTH)
        if decision in ("tolak", "gagal", "berhasil") and not reason:
            raise UserInputError("admin_reason_required")
        async with self._db.read() as session:
            payout = await session.get(Payout, payout_id)
        if payout is None:
            raise UserInputError("payout_not_found", payout=payout_id)
        events = {("setuju", PayoutStatus.AWAITING_APPROVAL): PayoutEvent.APPROVE,
                  ("tolak", PayoutStatus.AWAITING_APPROVAL): PayoutEvent.REJECT,
                  ("berhasil", PayoutStatus.UNKNOWN): PayoutEvent.COMPLETED,
                  ("gagal", PayoutStatus.UNKNOWN): PayoutEvent.FAILED,
                  ("saldo", PayoutStatus.WAITING_FUNDS): PayoutEvent.RETRY}
        event = events.get((decision, PayoutStatus(payout.status)))
        if event is None:
            raise UserInputError("payout_wrong_state", payout=payout_id, payout_state=payout.status)
        target = await self._move(payout.id, payout.attempt, event, admin_id=admin_id,
                                  detail=reason if event is not PayoutEvent.APPROVE else None)
        if target is None:
            raise UserInputError("payout_wrong_state", payout=payout_id, payout_state=payout.status)
        async with self._db.write() as session:
            session.add(AdminAction(admin_id=admin_id, action=f"payout-{decision}", target=f"payout:{payout_id}",
                                    amount=payout.amount, reason=reason or "-", created_at=self._clock.now()))
            if target == PayoutStatus.REQUESTED:
                await session.execute(update(Payout).where(Payout.id == payout_id).values(next_check_at=None))
        return target

    async def funds_added(self, admin_id: int) -> int:
        """The provider's balance was topped up: every payout waiting for funds gets its new attempt now."""
        async with self._db.read() as session:
            ids = list((await session.scalars(select(Payout.id).where(
                Payout.status == PayoutStatus.WAITING_FUNDS))).all())
        for payout_id in ids:
            await self.decide(admin_id, payout_id, "saldo", "saldo provider diisi")
        return len(ids)


async def _current_account(session: AsyncSession, user_id: int) -> PayoutAccount | None:
    return await session.scalar(select(PayoutAccount).where(
        PayoutAccount.user_id == user_id, PayoutAccount.confirmed_at.is_not(None),
        PayoutAccount.replaced_at.is_(None)).order_by(PayoutAccount.id.desc()).limit(1))


async def _find(session: AsyncSession, provider: str, report: PayoutReport) -> tuple[int, int] | None:
    """The payout and attempt a provider's report is about: by our key where the provider echoes it, else by
    the provider's own reference."""
    parsed = parse_key(report.key)
    if parsed is not None:
        exists = await session.scalar(select(PayoutAttempt.id).where(
            PayoutAttempt.payout_id == parsed[0], PayoutAttempt.number == parsed[1],
            PayoutAttempt.provider == provider))
        return parsed if exists is not None else None
    if not report.provider_ref:
        return None
    row = (await session.execute(select(PayoutAttempt.payout_id, PayoutAttempt.number).where(
        PayoutAttempt.provider == provider, PayoutAttempt.provider_ref == report.provider_ref)
        .order_by(PayoutAttempt.id.desc()).limit(1))).first()
    return (row[0], row[1]) if row else None


def _who(user: User) -> str:
    tag = f"tg:{user.external_id}" if user.channel == "telegram" else (
        f"wa:{user.external_id}" if user.channel == "whatsapp" else f"{user.channel}:{user.id}")
    return f"{user.display_name or '-'} ({tag})"


def _wib(moment: datetime) -> str:
    return moment.astimezone(WIB).strftime("%d-%m-%Y %H:%M WIB")
