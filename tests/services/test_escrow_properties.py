"""Money is conserved through any sequence of what people do with otomatis orders: hypothesis drives random
sequences of ordering, paying (early, twice, short), shipping, receipt, auto-release, refunds by the jastiper,
cancellations by the buyer, part refusals, BELUMSAMPAI, complaints and an admin's release / refund / split,
expiry and top-ups against a real SQLite database; after every step the books hold, money is neither made nor
lost, every closed escrow is empty, what left an escrow adds up to what came in (a refunded order released
nothing), and each order's escrow holds exactly what its state says. On SQLite and on PostgreSQL (races between two
engines are separate tests in test_escrow.py, on both databases)."""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from services import books, ledger
from services.clock import FrozenClock
from services.errors import UserInputError
from services.escrow import Escrow
from services.inbound import Inbounds
from services.kinds import AccountKind
from services.orders import Orders, order_code
from services.trips import Trips
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Account, Order, Transfer
from tests.conftest import reset_postgres

PRICES = {"KK1": 150_000, "TK1": 85_000}
BUYERS = ("siti", "rina")


class OtomatisOrders(RuleBasedStateMachine):
    postgres_url: str | None = None  # set by the PostgreSQL variant: its schema is reset for every example

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = tempfile.TemporaryDirectory()
        url = self.postgres_url or f"sqlite+aiosqlite:///{Path(self.folder.name) / 'titip.db'}"
        if self.postgres_url:
            self.loop.run_until_complete(reset_postgres(self.postgres_url))
        self.db = Database(url)
        self.clock = FrozenClock()
        self.funded = 0
        self.codes: list[str] = []

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def attempt(self, coroutine) -> None:
        """A step people may try at any moment; a refusal (a clear reply in chat) is fine, a crash is not."""
        try:
            self.run(coroutine)
        except UserInputError:
            pass

    @initialize()
    def start(self) -> None:
        async def setup() -> None:
            await upgrade(self.db)
            inbound = Inbounds(self.db, self.clock)
            self.trips = Trips(self.db, self.clock)
            self.orders = Orders(self.db, self.clock, expiry_hours=24, auto_release_days=7)
            self.escrow = Escrow(self.db, self.clock, fee_bps=333)
            self.ids = {}
            for name in ("tina", *BUYERS):
                self.ids[name] = (await inbound.register(channel="telegram", external_id=name, display_name=name,
                                                         update_key=None)).user.id
            await self.trips.create(self.ids["tina"], "jpn25", "Jastip", self.clock.now() + timedelta(days=30))
            for code, price in PRICES.items():
                await self.trips.add_product(self.ids["tina"], "jpn25", code, price, 6, code)
            await self.trips.set_payment(self.ids["tina"], "jpn25", "otomatis", None)
            for name in BUYERS:
                await self.trips.join(self.ids[name], "jpn25", name)

        self.run(setup())
        for name in BUYERS:  # enough to pay a few orders; top-ups add more as the steps go
            self.top_up(name, 600_000)

    def teardown(self) -> None:
        self.run(self.db.close())
        self.loop.close()
        self.folder.cleanup()

    # --- what people do -----------------------------------------------------------------------------------

    @rule(buyer=st.sampled_from(BUYERS), amount=st.sampled_from([50_000, 100_000, 300_000]))
    def top_up(self, buyer: str, amount: int) -> None:
        async def fund() -> None:
            async with self.db.write() as session:
                await ledger.post(session, [ledger.Move(f"seed:{buyer}:{self.funded}", ledger.ADJUSTMENT,
                                                        ledger.wallet(self.ids[buyer]), amount, "adjust")],
                                  self.clock.now())
        self.run(fund())
        self.funded += amount

    @rule(buyer=st.sampled_from(BUYERS), product=st.sampled_from(sorted(PRICES)), quantity=st.integers(1, 3))
    def order(self, buyer: str, product: str, quantity: int) -> None:
        try:
            self.codes.append(self.run(self.orders.place(self.ids[buyer], product, quantity)).code)
        except UserInputError:
            pass

    def _order(self, data, *likely: str) -> tuple[str, int]:
        """Any order (a step on the wrong one must be refused cleanly), most often one in a state where the step
        means something, so that long lives (paid, shipped, received) are reached."""
        states = self.run(self._states())
        fitting = [code for code in self.codes if states[code][0] in likely]
        pool = fitting if fitting and data.draw(st.integers(0, 9)) < 8 else self.codes
        code = data.draw(st.sampled_from(pool))
        return code, states[code][1]

    async def _states(self) -> dict[str, tuple[str, int]]:
        async with self.db.read() as session:
            rows = (await session.execute(select(Order.id, Order.status, Order.user_id))).all()
        return {order_code(i): (status, user) for i, status, user in rows}

    @precondition(lambda self: self.codes)
    @rule(data=st.data(), as_stranger=st.booleans())
    def pay(self, data, as_stranger: bool) -> None:
        code, buyer = self._order(data, "pending")
        payer = self.ids["rina"] if as_stranger and buyer == self.ids["siti"] else buyer
        self.attempt(self.escrow.pay_from_wallet(payer, code))

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def a_whole_life(self, data) -> None:
        """Pay, ship and receive one order in a row: long lives are rare among random steps, and they are where
        the release happens."""
        code, buyer = self._order(data, "pending", "confirmed", "shipped")
        self.attempt(self.escrow.pay_from_wallet(buyer, code))
        self.attempt(self.orders.owner_move(self.ids["tina"], code, "ship", "JNE 1"))
        self.attempt(self.escrow.receive(buyer, code))

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def ship(self, data) -> None:
        code, _ = self._order(data, "confirmed")
        self.attempt(self.orders.owner_move(self.ids["tina"], code, "ship", "JNE 1"))

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def receive(self, data) -> None:
        code, buyer = self._order(data, "shipped")
        self.attempt(self.escrow.receive(buyer, code))

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def reject_with_refund(self, data) -> None:
        code, _ = self._order(data, "confirmed")
        self.attempt(self.escrow.refund(self.ids["tina"], code, as_owner=True, reason="stok habis"))

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def buyer_cancels(self, data) -> None:
        code, buyer = self._order(data, "confirmed", "pending")
        self.attempt(self.escrow.refund(buyer, code, as_owner=False))
        self.attempt(self.orders.cancel(buyer, code))  # an unpaid one: no money, stock back

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def reject_unpaid(self, data) -> None:
        code, _ = self._order(data, "pending")
        self.attempt(self.orders.owner_move(self.ids["tina"], code, "reject", "x"))

    @precondition(lambda self: self.codes)
    @rule(data=st.data(), count=st.integers(1, 2))
    def jastiper_refuses_part(self, data, count: int) -> None:
        code, _ = self._order(data, "confirmed")
        self.attempt(self.escrow.refund_part(self.ids["tina"], code, count, "sebagian habis"))

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def buyer_says_not_arrived(self, data) -> None:
        code, buyer = self._order(data, "shipped")
        self.attempt(self.escrow.extend(buyer, code))

    @precondition(lambda self: self.codes)
    @rule(data=st.data())
    def buyer_complains(self, data) -> None:
        code, buyer = self._order(data, "confirmed", "shipped")
        self.attempt(self.escrow.complain(buyer, code, "barang rusak"))

    @precondition(lambda self: self.codes)
    @rule(data=st.data(), share=st.sampled_from([0, 1, 2, 3, 4]))
    def admin_settles(self, data, share: int) -> None:
        """Release (0), refund all (4) or a split: `share` quarters of the order's total back to the buyer."""
        code, _ = self._order(data, "disputed")
        total = self.run(self._total(code))
        self.attempt(self.escrow.settle_complaint(self.ids["tina"], code, refund=total * share // 4,
                                                  reason="diputuskan"))

    async def _total(self, code: str) -> int:
        async with self.db.read() as session:
            return int(await session.scalar(select(Order.total).where(Order.id == int(code[1:]))) or 0)

    @rule(hours=st.sampled_from([1, 2, 6, 25, 24 * 8]))
    def time_passes(self, hours: int) -> None:
        self.clock.advance(hours=hours)
        self.run(self.orders.expire_due())
        self.run(self.escrow.release_due())

    # --- what must always hold -----------------------------------------------------------------------------

    @invariant()
    def the_books_hold_and_money_is_neither_made_nor_lost(self) -> None:
        if not hasattr(self, "escrow"):
            return
        assert self.run(books.check(self.db)) == []
        totals = self.run(books.money_by_kind(self.db))
        held = sum(totals[k] for k in (AccountKind.WALLET, AccountKind.EARNINGS, AccountKind.ESCROW,
                                       AccountKind.REVENUE))
        assert held == self.funded, (held, self.funded, totals)

    @invariant()
    def each_escrow_holds_what_its_order_state_says(self) -> None:
        if not hasattr(self, "escrow"):
            return

        async def read():
            async with self.db.read() as session:
                orders = (await session.execute(select(Order.id, Order.status, Order.total, Order.dp_amount))).all()
                escrows = dict((await session.execute(select(Account.key, Account.balance).where(
                    Account.kind == AccountKind.ESCROW.value))).all())
            return orders, escrows

        orders, escrows = self.run(read())
        for order_id, status, total, dp in orders:
            inside = int(escrows.get(str(order_id), 0))
            expected = total if status in ("confirmed", "shipped", "disputed") else dp if status == "dp_paid" else 0
            assert inside == expected, (order_code(order_id), status, inside, total)
        self.run(self._no_order_both_released_and_refunded())

    async def _no_order_both_released_and_refunded(self) -> None:
        """What leaves an escrow adds up to what came in, and a refunded order released nothing (only an admin's
        split both refunds and releases, and that order ends received)."""
        async with self.db.read() as session:
            rows = (await session.execute(select(Transfer.reference, Transfer.amount).where(
                Transfer.kind.in_(("order-release", "order-refund", "order-fee"))))).all()
            orders = {order_code(i): (status, total) for i, status, total in (await session.execute(
                select(Order.id, Order.status, Order.total))).all()}
        out: dict[str, dict[str, int]] = {}
        for reference, amount in rows:
            _, order_id, what = reference.split(":")
            out.setdefault(f"P{order_id}", {})[what] = amount
        for code, parts in out.items():
            status, total = orders[code]
            ends = {what: amount for what, amount in parts.items() if not what.startswith("part")}
            if not ends:  # only part refunds so far: the order is still open, its escrow holds the rest
                assert status in ("confirmed", "shipped", "disputed"), (code, status, parts)
                continue
            assert sum(ends.values()) == total, (code, status, parts)  # the total after part refunds
            if status == "refunded":
                assert set(ends) == {"refund"}, (code, parts)
            else:
                assert status in ("received", "forfeited"), (code, status, parts)


def test_money_is_conserved_through_any_sequence_of_otomatis_order_steps(db_url):
    if db_url.startswith("sqlite"):
        # On top of the loaded profile (CI's is derandomized): the same examples on every CI run.
        run_state_machine_as_test(OtomatisOrders, settings=settings(settings.default, max_examples=40,
                                                                    stateful_step_count=50, deadline=None))
        return
    # PostgreSQL: each example resets the run's database schema and migrates it (about a second), so fewer.
    machine = type("OtomatisOrdersOnPostgres", (OtomatisOrders,), {"postgres_url": db_url})
    run_state_machine_as_test(machine, settings=settings(settings.default, max_examples=12, stateful_step_count=50,
                                                         deadline=None))
