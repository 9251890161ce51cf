"""Paid broadcasts to a trip's participants, billed fairly and to the Rupiah.

    preview: recipients (joined, not stopped) x price per message, nothing moves; the preview is bound to
             its audience (a hash of the recipients' ids) and expires after PREVIEW_MINUTES
    confirm: only a preview whose audience is unchanged and which has not expired is sent (otherwise a fresh
             preview is shown instead of charging anything); the whole amount is reserved in the broadcast's own
             hold account (wallet first, then earnings -> hold `bchold:<id>:<source>`), one outbox message and one
             delivery row per recipient, in the same transaction
    settle:  a delivery the platform accepted is charged, one that failed is released; when none is pending the
             hold is resolved once (a conditional update of the hold's status): hold -> revenue for what was
             charged (`bcpost:<id>`), the rest back to where it came from, earnings first (`bcvoid:<id>:<source>`)
    late:    a message WhatsApp reports failed after the broadcast finished gives its price back from revenue
             (`bcrefund:<id>:<user>`, once)
    expiry:  a broadcast whose deliveries are still pending after HOLD_EXPIRY_HOURS is finished as it stands:
             the rest is released and the hold marked expired
    receipt: when nothing is pending, the jastiper is told sent / failed / charged / released

One broadcast can never spend another's hold: each has its own account.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import ledger
from services.broadcast_machine import Settled, settle_delivery, sources, split_hold
from services.clock import Clock
from services.delivery import Priority
from services.errors import UserInputError
from services.kinds import BroadcastStatus, HoldStatus
from services.outbox import BROADCAST_TEMPLATE, enqueue_many
from services.text import clean_text
from services.trips import notify_user, require_owner, trip_by_slug
from services.wallet import spend
from storage.db import Database
from storage.models import Account, Broadcast, BroadcastDelivery, OutboxMessage, Participant, Transfer, Trip, User
from storage.queries import rows_changed

TEMPLATE = BROADCAST_TEMPLATE
PREVIEW_MINUTES = 15
TEXT_LENGTH = 3000
HOLD_EXPIRY_HOURS = 48


@dataclass(frozen=True)
class Preview:
    id: int
    slug: str
    recipients: int
    price: int
    total: int
    balance: int
    text: str = ""
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Confirmation:
    """What Send did: `started` (held and queued), or a `fresh` preview because the audience changed or the
    old one expired — nothing charged."""

    started: Preview | None = None
    fresh: Preview | None = None
    reason: str = ""  # "audience" | "expired"


def _audience(user_ids: list[int]) -> str:
    return hashlib.sha256(",".join(str(u) for u in sorted(user_ids)).encode()).hexdigest()


@dataclass(frozen=True)
class Receipt:
    id: int
    sent: int
    failed: int
    charged: int
    released: int


@dataclass(frozen=True)
class Progress:
    id: int
    language: str  # the jastiper's
    recipients: int
    sent: int
    failed: int
    done: bool


class Broadcasts:
    def __init__(self, db: Database, clock: Clock, *, price_per_message: int = 500) -> None:
        self._db = db
        self._clock = clock
        self._price = price_per_message

    async def preview(self, owner_id: int, slug: str, text: str) -> Preview:
        text = clean_text(text, TEXT_LENGTH)
        if not text:
            raise UserInputError("usage_broadcast")
        async with self._db.write() as session:
            trip = await trip_by_slug(session, slug)
            require_owner(trip, owner_id)
            return await self._new_preview(session, trip, owner_id, text)

    async def _new_preview(self, session: AsyncSession, trip: Trip, owner_id: int, text: str) -> Preview:
        now = self._clock.now()
        recipients = await self._recipients(session, trip.id)
        if not recipients:
            raise UserInputError("broadcast_no_recipients", slug=trip.slug)
        broadcast = Broadcast(trip_id=trip.id, owner_id=owner_id, text=text, price=self._price,
                              recipients=len(recipients), status="preview", created_at=now,
                              audience=_audience([r[0] for r in recipients]),
                              expires_at=now + timedelta(minutes=PREVIEW_MINUTES))
        session.add(broadcast)
        await session.flush()
        wallet_balance, earned = (await ledger.balances(session, [owner_id]))[owner_id]
        return Preview(broadcast.id, trip.slug, len(recipients), self._price, len(recipients) * self._price,
                       wallet_balance + earned, text, broadcast.expires_at)

    @staticmethod
    async def _recipients(session: AsyncSession, trip_id: int) -> list[Any]:
        return list((await session.execute(
            select(User.id, User.channel, User.external_id, User.language)
            .join(Participant, Participant.user_id == User.id)
            .where(Participant.trip_id == trip_id, Participant.status == "joined")
            .order_by(User.id)
        )).all())

    async def confirm(self, owner_id: int, broadcast_id: int) -> Confirmation:
        """Send exactly what the preview showed: the same recipients at the same price, before it expires.
        Otherwise the old preview is set aside and a fresh one comes back, with nothing charged. A second
        confirm of the same preview does nothing."""
        now = self._clock.now()
        async with self._db.write() as session:
            # Accounts first (the lock order everywhere), then the broadcast.
            funds = await ledger.accounts(session, [ledger.wallet(owner_id), ledger.earnings(owner_id)], now)
            broadcast = await session.get(Broadcast, broadcast_id, with_for_update=True)
            if broadcast is None or broadcast.owner_id != owner_id:
                raise UserInputError("broadcast_not_found")
            if broadcast.status != "preview":
                raise UserInputError("broadcast_already", broadcast_state=broadcast.status)
            trip = await session.get_one(Trip, broadcast.trip_id)
            recipients = await self._recipients(session, trip.id)
            reason = ""
            if broadcast.expires_at is not None and broadcast.expires_at <= now:
                reason = "expired"
            elif broadcast.price != self._price or broadcast.audience != _audience([r[0] for r in recipients]):
                reason = "audience"
            if reason:
                broadcast.status = "cancelled"
                return Confirmation(fresh=await self._new_preview(session, trip, owner_id, broadcast.text),
                                    reason=reason)
            total = len(recipients) * broadcast.price
            wallet_account, earnings_account = funds[ledger.wallet(owner_id)], funds[ledger.earnings(owner_id)]
            if total > 0:  # InsufficientFunds rolls the whole confirmation back
                moves = spend(owner_id, total, wallet_account.balance, earnings_account.balance,
                              f"bchold:{broadcast.id}", ledger.hold(f"broadcast:{broadcast.id}", owner_id), "hold")
                await ledger.post(session, moves, now, known=funds)
            balance = wallet_account.balance + earnings_account.balance
            broadcast.status, broadcast.recipients = "running", len(recipients)
            params = {"title": trip.title, "slug": trip.slug, "text": broadcast.text}
            keys = [(user_id, f"bc:{broadcast.id}:{user_id}") for user_id, *_ in recipients]
            if keys:
                await session.execute(insert(BroadcastDelivery.__table__), [
                    {"broadcast_id": broadcast.id, "user_id": user_id, "outbox_key": key, "settled": "pending"}
                    for user_id, key in keys])
            await enqueue_many(session, [
                {"channel": channel, "chat_id": chat_id, "language": language, "template": TEMPLATE,
                 "params": params, "dedupe_key": key}
                for (_, channel, chat_id, language), (_, key) in zip(recipients, keys, strict=True)], now=now,
                priority=Priority.BULK)
            return Confirmation(started=Preview(broadcast.id, trip.slug, len(recipients), broadcast.price, total,
                                                balance, broadcast.text))

    async def cancel(self, owner_id: int, broadcast_id: int) -> bool:
        async with self._db.write() as session:
            result = await session.execute(
                update(Broadcast)
                .where(Broadcast.id == broadcast_id, Broadcast.owner_id == owner_id,
                       Broadcast.status.in_(sources("cancel")))
                .values(status=BroadcastStatus.CANCELLED.value)
            )
            return rows_changed(result) == 1

    async def settle(self) -> set[int]:
        """Account for every delivery whose outbox message reached a final state; send finished receipts.
        The ids of the broadcasts that moved."""
        now = self._clock.now()
        async with self._db.write() as session:
            rows = (await session.execute(
                select(BroadcastDelivery, OutboxMessage.status, Broadcast.price, Broadcast.owner_id)
                .join(OutboxMessage, OutboxMessage.dedupe_key == BroadcastDelivery.outbox_key)
                .join(Broadcast, Broadcast.id == BroadcastDelivery.broadcast_id)
                .where(
                    (and_(BroadcastDelivery.settled == "pending", OutboxMessage.status.in_(("sent", "failed"))))
                    | (and_(BroadcastDelivery.settled == "charged", OutboxMessage.status == "failed"))
                )
                .with_for_update(of=BroadcastDelivery.__table__)
            )).all()
            touched: set[int] = set()
            late: list[ledger.Move] = []
            done = set((await session.scalars(select(Broadcast.id).where(
                Broadcast.id.in_({d.broadcast_id for d, *_ in rows}), Broadcast.status == "done"))).all())
            for delivery, status, price, owner_id in rows:
                settled = settle_delivery(cast(Settled, delivery.settled), status)
                if settled is None:
                    continue
                touched.add(delivery.broadcast_id)
                delivery.settled = settled
                if settled == "refunded" and delivery.broadcast_id in done and price > 0:  # charge already posted
                    late.append(ledger.Move(f"bcrefund:{delivery.broadcast_id}:{delivery.user_id}", ledger.REVENUE,
                                            ledger.wallet(owner_id), price, "release"))
            await session.flush()
            await ledger.post(session, late, now)
            for broadcast_id in touched:
                await self._finish_if_done(session, broadcast_id, now)
            return touched

    async def expire_stale(self) -> int:
        """Broadcasts still running after HOLD_EXPIRY_HOURS (their messages could not be delivered, e.g. the
        channel was switched off): what is pending counts as failed, and the hold is resolved as it stands."""
        now = self._clock.now()
        async with self._db.write() as session:
            stale = (await session.scalars(select(Broadcast.id).where(
                Broadcast.status == "running",
                Broadcast.created_at <= now - timedelta(hours=HOLD_EXPIRY_HOURS)))).all()
            for broadcast_id in stale:
                await session.execute(update(BroadcastDelivery).where(
                    BroadcastDelivery.broadcast_id == broadcast_id, BroadcastDelivery.settled == "pending")
                    .values(settled="released"))
                await self._finish_if_done(session, broadcast_id, now, resolved=HoldStatus.EXPIRED)
            return len(stale)

    async def progress(self, broadcast_ids: set[int]) -> list[Progress]:
        if not broadcast_ids:
            return []
        async with self._db.read() as session:
            heads = (await session.execute(
                select(Broadcast.id, Broadcast.recipients, Broadcast.status, User.language)
                .join(User, User.id == Broadcast.owner_id).where(Broadcast.id.in_(broadcast_ids)))).all()
            counts: dict[int, dict[str, int]] = {}
            for broadcast_id, settled, count in (await session.execute(
                select(BroadcastDelivery.broadcast_id, BroadcastDelivery.settled, func.count())
                .where(BroadcastDelivery.broadcast_id.in_(broadcast_ids))
                .group_by(BroadcastDelivery.broadcast_id, BroadcastDelivery.settled))).all():
                counts.setdefault(broadcast_id, {})[settled] = count
        shown = []
        for broadcast_id, recipients, status, language in heads:
            c = counts.get(broadcast_id, {})
            shown.append(Progress(broadcast_id, language, recipients, c.get("charged", 0),
                                  c.get("released", 0) + c.get("refunded", 0), status == "done"))
        return shown

    async def _finish_if_done(self, session: AsyncSession, broadcast_id: int, now: datetime,
                              resolved: HoldStatus = HoldStatus.POSTED) -> None:
        pending = await session.scalar(select(func.count()).select_from(BroadcastDelivery).where(
            BroadcastDelivery.broadcast_id == broadcast_id, BroadcastDelivery.settled == "pending"))
        if pending:
            return
        finished = await session.execute(
            update(Broadcast).where(Broadcast.id == broadcast_id, Broadcast.status.in_(sources("finish")))
            .values(status=BroadcastStatus.DONE.value, finished_at=now)
        )
        if rows_changed(finished) != 1:
            return  # already done: a late failure only adds its release
        receipt = await self.receipt(broadcast_id, session)
        broadcast = await session.get_one(Broadcast, broadcast_id)
        await self._resolve_hold(session, broadcast.id, broadcast.owner_id, receipt.charged, resolved, now)
        await notify_user(session, broadcast.owner_id, "broadcast_receipt",
                          {"id": broadcast_id, "sent": receipt.sent, "failed": receipt.failed,
                           "total": receipt.charged, "amount": receipt.released},
                          now, dedupe_key=f"bc-receipt:{broadcast_id}")

    async def _resolve_hold(self, session: AsyncSession, broadcast_id: int, owner_id: int, charged: int,
                            resolved: HoldStatus, now: datetime) -> None:
        """Post what was charged, give the rest back (earnings first, up to what came from there); once: the
        hold's status moves from pending by a conditional update, and only the update that wins posts."""
        held = ledger.hold(f"broadcast:{broadcast_id}", owner_id)
        found = await ledger.accounts(session, [held, ledger.wallet(owner_id), ledger.earnings(owner_id)], now)
        account = found[held]
        won = await session.execute(update(Account).where(Account.id == account.id,
                                                          Account.status == HoldStatus.PENDING.value)
                                    .values(status=resolved.value))
        if rows_changed(won) != 1 or account.balance == 0:
            return
        from_earnings = int(await session.scalar(select(Transfer.amount).where(
            Transfer.reference == f"bchold:{broadcast_id}:earnings")) or 0)
        split = split_hold(account.balance, charged, from_earnings)
        moves = [ledger.Move(f"bcpost:{broadcast_id}", held, ledger.REVENUE, split.post, "charge"),
                 ledger.Move(f"bcvoid:{broadcast_id}:earnings", held, ledger.earnings(owner_id), split.to_earnings,
                             "release"),
                 ledger.Move(f"bcvoid:{broadcast_id}:wallet", held, ledger.wallet(owner_id), split.to_wallet,
                             "release")]
        await ledger.post(session, moves, now, known=found)

    async def receipt(self, broadcast_id: int, session: AsyncSession | None = None) -> Receipt:
        if session is None:
            async with self._db.read() as own:
                return await self.receipt(broadcast_id, own)
        price = await session.scalar(select(Broadcast.price).where(Broadcast.id == broadcast_id)) or 0
        counts = dict((await session.execute(
            select(BroadcastDelivery.settled, func.count()).where(BroadcastDelivery.broadcast_id == broadcast_id)
            .group_by(BroadcastDelivery.settled)
        )).all())
        sent = counts.get("charged", 0)
        failed = counts.get("released", 0) + counts.get("refunded", 0)
        return Receipt(broadcast_id, sent, failed, sent * price, failed * price)
