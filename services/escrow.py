"""Order money on otomatis trips: paid into the order's own escrow account, released to the jastiper's earnings
when the buyer confirms receipt (or by itself `auto_release_days` after shipping), or refunded to the buyer's
wallet when a paid order is rejected or cancelled. Every movement is a double-entry transfer whose reference is
the order's (`order:<id>:pay|fee|release|refund`), in the same transaction as the order's conditional move, so:

- paying twice (two devices, a double tap) moves the money once: the second finds the order paid and its
  transaction, with the repeated transfer, rolls back;
- receipt, auto-release and refund decide by the order's conditional UPDATE which one happens; the loser moves
  no money;
- a released or refunded escrow is closed, and the database refuses any later transfer into it (migration 0009).

Lock order as everywhere: accounts (by id), then the order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import ledger
from services.clock import Clock
from services.errors import UserInputError
from services.kinds import OrderStatus
from services.media import reencode, store_image
from services.order_machine import RELEASES_STOCK, OrderEvent, release_split, sources, target
from services.orders import PAID, OrderView, order_code, order_views, parse_order_code
from services.outbox import notice_row, queue_notices
from services.text import clean_text
from services.trips import notify_user, require_owner
from storage.db import Database
from storage.models import Account, AdminAction, Order, Participant, Product, Trip
from storage.queries import rows_changed

log = logging.getLogger(__name__)
REASON_LENGTH = 300
REMIND_BEFORE = timedelta(days=2)  # the buyer is reminded this long before the auto-release
WIB = timezone(timedelta(hours=7))


@dataclass(frozen=True)
class Complaint:
    """An open complaint, as an admin needs to see it."""

    order: str
    slug: str
    total: int  # what its escrow holds
    buyer: str
    reason: str
    since: datetime
    status_before: str  # paid (not shipped) or shipped, as far as the record tells


class Escrow:
    def __init__(self, db: Database, clock: Clock, *, fee_bps: int = 0, extend_days: float = 7.0,
                 ship_by_days: float = 30.0, ship_grace_days: float = 7.0, final_payment_days: float = 3.0,
                 admins: Sequence[tuple[str, str]] = (), media_dir: str = "data/media",
                 max_photo_bytes: int = 5_000_000) -> None:
        self._media = Path(media_dir)
        self._max_photo = max_photo_bytes
        self.final_payment_days = final_payment_days
        self._ship_by = timedelta(days=ship_by_days)
        self._ship_grace = timedelta(days=ship_grace_days)
        self._db = db
        self._clock = clock
        self.fee_bps = fee_bps
        self._extend = timedelta(days=extend_days)
        self._admins = list(admins)

    # --- paying -----------------------------------------------------------------------------------------

    async def pay_from_wallet(self, user_id: int, code: str) -> OrderView:
        """The buyer pays an unpaid otomatis order from their wallet: wallet → the order's escrow, and the order
        is lunas — both or neither. InsufficientFunds (a UserInputError) when the wallet is short."""
        now = self._clock.now()
        async with self._db.write() as session:
            order, trip = await _order_and_trip(session, code)
            if order.user_id != user_id:
                raise UserInputError("order_not_found", order=code.upper())
            self._require_otomatis(order)
            if order.status in PAID:
                raise UserInputError("order_already_paid", order=order_code(order.id))
            step = _payment_step(order, now)
            if step is None:
                raise UserInputError("order_wrong_state", order=order_code(order.id), order_state=order.status)
            event, amount, what = step
            escrow = ledger.escrow(order.id, order.user_id)
            known = await ledger.accounts(session, [ledger.wallet(user_id), escrow], now)
            await ledger.post(session, [ledger.Move(f"order:{order.id}:{what}", ledger.wallet(user_id), escrow,
                                                    amount, "order-pay")], now, known)
            if not await self._move(session, order, event, now, **_paid_values(event, trip, now, self._ship_by)):
                # Paid meanwhile (another device): this transaction, transfer included, is rolled back.
                raise UserInputError("order_already_paid", order=order_code(order.id))
            await _tell_paid(session, order, trip, event, amount, now)
            return await _view(session, order.id)

    # --- down payments ------------------------------------------------------------------------------------

    async def arrive(self, owner_id: int, slug: str) -> int:
        """TIBA <slug>: the goods arrived; every order with only its DP paid is asked for the rest, due within
        `final_payment_days` (with a reminder a day before). Returns how many were asked."""
        now = self._clock.now()
        due = now + timedelta(days=self.final_payment_days)
        async with self._db.write() as session:
            trip = await session.scalar(select(Trip).where(Trip.slug == slug.lower()[:10]))
            if trip is None:
                raise UserInputError("trip_not_found", slug=slug.lower()[:10])
            require_owner(trip, owner_id)
            await session.execute(update(Trip).where(Trip.id == trip.id).values(arrived_at=now))
            waiting = (await session.scalars(select(Order).where(
                Order.trip_id == trip.id, Order.status == OrderStatus.DP_PAID, Order.final_due_at.is_(None)))).all()
            for order in waiting:
                await session.execute(update(Order).where(Order.id == order.id).values(final_due_at=due,
                                                                                        updated_at=now))
                await notify_user(session, order.user_id, "order_final_due",
                                  {"order": order_code(order.id), "slug": trip.slug,
                                   "rest": order.total - order.dp_amount, "due_at": _wib(due),
                                   "policy_key": f"dp_policy_{order.dp_policy or 'kembali'}"}, now,
                                  dedupe_key=f"order-final-due:{order.id}")
            return len(waiting)

    async def final_payments_due(self) -> tuple[int, int]:
        """Orders whose rest is due: reminded a day before; past due, the DP is refunded (kembali) or released
        to the jastiper (hangus), as the trip said when the order was placed. Returns (reminded, ended)."""
        now = self._clock.now()
        reminded = ended = 0
        async with self._db.read() as session:
            rows = (await session.execute(select(Order.id, Order.final_due_at).where(
                Order.status == OrderStatus.DP_PAID, Order.final_due_at <= now + timedelta(days=1))
                .order_by(Order.id).limit(500))).all()
        for order_id, _ in rows:
            async with self._db.write() as session:
                order, trip = await _order_and_trip(session, order_code(order_id))
                if order.status != OrderStatus.DP_PAID or order.final_due_at is None:
                    continue
                params = {"order": order_code(order.id), "slug": trip.slug, "rest": order.total - order.dp_amount,
                          "due_at": _wib(order.final_due_at), "dp": order.dp_amount,
                          "policy_key": f"dp_policy_{order.dp_policy or 'kembali'}"}
                if order.final_due_at > now:
                    await notify_user(session, order.user_id, "order_final_reminder", params, now,
                                      dedupe_key=f"order-final-reminder:{order.id}")
                    reminded += 1
                    continue
                escrow = ledger.escrow(order.id, order.user_id)
                if order.dp_policy == "hangus":
                    earnings = ledger.earnings(trip.owner_id)
                    known = await ledger.accounts(session, [escrow, earnings], now)
                    if not await self._move(session, order, "forfeit", now, closed_at=now):
                        continue
                    fee, rest = release_split(known[escrow].balance, self.fee_bps)
                    await ledger.post(session, [
                        ledger.Move(f"order:{order.id}:fee", escrow, ledger.REVENUE, fee, "order-fee"),
                        ledger.Move(f"order:{order.id}:release", escrow, earnings, rest, "order-release"),
                    ], now, known)
                    template = "order_dp_forfeited"
                    await notify_user(session, trip.owner_id, "order_dp_forfeited_owner",
                                      {**params, "earned": rest, "fee": fee}, now,
                                      dedupe_key=f"order-dp-forfeited-owner:{order.id}")
                else:
                    known = await ledger.accounts(session, [escrow, ledger.wallet(order.user_id)], now)
                    if await self._refund_all(session, order, now, "rest not paid", known) is None:
                        continue
                    template = "order_dp_refunded"
                await _close(session, known[escrow])
                await notify_user(session, order.user_id, template, params, now,
                                  dedupe_key=f"order-dp-ended:{order.id}")
                ended += 1
        return reminded, ended

    # --- releasing ----------------------------------------------------------------------------------------

    async def receive(self, user_id: int, code: str) -> OrderView:
        """TERIMA, confirmed with "Ya, sudah diterima": the buyer's shipped order is received and its escrow
        released to the jastiper (fee to revenue)."""
        now = self._clock.now()
        async with self._db.write() as session:
            order, trip = await _order_and_trip(session, code)
            if order.user_id != user_id:
                raise UserInputError("order_not_found", order=code.upper())
            self._require_otomatis(order)
            if order.status == OrderStatus.RECEIVED:
                raise UserInputError("order_already_received", order=order_code(order.id))
            if order.status == OrderStatus.SHIPPED and order.settles_at is not None and order.settles_at > now:
                # Received, but paid with a card that can still be charged back: the money goes to the jastiper
                # by itself when it settles (the order stays shipped until then; the caller tells the buyer).
                await session.execute(update(Order).where(Order.id == order.id, Order.status == OrderStatus.SHIPPED)
                                      .values(release_at=order.settles_at, updated_at=now))
                return await _view(session, order.id)
            if not await self._release(session, order, trip, now, automatic=False):
                raise UserInputError("order_receive_not_shipped", order=order_code(order.id),
                                     order_state=order.status)
            return await _view(session, order.id)

    async def release_due(self) -> int:
        """Shipped otomatis orders whose release time came: released (the buyer did not say otherwise)."""
        now = self._clock.now()
        async with self._db.read() as session:
            due = (await session.scalars(select(Order.id).where(
                Order.status == OrderStatus.SHIPPED, Order.payment_mode == "otomatis", Order.release_at <= now,
                or_(Order.settles_at.is_(None), Order.settles_at <= now))
                .order_by(Order.id).limit(500))).all()
        released = 0
        for order_id in due:
            async with self._db.write() as session:  # one order per transaction: one bad row stops no other
                order, trip = await _order_and_trip(session, order_code(order_id))
                released += bool(await self._release(session, order, trip, now, automatic=True))
        if released:
            log.info("escrow: %d orders released by the auto-release", released)
        return released

    async def ship_overdue(self) -> tuple[int, int]:
        """Paid orders not shipped by their ship-by time: buyer, jastiper and admins are told once; those still
        not shipped `ship_grace_days` later are refunded to the buyer (unless an admin moved the time with ADMIN
        PERPANJANG). Returns (told, refunded)."""
        now = self._clock.now()
        told = refunded = 0
        async with self._db.read() as session:
            due = (await session.execute(select(Order.id, Order.ship_by_at).where(
                Order.status == OrderStatus.CONFIRMED, Order.payment_mode == "otomatis",
                Order.ship_by_at <= now).order_by(Order.id).limit(500))).all()
        for order_id, _ in due:
            async with self._db.write() as session:
                order, trip = await _order_and_trip(session, order_code(order_id))
                ship_by = order.ship_by_at  # as it is now (an admin may just have moved it)
                if order.status != OrderStatus.CONFIRMED or ship_by is None or ship_by > now:
                    continue
                params = {"order": order_code(order.id), "slug": trip.slug, "total": order.total,
                          "ship_by": _wib(ship_by), "refund_at": _wib(ship_by + self._ship_grace)}
                if ship_by + self._ship_grace > now:
                    key = f"ship-overdue:{order.id}:{ship_by.isoformat()}"
                    await notify_user(session, order.user_id, "order_ship_overdue_buyer", params, now,
                                      dedupe_key=f"{key}:buyer")
                    await notify_user(session, trip.owner_id, "order_ship_overdue_owner", params, now,
                                      dedupe_key=f"{key}:owner")
                    await queue_notices(session, [
                        notice_row(channel=c, chat_id=i, language="id", template="admin_ship_overdue", params=params,
                                   now=now, dedupe_key=f"{key}:admin:{c}:{i}") for c, i in self._admins])
                    told += 1
                    continue
                known = await ledger.accounts(session, [ledger.escrow(order.id, order.user_id),
                                                        ledger.wallet(order.user_id)], now)
                amount = await self._refund_all(session, order, now, "not shipped in time", known)
                if amount is None:
                    continue
                await notify_user(session, order.user_id, "order_unshipped_refunded", {**params, "total": amount},
                                  now, dedupe_key=f"order-unshipped:{order.id}")
                await notify_user(session, trip.owner_id, "order_unshipped_refunded_owner",
                                  {**params, "total": amount}, now, dedupe_key=f"order-unshipped-owner:{order.id}")
                refunded += 1
        return told, refunded

    async def extend_by_admin(self, admin_id: int, code: str, days: int, reason: str) -> OrderView:
        """ADMIN PERPANJANG <pesanan> <hari>: a paid order's ship-by time, or a shipped one's release, moves
        `days` later (recorded with who and why)."""
        now = self._clock.now()
        if not 0 < days <= 90:
            raise UserInputError("admin_extend_days")
        async with self._db.write() as session:
            order, trip = await _order_and_trip(session, code)
            self._require_otomatis(order)
            delta = timedelta(days=days)
            if order.status == OrderStatus.CONFIRMED and order.ship_by_at is not None:
                values: dict[str, object] = {"ship_by_at": order.ship_by_at + delta}
                what, condition = "ship_by", Order.ship_by_at == order.ship_by_at
            elif order.status == OrderStatus.SHIPPED and order.release_at is not None:
                values = {"release_at": order.release_at + delta}
                what, condition = "release", Order.release_at == order.release_at
            else:
                raise UserInputError("admin_extend_not_open", order=order_code(order.id), order_state=order.status)
            moved = await session.execute(update(Order).where(Order.id == order.id, Order.status == order.status,
                                                              condition).values(updated_at=now, **values))
            if rows_changed(moved) != 1:
                raise UserInputError("admin_extend_not_open", order=order_code(order.id), order_state=order.status)
            session.add(AdminAction(admin_id=admin_id, action=f"extend-{what}", target=order_code(order.id),
                                    amount=days, reason=clean_text(reason, REASON_LENGTH) or "-", created_at=now))
            until = next(iter(values.values()))
            assert isinstance(until, datetime)
            params = {"order": order_code(order.id), "slug": trip.slug, "days": days, "until": _wib(until)}
            template = "order_admin_extended_ship_by" if what == "ship_by" else "order_admin_extended_release"
            for user_id in (order.user_id, trip.owner_id):
                await notify_user(session, user_id, template, params, now,
                                  dedupe_key=f"order-admin-extend:{order.id}:{until.isoformat()}:{user_id}")
            return await _view(session, order.id)

    async def remind_due(self) -> int:
        """Two days before an auto-release, the buyer is asked once (per release time) whether it arrived."""
        now = self._clock.now()
        reminded = 0
        async with self._db.write() as session:
            rows = (await session.execute(
                select(Order, Trip.slug).join(Trip, Trip.id == Order.trip_id).where(
                    Order.status == OrderStatus.SHIPPED, Order.payment_mode == "otomatis",
                    Order.release_at > now, Order.release_at <= now + REMIND_BEFORE).limit(500))).all()
            for order, slug in rows:
                assert order.release_at is not None
                await notify_user(session, order.user_id, "order_release_soon",
                                  {"order": order_code(order.id), "slug": slug, "total": order.total,
                                   "release_at": _wib(order.release_at)}, now,
                                  dedupe_key=f"order-release-soon:{order.id}:{order.release_at.isoformat()}")
                reminded += 1
        return reminded

    async def extend(self, user_id: int, code: str) -> OrderView:
        """BELUMSAMPAI: the goods have not arrived; the auto-release moves `extend_days` later, once per order."""
        now = self._clock.now()
        async with self._db.write() as session:
            order, trip = await _order_and_trip(session, code)
            if order.user_id != user_id:
                raise UserInputError("order_not_found", order=code.upper())
            self._require_otomatis(order)
            if order.extended_at is not None:
                raise UserInputError("order_extend_once", order=order_code(order.id))
            moved = None
            if order.release_at is not None:
                moved = await session.execute(
                    update(Order).where(Order.id == order.id, Order.status == OrderStatus.SHIPPED,
                                        Order.extended_at.is_(None), Order.release_at == order.release_at)
                    .values(release_at=order.release_at + self._extend, extended_at=now, updated_at=now))
            if moved is None or rows_changed(moved) != 1:
                raise UserInputError("order_extend_not_shipped", order=order_code(order.id),
                                     order_state=order.status)
            view = await _view(session, order.id)
            assert view.release_at is not None
            await notify_user(session, trip.owner_id, "order_extended_owner",
                              {"order": view.code, "slug": trip.slug, "release_at": _wib(view.release_at),
                               "buyer": await _buyer(session, order)}, now, dedupe_key=f"order-extended:{order.id}")
            return view

    async def _release(self, session: AsyncSession, order: Order, trip: Trip, now: datetime, *,
                       automatic: bool) -> bool:
        if order.settles_at is not None and order.settles_at > now:
            return False  # a card payment can still be reversed: not before it settles
        escrow, earnings = ledger.escrow(order.id, order.user_id), ledger.earnings(trip.owner_id)
        known = await ledger.accounts(session, [escrow, earnings], now)
        if not await self._move(session, order, "receive", now, closed_at=now):
            return False
        amount = known[escrow].balance
        fee, rest = release_split(amount, self.fee_bps)
        await ledger.post(session, [
            ledger.Move(f"order:{order.id}:fee", escrow, ledger.REVENUE, fee, "order-fee"),
            ledger.Move(f"order:{order.id}:release", escrow, earnings, rest, "order-release"),
        ], now, known)
        await _close(session, known[escrow])
        params = {"order": order_code(order.id), "slug": trip.slug, "total": amount, "fee": fee, "earned": rest}
        await notify_user(session, trip.owner_id, "order_released_owner", params, now,
                          dedupe_key=f"order-released-owner:{order.id}")
        await notify_user(session, order.user_id,
                          "order_released_auto_buyer" if automatic else "order_released_buyer", params, now,
                          dedupe_key=f"order-released:{order.id}")
        return True

    # --- refunding ----------------------------------------------------------------------------------------

    async def refund(self, actor_id: int, code: str, *, as_owner: bool, reason: str | None = None) -> OrderView:
        """A paid (not yet shipped) otomatis order is refunded to the buyer's wallet at once and its stock goes
        back: TOLAK by the jastiper (any time before KIRIM), BATAL by the buyer (until the trip's deadline)."""
        now = self._clock.now()
        note = clean_text(reason, REASON_LENGTH) or None
        async with self._db.write() as session:
            order, trip = await _order_and_trip(session, code)
            if as_owner:
                require_owner(trip, actor_id)
            elif order.user_id != actor_id:
                raise UserInputError("order_not_found", order=code.upper())
            self._require_otomatis(order)
            if not as_owner and trip.deadline_at <= now:
                raise UserInputError("order_cancel_after_deadline", order=order_code(order.id), slug=trip.slug)
            known = await ledger.accounts(session, [ledger.escrow(order.id, order.user_id),
                                                    ledger.wallet(order.user_id)], now)
            amount = await self._refund_all(session, order, now, note, known)
            if amount is None:
                raise UserInputError("order_refund_not_paid", order=order_code(order.id), order_state=order.status)
            params = {"order": order_code(order.id), "slug": trip.slug, "total": amount, "note": note or "-"}
            if as_owner:
                await notify_user(session, order.user_id, "order_refunded_buyer", params, now,
                                  dedupe_key=f"order-refunded:{order.id}")
            else:
                await notify_user(session, trip.owner_id, "order_refunded_owner",
                                  {**params, "buyer": await _buyer(session, order)}, now,
                                  dedupe_key=f"order-refunded-owner:{order.id}")
            return await _view(session, order.id)

    async def refund_part(self, owner_id: int, code: str, quantity: int, reason: str | None) -> OrderView:
        """TOLAK <pesanan> x<n>: the jastiper refuses part of a paid order (could buy fewer): n × the unit price
        goes back to the buyer's wallet at once, the order keeps the rest, n go back to stock."""
        now = self._clock.now()
        note = clean_text(reason, REASON_LENGTH) or None
        async with self._db.write() as session:
            order, trip = await _order_and_trip(session, code)
            require_owner(trip, owner_id)
            self._require_otomatis(order)
            if not 0 < quantity < order.quantity:
                raise UserInputError("order_part_quantity", order=order_code(order.id), quantity=order.quantity)
            escrow, wallet = ledger.escrow(order.id, order.user_id), ledger.wallet(order.user_id)
            known = await ledger.accounts(session, [escrow, wallet], now)
            back = quantity * order.unit_price
            moved = await session.execute(
                update(Order).where(Order.id == order.id, Order.status == OrderStatus.CONFIRMED,
                                    Order.quantity == order.quantity)
                .values(quantity=Order.quantity - quantity, total=Order.total - back, updated_at=now, note=note))
            if rows_changed(moved) != 1:
                raise UserInputError("order_refund_not_paid", order=order_code(order.id), order_state=order.status)
            # One reference per remaining quantity: a repeated tap finds the order changed and moves nothing.
            await ledger.post(session, [ledger.Move(f"order:{order.id}:part{order.quantity}", escrow, wallet, back,
                                                    "order-refund")], now, known)
            await session.execute(update(Product).where(Product.id == order.product_id)
                                  .values(stock=Product.stock + quantity))
            params = {"order": order_code(order.id), "slug": trip.slug, "quantity": quantity, "refund": back,
                      "total": order.total - back, "note": note or "-"}
            await notify_user(session, order.user_id, "order_part_refunded_buyer", params, now,
                              dedupe_key=f"order-part:{order.id}:{order.quantity}")
            return await _view(session, order.id)

    async def cancel_trip(self, owner_id: int, slug: str, reason: str) -> tuple[int, int, int]:
        """BATALKAN <slug> <alasan>: every paid, not yet shipped otomatis order is refunded, every unpaid order is
        cancelled (stock back), the trip is closed; every buyer is told. Returns (refunded, cancelled, left) —
        left: orders already shipped, under complaint or paid outside Titip (manual), which stay as they are."""
        now = self._clock.now()
        why = clean_text(reason, REASON_LENGTH)
        if not why:
            raise UserInputError("usage_batalkan")
        async with self._db.write() as session:
            trip = await session.scalar(select(Trip).where(Trip.slug == slug.lower()))
            if trip is None:
                raise UserInputError("trip_not_found", slug=slug.lower()[:10])
            require_owner(trip, owner_id)
            orders = (await session.scalars(select(Order).where(Order.trip_id == trip.id).order_by(Order.id))).all()
            paid = [o for o in orders if o.payment_mode == "otomatis"
                    and o.status in (OrderStatus.CONFIRMED, OrderStatus.DP_PAID)]
            refs = [r for o in paid for r in (ledger.escrow(o.id, o.user_id), ledger.wallet(o.user_id))]
            known = await ledger.accounts(session, refs, now)
            refunded = cancelled = left = 0
            for order in orders:
                params = {"order": order_code(order.id), "slug": trip.slug, "title": trip.title, "reason": why,
                          "total": order.total}
                amount = await self._refund_all(session, order, now, why, known) if order in paid else None
                if amount is not None:
                    refunded += 1
                    await notify_user(session, order.user_id, "trip_cancelled_refunded", {**params, "total": amount},
                                      now, dedupe_key=f"trip-cancel:{order.id}")
                elif order.status in sources("trip_cancel") and await self._move(session, order, "trip_cancel", now,
                                                                                 note=why):
                    cancelled += 1
                    await notify_user(session, order.user_id, "trip_cancelled_order", params, now,
                                      dedupe_key=f"trip-cancel:{order.id}")
                elif order.status in (OrderStatus.CONFIRMED, OrderStatus.SHIPPED, OrderStatus.DISPUTED):
                    left += 1
            await session.execute(update(Trip).where(Trip.id == trip.id).values(status="closed", closed_at=now))
            return refunded, cancelled, left

    # --- complaints -------------------------------------------------------------------------------------

    async def complain(self, user_id: int, code: str, reason: str, photo: bytes | None = None) -> OrderView:
        """KOMPLAIN <pesanan> <alasan> (with a photo, optionally): before release, the buyer freezes the escrow;
        the jastiper and the admins are told, with the photo. Nothing moves the money from here but an admin's
        decision."""
        now = self._clock.now()
        why = clean_text(reason, REASON_LENGTH)
        if not why:
            raise UserInputError("usage_komplain")
        path = None
        if photo is not None:  # checked and cleaned like a proof, kept where no route serves it
            picture = await asyncio.to_thread(reencode, photo, self._max_photo)
            path = str(await asyncio.to_thread(store_image, self._media, "complaints", code.upper()[:20], picture))
        async with self._db.write() as session:
            order, trip = await _order_and_trip(session, code)
            if order.user_id != user_id:
                raise UserInputError("order_not_found", order=code.upper())
            self._require_otomatis(order)
            if order.status == OrderStatus.DISPUTED:
                raise UserInputError("complaint_already_open", order=order_code(order.id))
            escrow = ledger.escrow(order.id, order.user_id)
            await ledger.accounts(session, [escrow], now)  # accounts first, then the order (one lock order)
            if not await self._move(session, order, "complain", now, complaint=why, complained_at=now):
                raise UserInputError("complaint_not_possible", order=order_code(order.id),
                                     order_state=order.status)
            params: dict[str, object] = {"order": order_code(order.id), "slug": trip.slug, "total": order.total,
                                         "reason": why, "buyer": await _buyer(session, order)}
            if path is not None:
                params["photo"] = path  # the outbox sends the notice as this photo with the text as its caption
            await notify_user(session, trip.owner_id, "order_complaint_owner", params, now,
                              dedupe_key=f"order-complaint-owner:{order.id}")
            await queue_notices(session, [
                notice_row(channel=channel, chat_id=chat_id, language="id", template="admin_complaint_new",
                           params=params, now=now, dedupe_key=f"admin:complaint:{order.id}:{channel}:{chat_id}")
                for channel, chat_id in self._admins])
            return await _view(session, order.id)

    async def open_complaints(self, limit: int = 20) -> list[Complaint]:
        async with self._db.read() as session:
            rows = (await session.execute(
                select(Order, Trip.slug, Participant.name).join(Trip, Trip.id == Order.trip_id)
                .outerjoin(Participant, (Participant.trip_id == Order.trip_id) & (Participant.user_id == Order.user_id))
                .where(Order.status == OrderStatus.DISPUTED).order_by(Order.complained_at).limit(limit))).all()
        return [Complaint(order_code(o.id), slug, o.total, name or "-", o.complaint or "-",
                          o.complained_at or o.updated_at, "shipped" if o.shipped_at else "confirmed")
                for o, slug, name in rows]

    async def settle_complaint(self, admin_id: int, code: str, *, refund: int, reason: str) -> tuple[int, int]:
        """An admin decides a complaint: `refund` (0 … all) goes back to the buyer's wallet, the rest is released
        to the jastiper (fee on the released part only). Recorded with who and why. Returns (refunded, released)."""
        now = self._clock.now()
        why = clean_text(reason, REASON_LENGTH)
        if not why:
            raise UserInputError("admin_reason_required")
        async with self._db.write() as session:
            order, trip = await _order_and_trip(session, code)
            escrow, wallet = ledger.escrow(order.id, order.user_id), ledger.wallet(order.user_id)
            earnings = ledger.earnings(trip.owner_id)
            known = await ledger.accounts(session, [escrow, wallet, earnings], now)
            amount = known[escrow].balance
            if not 0 <= refund <= amount:
                raise UserInputError("complaint_refund_too_much", order=order_code(order.id), total=amount)
            event: OrderEvent = "settle_refund" if refund == amount else "settle_release"
            if not await self._move(session, order, event, now, closed_at=now):
                raise UserInputError("complaint_not_open", order=order_code(order.id), order_state=order.status)
            fee, rest = release_split(amount - refund, self.fee_bps)
            await ledger.post(session, [
                ledger.Move(f"order:{order.id}:refund", escrow, wallet, refund, "order-refund"),
                ledger.Move(f"order:{order.id}:fee", escrow, ledger.REVENUE, fee, "order-fee"),
                ledger.Move(f"order:{order.id}:release", escrow, earnings, rest, "order-release"),
            ], now, known)
            await _close(session, known[escrow])
            session.add(AdminAction(admin_id=admin_id, action="complaint", target=order_code(order.id),
                                    amount=refund, reason=why, created_at=now))
            params = {"order": order_code(order.id), "slug": trip.slug, "refund": refund, "earned": rest,
                      "fee": fee, "reason": why}
            await notify_user(session, order.user_id, "order_complaint_settled_buyer", params, now,
                              dedupe_key=f"order-complaint-settled:{order.id}")
            await notify_user(session, trip.owner_id, "order_complaint_settled_owner", params, now,
                              dedupe_key=f"order-complaint-settled-owner:{order.id}")
            return refund, rest + fee

    # --- helpers ----------------------------------------------------------------------------------------

    @staticmethod
    def _require_otomatis(order: Order) -> None:
        if order.payment_mode != "otomatis":
            raise UserInputError("order_not_otomatis", order=order_code(order.id))

    async def _refund_all(self, session: AsyncSession, order: Order, now: datetime, note: str | None,
                          known: dict[ledger.Ref, ledger.AccountRow]) -> int | None:
        """The order's conditional move to refunded and, only if it won, everything its escrow holds back to the
        buyer's wallet and the escrow closed; the amount, or None when the order was no longer refundable. The
        accounts (escrow, wallet) were read and locked by the caller, before the order (one lock order)."""
        if not await self._move(session, order, "refund", now, closed_at=now, note=note):
            return None
        escrow = ledger.escrow(order.id, order.user_id)
        amount = known[escrow].balance
        await ledger.post(session, [ledger.Move(f"order:{order.id}:refund", escrow, ledger.wallet(order.user_id),
                                                amount, "order-refund")], now, known)
        await _close(session, known[escrow])
        return amount

    @staticmethod
    async def _move(session: AsyncSession, order: Order, event: OrderEvent, now: datetime, **values: object) -> bool:
        """The order's conditional move (the database decides who wins a race); stock back where the machine says."""
        moved = await session.execute(
            update(Order).where(Order.id == order.id, Order.status.in_(sources(event)))
            .values(status=target(event), updated_at=now, **values))
        if rows_changed(moved) != 1:
            return False
        if OrderStatus(target(event)) in RELEASES_STOCK:
            await session.execute(update(Product).where(Product.id == order.product_id)
                                  .values(stock=Product.stock + order.quantity))
        return True


def _payment_step(order: Order, now: datetime) -> tuple[OrderEvent, int, str] | None:
    """What paying this order now means: (event, amount, reference part) — the DP, the rest after a DP, or the
    whole total; None when nothing is due (paid, closed, or past its time to pay)."""
    if order.status == OrderStatus.PENDING and order.expires_at > now:
        if order.dp_amount:
            return "pay_dp", order.dp_amount, "dp"
        return "pay", order.total, "pay"
    if order.status == OrderStatus.DP_PAID and (order.final_due_at is None or order.final_due_at > now):
        return "pay", order.total - order.dp_amount, "pay"
    return None


def _paid_values(event: OrderEvent, trip: Trip, now: datetime, ship_by: timedelta) -> dict[str, object]:
    if event == "pay_dp":
        return {}
    return {"paid_at": now, "ship_by_at": trip.deadline_at + ship_by}


async def _tell_paid(session: AsyncSession, order: Order, trip: Trip, event: OrderEvent, amount: int,
                     now: datetime) -> None:
    params = {"order": order_code(order.id), "slug": trip.slug, "total": order.total,
              "buyer": await _buyer(session, order)}
    if event == "pay_dp":
        await notify_user(session, trip.owner_id, "order_dp_paid_owner", {**params, "dp": amount}, now,
                          dedupe_key=f"order-dp-paid:{order.id}")
    else:
        await notify_user(session, trip.owner_id, "order_paid_owner", params, now, dedupe_key=f"order-paid:{order.id}")


async def _close(session: AsyncSession, account: ledger.AccountRow) -> None:
    """A released or refunded escrow takes no more money (the database refuses transfers into it from now)."""
    await session.execute(update(Account).where(Account.id == account.id).values(status="closed"))


async def _order_and_trip(session: AsyncSession, code: str) -> tuple[Order, Trip]:
    row = (await session.execute(select(Order, Trip).join(Trip, Trip.id == Order.trip_id)
                                 .where(Order.id == parse_order_code(code)))).one_or_none()
    if row is None:
        raise UserInputError("order_not_found", order=code.upper()[:20])
    return row[0], row[1]


async def _buyer(session: AsyncSession, order: Order) -> str:
    name = await session.scalar(select(Participant.name).where(Participant.trip_id == order.trip_id,
                                                               Participant.user_id == order.user_id))
    return name or "-"


async def _view(session: AsyncSession, order_id: int) -> OrderView:
    return (await order_views(session, Order.id == order_id))[0]


async def fund_order(session: AsyncSession, order_id: int, buyer_id: int, amount: int, now: datetime, *,
                     known: dict[ledger.Ref, ledger.AccountRow], payment_code: str,
                     ship_by: timedelta = timedelta(days=30), settles_at: datetime | None = None) -> bool:
    """A gateway payment for order `order_id` was just credited to the buyer's wallet (same transaction): move it
    on into the order's escrow if the order still waits for exactly that money; else leave it in the wallet and
    tell the buyer why. The accounts were locked by the caller (accounts first, then orders)."""
    row = (await session.execute(select(Order, Trip).join(Trip, Trip.id == Order.trip_id)
                                 .where(Order.id == order_id))).one_or_none()
    if row is None:
        return False
    order, trip = row
    wallet, escrow = ledger.wallet(buyer_id), ledger.escrow(order.id, buyer_id)
    step = _payment_step(order, now)
    reason = None
    if order.user_id != buyer_id or order.payment_mode != "otomatis":
        reason = "order_kept_reason_manual"
    elif order.status in PAID:
        reason = "order_kept_reason_paid"
    elif step is None:
        reason = "order_kept_reason_closed"
    elif amount != step[1]:
        reason = "order_kept_reason_amount"
    elif wallet not in known or escrow not in known or known[wallet].balance < amount:
        reason = "order_kept_reason_amount"
    params = {"order": order_code(order.id), "slug": trip.slug, "total": amount, "payment": payment_code}
    if reason is None and step is not None:
        event, due, what = step
        values = _paid_values(event, trip, now, ship_by)
        if settles_at is not None:  # a card payment can still be charged back: hold the release until then
            values["settles_at"] = max(settles_at, order.settles_at or settles_at)
        moved = await session.execute(
            update(Order).where(Order.id == order.id, Order.status.in_(sources(event)))
            .values(status=target(event), updated_at=now, **values))
        if rows_changed(moved) == 1:
            await ledger.post(session, [ledger.Move(f"order:{order.id}:{what}", wallet, escrow, due, "order-pay")],
                              now, known)
            await notify_user(session, buyer_id, "order_paid_by_link", params, now,
                              dedupe_key=f"order-paid-buyer:{order.id}:{what}")
            await _tell_paid(session, order, trip, event, due, now)
            return True
        reason = "order_kept_reason_paid"
    await notify_user(session, buyer_id, "order_payment_kept", {**params, "reason_key": reason}, now,
                      dedupe_key=f"order-kept:{payment_code}")
    return False


def _wib(moment: datetime) -> str:
    """A moment for a notice's text (notice parameters are stored as JSON): '31-12-2026 20:00 WIB'."""
    return moment.astimezone(WIB).strftime("%d-%m-%Y %H:%M WIB")
