"""What a gateway's word does to a payment: the state machine, the exactly-once credit, reversals.

    created -> pending -> paid | failed | expired        paid -> reversed | refunded
    (any unpaid state) -> held   when the notified amount differs from ours (never credited, admins told)

Every transition is a conditional UPDATE guarded by the states it may leave, and each gateway event is
stored once under (gateway, event_key) before any work, so duplicates, late and out-of-order deliveries,
and callbacks racing the reconciler are no-ops by construction. A credit is one transaction: the payment
flips to paid with `credited_at IS NULL` as its guard, the ledger entry `topup:<id>` is appended, the
balance moves, and the user's notice is queued in the outbox.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.batcher import WriteBatcher
from services.clock import Clock
from services.outbox import enqueue
from services.payments import CallbackAnswer, Notification, PaymentGateway
from services.wallet import post_entry
from storage.models import GatewayEvent, Payment, User
from storage.queries import insert_ignore

log = logging.getLogger(__name__)

UNPAID = ("created", "pending", "failed", "expired")
CREDITABLE = (*UNPAID, "paid")  # "paid" but not credited: only reachable through an interrupted older version


@dataclass(frozen=True)
class Outcome:
    """What happened: credited, duplicate, unknown_order, held, failed, expired, pending, reversed,
    refunded, no_change, gateway_mismatch."""

    result: str
    order_id: str
    payment_id: int | None = None
    user_id: int | None = None


@dataclass(frozen=True)
class CallbackReply:
    outcome: Outcome
    answer: CallbackAnswer


class Settlement:
    def __init__(
        self,
        gateways: Mapping[str, PaymentGateway],
        batcher: WriteBatcher,
        clock: Clock,
        *,
        admins: list[tuple[str, str]],
        on_notice: Callable[[], None] = lambda: None,
    ) -> None:
        self._gateways = gateways
        self._batcher = batcher
        self._clock = clock
        self._admins = admins
        self._on_notice = on_notice

    def gateway(self, name: str) -> PaymentGateway | None:
        return self._gateways.get(name)

    async def receive_callback(self, gateway_name: str, raw_body: bytes, headers: Mapping[str, str]) -> CallbackReply:
        """Verify, parse and apply one callback; returns only after the resulting state is committed.

        Raises BadSignature / MalformedCallback (nothing changed) or StorageUnavailable.
        """
        gateway = self._gateways[gateway_name]
        notification = gateway.parse_callback(raw_body, headers)
        outcome = await self.apply(notification, source="callback")
        return CallbackReply(outcome, gateway.callback_answer)

    async def apply(self, notification: Notification, *, source: str) -> Outcome:
        """Apply a verified notification durably (batched with concurrent ones into one commit)."""
        outcome = await self._batcher.run(lambda session: self._apply(session, notification, source))
        level = logging.WARNING if outcome.result in ("held", "unknown_order", "gateway_mismatch") else logging.INFO
        log.log(
            level,
            "payment event %s %s order=%s status=%s -> %s",
            notification.gateway,
            source,
            notification.order_id,
            notification.raw_status,
            outcome.result,
        )
        if outcome.result in ("credited", "held", "failed", "expired", "reversed", "refunded"):
            self._on_notice()
        return outcome

    async def expire_stale(self, payment_id: int, order_id: str) -> Outcome:
        """The gateway never heard of this attempt and the grace window is over: expire it locally."""
        local = Notification(
            gateway="local", order_id=order_id, event_key=f"local-expire:{payment_id}", status="expired",
            raw_status="local_expire", amount=None,
        )
        outcome = await self._batcher.run(lambda session: self._apply(session, local, "reconcile", any_gateway=True))
        if outcome.result == "expired":
            self._on_notice()
        return outcome

    async def _apply(
        self, session: AsyncSession, n: Notification, source: str, any_gateway: bool = False
    ) -> Outcome:
        now = self._clock.now()
        event = await session.execute(
            insert_ignore(
                session,
                GatewayEvent.__table__,
                {
                    "gateway": n.gateway,
                    "event_key": n.event_key,
                    "order_id": n.order_id[:100],
                    "status": n.raw_status[:32],
                    "source": source,
                    "outcome": "received",
                    "payload": n.payload,
                    "received_at": now,
                },
                ["gateway", "event_key"],
            )
        )
        event_id = event.scalar_one_or_none()
        if event_id is None:
            return Outcome("duplicate", n.order_id)
        outcome = await self._transition(session, n, now, any_gateway)
        await session.execute(update(GatewayEvent).where(GatewayEvent.id == event_id).values(outcome=outcome.result))
        return outcome

    async def _transition(self, session: AsyncSession, n: Notification, now: datetime, any_gateway: bool) -> Outcome:
        payment = (
            await session.execute(select(Payment)
                .where(Payment.order_id == n.order_id)
                .with_for_update()
                # Earlier items of the same batch may have changed this row: never trust the identity map.
                .execution_options(populate_existing=True)
            )
        ).scalar_one_or_none()
        if payment is None:
            return Outcome("unknown_order", n.order_id)
        if not any_gateway and payment.gateway != n.gateway:
            return Outcome("gateway_mismatch", n.order_id, payment.id, payment.user_id)
        user = await session.get_one(User, payment.user_id, populate_existing=True)

        def outcome(result: str) -> Outcome:
            return Outcome(result, n.order_id, payment.id, payment.user_id)

        async def move(to: str, allowed: tuple[str, ...], **values: object) -> bool:
            result = await session.execute(
                update(Payment)
                .where(Payment.id == payment.id, Payment.status.in_(allowed))
                .values(status=to, updated_at=now, **values)
            )
            return result.rowcount == 1

        async def notify(template: str, key: str, **params: object) -> None:
            await enqueue(
                session, channel=user.channel, chat_id=user.external_id, language=user.language,
                template=template, params={"order_id": n.order_id, **params}, now=now,
                dedupe_key=f"{key}:{payment.id}",
            )

        if n.status == "paid":
            if payment.credited_at is not None or payment.status not in CREDITABLE:
                return outcome("no_change")
            if n.amount != payment.amount:
                reason = f"amount mismatch: gateway says {n.amount}, we asked {payment.amount}"
                if not await move("held", UNPAID, flag_reason=reason, gateway_ref=n.gateway_ref or payment.gateway_ref):
                    return outcome("no_change")
                await notify("payment_held", "held", amount=payment.amount)
                await self._alert_admins(session, now, payment, reason)
                return outcome("held")
            flipped = await session.execute(
                update(Payment)
                .where(Payment.id == payment.id, Payment.status.in_(CREDITABLE), Payment.credited_at.is_(None))
                .values(status="paid", paid_at=now, credited_at=now, updated_at=now,
                        gateway_ref=n.gateway_ref or payment.gateway_ref)
            )
            if flipped.rowcount != 1:
                return outcome("no_change")
            balance = await post_entry(
                session, user_id=user.id, amount=payment.amount, kind="topup",
                reference=f"topup:{payment.id}", now=now,
            )
            await notify("payment_credited", "credited", amount=payment.amount, balance=balance)
            return outcome("credited")

        if n.status == "pending":
            return outcome("pending" if await move("pending", ("created",)) else "no_change")

        if n.status == "hold":
            await move("pending", ("created",))
            log.warning("payment %s is held by the gateway's fraud check (%s)", n.order_id, n.raw_status)
            return outcome("no_change")

        if n.status in ("failed", "expired"):
            if payment.status == "paid" and n.status == "failed":
                return await self._debit_back(session, payment, user, now, "reversed", payment.amount, notify, outcome)
            if await move(n.status, ("created", "pending")):
                await notify(f"payment_{n.status}", n.status, amount=payment.amount)
                return outcome(n.status)
            return outcome("no_change")

        if n.status == "refunded":
            if payment.status != "paid":
                if payment.status == "refunded":
                    await self._alert_admins(session, now, payment, f"another refund notification ({n.raw_status})")
                return outcome("no_change")
            amount = min(n.refund_amount or payment.amount, payment.amount)
            return await self._debit_back(session, payment, user, now, "refunded", amount, notify, outcome)

        return outcome("no_change")

    async def _debit_back(self, session, payment, user, now, to_status, amount, notify, outcome) -> Outcome:
        """Money we credited went back to the payer: debit it, never below zero; a shortfall goes to admins."""
        moved = await session.execute(
            update(Payment)
            .where(Payment.id == payment.id, Payment.status == "paid")
            .values(status=to_status, updated_at=now)
        )
        if moved.rowcount != 1:
            return outcome("no_change")
        available = min(amount, user.balance)
        balance = user.balance
        if available > 0:
            kind = "reversal" if to_status == "reversed" else "refund"
            balance = await post_entry(
                session, user_id=user.id, amount=-available, kind=kind, reference=f"{kind}:{payment.id}", now=now
            )
        if available < amount:
            reason = f"{to_status}: could debit only {available} of {amount}; {amount - available} outstanding"
            await session.execute(update(Payment).where(Payment.id == payment.id).values(flag_reason=reason))
            await self._alert_admins(session, now, payment, reason)
        await notify(f"payment_{to_status}", to_status, amount=available, balance=balance)
        return outcome(to_status)

    async def _alert_admins(self, session: AsyncSession, now: datetime, payment: Payment, reason: str) -> None:
        for channel, chat_id in self._admins:
            await enqueue(
                session, channel=channel, chat_id=chat_id, language="id", template="admin_payment_flagged",
                params={"order_id": payment.order_id, "amount": payment.amount, "reason": reason},
                now=now, dedupe_key=f"admin:{payment.id}:{channel}:{chat_id}:{reason[:40]}",
            )
