"""What a gateway's word does to a payment: the state machine, the exactly-once credit, reversals.

    created -> pending -> paid | failed | expired        paid -> reversed | refunded
    (any unpaid state) -> held   when the notified amount differs from ours (never credited, admins told)

Notifications are applied in batches (see services/batcher.py), each batch in one transaction:

1. events already stored under (gateway, event_key), or repeated within the batch, are duplicates: no work;
2. the batch's payments and their users are read once, locked (FOR UPDATE on PostgreSQL; SQLite's write
   transaction is exclusive), and the state machine runs on them in memory, in arrival order, so a
   later item sees an earlier one's effect;
3. the results are written with a few set-based statements: payment rows, balance deltas, ledger entries
   (unique reference `topup:<payment id>`: a second credit is impossible whatever the code does), outbox
   notices (unique dedupe key), and the events themselves (unique key: a concurrent process that applied
   the same event makes this batch fail and retry, and then see it as a duplicate).

State only moves forward: a late `pending` or `expire` after `settlement` finds nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.batcher import WriteBatcher
from services.clock import Clock
from services.errors import BadSignature
from services.payments import CallbackAnswer, Notification, PaymentGateway
from storage.db import Database
from storage.models import GatewayEvent, LedgerEntry, OutboxMessage, Payment, User
from storage.queries import dialect_of, insert_or_skip

log = logging.getLogger(__name__)

UNPAID = ("created", "pending", "failed", "expired")
CREDITABLE = (*UNPAID, "paid")  # "paid" without credited_at: only after an interrupted older version
NOTIFYING = {"credited", "held", "failed", "expired", "reversed", "refunded"}


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


@dataclass(frozen=True)
class _Item:
    notification: Notification
    source: str
    any_gateway: bool = False  # a local decision (expiry) rather than a gateway's word


@dataclass
class _PaymentRow:
    id: int
    order_id: str
    user_id: int
    gateway: str
    amount: int
    status: str
    gateway_ref: str | None
    flag_reason: str | None
    paid_at: datetime | None
    credited_at: datetime | None
    original_status: str
    dirty: bool = False


@dataclass
class _UserRow:
    id: int
    channel: str
    external_id: str
    language: str
    balance: int
    delta: int = 0


@dataclass
class _Writes:
    now: datetime
    ledger: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def notice(self, user: _UserRow, template: str, dedupe_key: str, params: dict[str, Any]) -> None:
        self.outbox.append(self._outbox_row(user.channel, user.external_id, user.language, template, params,
                                            dedupe_key))

    def alert(self, admins: list[tuple[str, str]], payment: _PaymentRow, reason: str) -> None:
        for channel, chat_id in admins:
            self.outbox.append(self._outbox_row(
                channel, chat_id, "id", "admin_payment_flagged",
                {"order_id": payment.order_id, "amount": payment.amount, "reason": reason},
                f"admin:{payment.id}:{channel}:{chat_id}:{reason[:40]}",
            ))

    def _outbox_row(self, channel, chat_id, language, template, params, dedupe_key) -> dict[str, Any]:
        return {"channel": channel, "chat_id": chat_id, "language": language, "template": template,
                "params": params, "dedupe_key": dedupe_key, "status": "pending", "attempts": 0,
                "next_attempt_at": self.now, "created_at": self.now}

    def entry(self, user: _UserRow, amount: int, kind: str, reference: str) -> None:
        user.balance += amount
        user.delta += amount
        self.ledger.append({"user_id": user.id, "amount": amount, "balance_after": user.balance, "kind": kind,
                            "reference": reference, "created_at": self.now})


class Settlement:
    def __init__(
        self,
        db: Database,
        gateways: Mapping[str, PaymentGateway],
        clock: Clock,
        *,
        admins: list[tuple[str, str]],
        on_notice: Callable[[], None] = lambda: None,
        max_batch: int = 128,
    ) -> None:
        self._db = db
        self._gateways = gateways
        self._clock = clock
        self._admins = admins
        self._on_notice = on_notice
        self.batcher: WriteBatcher[_Item, Outcome] = WriteBatcher(db, self._apply_batch, max_batch=max_batch)

    def gateway(self, name: str) -> PaymentGateway | None:
        return self._gateways.get(name)

    async def receive_callback(self, gateway_name: str, raw_body: bytes, headers: Mapping[str, str]) -> CallbackReply:
        """Verify, parse and apply one callback; returns only after the resulting state is committed.

        Raises BadSignature / MalformedCallback (nothing changed) or StorageUnavailable.
        """
        gateway = self._gateways[gateway_name]
        notification = gateway.parse_callback(raw_body, headers)
        if gateway.must_confirm(notification):
            await self._confirm(gateway, notification)
        outcome = await self.apply(notification, source="callback")
        return CallbackReply(outcome, gateway.callback_answer)

    async def _confirm(self, gateway: PaymentGateway, notification: Notification) -> None:
        """An outcome the signature does not cover is applied only if the status API agrees. The API
        unreachable -> GatewayUnavailable (503, the gateway retries); a disagreement -> BadSignature (401).
        An unknown order, a repeat, or a late failure after success changes nothing: no need to ask."""
        async with self._db.read() as session:
            local = await session.scalar(select(Payment.status).where(Payment.order_id == notification.order_id,
                                                                      Payment.gateway == gateway.name))
        late_failure = notification.status in ("failed", "expired") and not notification.reverses_success
        harmless = local == "paid" and late_failure
        if local is None or local == notification.status or harmless:  # nothing would change
            return
        confirmed = await gateway.fetch_status(notification.order_id, notification.gateway_ref)
        if confirmed is None or confirmed.status != notification.status:
            said = confirmed.raw_status if confirmed else "no such transaction"
            log.warning("%s callback for %s says %s but the status API says %s: refused", gateway.name,
                        notification.order_id, notification.raw_status, said)
            raise BadSignature(f"{notification.raw_status} not confirmed by the status API ({said})")

    async def apply(self, notification: Notification, *, source: str) -> Outcome:
        """Apply a verified notification durably (batched with concurrent ones into one commit)."""
        return await self._submit(_Item(notification, source))

    async def expire_stale(self, payment_id: int, order_id: str) -> Outcome:
        """The gateway never heard of this attempt and the grace window is over: expire it locally."""
        local = Notification(gateway="local", order_id=order_id, event_key=f"local-expire:{payment_id}",
                             status="expired", raw_status="local_expire", amount=None)
        return await self._submit(_Item(local, "reconcile", any_gateway=True))

    async def _submit(self, item: _Item) -> Outcome:
        outcome = await self.batcher.submit(item)
        n = item.notification
        level = logging.WARNING if outcome.result in ("held", "unknown_order", "gateway_mismatch") else logging.INFO
        log.log(level, "payment event %s %s order=%s status=%s -> %s",
                n.gateway, item.source, n.order_id, n.raw_status, outcome.result)
        if outcome.result in NOTIFYING:
            self._on_notice()
        return outcome

    async def _apply_batch(self, session: AsyncSession, items: Sequence[_Item]) -> list[Outcome]:
        now = self._clock.now()
        # Lock the payments first: once we hold them, every event committed for them is visible below.
        payments, users = await self._load(session, {i.notification.order_id for i in items})
        keys = {(i.notification.gateway, i.notification.event_key) for i in items}
        stored = set(
            (await session.execute(
                select(GatewayEvent.gateway, GatewayEvent.event_key)
                .where(tuple_(GatewayEvent.gateway, GatewayEvent.event_key).in_(list(keys)))
            )).all()
        )
        writes = _Writes(now)
        outcomes: list[Outcome] = []
        seen: set[tuple[str, str]] = set()
        for item in items:
            n = item.notification
            key = (n.gateway, n.event_key)
            if key in stored or key in seen:
                outcomes.append(Outcome("duplicate", n.order_id))
                continue
            seen.add(key)
            payment = payments.get(n.order_id)
            if payment is None:
                outcome = Outcome("unknown_order", n.order_id)
            elif not item.any_gateway and payment.gateway != n.gateway:
                outcome = Outcome("gateway_mismatch", n.order_id, payment.id, payment.user_id)
            else:
                result = self._transition(n, payment, users[payment.user_id], writes)
                outcome = Outcome(result, n.order_id, payment.id, payment.user_id)
            outcomes.append(outcome)
            writes.events.append({"gateway": n.gateway, "event_key": n.event_key, "order_id": n.order_id[:100],
                                  "status": n.raw_status[:32], "source": item.source, "outcome": outcome.result,
                                  "payload": n.payload, "received_at": now})
        await self._write(session, payments, users, writes)
        return outcomes

    async def _load(
        self, session: AsyncSession, order_ids: set[str]
    ) -> tuple[dict[str, _PaymentRow], dict[int, _UserRow]]:
        # One lock order for every writer: the users first, then the payments, each by ascending id. Locking
        # both in one joined statement took user rows in payment order, and two processes settling batches
        # that share users deadlocked (found by tests/test_two_processes.py).
        wanted = list(order_ids)
        if dialect_of(session) != "sqlite":  # SQLite has one writer at a time and no row locks
            await session.execute(
                select(User.id)
                .where(User.id.in_(select(Payment.user_id).where(Payment.order_id.in_(wanted)).scalar_subquery()))
                .order_by(User.id)
                .with_for_update()
            )
        rows = (await session.execute(
            select(Payment.id, Payment.order_id, Payment.user_id, Payment.gateway, Payment.amount, Payment.status,
                   Payment.gateway_ref, Payment.flag_reason, Payment.paid_at, Payment.credited_at,
                   User.channel, User.external_id, User.language, User.balance)
            .join(User, User.id == Payment.user_id)
            .where(Payment.order_id.in_(wanted))
            .order_by(Payment.id)
            .with_for_update(of=Payment.__table__)
        )).all()
        payments: dict[str, _PaymentRow] = {}
        users: dict[int, _UserRow] = {}
        for r in rows:
            payments[r.order_id] = _PaymentRow(r.id, r.order_id, r.user_id, r.gateway, r.amount, r.status,
                                               r.gateway_ref, r.flag_reason, r.paid_at, r.credited_at, r.status)
            users.setdefault(r.user_id, _UserRow(r.user_id, r.channel, r.external_id, r.language, r.balance))
        return payments, users

    def _transition(self, n: Notification, p: _PaymentRow, user: _UserRow, w: _Writes) -> str:
        def move(to: str, **values: Any) -> None:
            p.status, p.dirty = to, True
            for name, value in values.items():
                setattr(p, name, value)

        def notify(template: str, key: str, **params: Any) -> None:
            w.notice(user, template, f"{key}:{p.id}", {"order_id": p.order_id, **params})

        if n.status == "paid":
            if p.credited_at is not None or p.status not in CREDITABLE:
                return "no_change"
            if n.amount != p.amount:
                if p.status not in UNPAID:
                    return "no_change"
                reason = f"amount mismatch: gateway says {n.amount}, we asked {p.amount}"
                move("held", flag_reason=reason, gateway_ref=n.gateway_ref or p.gateway_ref)
                notify("payment_held", "held", amount=p.amount)
                w.alert(self._admins, p, reason)
                return "held"
            move("paid", paid_at=w.now, credited_at=w.now, gateway_ref=n.gateway_ref or p.gateway_ref)
            w.entry(user, p.amount, "topup", f"topup:{p.id}")
            notify("payment_credited", "credited", amount=p.amount, balance=user.balance)
            return "credited"
        if n.status in ("pending", "hold"):
            if n.status == "hold":
                log.warning("payment %s is held by the gateway's fraud check (%s)", n.order_id, n.raw_status)
            if p.status == "created":
                move("pending")
                return "pending"
            return "no_change"
        if n.status in ("failed", "expired"):
            if p.status == "paid" and n.status == "failed" and n.reverses_success:  # Midtrans deny after settlement
                return self._debit_back(p, user, w, "reversed", p.amount, notify, move)
            if p.status in ("created", "pending"):
                move(n.status)
                template = "payment_failed" if n.status == "failed" else "payment_expired"
                notify(template, n.status, amount=p.amount)
                return n.status
            return "no_change"
        if n.status == "refunded":
            if p.status == "paid":
                amount = min(n.refund_amount or p.amount, p.amount)
                return self._debit_back(p, user, w, "refunded", amount, notify, move)
            if p.status == "refunded":
                w.alert(self._admins, p, f"another refund notification ({n.raw_status})")
            return "no_change"
        return "no_change"

    def _debit_back(self, p: _PaymentRow, user: _UserRow, w: _Writes, to: str, amount: int, notify, move) -> str:
        """Money we credited went back to the payer: debit it, never below zero; a shortfall goes to admins."""
        available = min(amount, user.balance)
        move(to)
        if available > 0:
            kind = "reversal" if to == "reversed" else "refund"
            w.entry(user, -available, kind, f"{kind}:{p.id}")
        if available < amount:
            reason = f"{to}: could debit only {available} of {amount}; {amount - available} outstanding"
            p.flag_reason = reason
            w.alert(self._admins, p, reason)
        notify(f"payment_{to}", to, amount=available, balance=user.balance)
        return to

    async def _write(
        self, session: AsyncSession, payments: dict[str, _PaymentRow], users: dict[int, _UserRow], w: _Writes
    ) -> None:
        dirty = [p for p in payments.values() if p.dirty]
        if dirty:
            await session.execute(
                update(Payment.__table__)
                .where(Payment.__table__.c.id == bindparam("pid"),
                       Payment.__table__.c.status == bindparam("was"))
                .values(status=bindparam("to"), updated_at=w.now, paid_at=bindparam("paid"),
                        credited_at=bindparam("credited"), gateway_ref=bindparam("ref"),
                        flag_reason=bindparam("flag")),
                [{"pid": p.id, "was": p.original_status, "to": p.status, "paid": p.paid_at,
                  "credited": p.credited_at, "ref": p.gateway_ref, "flag": p.flag_reason} for p in dirty],
            )
        moved = [u for u in users.values() if u.delta]
        if moved:
            table = User.__table__
            await session.execute(
                update(table).where(table.c.id == bindparam("uid")).values(balance=table.c.balance + bindparam("d")),
                [{"uid": u.id, "d": u.delta} for u in moved],
            )
        if w.ledger:
            await session.execute(insert(LedgerEntry.__table__), w.ledger)
        if w.outbox:
            await session.execute(insert_or_skip(session, OutboxMessage.__table__, ["dedupe_key"]), w.outbox)
        if w.events:
            await session.execute(insert(GatewayEvent.__table__), w.events)

