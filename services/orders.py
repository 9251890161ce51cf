"""Jastip orders. Stock is reserved by one conditional UPDATE (the database decides, atomically, and a CHECK
keeps it non-negative); cancellation, rejection and expiry give it back. Order states only move forward,
except that a proof the jastiper finds wrong sends the order back to waiting for payment:

    pending -> proof_submitted -> confirmed -> shipped
    pending | proof_submitted -> rejected (TOLAK)        pending -> cancelled (BATAL) | expired
    proof_submitted -> pending (proof not accepted: the buyer sends a new one)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.clock import Clock
from services.errors import UserInputError
from services.kinds import OrderStatus
from services.media import reencode, remove, remove_older_than, store_image
from services.order_machine import RELEASES_STOCK, OrderEvent, applies, sources, target
from services.text import clean_name, clean_text
from services.trips import normal_code, normal_slug, notify_user, require_owner, trip_by_slug
from storage.db import Database
from storage.models import Order, Participant, Product, Transfer, Trip, User
from storage.queries import rows_changed

MAX_QUANTITY = 1000
NOTE_LENGTH = 500
WIB = timezone(timedelta(hours=7))
# Who may move an order from which states, and where to.
OWNER_MOVES: dict[str, OrderEvent] = {"confirm": "confirm", "reject": "reject", "ship": "ship"}
ACTIVE = ("pending", "proof_submitted", "dp_paid", "confirmed", "shipped")
PAID = ("confirmed", "shipped", "received", "disputed")  # lunas (a DP alone is not)
IN_RECAP = (*ACTIVE, "received", "disputed")  # every order that was or will be bought
IN_RECAP_MONEY = (*IN_RECAP, "refunded", "forfeited")  # the recap's orders: refunded ones too, for their money
PROOF_REASONS = ("proof_reason_amount", "proof_reason_unreadable", "proof_reason_missing")


@dataclass(frozen=True)
class OrderView:
    code: str
    slug: str
    product_code: str
    product_name: str
    quantity: int
    total: int
    status: str
    buyer: str
    expires_at: datetime | None = None
    payment_mode: str = "manual"  # the order's own (copied from its trip when placed)
    payment_instructions: str | None = None
    trip_title: str = ""
    release_at: datetime | None = None  # otomatis, shipped: when the escrow goes to the jastiper by itself
    owner_id: int = 0
    deadline_at: datetime | None = None
    dp_amount: int = 0  # otomatis with a down payment: due at order time, the rest after TIBA
    final_due_at: datetime | None = None

    @property
    def due(self) -> int:
        """What the buyer pays next: the DP, the rest after a DP, or the whole total; 0 once lunas."""
        if self.status == "pending":
            return self.dp_amount or self.total
        if self.status == "dp_paid":
            return self.total - self.dp_amount
        return 0


def order_code(order_id: int) -> str:
    return f"P{order_id}"


def parse_order_code(code: str) -> int:
    text = (code or "").strip().upper().lstrip("#")
    digits = text[1:]
    if not (text.startswith("P") and digits.isascii() and digits.isdigit() and len(digits) <= 18):
        raise UserInputError("order_code_invalid", code=clean_name(code, 20))
    return int(digits)


def looks_like_order_code(text: str) -> bool:
    try:
        parse_order_code(text)
    except UserInputError:
        return False
    return True


class Orders:
    def __init__(self, db: Database, clock: Clock, *, expiry_hours: float = 24.0, media_dir: str = "data/media",
                 max_photo_bytes: int = 5_000_000, proofs_per_day: int = 3, auto_release_days: float = 7.0) -> None:
        self._auto_release = timedelta(days=auto_release_days)
        self._media = Path(media_dir)
        self._max_photo = max_photo_bytes
        self._proofs_per_day = proofs_per_day
        self._db = db
        self._clock = clock
        self._expiry = timedelta(hours=expiry_hours)

    async def place(self, user_id: int, code: str, quantity: int = 1, slug: str | None = None, *,
                    link_limit: int | None = None, balance: int = 0) -> OrderView:
        """PESAN <kode> [jumlah]: from the open trip (among those I joined) that sells <kode>. On an otomatis
        trip, what is due now (the DP or the total) above one link payment's `link_limit` and above the
        buyer's `balance` cannot be paid at all: that is said before any stock is reserved."""
        if not 0 < quantity <= MAX_QUANTITY:
            raise UserInputError("order_quantity_invalid", most=MAX_QUANTITY)
        now = self._clock.now()
        async with self._db.write() as session:
            query = (
                select(Product, Trip)
                .join(Trip, Trip.id == Product.trip_id)
                .join(Participant, (Participant.trip_id == Trip.id) & (Participant.user_id == user_id))
                .where(Product.code == normal_code(code), Product.deleted_at.is_(None),
                       Participant.status == "joined")
            )
            if slug:
                query = query.where(Trip.slug == normal_slug(slug))
            found = (await session.execute(query)).all()
            if not found:
                raise UserInputError("order_product_not_found", code=code.upper())
            if len(found) > 1:
                raise UserInputError("order_product_ambiguous", code=code.upper(),
                                     slugs=", ".join(t.slug for _, t in found))
            product, trip = found[0]
            if trip.status != "open" or trip.deadline_at <= now:
                raise UserInputError("order_trip_closed", slug=trip.slug, title=trip.title)
            if trip.payment_mode == "otomatis" and link_limit is not None:
                total = product.price * quantity
                due = total * trip.dp_percent // 100 if trip.dp_percent else total
                if due > link_limit and due > balance:
                    raise UserInputError("order_over_link_limit_refused", total=total, due=due, limit=link_limit,
                                         balance=balance)
            reserved = await session.execute(
                update(Product)
                .where(Product.id == product.id, Product.stock >= quantity, Product.deleted_at.is_(None))
                .values(stock=Product.stock - quantity)
            )
            if rows_changed(reserved) != 1:
                left = await session.scalar(select(Product.stock).where(Product.id == product.id))
                raise UserInputError("order_out_of_stock", code=product.code, left=int(left or 0))
            order = Order(trip_id=trip.id, product_id=product.id, user_id=user_id, quantity=quantity,
                          unit_price=product.price, total=product.price * quantity, status="pending",
                          created_at=now, updated_at=now, expires_at=now + self._expiry,
                          payment_mode=trip.payment_mode)
            if trip.payment_mode == "otomatis" and trip.dp_percent:
                # The trip's DP rule as it is now: changing the trip affects new orders only.
                order.dp_amount = order.total * trip.dp_percent // 100
                order.dp_policy = trip.dp_policy
            session.add(order)
            await session.flush()
            buyer = await session.scalar(select(Participant.name).where(
                Participant.trip_id == trip.id, Participant.user_id == user_id)) or "-"
            view = OrderView(order_code(order.id), trip.slug, product.code, product.name, quantity, order.total,
                             "pending", buyer, order.expires_at, trip.payment_mode, trip.payment_instructions,
                             trip.title, owner_id=trip.owner_id, deadline_at=trip.deadline_at,
                             dp_amount=order.dp_amount or 0)
            await notify_user(session, trip.owner_id, "order_new_owner",
                              {"order": view.code, "slug": trip.slug, "code": product.code, "name": product.name,
                               "quantity": quantity, "total": order.total, "buyer": buyer}, now,
                              dedupe_key=f"order-new:{order.id}")
            return view

    async def submit_proof(self, user_id: int, code: str, image: bytes) -> OrderView:
        """BAYAR: the buyer's proof for an unpaid order. It replaces an earlier proof, at most
        `proofs_per_day` per order per WIB day; the jastiper gets it with buttons."""
        order_id = parse_order_code(code)
        picture = await asyncio.to_thread(reencode, image, self._max_photo)  # CPU work, off the event loop
        now = self._clock.now()
        day = now.astimezone(WIB).date().isoformat()
        path = None
        try:
            async with self._db.write() as session:
                order, trip = await self._order_and_trip(session, order_id, code)
                if order.user_id != user_id:
                    raise UserInputError("order_not_found", order=code.upper())
                if not applies("proof", order.payment_mode):
                    raise UserInputError("order_proof_otomatis", order=order_code(order.id))
                if order.status not in sources("proof"):
                    raise UserInputError("order_wrong_state", order=order_code(order.id), order_state=order.status)
                sent_today = order.proofs_today if order.proof_day == day else 0
                if sent_today >= self._proofs_per_day:
                    raise UserInputError("proof_limit", order=order_code(order.id), most=self._proofs_per_day)
                path = str(store_image(self._media, "proofs", order_code(order.id), picture))
                previous = order.proof_path
                moved = await session.execute(
                    update(Order).where(Order.id == order.id, Order.status.in_(sources("proof")))
                    .values(status=target("proof"), updated_at=now, proof_path=path, proof_day=day,
                            proofs_today=sent_today + 1)
                )
                if rows_changed(moved) != 1:
                    raise UserInputError("order_wrong_state", order=order_code(order.id), order_state=order.status)
                buyer = await session.scalar(select(Participant.name).where(
                    Participant.trip_id == trip.id, Participant.user_id == user_id))
                await notify_user(session, trip.owner_id, "order_proof_owner",
                                  {"order": order_code(order.id), "slug": trip.slug, "total": order.total,
                                   "buyer": buyer or "-", "photo": path}, now,
                                  dedupe_key=f"order-proof:{order.id}:{day}:{sent_today + 1}")
                views = await self._views(session, Order.id == order.id)
        except Exception:
            remove(path)
            raise
        remove(previous)  # the new proof replaces it
        return views[0]

    async def reject_proof(self, owner_id: int, code: str, reason_key: str) -> OrderView:
        """The proof is not accepted: the order waits for payment again (with time to pay) and the buyer is
        asked for a new proof, with the reason."""
        if reason_key not in PROOF_REASONS:
            raise UserInputError("usage_tolak")
        now = self._clock.now()
        async with self._db.write() as session:
            order, trip = await self._order_and_trip(session, parse_order_code(code), code)
            require_owner(trip, owner_id)
            moved = await session.execute(
                update(Order).where(Order.id == order.id, Order.status.in_(sources("proof_rejected")))
                .values(status=target("proof_rejected"), updated_at=now, note=None,
                        expires_at=max(order.expires_at, now + self._expiry))
            )
            if rows_changed(moved) != 1:
                raise UserInputError("order_wrong_state", order=order_code(order.id), order_state=order.status)
            await notify_user(session, order.user_id, "order_proof_rejected",
                              {"order": order_code(order.id), "slug": trip.slug, "total": order.total,
                               "reason_key": reason_key}, now,
                              dedupe_key=f"order-proof-rejected:{order.id}:{order.proofs_today}:{order.proof_day}")
            return (await self._views(session, Order.id == order.id))[0]

    async def mine(self, user_id: int) -> list[OrderView]:
        async with self._db.read() as session:
            return await self._views(session, Order.user_id == user_id)

    async def pending_of(self, user_id: int) -> list[OrderView]:
        """My orders that BATAL can still cancel."""
        async with self._db.read() as session:
            return await self._views(session, (Order.user_id == user_id) & (Order.status == "pending"))

    async def of_trip(self, owner_id: int, slug: str, statuses: tuple[str, ...] | None = None) -> list[OrderView]:
        async with self._db.read() as session:
            trip = await trip_by_slug(session, slug)
            require_owner(trip, owner_id)
            condition = Order.trip_id == trip.id
            if statuses:
                condition = condition & Order.status.in_(statuses)
            return await self._views(session, condition)

    async def of_trip_order(self, owner_id: int, code: str) -> OrderView | None:
        """One order of a trip I own, or None (not mine, or no such order)."""
        try:
            order_id = parse_order_code(code)
        except UserInputError:
            return None
        async with self._db.read() as session:
            views = await order_views(session, (Order.id == order_id) & (Trip.owner_id == owner_id))
        return views[0] if views else None

    async def _views(self, session: AsyncSession, condition: ColumnElement[bool]) -> list[OrderView]:
        return await order_views(session, condition)

    async def cancel(self, user_id: int, code: str) -> OrderView:
        """BATAL <order>: the buyer's own pending order; the stock goes back."""
        return await self._move(code, "cancel", actor=user_id, as_owner=False)

    async def owner_move(self, owner_id: int, code: str, action: str, note: str | None = None) -> OrderView:
        """KONFIRMASI / TOLAK [alasan] / KIRIM [resi]: only the trip's owner."""
        return await self._move(code, OWNER_MOVES[action], actor=owner_id, as_owner=True,
                                note=clean_text(note, NOTE_LENGTH) or None)

    async def _move(self, code: str, event: OrderEvent, *, actor: int, as_owner: bool,
                    note: str | None = None) -> OrderView:
        allowed, to = sources(event), target(event)
        now = self._clock.now()
        async with self._db.write() as session:
            order, trip = await self._order_and_trip(session, parse_order_code(code), code)
            if as_owner:
                require_owner(trip, actor)
            elif order.user_id != actor:
                raise UserInputError("order_not_found", order=code.upper())
            if not applies(event, order.payment_mode):
                # otomatis: money arriving in escrow makes an order lunas, never the jastiper's word or a photo.
                raise UserInputError(f"order_{event}_otomatis" if order.payment_mode == "otomatis"
                                     else "order_not_otomatis", order=order_code(order.id))
            values: dict[str, object] = {"status": to, "updated_at": now, "note": note}
            if event == "ship" and order.payment_mode == "otomatis":
                values.update(shipped_at=now, release_at=now + self._auto_release)
            moved = await session.execute(
                update(Order).where(Order.id == order.id, Order.status.in_(allowed)).values(**values)
            )
            if rows_changed(moved) != 1:
                raise UserInputError("order_wrong_state", order=order_code(order.id), order_state=order.status)
            if OrderStatus(to) in RELEASES_STOCK:
                await session.execute(update(Product).where(Product.id == order.product_id)
                                      .values(stock=Product.stock + order.quantity))
            if as_owner:
                escrowed = to == "shipped" and order.payment_mode == "otomatis"
                params = {"order": order_code(order.id), "slug": trip.slug, "total": order.total, "note": note or "-"}
                if escrowed:
                    params["release_at"] = _wib(now + self._auto_release)
                await notify_user(session, order.user_id, "order_shipped_escrow" if escrowed else f"order_{to}",
                                  params, now, dedupe_key=f"order-{to}:{order.id}")
            views = await self._views(session, Order.id == order.id)
            return views[0]

    @staticmethod
    async def _order_and_trip(session: AsyncSession, order_id: int, code: str) -> tuple[Order, Trip]:
        row = (await session.execute(
            select(Order, Trip).join(Trip, Trip.id == Order.trip_id).where(Order.id == order_id)
        )).one_or_none()
        if row is None:
            raise UserInputError("order_not_found", order=clean_name(code, 20).upper())
        return row[0], row[1]

    async def recap(self, owner_id: int, slug: str) -> Recap:
        """REKAP: the trip's active orders with each buyer's contact, and the shopping list (owner only)."""
        return await _recap(self._db, owner_id, slug)

    async def purge_proofs(self, retention_days: float) -> int:
        """Payment proofs are personal data (bank names, account numbers): deleted `retention_days` after their
        order last moved. The order keeps everything else."""
        cutoff = self._clock.now() - timedelta(days=retention_days)
        async with self._db.write() as session:
            rows = (await session.execute(select(Order.id, Order.proof_path).where(
                Order.proof_path.is_not(None), Order.updated_at < cutoff).limit(1000))).all()
            if rows:
                await session.execute(update(Order).where(Order.id.in_([i for i, _ in rows])).values(proof_path=None))
        for _, path in rows:  # after the commit: a failed delete leaves a file no row points to, never the reverse
            await asyncio.to_thread(remove, path)
        return len(rows) + await self.purge_complaint_photos(retention_days)

    async def purge_complaint_photos(self, retention_days: float) -> int:
        """Complaint evidence (KOMPLAIN with a photo) is kept as long as payment proofs, then deleted."""
        cutoff = (self._clock.now() - timedelta(days=retention_days)).timestamp()
        return await asyncio.to_thread(remove_older_than, self._media / "complaints", cutoff)

    async def expire_due(self) -> int:
        """Unpaid pending orders past their expiry give their stock back; buyer and jastiper are told."""
        now = self._clock.now()
        async with self._db.write() as session:
            due = (await session.execute(
                select(Order.id, Order.product_id, Order.quantity, Order.user_id, Order.total, Trip.slug,
                       Trip.owner_id, Participant.name)
                .join(Trip, Trip.id == Order.trip_id)
                .join(Participant, (Participant.trip_id == Order.trip_id) & (Participant.user_id == Order.user_id),
                      isouter=True)
                .where(Order.status.in_(sources("expire")), Order.expires_at <= now)
            )).all()
            for order_id, product_id, quantity, user_id, total, slug, owner_id, buyer in due:
                moved = await session.execute(update(Order).where(Order.id == order_id,
                                                                  Order.status.in_(sources("expire")))
                                              .values(status=target("expire"), updated_at=now))
                if rows_changed(moved) == 1:
                    await session.execute(update(Product).where(Product.id == product_id)
                                          .values(stock=Product.stock + quantity))
                    params = {"order": order_code(order_id), "slug": slug, "total": total}
                    await notify_user(session, user_id, "order_expired", params, now,
                                      dedupe_key=f"order-expired:{order_id}")
                    await notify_user(session, owner_id, "order_expired_owner", {**params, "buyer": buyer or "-"},
                                      now, dedupe_key=f"order-expired-owner:{order_id}")
            return len(due)


