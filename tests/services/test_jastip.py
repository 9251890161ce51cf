"""Jastip rules the database guarantees: no oversold stock, one participant per person, deadlines, expiry."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from services.clock import FrozenClock
from services.errors import UserInputError
from services.inbound import Inbounds
from services.orders import Orders
from services.trips import Trips
from storage.db import Database
from storage.models import OutboxMessage, Participant


async def person(inbound: Inbounds, external_id: str, channel: str = "telegram") -> int:
    return (await inbound.register(channel=channel, external_id=external_id, display_name=external_id,
                                   update_key=None)).user.id


@pytest.fixture
def clock():
    return FrozenClock()


@pytest.fixture
async def setup(db, clock):
    inbound, trips, orders = Inbounds(db, clock), Trips(db, clock), Orders(db, clock, expiry_hours=24)
    owner = await person(inbound, "owner")
    await trips.create(owner, "jpn25", "Jastip Jepang Mei", clock.now() + timedelta(days=7))
    await trips.add_product(owner, "jpn25", "KK1", 150_000, 10, "KitKat Matcha")
    return inbound, trips, orders, owner


async def test_fifty_concurrent_orders_for_ten_units_sell_exactly_ten(setup, fresh_db_url, clock):
    inbound, trips, orders, _ = setup
    buyers = [await person(inbound, f"b{i}") for i in range(50)]
    for b in buyers:
        await trips.join(b, "jpn25", "Budi")
    # Two engines act like two processes: only the database can keep the count.
    other = Database(fresh_db_url)
    try:
        services = [orders, Orders(other, clock)]

        async def buy(i: int) -> bool:
            try:
                await services[i % 2].place(buyers[i], "kk1")
                return True
            except UserInputError as exc:
                assert exc.key == "order_out_of_stock"
                return False

        results = await asyncio.gather(*(buy(i) for i in range(50)))
    finally:
        await other.close()
    assert sum(results) == 10
    assert (await trips.detail("jpn25")).products[0].stock == 0


async def test_a_duplicate_join_keeps_one_participant_row(setup, db):
    inbound, trips, _, _ = setup
    siti = await person(inbound, "siti", "whatsapp")
    results = await asyncio.gather(*(trips.join(siti, "JPN25", "Siti") for _ in range(5)))
    assert sum(changed for _, changed in results) == 1
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(Participant)) == 1
    assert await trips.stop(siti, "jpn25") and not await trips.stop(siti, "jpn25")
    assert (await trips.join(siti, "jpn25", "Siti"))[1]  # JOIN after STOP subscribes again


async def test_the_deadline_closes_the_trip_tells_everyone_and_stops_orders(setup, db, clock):
    inbound, trips, orders, _ = setup
    siti = await person(inbound, "siti")
    await trips.join(siti, "jpn25", "Siti")
    clock.advance(days=8)
    assert await trips.close_due() == 1 and await trips.close_due() == 0
    assert (await trips.detail("jpn25")).status == "closed"
    async with db.read() as session:
        templates = sorted((await session.scalars(select(OutboxMessage.template))).all())
    assert templates == ["trip_closed", "trip_closed_owner"]
    with pytest.raises(UserInputError) as caught:
        await orders.place(siti, "KK1")
    assert caught.value.key == "order_trip_closed"


async def test_an_unpaid_order_expires_and_gives_its_stock_back(setup, clock):
    inbound, trips, orders, _ = setup
    siti = await person(inbound, "siti")
    await trips.join(siti, "jpn25", "Siti")
    order = await orders.place(siti, "KK1", 3)
    assert (await trips.detail("jpn25")).products[0].stock == 7
    clock.advance(hours=23)
    assert await orders.expire_due() == 0
    clock.advance(hours=2)
    assert await orders.expire_due() == 1
    assert (await trips.detail("jpn25")).products[0].stock == 10
    assert [o.status for o in await orders.mine(siti)] == ["expired"]
    with pytest.raises(UserInputError):
        await orders.cancel(siti, order.code)  # expired is final


async def test_only_the_owner_manages_a_trip_and_buyers_see_only_their_orders(setup):
    inbound, trips, orders, owner = setup
    siti, budi = await person(inbound, "siti"), await person(inbound, "budi")
    for p in (siti, budi):
        await trips.join(p, "jpn25", "x")
    order = await orders.place(siti, "KK1", 2)
    for attempt in (trips.participants(siti, "jpn25"), trips.set_status(siti, "jpn25", "closed"),
                    orders.owner_move(siti, order.code, "confirm"), orders.of_trip(budi, "jpn25")):
        with pytest.raises(UserInputError) as caught:
            await attempt
        assert caught.value.key == "trip_not_owner"
    with pytest.raises(UserInputError):
        await orders.cancel(budi, order.code)
    assert await orders.mine(budi) == []
    confirmed = await orders.owner_move(owner, order.code, "confirm")
    assert confirmed.status == "confirmed" and confirmed.total == 300_000
    assert (await orders.owner_move(owner, order.code, "ship", "JNE123")).status == "shipped"


async def test_rejection_and_cancellation_return_stock_once(setup):
    inbound, trips, orders, owner = setup
    siti = await person(inbound, "siti")
    await trips.join(siti, "jpn25", "Siti")
    first, second = await orders.place(siti, "KK1", 4), await orders.place(siti, "KK1", 2)
    await orders.owner_move(owner, first.code, "reject", "stok habis di toko")
    await orders.cancel(siti, second.code)
    with pytest.raises(UserInputError):
        await orders.cancel(siti, second.code)
    assert (await trips.detail("jpn25")).products[0].stock == 10
