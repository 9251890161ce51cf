"""Jastip trips: a jastiper's trip with its products, and the participants who join, ask and stop.

Only a trip's owner manages it; every refusal is a UserInputError whose key names the catalog message.
Numbers are bounded (price ≤ Rp100.000.000, stock ≤ 1.000.000) here and by the database alike.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.clock import Clock
from services.errors import DataConflict, UserInputError
from services.media import read, reencode, remove, store_image
from services.outbox import enqueue
from services.text import clean_name, clean_text
from storage.db import Database
from storage.models import Order, Participant, Product, Trip, User
from storage.queries import insert_ignore, rows_changed

SLUG = re.compile(r"^[A-Za-z0-9_-]{3,10}$", re.ASCII)
CODE = re.compile(r"^[A-Za-z0-9_-]{1,16}$", re.ASCII)
MAX_PRICE = 100_000_000
MAX_STOCK = 1_000_000
TITLE_LENGTH, PRODUCT_NAME_LENGTH, PARTICIPANT_NAME_LENGTH = 120, 120, 80
INSTRUCTIONS_LENGTH = 1000
PAYMENT_MODES = ("manual", "otomatis")


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
    payment_mode: str = "manual"
    payment_instructions: str | None = None
    dp_percent: int = 0
    dp_policy: str = "kembali"


@dataclass(frozen=True)
class ParticipantView:
    name: str
    status: str
    channel: str
    external_id: str
    username: str | None = None


def normal_slug(slug: str) -> str:
    if not SLUG.match(slug or ""):
        raise UserInputError("trip_slug_invalid", slug=clean_name(slug, 20))
    return slug.lower()


def normal_code(code: str) -> str:
    if not CODE.match(code or ""):
        raise UserInputError("product_code_invalid", code=clean_name(code, 20))
    return code.upper()


def check_price(price: int) -> int:
    if not 0 < price <= MAX_PRICE:
        raise UserInputError("product_price_invalid", maximum=MAX_PRICE)
    return price


def check_stock(stock: int) -> int:
    if not 0 <= stock <= MAX_STOCK:
        raise UserInputError("product_stock_invalid", most=MAX_STOCK)
    return stock


async def trip_by_slug(session: AsyncSession, slug: str, *, lock: bool = False) -> Trip:
    query = select(Trip).where(Trip.slug == normal_slug(slug))
    trip = (await session.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if trip is None:
        raise UserInputError("trip_not_found", slug=clean_name(slug, 20))
    return trip


def require_owner(trip: Trip, user_id: int) -> None:
    if trip.owner_id != user_id:
        raise UserInputError("trip_not_owner", slug=trip.slug)


async def notify_user(session: AsyncSession, user_id: int, template: str, params: dict[str, Any], now: datetime,
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
        title = clean_name(title, TITLE_LENGTH)
        if not title:
            raise UserInputError("trip_title_missing")
        now = self._clock.now()
        if deadline_at <= now:
            raise UserInputError("trip_deadline_past")
        try:
            async with self._db.write() as session:
                owner = await session.scalar(select(Trip.owner_id).where(Trip.slug == slug))
                if owner is not None:
                    raise UserInputError("trip_slug_yours" if owner == owner_id else "trip_slug_taken", slug=slug)
                session.add(Trip(slug=slug, title=title, owner_id=owner_id, deadline_at=deadline_at, status="open",
                                 payment_mode="manual", created_at=now))
        except DataConflict:  # created by someone else in the same instant
            raise UserInputError("trip_slug_taken", slug=slug) from None
        return TripView(slug, title, deadline_at, "open", owner_id)

    async def mine(self, owner_id: int) -> list[TripView]:
        async with self._db.read() as session:
            trips = (await session.scalars(select(Trip).where(Trip.owner_id == owner_id).order_by(Trip.id))).all()
            return [await self._view(session, t, with_products=True) for t in trips]

    async def detail(self, slug: str) -> TripView:
        async with self._db.read() as session:
            return await self._view(session, await trip_by_slug(session, slug), with_products=True)

    async def photos(self, slug: str, limit: int = 5) -> list[tuple[ProductView, bytes]]:
        """The trip's products that have a picture, with it (read off the event loop); missing files skipped."""
        detail = await self.detail(slug)
        found = []
        for product in [p for p in detail.products if p.photo_path][:limit]:
            picture = await asyncio.to_thread(read, product.photo_path)
            if picture is not None:
                found.append((product, picture))
        return found

    async def find(self, slug: str) -> TripView | None:
        """The trip with this slug, or None (also for text that cannot be a slug)."""
        if not SLUG.match(slug or ""):
            return None
        try:
            return await self.detail(slug)
        except UserInputError:
            return None

    async def owns_any(self, user_id: int) -> bool:
        async with self._db.read() as session:
            return bool(await session.scalar(select(func.count()).select_from(Trip).where(Trip.owner_id == user_id)))

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
                        int(orders or 0), products, trip.payment_mode, trip.payment_instructions, trip.dp_percent,
                        trip.dp_policy)

    async def set_status(self, owner_id: int, slug: str, status: str) -> TripView:
        """TUTUP / BUKA: only the owner; reopening needs a deadline still in the future."""
        now = self._clock.now()
        async with self._db.write() as session:
            trip = await trip_by_slug(session, slug, lock=True)
            require_owner(trip, owner_id)
            if status == "open" and trip.deadline_at <= now:
                raise UserInputError("trip_reopen_past", slug=trip.slug)
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

    async def set_payment(self, owner_id: int, slug: str, mode: str, instructions: str | None) -> TripView:
        """PEMBAYARAN: how buyers pay this trip's new orders (manual: with these transfer instructions)."""
        if mode not in PAYMENT_MODES:
            raise UserInputError("usage_pembayaran")
        text = clean_text(instructions, INSTRUCTIONS_LENGTH) or None
        async with self._db.write() as session:
            trip = await trip_by_slug(session, slug, lock=True)
            require_owner(trip, owner_id)
            trip.payment_mode = mode
            if mode == "manual":
                trip.payment_instructions = text
            return await self._view(session, trip)

    async def set_dp(self, owner_id: int, slug: str, percent: int, policy: str) -> TripView:
        """DP <slug> <persen> [kembali|hangus]: a down payment on an otomatis trip's new orders (0 = none)."""
        if not 0 <= percent < 100 or policy not in ("kembali", "hangus"):
            raise UserInputError("usage_dp")
        async with self._db.write() as session:
            trip = await trip_by_slug(session, slug, lock=True)
            require_owner(trip, owner_id)
            if trip.payment_mode != "otomatis":
                raise UserInputError("dp_needs_otomatis", slug=trip.slug)
            trip.dp_percent, trip.dp_policy = percent, policy
            return await self._view(session, trip)

    async def add_product(self, owner_id: int, slug: str, code: str, price: int, stock: int, name: str,
                          photo: bytes | None = None) -> ProductView:
        """PRODUK: a product on my trip; a photo sent with it is checked, cleaned and kept beside it."""
        code, name = normal_code(code), clean_name(name, PRODUCT_NAME_LENGTH)
        check_price(price)
        check_stock(stock)
        if not name:
            raise UserInputError("usage_produk")
        # Decoding and re-encoding is CPU work: off the event loop, so other chats are not held up.
        picture = await asyncio.to_thread(reencode, photo, self._max_photo) if photo is not None else None
        now = self._clock.now()
        path = None
        try:
            async with self._db.write() as session:
                trip = await trip_by_slug(session, slug)
                require_owner(trip, owner_id)
                taken = await session.scalar(select(func.count()).select_from(Product).where(
                    Product.trip_id == trip.id, Product.code == code))
                if taken:
                    raise UserInputError("product_code_taken", code=code)
                if picture is not None:
                    path = str(store_image(self._media, "products", trip.slug, picture))
                session.add(Product(trip_id=trip.id, code=code, name=name, price=price, stock=stock,
                                    photo_path=path, created_at=now))
        except DataConflict:
            remove(path)
            raise UserInputError("product_code_taken", code=code) from None
        except Exception:
            remove(path)
            raise
        return ProductView(code, name, price, stock, path)

    async def _owned_product(self, session: AsyncSession, owner_id: int, code: str) -> Product:
        rows = (await session.scalars(
            select(Product).join(Trip, Trip.id == Product.trip_id)
            .where(Trip.owner_id == owner_id, Product.code == normal_code(code), Product.deleted_at.is_(None))
            .order_by(Product.id.desc())
        )).all()
        if not rows:
            raise UserInputError("product_not_found", code=clean_name(code, 20))
        return rows[0]

    async def update_product(self, owner_id: int, code: str, field: str, value: str | int) -> ProductView:
        """UBAH <kode> harga|stok|nama <nilai>: a price or stock arrives as an int, a name as text."""
        async with self._db.write() as session:
            product = await self._owned_product(session, owner_id, code)
            if field == "nama":
                name = clean_name(str(value), PRODUCT_NAME_LENGTH)
                if not name:
                    raise UserInputError("usage_ubah")
                product.name = name
            elif field == "harga" and isinstance(value, int):
                product.price = check_price(value)
            elif field == "stok" and isinstance(value, int):
                product.stock = check_stock(value)
            else:
                raise UserInputError("usage_ubah")
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
        name = clean_name(name, PARTICIPANT_NAME_LENGTH) or "-"
        async with self._db.write() as session:
            trip = await trip_by_slug(session, slug)
            inserted = await session.execute(insert_ignore(
                session, Participant.__table__,
                {"trip_id": trip.id, "user_id": user_id, "name": name, "status": "joined",
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
                changed = rows_changed(rejoined) == 1
            return await self._view(session, trip, with_products=True), changed

    async def stop(self, user_id: int, slug: str) -> bool:
        async with self._db.write() as session:
            trip = await trip_by_slug(session, slug)
            result = await session.execute(
                update(Participant)
                .where(Participant.trip_id == trip.id, Participant.user_id == user_id, Participant.status == "joined")
                .values(status="stopped", updated_at=self._clock.now())
            )
            return rows_changed(result) == 1

    async def participants(self, owner_id: int, slug: str) -> list[ParticipantView]:
        async with self._db.read() as session:
            trip = await trip_by_slug(session, slug)
            require_owner(trip, owner_id)
            rows = await session.execute(
                select(Participant.name, Participant.status, User.channel, User.external_id, User.username)
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
