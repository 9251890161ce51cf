"""Jastip orders. Stock is reserved by one conditional UPDATE (the database decides, atomically, and a CHECK
keeps it non-negative); cancellation, rejection and expiry give it back. Order states only move forward:

    pending -> proof_submitted -> confirmed | rejected;  confirmed -> shipped;  pending -> cancelled | expired
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.clock import Clock
from services.errors import UserInputError
from services.media import image_type, store_image
from services.trips import normal_code, normal_slug, notify_user, require_owner, trip_by_slug
from storage.db import Database
from storage.models import Order, Participant, Product, Trip

MAX_QUANTITY = 1000
# Who may move an order from which states, and where to.
OWNER_MOVES = {
    "confirm": (("pending", "proof_submitted"), "confirmed"),
    "reject": (("pending", "proof_submitted"), "rejected"),
    "ship": (("confirmed",), "shipped"),
}
RELEASES_STOCK = {"rejected", "cancelled", "expired"}


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


def order_code(order_id: int) -> str:
    return f"P{order_id}"


def parse_order_code(code: str) -> int:
    text = code.strip().upper().lstrip("#")
    if not (text.startswith("P") and text[1:].isdigit()):
        raise UserInputError("order_code_invalid", code=code[:20])
    return int(text[1:])


class Orders:
    def __init__(self, db: Database, clock: Clock, *, expiry_hours: float = 24.0, media_dir: str = "data/media",
                 max_photo_bytes: int = 5_000_000) -> None:
        self._media = Path(media_dir)
        self._max_photo = max_photo_bytes
        self.db = db
        self._db = db
        self._clock = clock
        self._expiry = timedelta(hours=expiry_hours)

    async def place(self, user_id: int, code: str, quantity: int = 1, slug: str | None = None) -> OrderView:
        """PESAN <kode> [jumlah]: from the open trip (among those I joined) that sells <kode>."""
        if not 0 < quantity <= MAX_QUANTITY:
            raise UserInputError("order_quantity_invalid", maximum=MAX_QUANTITY)
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
                raise UserInputError("order_product_not_found", code=code)
            if len(found) > 1:
                raise UserInputError("order_product_ambiguous", code=code.upper(),
                                     slugs=", ".join(t.slug for _, t in found))
            product, trip = found[0]
            if trip.status != "open" or trip.deadline_at <= now:
                raise UserInputError("trip_closed", slug=trip.slug)
            reserved = await session.execute(
                update(Product)
                .where(Product.id == product.id, Product.stock >= quantity, Product.deleted_at.is_(None))
                .values(stock=Product.stock - quantity)
            )
            if reserved.rowcount != 1:
                left = await session.scalar(select(Product.stock).where(Product.id == product.id))
                raise UserInputError("order_out_of_stock", code=product.code, left=int(left or 0))
            order = Order(trip_id=trip.id, product_id=product.id, user_id=user_id, quantity=quantity,
                          unit_price=product.price, total=product.price * quantity, status="pending",
                          created_at=now, updated_at=now, expires_at=now + self._expiry)
            session.add(order)
            await session.flush()
            view = OrderView(order_code(order.id), trip.slug, product.code, product.name, quantity, order.total,
                             "pending", "")
            await notify_user(session, trip.owner_id, "order_new_owner",
                              {"order": view.code, "slug": trip.slug, "code": product.code, "name": product.name,
                               "quantity": quantity, "total": order.total}, now, dedupe_key=f"order-new:{order.id}")
            return view

    async def submit_proof(self, user_id: int, code: str, image: bytes) -> OrderView:
        """BAYAR: the buyer's proof for a pending order; stored on disk, forwarded to the jastiper."""
        image_type(image)  # refuse a non-image before touching the order
        if len(image) > self._max_photo:
            raise UserInputError("proof_too_large", maximum=f"{self._max_photo // 1_000_000} MB")
        now = self._clock.now()
        async with self._db.write() as session:
            order, trip = await self._order_and_trip(session, code)
            if order.user_id != user_id:
                raise UserInputError("order_not_found", order=code)
            moved = await session.execute(
                update(Order).where(Order.id == order.id, Order.status.in_(("pending", "proof_submitted")))
                .values(status="proof_submitted", updated_at=now)
            )
            if moved.rowcount != 1:
                raise UserInputError("order_wrong_state", order=code, status=order.status)
            path = store_image(self._media, "proofs", f"{order_code(order.id)}-{int(now.timestamp())}", image,
                               self._max_photo)
            buyer = await session.scalar(select(Participant.name).where(
                Participant.trip_id == trip.id, Participant.user_id == user_id))
            await notify_user(session, trip.owner_id, "order_proof_owner",
                              {"order": order_code(order.id), "slug": trip.slug, "total": order.total,
                               "buyer": buyer or "-", "photo": str(path)}, now,
                              dedupe_key=f"order-proof:{order.id}:{int(now.timestamp())}")
            return (await self._views(session, Order.id == order.id))[0]

    async def mine(self, user_id: int) -> list[OrderView]:
        async with self._db.read() as session:
            return await self._views(session, Order.user_id == user_id)

    async def of_trip(self, owner_id: int, slug: str, status: str | None = None) -> list[OrderView]:
        async with self._db.read() as session:
            trip = await trip_by_slug(session, slug)
            require_owner(trip, owner_id)
            condition = Order.trip_id == trip.id
            if status:
                condition = condition & (Order.status == status.lower())
            return await self._views(session, condition)

    async def _views(self, session: AsyncSession, condition) -> list[OrderView]:
        rows = await session.execute(
            select(Order, Product.code, Product.name, Trip.slug, Participant.name)
            .join(Product, Product.id == Order.product_id)
            .join(Trip, Trip.id == Order.trip_id)
            .join(Participant, (Participant.trip_id == Order.trip_id) & (Participant.user_id == Order.user_id),
                  isouter=True)
            .where(condition).order_by(Order.id)
        )
        return [OrderView(order_code(o.id), slug, code, name, o.quantity, o.total, o.status, buyer or "")
                for o, code, name, slug, buyer in rows]

    async def cancel(self, user_id: int, code: str) -> OrderView:
        """BATAL <order>: the buyer's own pending order; the stock goes back."""
        return await self._move(code, ("pending",), "cancelled", actor=user_id, as_owner=False)

    async def owner_move(self, owner_id: int, code: str, action: str, note: str | None = None) -> OrderView:
        """KONFIRMASI / TOLAK [alasan] / KIRIM [resi]: only the trip's owner."""
        allowed, to = OWNER_MOVES[action]
        return await self._move(code, allowed, to, actor=owner_id, as_owner=True, note=note)

    async def _move(self, code: str, allowed: tuple[str, ...], to: str, *, actor: int, as_owner: bool,
                    note: str | None = None) -> OrderView:
        now = self._clock.now()
        async with self._db.write() as session:
            order, trip = await self._order_and_trip(session, code)
            if as_owner:
                require_owner(trip, actor)
            elif order.user_id != actor:
                raise UserInputError("order_not_found", order=code)
            moved = await session.execute(
                update(Order).where(Order.id == order.id, Order.status.in_(allowed))
                .values(status=to, updated_at=now, note=(note or None))
            )
            if moved.rowcount != 1:
                raise UserInputError("order_wrong_state", order=code, status=order.status)
            if to in RELEASES_STOCK:
                await session.execute(update(Product).where(Product.id == order.product_id)
                                      .values(stock=Product.stock + order.quantity))
            if as_owner:
                await notify_user(session, order.user_id, f"order_{to}",
                                  {"order": order_code(order.id), "slug": trip.slug, "total": order.total,
                                   "note": note or "-"}, now, dedupe_key=f"order-{to}:{order.id}")
            views = await self._views(session, Order.id == order.id)
            return views[0]

    @staticmethod
    async def _order_and_trip(session: AsyncSession, code: str) -> tuple[Order, Trip]:
        row = (await session.execute(
            select(Order, Trip).join(Trip, Trip.id == Order.trip_id).where(Order.id == parse_order_code(code))
        )).one_or_none()
        if row is None:
            raise UserInputError("order_not_found", order=code)
        return row[0], row[1]

    async def expire_due(self) -> int:
        """Unpaid pending orders past their expiry give their stock back; the buyer is told."""
        now = self._clock.now()
        async with self._db.write() as session:
            due = (await session.execute(
                select(Order.id, Order.product_id, Order.quantity, Order.user_id, Order.total, Trip.slug)
                .join(Trip, Trip.id == Order.trip_id)
                .where(Order.status == "pending", Order.expires_at <= now)
            )).all()
            for order_id, product_id, quantity, user_id, total, slug in due:
                moved = await session.execute(update(Order).where(Order.id == order_id, Order.status == "pending")
                                              .values(status="expired", updated_at=now))
                if moved.rowcount == 1:
                    await session.execute(update(Product).where(Product.id == product_id)
                                          .values(stock=Product.stock + quantity))
                    await notify_user(session, user_id, "order_expired",
                                      {"order": order_code(order_id), "slug": slug, "total": total}, now,
                                      dedupe_key=f"order-expired:{order_id}")
            return len(due)