@dataclass(frozen=True)
class RecapOrder:
    order: str
    buyer: str
    channel: str
    external_id: str
    username: str | None
    product_code: str
    product_name: str
    quantity: int
    unit_price: int
    total: int
    status: str
    created_at: datetime
    payment_mode: str = "manual"
    # otomatis: where its money is now (Rupiah), from the ledger
    in_escrow: int = 0
    released: int = 0  # to the jastiper's earnings
    fee: int = 0  # to Titip, on release
    refunded: int = 0  # back to the buyer (whole or part)


@dataclass(frozen=True)
class RecapProduct:
    code: str
    name: str
    price: int
    quantity: int
    total: int
    stock_left: int


@dataclass(frozen=True)
class Recap:
    slug: str
    title: str
    orders: tuple[RecapOrder, ...]
    products: tuple[RecapProduct, ...]


async def _recap(db: Database, owner_id: int, slug: str) -> Recap:
    """REKAP: the trip's active orders (not cancelled, expired or rejected), each with the buyer's contact,
    and the shopping list per product."""
    async with db.read() as session:
        trip = await trip_by_slug(session, slug)
        require_owner(trip, owner_id)
        rows = (await session.execute(
            select(Order, Product.code, Product.name, Participant.name, User.channel, User.external_id,
                   User.username)
            .join(Product, Product.id == Order.product_id)
            .join(User, User.id == Order.user_id)
            .join(Participant, (Participant.trip_id == Order.trip_id) & (Participant.user_id == Order.user_id),
                  isouter=True)
            .where(Order.trip_id == trip.id, Order.status.in_(IN_RECAP_MONEY)).order_by(Order.id)
        )).all()
        money = await _order_money(session, [o.id for o, *_ in rows if o.payment_mode == "otomatis"])
        orders = tuple(RecapOrder(order_code(o.id), name or "-", channel, external_id, username, code, pname,
                                  o.quantity, o.unit_price, o.total, o.status, o.created_at, o.payment_mode,
                                  **money.get(o.id, {}))
                       for o, code, pname, name, channel, external_id, username in rows
                       if o.status != "refunded" or o.payment_mode == "otomatis")
        totals = (await session.execute(
            select(Order.product_id, func.sum(Order.quantity), func.sum(Order.total))
            .where(Order.trip_id == trip.id, Order.status.in_(IN_RECAP)).group_by(Order.product_id))).all()
        by_product = {pid: (int(q or 0), int(t or 0)) for pid, q, t in totals}
        products = (await session.scalars(select(Product).where(Product.trip_id == trip.id)
                                          .order_by(Product.code))).all()
        return Recap(
            trip.slug, trip.title, orders,
            tuple(RecapProduct(p.code, p.name, p.price, *by_product.get(p.id, (0, 0)), p.stock)
                  for p in products if p.id in by_product or p.deleted_at is None),
        )


