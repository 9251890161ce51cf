"""Deposits of client bots: created over the API (idempotent on the client's deposit id), paid through the same
gateways, settlement and reconciler as every payment, owed to the client bot on the ledger (never to a wallet).

A deposit is a `deposits` row and one payment (purpose "deposit", no Titip user) per attempt at a gateway; the
newest attempt is the deposit's. Creating one:

1. the deposit and its first attempt are written together (batched with concurrent creations into one commit:
   on SQLite each durable commit costs an fsync); the same deposit id again finds the row the database already
   has (its unique key decides between concurrent requests) and returns that deposit — 409 if the amount or
   the user differs;
2. the gateways are asked in failover order (the client's own list, within the configured one); an attempt that
   fails is marked failed and the next gets a payment of its own; when all fail, a later request with the same
   deposit id tries again.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import ledger
from services.batcher import WriteBatcher
from services.clients import ClientView
from services.clock import Clock
from services.errors import (
    AllGatewaysFailed,
    AmountError,
    BadRequest,
    GatewayError,
    IdempotencyConflict,
    NotFound,
)
from services.forwarding import EVENT_TYPES, api_status, webhook_id
from services.kinds import Channel, DepositFormat, PaymentPurpose, PaymentStatus
from services.payments import PaymentGateway, PaymentRequest
from services.topups import new_order_id
from storage.db import Database
from storage.models import Deposit, OutboxMessage, Payment
from storage.queries import insert_or_skip, pairs_in

log = logging.getLogger(__name__)

DEPOSIT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]{1,190}")
_PHONE = re.compile(r"\+?[0-9]{6,16}")


@dataclass(frozen=True)
class DepositRequest:
    user_ref: str
    amount: int
    deposit_id: str | None = None  # the client's; generated when it gives none
    description: str | None = None
    email: str | None = None
    phone: str | None = None
    format: DepositFormat = DepositFormat.API

    def checked(self) -> DepositRequest:
        """The same request, or BadRequest naming what is wrong (amount limits are the service's: 422)."""
        if not self.user_ref.strip() or len(self.user_ref) > 128:
            raise BadRequest("user_ref must be 1-128 characters")
        if self.deposit_id is not None and not DEPOSIT_ID.fullmatch(self.deposit_id):
            raise BadRequest("deposit_id must be 1-64 of A-Z a-z 0-9 _ -")
        if self.description is not None and len(self.description) > 255:
            raise BadRequest("description must be at most 255 characters")
        if self.email is not None and not _EMAIL.fullmatch(self.email):
            raise BadRequest("customer.email is not an e-mail address")
        if self.phone is not None and not _PHONE.fullmatch(self.phone):
            raise BadRequest("customer.phone must be 6-16 digits, optionally after +")
        return self


@dataclass(frozen=True)
class ForwardingView:
    delivered: bool
    attempts: int
    last_status: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None
    event: str | None = None  # the event this is about (the newest one)


@dataclass(frozen=True)
class DepositView:
    deposit_id: str
    user_ref: str
    amount: int
    status: str  # pending | paid | failed | expired | reversed
    payment_status: PaymentStatus
    reference: str  # our payment code (the gateway's order id)
    created_at: datetime
    payment_url: str | None = None
    qr_string: str | None = None
    expires_at: datetime | None = None
    paid_at: datetime | None = None
    gateway_reference: str | None = None
    gateway_said: bool = False  # a gateway's word arrived (the Worker's callbackReceived)
    forwarding: ForwardingView = field(default_factory=lambda: ForwardingView(False, 0))
    events: tuple[ForwardingView, ...] = ()
    created: bool = False  # made by this request (201), not found again (200)
    attempt_started_at: datetime | None = None  # when its payment (the newest attempt) was written


@dataclass(frozen=True)
class _Open:
    client_id: int
    request: DepositRequest
    deposit_id: str
    order_id: str
    gateway: str
    expires_at: datetime


@dataclass(frozen=True)
class _Attempt:
    deposit_row: int
    client_id: int
    amount: int
    order_id: str
    gateway: str
    expires_at: datetime


@dataclass(frozen=True)
class _Mark:
    """An attempt's outcome: pending with its link, or failed with why."""

    order_id: str
    status: PaymentStatus
    payment_url: str | None = None
    gateway_ref: str | None = None
    qr_string: str | None = None
    expires_at: datetime | None = None
    flag_reason: str | None = None


_Write = _Open | _Attempt | _Mark


class Deposits:
    def __init__(self, db: Database, gateways: Sequence[PaymentGateway], clock: Clock, *, public_url: str,
                 min_amount: int, max_amount: int, expiry_minutes: int = 60, create_timeout_s: float = 15.0) -> None:
        self._db = db
        self._gateways = list(gateways)
        self._clock = clock
        self._public_url = public_url.rstrip("/")
        self._min, self._max = min_amount, max_amount
        self._expiry = timedelta(minutes=expiry_minutes)
        self._timeout = create_timeout_s
        self._accounts: dict[int, int] = {}  # client id -> its account's id (never changes once made)
        self.batcher: WriteBatcher[_Write, Any] = WriteBatcher(db, self._write_batch, max_batch=256)

    def limits(self, client: ClientView) -> tuple[int, int]:
        """The amounts this client may ask for: its own limits within wallet.min_topup / max_topup."""
        return (max(self._min, client.min_amount or 0), min(self._max, client.max_amount or self._max))

    def _gateways_for(self, client: ClientView) -> list[PaymentGateway]:
        return [g for g in self._gateways if client.gateways is None or g.name in client.gateways]

    async def create(self, client: ClientView, request: DepositRequest) -> DepositView:
        """A deposit with a payment link, or the one this deposit id already names. Raises BadRequest,
        AmountError (422), IdempotencyConflict (409), AllGatewaysFailed (503/502), StorageUnavailable."""
        request = request.checked()
        low, high = self.limits(client)
        if request.amount < low:
            raise AmountError("amount_too_small", minimum=low)
        if request.amount > high:
            raise AmountError("amount_too_large", maximum=high)
        gateways = self._gateways_for(client)
        if not gateways:
            raise AllGatewaysFailed([f"none of this client's gateways ({', '.join(client.gateways or ())}) is on"])
        now = self._clock.now()
        deposit_id = request.deposit_id or f"DEP{secrets.token_hex(6).upper()}"
        order_id = new_order_id(now)
        row, new = await self.batcher.submit(_Open(client.id, request, deposit_id, order_id, gateways[0].name,
                                                   now + self._expiry))
        if not new:
            return await self._again(client, request, deposit_id, row, gateways)
        return await self._open_link(client, request, deposit_id, row, order_id, gateways, now)

    async def _again(self, client: ClientView, request: DepositRequest, deposit_id: str, row: int,
                     gateways: list[PaymentGateway]) -> DepositView:
        """The deposit id was used before: the same deposit, once its link exists; a conflict if it differs."""
        deadline = asyncio.get_running_loop().time() + self._timeout + 2
        while True:
            view = await self.read(client.id, deposit_id)
            if view.amount != request.amount or view.user_ref != request.user_ref:
                raise IdempotencyConflict(f"deposit {deposit_id} exists with another amount or user_ref")
            if view.payment_status is not PaymentStatus.CREATED:
                break
            started = view.attempt_started_at
            if started is not None and self._clock.now() - started > timedelta(seconds=self._timeout + 5):
                # Older than any gateway call may take: the process that asked died before writing the answer.
                # That attempt is given up (if the gateway made it and it is paid, it still credits this deposit).
                await self.batcher.submit(_Mark(view.reference, PaymentStatus.FAILED,
                                                flag_reason="create interrupted (the server stopped)"))
                view = replace(view, payment_status=PaymentStatus.FAILED, payment_url=None)
                break
            if asyncio.get_running_loop().time() > deadline:  # a concurrent request is still asking a gateway
                raise IdempotencyConflict(f"deposit {deposit_id} is being created; retry in a moment")
            await asyncio.sleep(0.05)
        if view.payment_status is PaymentStatus.FAILED and view.payment_url is None:
            # Every gateway failed for it before: this retry tries them again.
            now = self._clock.now()
            order_id = new_order_id(now)
            await self.batcher.submit(_Attempt(row, client.id, request.amount, order_id, gateways[0].name,
                                               now + self._expiry))
            made = await self._open_link(client, request, deposit_id, row, order_id, gateways, now)
            return replace(made, created=False)  # the deposit existed: 200, with its new link
        return view

    async def _open_link(self, client: ClientView, request: DepositRequest, deposit_id: str, row: int,
                         order_id: str, gateways: list[PaymentGateway], now: datetime) -> DepositView:
        failures: list[str] = []
        expires = now + self._expiry
        for attempt, gateway in enumerate(gateways):
            if attempt:
                order_id = new_order_id(self._clock.now())
                await self.batcher.submit(_Attempt(row, client.id, request.amount, order_id, gateway.name, expires))
            link = PaymentRequest(
                order_id=order_id, amount=request.amount, description=request.description or "Deposit",
                customer_name=request.user_ref[:50], notify_url=f"{self._public_url}/payments/{gateway.name}/notify",
                return_url=f"{self._public_url}/pay/done", email=request.email, phone=request.phone,
                expiry_minutes=max(1, int(self._expiry.total_seconds() // 60)))
            try:
                created = await asyncio.wait_for(gateway.create(link), timeout=self._timeout)
            except (GatewayError, TimeoutError) as exc:
                reason = str(exc) or f"{gateway.name}: timed out"
                failures.append(reason)
                log.warning("deposit %s (client #%d): gateway %s failed (%s)", deposit_id, client.id, gateway.name,
                            reason)
                await self.batcher.submit(_Mark(order_id, PaymentStatus.FAILED,
                                                flag_reason=f"create failed: {reason}"[:500]))
                continue
            expires = created.expires_at or expires
            await self.batcher.submit(_Mark(order_id, PaymentStatus.PENDING, created.payment_url, created.gateway_ref,
                                            created.qr_string, expires))
            return DepositView(deposit_id, request.user_ref, request.amount, "pending", PaymentStatus.PENDING,
                               order_id, now, created.payment_url, created.qr_string, expires,
                               gateway_reference=created.gateway_ref, created=True)
        raise AllGatewaysFailed(failures)

    async def _write_batch(self, session: AsyncSession, items: Sequence[_Write]) -> list[Any]:
        """A batch in three set-based statements: the new deposits (one multi-row INSERT … ON CONFLICT DO NOTHING
        RETURNING: the rows it returns are the new ones), their payments and next attempts (one executemany),
        and the attempts' outcomes (one executemany UPDATE, guarded by status = created)."""
        now = self._clock.now()
        results: list[Any] = [None] * len(items)
        opens = [(i, item) for i, item in enumerate(items) if isinstance(item, _Open)]
        new: dict[tuple[int, str], int] = {}
        if opens:
            table = Deposit.__table__
            rows = [{"client_id": it.client_id, "deposit_id": it.deposit_id, "user_ref": it.request.user_ref,
                     "amount": it.request.amount, "description": it.request.description,
                     "format": it.request.format.value, "created_at": now,
                     "customer": {k: v for k, v in (("email", it.request.email), ("phone", it.request.phone)) if v}}
                    for _, it in opens]
            inserted = await session.execute(insert_or_skip(session, table, ["client_id", "deposit_id"])
                                              .returning(table.c.id, table.c.client_id, table.c.deposit_id), rows)
            new = {(client, deposit): row for row, client, deposit in inserted.all()}
        payments: list[dict[str, Any]] = []
        taken: set[tuple[int, str]] = set()
        again: list[tuple[int, tuple[int, str]]] = []
        for i, item in enumerate(items):
            if isinstance(item, _Open):
                key = (item.client_id, item.deposit_id)
                if key in new and key not in taken:  # (the same id twice in one batch: the first is new)
                    taken.add(key)
                    results[i] = (new[key], True)
                    payments.append(await self._payment_row(session, item, new[key], item.request.amount, now))
                else:
                    again.append((i, key))
            elif isinstance(item, _Attempt):
                payments.append(await self._payment_row(session, item, item.deposit_row, item.amount, now))
        if again:  # used before: those deposits stand
            found = dict(((client, deposit), row) for row, client, deposit in (await session.execute(
                select(Deposit.id, Deposit.client_id, Deposit.deposit_id).where(
                    pairs_in(Deposit.client_id, Deposit.deposit_id, [key for _, key in again])))).all())
            for i, key in again:
                results[i] = (found[key], False)
        if payments:
            await session.execute(Payment.__table__.insert(), payments)
        marks = [item for item in items if isinstance(item, _Mark)]
        if marks:
            table = Payment.__table__
            await session.execute(
                update(table).where(table.c.order_id == bindparam("oid"),
                                    table.c.status == PaymentStatus.CREATED.value)
                .values(status=bindparam("to"), payment_url=bindparam("url"), gateway_ref=bindparam("ref"),
                        qr_string=bindparam("qr"), flag_reason=bindparam("flag"), updated_at=now,
                        expires_at=func.coalesce(bindparam("expires"), table.c.expires_at)),
                [{"oid": m.order_id, "to": m.status.value, "url": m.payment_url, "ref": m.gateway_ref,
                  "qr": m.qr_string, "flag": m.flag_reason, "expires": m.expires_at} for m in marks])
        return results

    async def _payment_row(self, session: AsyncSession, item: _Open | _Attempt, deposit_row: int, amount: int,
                           now: datetime) -> dict[str, Any]:
        return {"order_id": item.order_id, "user_id": None, "deposit_id": deposit_row, "gateway": item.gateway,
                "amount": amount, "status": PaymentStatus.CREATED.value, "purpose": PaymentPurpose.DEPOSIT.value,
                "account_id": await self._account_id(session, item.client_id, now), "refunded_amount": 0,
                "created_at": now, "updated_at": now, "expires_at": item.expires_at}

    async def _account_id(self, session: AsyncSession, client_id: int, now: datetime) -> int:
        if client_id not in self._accounts:
            # Read without a lock: only its id is needed here (settlement locks it when money moves).
            ref = ledger.client(client_id)
            self._accounts[client_id] = (await ledger.accounts(session, [ref], now, lock=False))[ref].id
        return self._accounts[client_id]

    async def read(self, client_id: int, deposit_id: str) -> DepositView:
        """One of this client's deposits; NotFound for anyone else's (or none)."""
        async with self._db.read() as session:
            deposit = await session.scalar(select(Deposit).where(Deposit.client_id == client_id,
                                                                 Deposit.deposit_id == deposit_id))
            if deposit is None:
                raise NotFound(f"no deposit {deposit_id!r}")
            payment = await session.scalar(select(Payment).where(Payment.deposit_id == deposit.id)
                                           .order_by(Payment.id.desc()).limit(1))
            assert payment is not None, "a deposit is written with its first payment"
            # A paid attempt wins over a newer one (a gateway that took the money after a failover).
            paid = await session.scalar(select(Payment).where(Payment.deposit_id == deposit.id,
                                                              Payment.credited_at.is_not(None))
                                        .order_by(Payment.id).limit(1))
            payment = paid or payment
            ids = [webhook_id(deposit.id, event) for event in EVENT_TYPES]
            forwards = (await session.execute(
                select(OutboxMessage.template, OutboxMessage.status, OutboxMessage.attempts,
                       OutboxMessage.last_status, OutboxMessage.last_error, OutboxMessage.next_attempt_at,
                       OutboxMessage.sent_at)
                .where(OutboxMessage.channel == Channel.WEBHOOK.value, OutboxMessage.dedupe_key.in_(ids))
                .order_by(OutboxMessage.id))).all()
        events = tuple(ForwardingView(delivered=f.status == "sent", attempts=f.attempts, last_status=f.last_status,
                                      last_error=f.last_error, delivered_at=f.sent_at, event=f.template,
                                      next_attempt_at=f.next_attempt_at if f.status == "pending" else None)
                       for f in forwards)
        status = PaymentStatus(payment.status)
        return DepositView(
            deposit.deposit_id, deposit.user_ref, deposit.amount, api_status(status), status, payment.order_id,
            deposit.created_at, payment.payment_url, payment.qr_string, payment.expires_at, payment.paid_at,
            payment.gateway_ref, gateway_said=payment.paid_at is not None or status not in (
                PaymentStatus.CREATED, PaymentStatus.PENDING),
            forwarding=events[-1] if events else ForwardingView(False, 0), events=events,
            attempt_started_at=payment.created_at)
