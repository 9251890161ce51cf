"""Jastip trips: a jastiper's trip with its products, and the participants who join, ask and stop.

Only a trip's owner manages it; every refusal is a UserInputError whose key names the catalog message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.clock import Clock
from services.errors import DataConflict, UserInputError
from services.media import image_type, store_image
from services.outbox import enqueue
from storage.db import Database
from storage.models import Order, Participant, Product, Trip, User
from storage.queries import insert_ignore

SLUG = re.compile(r"^[A-Za-z0-9_-]{3,10}$")
CODE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")


@dataclass(frozen=True)
class ProductView:
    code: str
    name: str
    price: int
    stock: int
    photo_path: str | None = None


@dataclass(frozen=True)
class TripView:
    slug: str
    title: str
    deadline_at: datetime
    status: str
    owner_id: int
    participants: int = 0
    orders: int = 0
    products: tuple[ProductView, ...] = ()


@dataclass(frozen=True)
class ParticipantView:
    name: str
    status: str
    channel: str
    external_id: str


def normal_slug(slug: str) -> str:
    if not SLUG.match(slug or ""):
        raise UserInputError("trip_slug_invalid", slug=(slug or "")[:20])
    return slug.lower()


def normal_code(code: str) -> str:
    if not CODE.match(code or ""):
        raise UserInputError("product_code_invalid", code=(code or "")[:20])
    return code.upper()


async def trip_by_slug(session: AsyncSession, slug: str, *, lock: bool = False) -> Trip:
    query = select(Trip).where(Trip.slug == normal_slug(slug))
    trip = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if trip is None:
        raise UserInputError("trip_not_found", slug=slug)
    return trip


def require_owner(trip: Trip, user_id: int) -> None:
    if trip.owner_id != user_id:
        raise UserInputError("trip_not_owner", slug=trip.slug)


async def notify_user(session: AsyncSession, user_id: int, template: str, params: dict, now: datetime,
                      dedupe_key: str | None = None) -> None:
    user = await session.get_one(User, user_id)
    await enqueue(session, channel=user.channel, chat_id=user.external_id, language=user.language,
                  template=template, params=params, now=now, dedupe_key=dedupe_key)


class Trips:
    def __init__(self, db: Database, clock: Clock, *, media_dir: str = "data/media",
                 max_photo_bytes: int = 5_000_000) -> None:
        self._db = db
        self._clock = clock
        self._media = Path(media_dir)
        self._max_photo = max_photo_bytes

    async def create(self, owner_id: int, slug: str, title: str, deadline_at: datetime) -> TripView:
        slug = normal_slug(slug)
        title = title.strip()[:120]
        if not title:
            raise UserInputError("trip_title_missing")
        now = self._clock.now()
        if deadline_at <= now:
            raise UserInputError("trip_deadline_past")
        try:
            async with self._db.write() as session:
                session.add(Trip(slug=slug, title=title, owner_id=owner_id, deadline_at=deadline_at, status="open",
                                 created_at=now))
        except DataConflict:
            raise UserInputError("trip_slug_taken", slug=slug) from None
        return TripView(slug, title, deadline_at, "open", owner_id)

    async def mine(self, owner_id: int) -> list[TripView]:
        async with self._db.read() as session:
            trips = (await session.scalars(select(Trip).where(Trip.owner_id == owner_id).order_by(Trip.id))).all()
            return [await self._view(session, t) for t in trips]

    async def detail(self, slug: str) -> TripView:
        async with self._db.read() as session:
            return await self._view(session, await trip_by_slug(session, slug), with_products=True)

    async def _view(self, session: AsyncSession, trip: Trip, with_products: bool = False) -> TripView:
        joined = await session.scalar(select(func.count()).select_from(Participant).where(
            Participant.trip_id == trip.id, Participant.status == "joined"))
        orders = await session.scalar(select(func.count()).select_from(Order).where(Order.trip_id == trip.id))
        products: tuple[ProductView, ...] = ()
        if with_products:
            rows = await session.scalars(select(Product).where(Product.trip_id == trip.id,
                                                               Product.deleted_at.is_(None)).order_by(Product.code))
            products = tuple(ProductView(p.code, p.name, p.price, p.stock, p.photo_path) for p in rows)
        return TripView(trip.slug, trip.title, trip.deadline_at, trip.status, trip.owner_id, int(joined or 0),
                        int(orders or 0), products)

    async def set_status(self, owner_id: int, slug: str, status: str) -> TripView:
        """TUTUP / BUKA: only the owner; reopening needs a deadline still in the future."""
        now = self._clock.now()
        async with self._db.write() as session:
            trip = await trip_by_slug(session, slug, lock=True)
            require_owner(trip, owner_id)
            if status == "open" and trip.deadline_at <= now:
                raise UserInputError("trip_deadline_past")
            trip.status = status
            trip.closed_at = now if status == "closed" else None
            return await self._view(session, trip)

    async def set_deadline(self, owner_id: int, slug: str, deadline_at: datetime) -> TripView:
        if deadline_at <= self._clock.now():
            raise UserInputError("trip_deadline_past")
        async with self._db.write() as session:
            trip = await trip_by_slug(session, slug, lock=True)
            require_owner(trip, owner_id)
            trip.deadline_at = deadline_at
            return await self._view(session, trip)

    async def add_product(self, owner_id: int, slug: str, code: str, price: int, stock: int, name: str,
                          photo: bytes | None = None) -> ProductView:
        """PRODUK: a product on my trip; a photo sent with it is checked and kept beside it."""
        code, name = normal_code(code), name.strip()[:120]
        if price <= 0 or stock < 0 or not name:
            raise UserInputError("product_invalid")
        if photo is not None:
            image_type(photo)  # refuse a non-image before anything is written
        now = self._clock.now()
        try:
            async with self._db.write() as session:
                trip = await trip_by_slug(session, slug)
                require_owner(trip, owner_id)
                path = None
                if photo is not None:
                    path = str(store_image(self._media, "products", f"{trip.slug}-{code}-{int(now.timestamp())}",
                                           photo, self._max_photo))
                session.add(Product(trip_id=trip.id, code=code, name=name, price=price, stock=stock,
                                    photo_path=path, created_at=now))
        except DataConflict:
            raise UserInputError("product_code_taken", code=code) from None
        return ProductView(code, name, price, stock, path)

    async def _owned_product(self, session: AsyncSession, owner_id: int, code: str) -> Product:
        rows = (await session.scalars(
            select(Product).join(Trip, Trip.id == Product.trip_id)
            .where(Trip.owner_id == owner_id, Product.code == normal_code(code), Product.deleted_at.is_(None))
            .order_by(Product.id.desc())
        )).all()
        if not rows:
            raise UserInputError("product_not_found", code=code)
        return rows[0]

    async def update_product(self, owner_id: int, code: str, field: str, value: str) -> ProductView:
        """UBAH <kode> harga|stok|nama <nilai>."""
        async with self._db.write() as session:
            product = await self._owned_product(session, owner_id, code)
            if field == "nama" and value.strip():
                product.name = value.strip()[:120]
            elif field in ("harga", "stok") and value.strip().isdigit():
                number = int(value.strip())
                if field == "harga" and number > 0:
                    product.price = number
                elif field == "stok":
                    product.stock = number
                else:
                    raise UserInputError("product_invalid")
            else:
                raise UserInputError("product_update_invalid")
            return ProductView(product.code, product.name, product.price, product.stock)

    async def delete_product(self, owner_id: int, code: str) -> str:
        async with self._db.write() as session:
            product = await self._owned_product(session, owner_id, code)
            product.deleted_at = self._clock.now()
            return product.code

    async def join(self, user_id: int, slug: str, name: str) -> tuple[TripView, bool]:
        """JOIN: one participant row per (trip, person); a repeat (or re-join after STOP) changes nothing else.

        Returns the trip and whether this call changed anything (False for a duplicate JOIN).
        """
        now = self._clock.now()
        async with self._db.write() as session:
            trip = await trip_by_slug(session, slug)
            inserted = await session.execute(insert_ignore(
                session, Participant.__table__,
                {"trip_id": trip.id, "user_id": user_id, "name": name.strip()[:80] or "-", "status": "joined",
                 "joined_at": now, "updated_at": now},
                ["trip_id", "user_id"],
            ))
            changed = inserted.scalar_one_or_none() is not None
            if not changed:
                rejoined = await session.execute(
                    update(Participant)
                    .where(Participant.trip_id == trip.id, Participant.user_id == user_id,
                           Participant.status == "stopped")
                    .values(status="joined", updated_at=now)
                )
                changed = rejoined.rowcount == 1
            return await self._view(session, trip, with_products=True), changed

    async def stop(self, user_id: int, slug: str) -> bool:
        async with self._db.write() as session:
            trip = await trip_by_slug(session, slug)
            result = await session.execute(
                update(Participant)
                .where(Participant.trip_id == trip.id, Participant.user_id == user_id, Participant.status == "joined")
                .values(status="stopped", updated_at=self._clock.now())
            )
            return result.rowcount == 1

    async def participants(self, owner_id: int, slug: str) -> list[ParticipantView]:
        async with self._db.read() as session:
            trip = await trip_by_slug(session, slug)
            require_owner(trip, owner_id)
            rows = await session.execute(
                select(Participant.name, Participant.status, User.channel, User.external_id)
                .join(User, User.id == Participant.user_id)
                .where(Participant.trip_id == trip.id).order_by(Participant.id)
            )
            return [ParticipantView(*row) for row in rows]

    async def close_due(self) -> int:
        """Close every open trip whose deadline has passed, and tell its owner and participants."""
        now = self._clock.now()
        async with self._db.write() as session:
            due = (await session.scalars(
                select(Trip).where(Trip.status == "open", Trip.deadline_at <= now).with_for_update(skip_locked=True)
            )).all()
            for trip in due:
                trip.status, trip.closed_at = "closed", now
                params = {"slug": trip.slug, "title": trip.title}
                await notify_user(session, trip.owner_id, "trip_closed_owner", params, now,
                                  dedupe_key=f"trip-closed:{trip.id}:owner")
                joined = await session.scalars(select(Participant.user_id).where(
                    Participant.trip_id == trip.id, Participant.status == "joined"))
                for user_id in joined.all():
                    await notify_user(session, user_id, "trip_closed", params, now,
                                      dedupe_key=f"trip-closed:{trip.id}:{user_id}")
            return len(due)
