"""What public pages may show, read in plain values: a trip with its products (/t/<slug>), a jastiper's profile
and track record (/j/<handle>), product photos by product id. Never a participant, a phone number or an order:
the views below simply have no field for them. Also the handle a jastiper chooses (PROFIL <handle>).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from services.clock import Clock
from services.errors import StorageDataError, UserInputError
from services.kinds import OrderStatus
from services.media import read
from storage.db import Database
from storage.models import Order, Product, Trip, User

HANDLE = re.compile(r"^[a-z0-9_]{3,30}$")
ON_TIME_DAYS = 14  # "shipped on time": by the trip's deadline + this many days


@dataclass(frozen=True)
class PublicProduct:
    id: int
    code: str
    name: str
    price: int
    stock: int
    has_photo: bool


@dataclass(frozen=True)
class PublicTrip:
    slug: str
    title: str
    owner_name: str
    owner_handle: str | None
    deadline_at: datetime
    open: bool  # orders are taken (status open and the deadline not passed)
    products: tuple[PublicProduct, ...]


@dataclass(frozen=True)
class TrackRecord:
    trips_completed: int  # closed trips with at least one shipped order
    orders_shipped: int
    on_time_share: float | None  # shipped by deadline + 14 days, of the orders that had to ship; None: none yet
    member_since: datetime


@dataclass(frozen=True)
class PublicProfile:
    handle: str
    name: str
    record: TrackRecord
    open_trips: tuple[PublicTrip, ...]


def normal_handle(handle: str) -> str:
    value = (handle or "").strip().lstrip("@").lower()
    if not HANDLE.match(value):
        raise UserInputError("profil_handle_invalid")
    return value


class PublicPages:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def trip(self, slug: str) -> PublicTrip | None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,10}", slug or ""):
            return None
        async with self._db.read() as session:
            row = (await session.execute(
                select(Trip, User.display_name, User.handle).join(User, User.id == Trip.owner_id)
                .where(Trip.slug == slug.lower()))).first()
            if row is None:
                return None
            trip, name, handle = row
            products = (await session.scalars(select(Product).where(
                Product.trip_id == trip.id, Product.deleted_at.is_(None)).order_by(Product.code))).all()
        return PublicTrip(
            slug=trip.slug, title=trip.title, owner_name=name or "Jastiper", owner_handle=handle,
            deadline_at=trip.deadline_at, open=trip.status == "open" and trip.deadline_at > self._clock.now(),
            products=tuple(PublicProduct(p.id, p.code, p.name, p.price, p.stock, p.photo_path is not None)
                           for p in products),
        )

    async def profile(self, handle: str) -> PublicProfile | None:
        try:
            handle = normal_handle(handle)
        except UserInputError:
            return None
        now = self._clock.now()
        async with self._db.read() as session:
            user = await session.scalar(select(User).where(User.handle == handle))
            if user is None:
                return None
            slugs = (await session.scalars(select(Trip.slug).where(
                Trip.owner_id == user.id, Trip.status == "open", Trip.deadline_at > now)
                .order_by(Trip.deadline_at))).all()
            shipped = select(Order.trip_id).where(Order.status == OrderStatus.SHIPPED)
            completed = await session.scalar(select(func.count()).select_from(Trip).where(
                Trip.owner_id == user.id, Trip.status == "closed", Trip.id.in_(shipped)))
            # The orders that had to ship: paid (confirmed) ones and shipped ones; shipped is final, so an
            # order's updated_at is the moment it was shipped.
            due = (await session.execute(
                select(Order.status, Order.updated_at, Trip.deadline_at).join(Trip, Trip.id == Order.trip_id)
                .where(Trip.owner_id == user.id,
                       Order.status.in_([OrderStatus.SHIPPED, OrderStatus.CONFIRMED])))).all()
        on_time = sum(1 for status, at, deadline in due
                      if status == OrderStatus.SHIPPED and at <= deadline + timedelta(days=ON_TIME_DAYS))
        shipped_count = sum(1 for status, _, _ in due if status == OrderStatus.SHIPPED)
        trips = [t for t in [await self.trip(s) for s in slugs] if t is not None]
        record = TrackRecord(trips_completed=int(completed or 0), orders_shipped=shipped_count,
                             on_time_share=on_time / len(due) if due else None, member_since=user.created_at)
        return PublicProfile(handle=handle, name=user.display_name or "Jastiper", record=record,
                             open_trips=tuple(trips))

    async def product_photo(self, product_id: int) -> bytes | None:
        """A product's photo (never a proof: only products.photo_path is looked at), or None."""
        async with self._db.read() as session:
            path = await session.scalar(select(Product.photo_path).where(
                Product.id == product_id, Product.deleted_at.is_(None)))
        return await asyncio.to_thread(read, path) if path else None

    async def handle_of(self, user_id: int) -> str | None:
        async with self._db.read() as session:
            return await session.scalar(select(User.handle).where(User.id == user_id))

    async def set_handle(self, user_id: int, handle: str) -> str:
        """PROFIL <handle>: 3–30 of a-z, 0-9 and _, unique (the database says so when two race)."""
        value = normal_handle(handle)
        async with self._db.read() as session:
            taken = await session.scalar(select(User.id).where(User.handle == value))
        if taken is not None and taken != user_id:
            raise UserInputError("profil_handle_taken", handle=value)
        try:
            async with self._db.write() as session:
                await session.execute(update(User).where(User.id == user_id).values(handle=value))
        except StorageDataError as exc:  # another user took it between the look and the write
            raise UserInputError("profil_handle_taken", handle=value) from exc
        return value
