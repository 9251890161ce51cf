"""Starting a top-up (with failover across gateways), re-checking one, and amount rules."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from services.clock import Clock
from services.errors import AllGatewaysFailed, AmountError, GatewayError
from services.payments import PaymentGateway, PaymentRequest
from services.settlement import Settlement
from storage.db import Database
from storage.models import Payment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopupLink:
    order_id: str
    amount: int
    gateway: str
    payment_url: str
    qr_string: str | None
    expires_at: datetime | None


@dataclass(frozen=True)
class PaymentView:
    order_id: str
    amount: int
    gateway: str
    status: str
    created_at: datetime


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
    ) -> None:
        self._db = db
        self._gateways = list(gateways)
        self._settlement = settlement
        self._clock = clock
        self.rules = rules
        self._public_url = public_url.rstrip("/")
        self._expiry = expiry_minutes
        self._create_timeout = create_timeout_s
        self._status_timeout = status_timeout_s

    async def start(self, *, user_id: int, customer_name: str, amount: int) -> TopupLink:
        """A payment link from the first configured gateway that works; each attempt has its own order id.

        A failed attempt is recorded as `failed` (never left half-created) and the next gateway is tried.
        """
        self.rules.check(amount)
        failures: list[str] = []
        for gateway in self._gateways:
            now = self._clock.now()
            order_id = new_order_id(now)
            async with self._db.write() as session:
                payment = Payment(
                    order_id=order_id, user_id=user_id, gateway=gateway.name, amount=amount, status="created",
                    created_at=now, updated_at=now, expires_at=now + timedelta(minutes=self._expiry),
                )
                session.add(payment)
            request = PaymentRequest(
                order_id=order_id,
                amount=amount,
                description="Top up saldo Titip",
                customer_name=customer_name,
                notify_url=f"{self._public_url}/payments/{gateway.name}/notify",
                return_url=f"{self._public_url}/pay/done",
                expiry_minutes=self._expiry,
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
                             created.expires_at or now + timedelta(minutes=self._expiry))
        raise AllGatewaysFailed(failures)

    async def _mark(self, order_id: str, allowed: tuple[str, ...], **values: object) -> None:
        async with self._db.write() as session:
            await session.execute(
                update(Payment)
                .where(Payment.order_id == order_id, Payment.status.in_(allowed))
                .values(updated_at=self._clock.now(), **values)
            )

    async def describe(self, order_id: str) -> PaymentView | None:
        async with self._db.read() as session:
            p = (await session.execute(select(Payment).where(Payment.order_id == order_id))).scalar_one_or_none()
            return None if p is None else PaymentView(p.order_id, p.amount, p.gateway, p.status, p.created_at)

    async def recent(self, user_id: int, limit: int = 3) -> list[PaymentView]:
        async with self._db.read() as session:
            rows = await session.scalars(
                select(Payment)
                .where(Payment.user_id == user_id, Payment.status != "failed")
                .order_by(Payment.id.desc())
                .limit(limit)
            )
            return [PaymentView(p.order_id, p.amount, p.gateway, p.status, p.created_at) for p in rows]

    async def check_now(self, user_id: int) -> list[PaymentView]:
        """/cek: ask the gateway about my unfinished payments now and apply what it says."""
        async with self._db.read() as session:
            rows = (
                await session.scalars(
                    select(Payment)
                    .where(Payment.user_id == user_id, Payment.status.in_(("created", "pending")))
                    .order_by(Payment.id.desc())
                    .limit(3)
                )
            ).all()
            targets = [(p.order_id, p.gateway, p.gateway_ref) for p in rows]
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
        views = [await self.describe(order_id) for order_id, _, _ in targets]
        return [v for v in views if v is not None]
