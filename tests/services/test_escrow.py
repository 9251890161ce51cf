"""Order money on otomatis trips (services/escrow.py), on SQLite and PostgreSQL: paid into the order's escrow,
released to the jastiper's earnings (fee to revenue) on receipt or by itself, refunded to the buyer's wallet —
once, whatever races, with the books whole after every test (conftest checks them too)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from services import ledger
from services.clock import FrozenClock
from services.errors import InsufficientFunds, StorageDataError, StorageUnavailable, UserInputError
from services.escrow import Escrow
from services.inbound import Inbounds
from services.kinds import AccountKind
from services.orders import Orders
from services.trips import Trips
from storage.db import Database
from storage.models import Account, Order, OutboxMessage, Product
from tests.support.money import assert_books_hold, balance, seed, transfers_of_kind

PRICE = 150_000


async def person(inbound: Inbounds, external_id: str) -> int:
    return (await inbound.register(channel="telegram", external_id=external_id, display_name=external_id,
                                   update_key=None)).user.id


async def fund(db: Database, clock: FrozenClock, user_id: int, amount: int, reference: str) -> None:
    """Money in a wallet as a top-up would leave it."""
    await seed(db, clock.now(), ledger.wallet(user_id), amount, reference)


async def revenue(db: Database) -> int:
    return sum((await transfers_of_kind(db, "order-fee")).values())


class Trip:
    """An otomatis trip with one product, a jastiper and a buyer with money."""

    def __init__(self, db: Database, clock: FrozenClock, *, fee_bps: int = 0) -> None:
        self.db, self.clock = db, clock
        self.inbound, self.trips = Inbounds(db, clock), Trips(db, clock)
        self.orders = Orders(db, clock, expiry_hours=24, auto_release_days=7)
        self.escrow = Escrow(db, clock, fee_bps=fee_bps)

    async def start(self, *, wallet: int = 1_000_000) -> "Trip":
        self.owner = await person(self.inbound, "tina")
        self.buyer = await person(self.inbound, "siti")
        await self.trips.create(self.owner, "jpn25", "Jastip Jepang", self.clock.now() + timedelta(days=7))
        await self.trips.add_product(self.owner, "jpn25", "KK1", PRICE, 10, "KitKat Matcha")
        await self.trips.set_payment(self.owner, "jpn25", "otomatis", None)
        await self.trips.join(self.buyer, "jpn25", "Siti")
        if wallet:
            await fund(self.db, self.clock, self.buyer, wallet, "seed:siti")
        return self

    async def order(self, quantity: int = 1) -> str:
        return (await self.orders.place(self.buyer, "KK1", quantity)).code

    async def stock(self) -> int:
        async with self.db.read() as session:
            return int(await session.scalar(select(Product.stock)) or 0)


@pytest.fixture
def clock():
    return FrozenClock()


@pytest.fixture
async def trip(db, clock):
    return await Trip(db, clock, fee_bps=250).start()


async def test_paying_from_the_wallet_moves_the_total_into_the_orders_escrow_and_makes_it_lunas(trip, db):
    code = await trip.order(2)
    paid = await trip.escrow.pay_from_wallet(trip.buyer, code)
    assert paid.status == "confirmed" and paid.payment_mode == "otomatis"
    assert await balance(db, ledger.wallet(trip.buyer)) == 1_000_000 - 2 * PRICE
    assert await balance(db, ledger.escrow(int(code[1:]), trip.buyer)) == 2 * PRICE
    async with db.read() as session:
        notices = (await session.scalars(select(OutboxMessage.template))).all()
    assert "order_paid_owner" in notices
    with pytest.raises(UserInputError) as again:
        await trip.escrow.pay_from_wallet(trip.buyer, code)
    assert again.value.key == "order_already_paid"
    await assert_books_hold(db)


async def test_a_short_wallet_pays_nothing_and_the_order_stays_unpaid(db, clock):
    trip = await Trip(db, clock).start(wallet=100_000)
    code = await trip.order()
    with pytest.raises(InsufficientFunds):
        await trip.escrow.pay_from_wallet(trip.buyer, code)
    assert await balance(db, ledger.wallet(trip.buyer)) == 100_000
    assert (await trip.orders.mine(trip.buyer))[0].status == "pending"
    assert await transfers_of_kind(db, "order-pay") == {}


async def test_two_devices_paying_one_order_at_once_charge_it_once(trip, db, fresh_db_url, clock):
    code = await trip.order()
    other = Database(fresh_db_url)  # a second engine, as a second process would have
    try:
        results = await asyncio.gather(trip.escrow.pay_from_wallet(trip.buyer, code),
                                       Escrow(other, clock).pay_from_wallet(trip.buyer, code),
                                       return_exceptions=True)
    finally:
        await other.close()
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], UserInputError), results
    assert refused[0].key == "order_already_paid"
    assert await balance(db, ledger.wallet(trip.buyer)) == 1_000_000 - PRICE
    assert list((await transfers_of_kind(db, "order-pay")).values()) == [PRICE]


async def test_kirim_needs_lunas_and_konfirmasi_or_a_proof_are_refused_on_otomatis(trip):
    code = await trip.order()
    with pytest.raises(UserInputError) as ship:
        await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")
    assert ship.value.key == "order_wrong_state"
    with pytest.raises(UserInputError) as confirm:
        await trip.orders.owner_move(trip.owner, code, "confirm")
    assert confirm.value.key == "order_confirm_otomatis"
    from tests.support.images import photo_bytes

    with pytest.raises(UserInputError) as proof:
        await trip.orders.submit_proof(trip.buyer, code, photo_bytes())
    assert proof.value.key == "order_proof_otomatis"
    await trip.escrow.pay_from_wallet(trip.buyer, code)
    shipped = await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")
    assert shipped.status == "shipped" and shipped.release_at == trip.clock.now() + timedelta(days=7)


async def test_receipt_releases_the_escrow_to_the_jastipers_earnings_with_the_fee_to_revenue(trip, db):
    code = await trip.order(2)
    await trip.escrow.pay_from_wallet(trip.buyer, code)
    with pytest.raises(UserInputError) as early:
        await trip.escrow.receive(trip.buyer, code)
    assert early.value.key == "order_receive_not_shipped"
    await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")
    received = await trip.escrow.receive(trip.buyer, code)
    assert received.status == "received"
    fee = 2 * PRICE * 250 // 10_000
    assert await revenue(db) == fee == 7_500
    assert await balance(db, ledger.earnings(trip.owner)) == 2 * PRICE - fee
    assert await balance(db, ledger.escrow(int(code[1:]), trip.buyer)) == 0
    with pytest.raises(UserInputError) as twice:
        await trip.escrow.receive(trip.buyer, code)
    assert twice.value.key == "order_already_received"
    await assert_books_hold(db)


async def test_the_auto_release_and_a_racing_receipt_release_the_escrow_once(trip, db, fresh_db_url, clock):
    code = await trip.order()
    await trip.escrow.pay_from_wallet(trip.buyer, code)
    await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")
    clock.advance(days=6, hours=23)
    assert await trip.escrow.release_due() == 0  # not yet
    clock.advance(hours=2)
    other = Database(fresh_db_url)
    try:
        results = await asyncio.gather(Escrow(other, clock, fee_bps=250).release_due(),
                                       trip.escrow.receive(trip.buyer, code), return_exceptions=True)
    finally:
        await other.close()
    auto, by_hand = results
    assert (auto == 1) != (not isinstance(by_hand, Exception)), results  # exactly one of them released it
    assert await balance(db, ledger.earnings(trip.owner)) == PRICE - PRICE * 250 // 10_000
    assert len(await transfers_of_kind(db, "order-release")) == 1


async def test_a_paid_order_rejected_by_the_jastiper_is_refunded_at_once_and_its_stock_returns(trip, db):
    code = await trip.order(3)
    await trip.escrow.pay_from_wallet(trip.buyer, code)
    assert await trip.stock() == 7
    refunded = await trip.escrow.refund(trip.owner, code, as_owner=True, reason="stok habis di toko")
    assert refunded.status == "refunded"
    assert await trip.stock() == 10
    assert await balance(db, ledger.wallet(trip.buyer)) == 1_000_000
    assert await balance(db, ledger.earnings(trip.owner)) == 0 and await revenue(db) == 0  # refunds carry no fee
    with pytest.raises(UserInputError) as ship:
        await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")
    assert ship.value.key == "order_wrong_state"


async def test_the_buyer_cancels_a_paid_order_until_the_deadline_and_not_after(trip, db, clock):
    first, second = await trip.order(), await trip.order()
    for code in (first, second):
        await trip.escrow.pay_from_wallet(trip.buyer, code)
    with pytest.raises(UserInputError) as stranger:
        await trip.escrow.refund(trip.owner, first, as_owner=False)
    assert stranger.value.key == "order_not_found"
    await trip.escrow.refund(trip.buyer, first, as_owner=False)
    assert await balance(db, ledger.wallet(trip.buyer)) == 1_000_000 - PRICE
    clock.advance(days=8)
    with pytest.raises(UserInputError) as late:
        await trip.escrow.refund(trip.buyer, second, as_owner=False)
    assert late.value.key == "order_cancel_after_deadline"


async def test_shipping_racing_a_refund_ends_in_one_of_them_with_the_money_where_that_one_says(
        trip, db, fresh_db_url, clock):
    code = await trip.order()
    await trip.escrow.pay_from_wallet(trip.buyer, code)
    other = Database(fresh_db_url)
    try:
        ship, refund = await asyncio.gather(
            Orders(other, clock, auto_release_days=7).owner_move(trip.owner, code, "ship", "JNE 1"),
            trip.escrow.refund(trip.owner, code, as_owner=True, reason="x"), return_exceptions=True)
    finally:
        await other.close()
    assert isinstance(ship, Exception) != isinstance(refund, Exception), (ship, refund)
    status = (await trip.orders.mine(trip.buyer))[0].status
    escrowed = await balance(db, ledger.escrow(int(code[1:]), trip.buyer))
    assert (status, escrowed) in (("shipped", PRICE), ("refunded", 0))


async def test_a_closed_escrow_refuses_any_later_transfer_whoever_writes_it(trip, db, clock):
    code = await trip.order()
    await trip.escrow.pay_from_wallet(trip.buyer, code)
    await trip.escrow.refund(trip.owner, code, as_owner=True, reason="x")
    escrow = ledger.escrow(int(code[1:]), trip.buyer)
    with pytest.raises((StorageDataError, StorageUnavailable)):
        async with db.write() as session:
            await ledger.post(session, [ledger.Move("late:1", ledger.wallet(trip.buyer), escrow, 1_000, "order-pay")],
                              clock.now())
    assert await balance(db, escrow) == 0
    async with db.read() as session:
        status = await session.scalar(select(Account.status).where(Account.kind == AccountKind.ESCROW.value))
    assert status == "closed"


async def test_an_order_keeps_the_payment_mode_its_trip_had_when_it_was_placed(trip, db):
    before = await trip.order()
    await trip.trips.set_payment(trip.owner, "jpn25", "manual", "BCA 123")
    after = await trip.order()
    mine = {o.code: o.payment_mode for o in await trip.orders.mine(trip.buyer)}
    assert mine == {before: "otomatis", after: "manual"}
    with pytest.raises(UserInputError) as manual:
        await trip.escrow.pay_from_wallet(trip.buyer, after)
    assert manual.value.key == "order_not_otomatis"
    async with db.write() as session:  # the expiry sweep still works on otomatis orders
        await session.execute(update(Order).values(expires_at=trip.clock.now()))
    assert await trip.orders.expire_due() == 2


async def test_a_complaint_freezes_the_escrow_until_an_admin_splits_it(trip, db, clock):
    escrow = Escrow(db, clock, fee_bps=250, admins=[("telegram", "9001")])
    code = await trip.order(2)
    await escrow.pay_from_wallet(trip.buyer, code)
    await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")
    frozen = await escrow.complain(trip.buyer, code, "satu barang rusak")
    assert frozen.status == "disputed"
    with pytest.raises(UserInputError) as receipt:
        await escrow.receive(trip.buyer, code)
    assert receipt.value.key == "order_receive_not_shipped"
    clock.advance(days=30)
    assert await escrow.release_due() == 0  # frozen: no auto-release
    async with db.read() as session:
        notices = (await session.execute(select(OutboxMessage.template, OutboxMessage.chat_id))).all()
    assert ("admin_complaint_new", "9001") in notices and any(t == "order_complaint_owner" for t, _ in notices)
    assert [c.order for c in await escrow.open_complaints()] == [code]
    with pytest.raises(UserInputError) as too_much:
        await escrow.settle_complaint(trip.owner, code, refund=2 * PRICE + 1, reason="x")
    assert too_much.value.key == "complaint_refund_too_much"
    refunded, released = await escrow.settle_complaint(trip.owner, code, refund=PRICE, reason="satu rusak")
    assert (refunded, released) == (PRICE, PRICE)
    fee = PRICE * 250 // 10_000  # on the released part only
    assert await balance(db, ledger.wallet(trip.buyer)) == 1_000_000 - PRICE
    assert await balance(db, ledger.earnings(trip.owner)) == PRICE - fee and await revenue(db) == fee
    assert (await trip.orders.mine(trip.buyer))[0].status == "received"
    assert await escrow.open_complaints() == []
    with pytest.raises(UserInputError) as again:
        await escrow.settle_complaint(trip.owner, code, refund=0, reason="x")
    assert again.value.key == "complaint_not_open"
    await assert_books_hold(db)


async def test_receipt_and_a_complaint_sent_at_once_end_in_exactly_one(trip, db, fresh_db_url, clock):
    code = await trip.order()
    await trip.escrow.pay_from_wallet(trip.buyer, code)
    await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")
    other = Database(fresh_db_url)
    try:
        received, complained = await asyncio.gather(
            trip.escrow.receive(trip.buyer, code), Escrow(other, clock).complain(trip.buyer, code, "rusak"),
            return_exceptions=True)
    finally:
        await other.close()
    assert isinstance(received, Exception) != isinstance(complained, Exception), (received, complained)
    status = (await trip.orders.mine(trip.buyer))[0].status
    escrowed = await balance(db, ledger.escrow(int(code[1:]), trip.buyer))
    assert (status, escrowed) in (("received", 0), ("disputed", PRICE))


async def test_the_buyer_is_reminded_before_the_auto_release_and_belumsampai_moves_it_once(trip, db, clock):
    escrow = Escrow(db, clock, extend_days=7)
    code = await trip.order()
    await escrow.pay_from_wallet(trip.buyer, code)
    await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")
    assert await escrow.remind_due() == 0  # seven days to go
    clock.advance(days=5, hours=1)
    assert await escrow.remind_due() == 1
    await escrow.remind_due()  # the next sweep: the same reminder is not queued twice

    async def reminders() -> int:
        async with db.read() as session:
            return len((await session.scalars(select(OutboxMessage.id).where(
                OutboxMessage.template == "order_release_soon"))).all())

    assert await reminders() == 1
    moved = await escrow.extend(trip.buyer, code)
    assert moved.release_at == clock.now() - timedelta(days=5, hours=1) + timedelta(days=14)
    with pytest.raises(UserInputError) as twice:
        await escrow.extend(trip.buyer, code)
    assert twice.value.key == "order_extend_once"
    clock.advance(days=3)
    assert await escrow.release_due() == 0  # the old time passed, the new one has not
    clock.advance(days=4)
    await escrow.remind_due()
    assert await reminders() == 2  # reminded again before the new time
    clock.advance(days=2)
    assert await escrow.release_due() == 1


async def test_refusing_part_of_a_paid_order_refunds_that_part_and_keeps_the_rest_in_escrow(trip, db):
    code = await trip.order(3)
    await trip.escrow.pay_from_wallet(trip.buyer, code)
    part = await trip.escrow.refund_part(trip.owner, code, 1, "tinggal dua di toko")
    assert (part.quantity, part.total, part.status) == (2, 2 * PRICE, "confirmed")
    assert await balance(db, ledger.wallet(trip.buyer)) == 1_000_000 - 2 * PRICE
    assert await balance(db, ledger.escrow(int(code[1:]), trip.buyer)) == 2 * PRICE
    assert await trip.stock() == 8
    with pytest.raises(UserInputError) as all_of_it:
        await trip.escrow.refund_part(trip.owner, code, 2, "x")
    assert all_of_it.value.key == "order_part_quantity"
    await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")
    await trip.escrow.receive(trip.buyer, code)
    assert await balance(db, ledger.earnings(trip.owner)) == 2 * PRICE - 2 * PRICE * 250 // 10_000
    await assert_books_hold(db)


async def test_cancelling_a_trip_refunds_paid_orders_cancels_unpaid_ones_and_leaves_shipped_ones(trip, db):
    paid, unpaid, shipped = await trip.order(2), await trip.order(1), await trip.order(1)
    for code in (paid, shipped):
        await trip.escrow.pay_from_wallet(trip.buyer, code)
    await trip.orders.owner_move(trip.owner, shipped, "ship", "JNE 1")
    with pytest.raises(UserInputError):
        await trip.escrow.cancel_trip(trip.buyer, "jpn25", "bukan pemilik")
    assert await trip.escrow.cancel_trip(trip.owner, "jpn25", "penerbangan batal") == (1, 1, 1)
    states = {o.code: o.status for o in await trip.orders.mine(trip.buyer)}
    assert states == {paid: "refunded", unpaid: "cancelled", shipped: "shipped"}
    assert await balance(db, ledger.wallet(trip.buyer)) == 1_000_000 - PRICE  # the shipped one stays in escrow
    assert await trip.stock() == 9 and (await trip.trips.detail("jpn25")).status == "closed"
    await assert_books_hold(db)


async def test_payment_proofs_are_deleted_after_their_retention(db, clock, tmp_path):
    from tests.support.images import photo_bytes

    trips, inbound = Trips(db, clock), Inbounds(db, clock)
    orders = Orders(db, clock, media_dir=str(tmp_path / "media"))
    owner, buyer = await person(inbound, "tina"), await person(inbound, "siti")
    await trips.create(owner, "bdg01", "Jastip Bandung", clock.now() + timedelta(days=7))
    await trips.add_product(owner, "bdg01", "BR1", 25_000, 5, "Brownies")
    await trips.join(buyer, "bdg01", "Siti")
    code = (await orders.place(buyer, "BR1")).code
    await orders.submit_proof(buyer, code, photo_bytes())
    proofs = list((tmp_path / "media").rglob("*.jpg"))
    assert len(proofs) == 1
    clock.advance(days=179)
    assert await orders.purge_proofs(180) == 0
    clock.advance(days=2)
    assert await orders.purge_proofs(180) == 1
    assert not proofs[0].exists()
    async with db.read() as session:
        assert await session.scalar(select(Order.proof_path)) is None


async def test_a_paid_order_never_shipped_is_announced_then_refunded_unless_an_admin_extends_it(trip, db, clock):
    escrow = Escrow(db, clock, ship_by_days=30, ship_grace_days=7, admins=[("telegram", "9001")])
    late, extended = await trip.order(), await trip.order()
    for code in (late, extended):
        await escrow.pay_from_wallet(trip.buyer, code)
    assert await escrow.ship_overdue() == (0, 0)
    clock.advance(days=7 + 30, hours=1)  # past the trip's deadline + 30 days
    assert await escrow.ship_overdue() == (2, 0)
    async with db.read() as session:
        templates = (await session.scalars(select(OutboxMessage.template))).all()
    assert {"order_ship_overdue_buyer", "order_ship_overdue_owner", "admin_ship_overdue"} <= set(templates)
    moved = await escrow.extend_by_admin(trip.owner, extended, 14, "tertahan di bea cukai")
    assert moved.status == "confirmed"
    with pytest.raises(UserInputError) as wrong:
        await escrow.extend_by_admin(trip.owner, extended, 0, "x")
    assert wrong.value.key == "admin_extend_days"
    clock.advance(days=7)
    assert await escrow.ship_overdue() == (0, 1)  # the late one refunded; the extended one not yet due
    states = {o.code: o.status for o in await trip.orders.mine(trip.buyer)}
    assert states == {late: "refunded", extended: "confirmed"}
    assert await balance(db, ledger.wallet(trip.buyer)) == 1_000_000 - PRICE
    await trip.orders.owner_move(trip.owner, extended, "ship", "JNE 1")  # shipped in the extra time
    await escrow.extend_by_admin(trip.owner, extended, 3, "alamat salah")  # now it moves the release
    clock.advance(days=30)
    assert await escrow.ship_overdue() == (0, 0)
    await assert_books_hold(db)


async def dp_trip(db, clock, policy: str, *, fee_bps: int = 0) -> Trip:
    trip = await Trip(db, clock, fee_bps=fee_bps).start()
    trip.escrow = Escrow(db, clock, fee_bps=fee_bps, final_payment_days=3)
    await trip.trips.set_dp(trip.owner, "jpn25", 30, policy)
    return trip


async def test_a_down_payment_then_the_rest_after_tiba_makes_the_order_lunas(db, clock):
    trip = await dp_trip(db, clock, "kembali")
    code = await trip.order(2)
    placed = (await trip.orders.mine(trip.buyer))[0]
    assert (placed.dp_amount, placed.due) == (90_000, 90_000)  # 30 % of Rp300.000
    paid = await trip.escrow.pay_from_wallet(trip.buyer, code)
    assert (paid.status, paid.due) == ("dp_paid", 210_000)
    assert await balance(db, ledger.escrow(int(code[1:]), trip.buyer)) == 90_000
    with pytest.raises(UserInputError) as ship:
        await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")  # a DP is not lunas
    assert ship.value.key == "order_wrong_state"
    assert await trip.escrow.arrive(trip.owner, "jpn25") == 1
    async with db.read() as session:
        asked = (await session.scalars(select(OutboxMessage.template))).all()
    assert "order_final_due" in asked
    rest = await trip.escrow.pay_from_wallet(trip.buyer, code)
    assert (rest.status, rest.due) == ("confirmed", 0)
    assert await balance(db, ledger.escrow(int(code[1:]), trip.buyer)) == 300_000
    await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")
    await trip.escrow.receive(trip.buyer, code)
    assert await balance(db, ledger.earnings(trip.owner)) == 300_000
    await assert_books_hold(db)


@pytest.mark.parametrize("policy", ["kembali", "hangus"])
async def test_a_rest_never_paid_refunds_or_forfeits_the_dp_as_the_trip_said_when_ordered(db, clock, policy):
    trip = await dp_trip(db, clock, policy, fee_bps=1000)
    code = await trip.order(1)
    await trip.escrow.pay_from_wallet(trip.buyer, code)
    await trip.trips.set_dp(trip.owner, "jpn25", 50, "hangus" if policy == "kembali" else "kembali")  # new orders
    await trip.escrow.arrive(trip.owner, "jpn25")
    clock.advance(days=2, hours=1)
    assert await trip.escrow.final_payments_due() == (1, 0)  # a reminder a day before
    clock.advance(days=1)
    assert await trip.escrow.final_payments_due() == (0, 1)
    status = (await trip.orders.mine(trip.buyer))[0].status
    dp = PRICE * 30 // 100
    if policy == "kembali":
        assert status == "refunded" and await balance(db, ledger.wallet(trip.buyer)) == 1_000_000
    else:
        assert status == "forfeited" and await balance(db, ledger.wallet(trip.buyer)) == 1_000_000 - dp
        assert await balance(db, ledger.earnings(trip.owner)) == dp - dp // 10 and await revenue(db) == dp // 10
    assert await trip.stock() == 10
    with pytest.raises(UserInputError):
        await trip.escrow.pay_from_wallet(trip.buyer, code)  # too late for the rest
    await assert_books_hold(db)


async def test_the_auto_release_racing_a_complaint_ends_in_exactly_one(trip, db, fresh_db_url, clock):
    code = await trip.order()
    await trip.escrow.pay_from_wallet(trip.buyer, code)
    await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")
    clock.advance(days=8)
    other = Database(fresh_db_url)
    try:
        released, complained = await asyncio.gather(
            Escrow(other, clock).release_due(), trip.escrow.complain(trip.buyer, code, "rusak"),
            return_exceptions=True)
    finally:
        await other.close()
    assert (released == 1) != (not isinstance(complained, Exception)), (released, complained)
    status = (await trip.orders.mine(trip.buyer))[0].status
    escrowed = await balance(db, ledger.escrow(int(code[1:]), trip.buyer))
    assert (status, escrowed) in (("received", 0), ("disputed", PRICE))


async def test_a_rejection_racing_the_link_payment_callback_leaves_the_money_in_the_wallet_or_refunds_it(
        trip, db, fresh_db_url, clock):
    """TOLAK of an unpaid order while its gateway payment settles: either the order is rejected first (the
    payment then stays in the wallet) or paid first (the jastiper's TOLAK then refuses: it is paid; a paid
    order's TOLAK goes through the refund with its confirmation). Never money in a rejected order's escrow."""
    import httpx

    from services.payments import Notification
    from services.payments.sandbox import SandboxGateway
    from services.settlement import Settlement
    from services.topups import AmountRules, Topups

    code = await trip.order()
    # The sandbox only creates the link here (no HTTP): the callback is applied directly, as the route would.
    gateway = SandboxGateway(secret="s", public_url="http://127.0.0.1", http=httpx.AsyncClient())
    settlement = Settlement(db, {gateway.name: gateway}, clock, admins=[])
    topups = Topups(db, [gateway], settlement, clock, rules=AmountRules(10_000, 10_000_000, (50_000,)),
                    public_url="http://127.0.0.1", expiry_minutes=60, max_pending=3, check_cooldown_s=0)
    placed = (await trip.orders.mine(trip.buyer))[0]
    assert placed.expires_at is not None
    link = await topups.start(user_id=trip.buyer, customer_name="Siti", amount=PRICE,
                              for_order=(int(code[1:]), code, placed.expires_at))
    other = Database(fresh_db_url)
    settlement.batcher.start()
    try:
        paid = Notification(gateway.name, link.order_id, "settle-1", "paid", "settlement", PRICE)
        rejected, credited = await asyncio.gather(
            Orders(other, clock).owner_move(trip.owner, code, "reject", "stok habis"),
            settlement.apply(paid, source="callback"), return_exceptions=True)
    finally:
        await settlement.batcher.stop()
        await other.close()
    assert not isinstance(credited, Exception) and credited.result == "credited", credited
    status = (await trip.orders.mine(trip.buyer))[0].status
    escrowed = await balance(db, ledger.escrow(int(code[1:]), trip.buyer))
    wallet = await balance(db, ledger.wallet(trip.buyer))
    if isinstance(rejected, Exception):  # the payment won: the order is paid, its money in escrow
        assert (status, escrowed, wallet) == ("confirmed", PRICE, 1_000_000)
    else:  # the rejection won: the payment stays in the wallet, the buyer is told why
        assert (status, escrowed, wallet) == ("rejected", 0, 1_000_000 + PRICE)
    await assert_books_hold(db)


async def test_an_order_paid_by_card_is_released_no_earlier_than_the_settle_hours(trip, db, clock):
    import httpx

    from services.payments import Notification
    from services.payments.sandbox import SandboxGateway
    from services.settlement import Settlement
    from services.topups import AmountRules, Topups

    code = await trip.order()
    gateway = SandboxGateway(secret="s", public_url="http://127.0.0.1", http=httpx.AsyncClient())
    settlement = Settlement(db, {gateway.name: gateway}, clock, admins=[], settle_hours=24)
    topups = Topups(db, [gateway], settlement, clock, rules=AmountRules(10_000, 10_000_000, (50_000,)),
                    public_url="http://127.0.0.1")
    placed = (await trip.orders.mine(trip.buyer))[0]
    assert placed.expires_at is not None
    link = await topups.start(user_id=trip.buyer, customer_name="Siti", amount=PRICE,
                              for_order=(int(code[1:]), code, placed.expires_at))
    settlement.batcher.start()
    try:
        paid = Notification(gateway.name, link.order_id, "e1", "paid", "settlement", PRICE, method="credit_card")
        assert (await settlement.apply(paid, source="callback")).result == "credited"
    finally:
        await settlement.batcher.stop()
    await trip.orders.owner_move(trip.owner, code, "ship", "JNE 1")
    clock.advance(hours=2)
    waiting = await trip.escrow.receive(trip.buyer, code)
    assert waiting.status == "shipped" and waiting.release_at == clock.now() - timedelta(hours=2) + timedelta(hours=24)
    assert await trip.escrow.release_due() == 0
    assert await balance(db, ledger.earnings(trip.owner)) == 0
    clock.advance(hours=23)
    assert await trip.escrow.release_due() == 1
    assert await balance(db, ledger.earnings(trip.owner)) == PRICE - PRICE * 250 // 10_000


async def test_complaint_photos_are_deleted_after_the_proof_retention(db, clock, tmp_path):
    import os

    from tests.support.images import photo_bytes

    trip = await Trip(db, clock).start()
    trip.escrow = Escrow(db, clock, media_dir=str(tmp_path / "media"))
    trip.orders = Orders(db, clock, media_dir=str(tmp_path / "media"))
    code = await trip.order()
    await trip.escrow.pay_from_wallet(trip.buyer, code)
    await trip.escrow.complain(trip.buyer, code, "penyok", photo_bytes())
    (kept,) = list((tmp_path / "media" / "complaints").glob("*.jpg"))
    assert await trip.orders.purge_proofs(180) == 0
    old = (clock.now() - timedelta(days=181)).timestamp()
    os.utime(kept, (old, old))  # written 181 days before the (frozen) clock's now
    assert await trip.orders.purge_proofs(180) == 1 and not kept.exists()