ACTIVE = ("pending", "proof_submitted", "confirmed", "shipped")


@dataclass(frozen=True)
class RecapParticipant:
    name: str
    channel: str
    items: str  # "KK1×2, TK3×1"
    quantity: int
    total: int
    statuses: str


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
    participants: tuple[RecapParticipant, ...]
    products: tuple[RecapProduct, ...]


async def recap(db: Database, owner_id: int, slug: str) -> Recap:
    """REKAP: active orders (not cancelled, expired or rejected) per participant and per product."""
    from storage.models import User

    async with db.read() as session:
        trip = await trip_by_slug(session, slug)
        require_owner(trip, owner_id)
        rows = (await session.execute(
            select(Order, Product.code, Participant.name, User.channel)
            .join(Product, Product.id == Order.product_id)
            .join(User, User.id == Order.user_id)
            .join(Participant, (Participant.trip_id == Order.trip_id) & (Participant.user_id == Order.user_id),
                  isouter=True)
            .where(Order.trip_id == trip.id, Order.status.in_(ACTIVE)).order_by(Order.id)
        )).all()
        people: dict[int, list] = {}
        for order, code, name, channel in rows:
            people.setdefault(order.user_id, [name or "-", channel, [], 0, 0, set()])
            entry = people[order.user_id]
            entry[2].append(f"{code}×{order.quantity}")
            entry[3] += order.quantity
            entry[4] += order.total
            entry[5].add(order.status)
        products = (await session.scalars(select(Product).where(Product.trip_id == trip.id).order_by(Product.code)))
        by_product: dict[int, tuple[int, int]] = {}
        for order, *_ in rows:
            quantity, total = by_product.get(order.product_id, (0, 0))
            by_product[order.product_id] = (quantity + order.quantity, total + order.total)
        return Recap(
            trip.slug, trip.title,
            tuple(RecapParticipant(n, c, ", ".join(items), q, t, ", ".join(sorted(st)))
                  for n, c, items, q, t, st in people.values()),
            tuple(RecapProduct(p.code, p.name, p.price, *by_product.get(p.id, (0, 0)), p.stock)
                  for p in products.all() if p.id in by_product or p.deleted_at is None),
        )
