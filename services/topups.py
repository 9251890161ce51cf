"""Starting a top-up (with failover across gateways), re-checking one, and amount rules.

Limits that keep one user from costing everyone: a request for the same amount as an unexpired pending
top-up returns that one instead of creating another; at most `max_pending` unfinished top-ups per user (the
user's row is locked while counting, so concurrent requests cannot all slip through); `/cek` asks a gateway
about one payment at most once per `check_cooldown_s`, whoever asks.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import ledger
from services.clock import Clock
from services.errors import AllGatewaysFailed, AmountError, GatewayError, UserInputError
from services.kinds import PaymentPurpose
from services.payments import PaymentGateway, PaymentRequest
from services.settlement import Settlement
from storage.db import Database
from storage.models import Payment, User

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopupLink:
    order_id: str
    amount: int
    gateway: str
    payment_url: str
    qr_string: str | None
    expires_at: datetime | None
    reused: bool = False  # an unexpired pending top-up of the same amount, returned again


@dataclass(frozen=True)
class PaymentView:
    order_id: str
    amount: int
    gateway: str
    status: str
    created_at: datetime
    payment_url: str | None = None
    expires_at: datetime | None = None
    language: str = "id"  # the payer's: the checkout page speaks it


@dataclass(frozen=True)
class AmountRules:
    min_topup: int
    max_topup: int
    presets: tuple[int, ...]

    def check(self, amount: int) -> int:
        if amount < self.min_topup:
            raise AmountError("amount_too_small", minimum=self.min_topup)
        if amount > self.max_topup:
            raise AmountError("amount_too_large", maximum=self.max_topup)
        return amount


def new_order_id(now: datetime) -> str:
    """Unique per attempt, ≤ 50 chars of [A-Za-z0-9-] (Midtrans rejects a reused order id with 406)."""
    return f"TT{now:%y%m%d%H%M%S}-{secrets.token_hex(5).upper()}"


class Topups:
    def __init__(
        self,
        db: Database,
        gateways: Sequence[PaymentGateway],
        settlement: Settlement,
        clock: Clock,
        *,
        rules: AmountRules,
        public_url: str,
        expiry_minutes: int = 60,
        create_timeout_s: float = 15.0,
        status_timeout_s: float = 10.0,
        max_pending: int = 3,
        check_cooldown_s: float = 30.0,
        max_balance_unverified: int | None = None,
    ) -> None:
        self._cap = max_balance_unverified
        self._max_pending = max_pending
        self._cooldown = timedelta(seconds=check_cooldown_s)
        self._db = db
        self._gateways = list(gateways)
        self._settlement = settlement
        self._clock = clock
        self.rules = rules
        self._public_url = public_url.rstrip("/")
        self._expiry = expiry_minutes
        self._create_timeout = create_timeout_s
        self._status_timeout = status_timeout_s

    async def start(self, *, user_id: int, customer_name: str, amount: int,
                    for_order: tuple[int, str, datetime] | None = None) -> TopupLink:
        """A payment link from the first configured gateway that works; each attempt has its own order id.

        A failed attempt is recorded as `failed` (never left half-created) and the next gateway is tried.
        An unexpired pending top-up of the same amount is returned instead of a new one.

        `for_order` = (jastip order id, its code, when it expires): a payment with purpose "order" for that order's
        total, expiring no later than the order; its money goes through the wallet into the order's escrow when it
        is paid (services/settlement.py). The order's own pending link is returned again instead of a new one.
        """
        if for_order is None:
            self.rules.check(amount)
        failures: list[str] = []
        for attempt, gateway in enumerate(self._gateways):
            now = self._clock.now()
            order_id = new_order_id(now)
            async with self._db.write() as session:
                # The wallet's account is locked first (accounts, then payments): concurrent requests of one
                # person count their pending top-ups one after the other.
                target = ledger.wallet(user_id)
                account = (await ledger.accounts(session, [target], now))[target]
                expires = now + timedelta(minutes=self._expiry)
                if for_order is not None:
                    expires = min(expires, for_order[2])
                    if expires <= now:
                        raise UserInputError("order_wrong_state", order=for_order[1], order_state="expired")
                if attempt == 0:
                    reused = await self._reusable(session, user_id, amount, now,
                                                  jastip_order=for_order[0] if for_order else None)
                    if reused is not None:
                        return reused
                    if for_order is None:
                        await self._within_cap(session, user_id, account.balance, amount)
                payment = Payment(
                    order_id=order_id, user_id=user_id, gateway=gateway.name, amount=amount, status="created",
                    purpose=(PaymentPurpose.ORDER if for_order else PaymentPurpose.TOPUP).value,
                    account_id=account.id, jastip_order_id=for_order[0] if for_order else None,
                    created_at=now, updated_at=now, expires_at=expires,
                )
                session.add(payment)
            request = PaymentRequest(
                order_id=order_id,
                amount=amount,
                description=f"Pesanan {for_order[1]} (Titip)" if for_order else "Top up saldo Titip",
                customer_name=customer_name,
                notify_url=f"{self._public_url}/payments/{gateway.name}/notify",
                return_url=f"{self._public_url}/pay/done",
                expiry_minutes=max(1, int((expires - now).total_seconds() // 60)),
            )
            try:
                created = await asyncio.wait_for(gateway.create(request), timeout=self._create_timeout)
            except (GatewayError, TimeoutError) as exc:
                reason = str(exc) or f"{gateway.name}: timed out"
                failures.append(reason)
                log.warning("top-up %s: gateway %s failed (%s); trying the next one", order_id, gateway.name, reason)
                await self._mark(order_id, ("created",), status="failed", flag_reason=f"create failed: {reason}")
                continue
            await self._mark(
                order_id, ("created",), status="pending", payment_url=created.payment_url,
                gateway_ref=created.gateway_ref, qr_string=created.qr_string,
                **({"expires_at": created.expires_at} if created.expires_at else {}),
            )
            if failures:
                log.warning("top-up %s: created on %s after failover", order_id, gateway.name)
            return TopupLink(order_id, amount, gateway.name, created.payment_url, created.qr_string,
                             created.expires_at or expires)
        raise AllGatewaysFailed(failures)

    async def _within_cap(self, session: AsyncSession, user_id: int, wallet_balance: int, amount: int) -> None:
        """Stored value without identity is what payment regulation limits: an unverified person's wallet may
        not grow beyond the cap (unpaid top-ups count too, they may all be paid)."""
        if self._cap is None:
            return
        verified = await session.scalar(select(User.verified_at).where(User.id == user_id))
        if verified is not None:
            return
        waiting = await session.scalar(select(func.coalesce(func.sum(Payment.amount), 0)).where(
            Payment.user_id == user_id, Payment.purpose == PaymentPurpose.TOPUP.value,
            Payment.status.in_(("created", "pending"))))
        if wallet_balance + int(waiting or 0) + amount > self._cap:
            room = max(0, self._cap - wallet_balance - int(waiting or 0))
            raise UserInputError("topup_over_cap", maximum=self._cap, room=room)

    async def _reusable(self, session: AsyncSession, user_id: int, amount: int, now: datetime, *,
                        jastip_order: int | None = None) -> TopupLink | None:
        """The user's pending top-up of this amount that is still payable for a while, or None; refuses a new
        one beyond `max_pending` unfinished ones. Runs with the wallet's account locked (PostgreSQL), so that
        concurrent requests count one after the other (SQLite's write transaction is exclusive anyway)."""
        unfinished = Payment.status.in_(("created", "pending"))
        live = or_(Payment.expires_at.is_(None), Payment.expires_at > now)
        same = (await session.scalars(
            select(Payment).where(Payment.user_id == user_id, Payment.amount == amount, Payment.status == "pending",
                                  Payment.payment_url.is_not(None),
                                  # a top-up reuses a top-up's link, an order payment its own order's
                                  (Payment.jastip_order_id == jastip_order) if jastip_order is not None
                                  else Payment.jastip_order_id.is_(None),
                                  or_(Payment.expires_at.is_(None), Payment.expires_at > now + timedelta(minutes=5)))
            .order_by(Payment.id.desc()).limit(1))).first()
        if same is not None:
            return TopupLink(same.order_id, same.amount, same.gateway, same.payment_url or "", same.qr_string,
                             same.expires_at, reused=True)
        count = await session.scalar(select(func.count()).select_from(Payment).where(
            Payment.user_id == user_id, unfinished, live))
        if (count or 0) >= self._max_pending:
            raise UserInputError("topup_too_many_pending", count=int(count or 0), most=self._max_pending)
        return None

    async def _mark(self, order_id: str, allowed: tuple[str, ...], **values: object) -> None:
        async with self._db.write() as session:
            await session.execute(
                update(Payment)
                .where(Payment.order_id == order_id, Payment.status.in_(allowed))
                .values(updated_at=self._clock.now(), **values)
            )

    async def describe(self, order_id: str) -> PaymentView | None:
        async with self._db.read() as session:
            row = (await session.execute(select(Payment, User.language).outerjoin(User, User.id == Payment.user_id)
                                         .where(Payment.order_id == order_id))).first()
            if row is None:
                return None
            return replace(_view(row[0]), language=row[1] or "id")

    async def check_now(self, user_id: int) -> list[PaymentView]:
        """/cek: ask the gateway about my unfinished payments now and apply what it says. Each payment is
        asked about at most once per cooldown, however often /cek is sent (by anyone)."""
        now = self._clock.now()
        async with self._db.write() as session:
            rows = (
                await session.scalars(
                    select(Payment)
                    .where(Payment.user_id == user_id, Payment.status.in_(("created", "pending")))
                    .order_by(Payment.id.desc())
                    .limit(max(3, self._max_pending))
                )
            ).all()
            shown = [p.order_id for p in rows]
            due = [p for p in rows if p.checked_at is None or p.checked_at <= now - self._cooldown]
            claimed: set[int] = set()
            if due:
                # The conditional UPDATE decides who asks: a concurrent /cek finds the stamp fresh and skips.
                table = Payment.__table__
                claimed = set((await session.execute(update(table).where(
                    table.c.id.in_([p.id for p in due]),
                    or_(table.c.checked_at.is_(None), table.c.checked_at <= now - self._cooldown),
                ).values(checked_at=now).returning(table.c.id))).scalars())
            targets = [(p.order_id, p.gateway, p.gateway_ref) for p in due if p.id in claimed]
        for order_id, gateway_name, gateway_ref in targets:
            gateway = self._settlement.gateway(gateway_name)
            if gateway is None:
                continue
            try:
                notification = await asyncio.wait_for(
                    gateway.fetch_status(order_id, gateway_ref), timeout=self._status_timeout
                )
            except (GatewayError, TimeoutError) as exc:
                log.warning("/cek %s: status check failed: %s", order_id, exc or "timeout")
                continue
            if notification is not None:
                await self._settlement.apply(notification, source="check")
        views = [await self.describe(order_id) for order_id in shown]
        return [v for v in views if v is not None]


def _view(p: Payment) -> PaymentView:
    return PaymentView(p.order_id, p.amount, p.gateway, p.status, p.created_at, p.payment_url, p.expires_at)