async def _order_money(session: AsyncSession, order_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per otomatis order: what its escrow holds and what left it, released, fee and refunded, read from the
    transfers whose references are the order's (order:<id>:pay|fee|release|refund|part<n>)."""
    if not order_ids:
        return {}
    found: dict[int, dict[str, int]] = {i: {"in_escrow": 0, "released": 0, "fee": 0, "refunded": 0}
                                        for i in order_ids}
    rows = (await session.execute(select(Transfer.reference, Transfer.amount).where(
        Transfer.reference.in_([f"order:{i}:{what}" for i in order_ids for what in ("dp", "pay", "fee", "release",
                                                                                    "refund")])
        | Transfer.reference.like("order:%:part%")))).all()
    for reference, amount in rows:
        _, order_id, what = reference.split(":")
        entry = found.get(int(order_id))
        if entry is None:
            continue
        if what in ("pay", "dp"):
            entry["in_escrow"] += amount
        else:
            key = {"fee": "fee", "release": "released"}.get(what, "refunded")
            entry[key] += amount
            entry["in_escrow"] -= amount
    return found


async def order_views(session: AsyncSession, condition: ColumnElement[bool]) -> list[OrderView]:
    """Orders as people see them: product, trip, buyer's name, state."""
    rows = await session.execute(
        select(Order, Product.code, Product.name, Trip.slug, Trip.title, Trip.owner_id, Trip.deadline_at,
               Trip.payment_instructions, Participant.name)
        .join(Product, Product.id == Order.product_id)
        .join(Trip, Trip.id == Order.trip_id)
        .join(Participant, (Participant.trip_id == Order.trip_id) & (Participant.user_id == Order.user_id),
              isouter=True)
        .where(condition).order_by(Order.id)
    )
    return [OrderView(order_code(o.id), slug, code, name, o.quantity, o.total, o.status, buyer or "",
                      o.expires_at, o.payment_mode, instructions, title, o.release_at, owner, deadline,
                      o.dp_amount or 0, o.final_due_at)
            for o, code, name, slug, title, owner, deadline, instructions, buyer in rows]


def _wib(moment: datetime) -> str:
    """A moment for a notice's text (notice parameters are stored as JSON): '31-12-2026 20:00 WIB'."""
    return moment.astimezone(WIB).strftime("%d-%m-%Y %H:%M WIB")
