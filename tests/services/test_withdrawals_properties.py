"""Money is conserved through any sequence of what can happen to withdrawals: hypothesis drives random sequences
of TARIK (any amount, double taps), the payouts job, the provider's reports in any order and any number of times
(accepted, completed, failed, out of funds, reversed — for the current attempt or a stale one), admins' decisions
(approve, reject, funds topped up, an unknown resolved) and new earnings, against a real database. After every
step: the books hold; earnings + what is held + what went out through the provider = what was earned; every
payout's hold is what its state says (full while in flight, empty once posted or voided, never both); the
provider was asked for each payout's amount, under at most one key per attempt. On SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
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
from sqlalchemy import select, update

from services import books, ledger
from services.clock import FrozenClock
from services.errors import UserInputError
from services.inbound import Inbounds
from services.payouts import PayoutReport
from services.payouts.sandbox import SandboxPayouts
from services.withdrawals import Withdrawals
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Account, Payout, Transfer, User
from tests.conftest import reset_postgres

OUTCOMES = ("accepted", "completed", "failed", "no_funds", "reversed", "cancelled")
IN_FLIGHT = ("awaiting_approval", "requested", "sending", "processing", "waiting_funds", "unknown")


class Withdrawing(RuleBasedStateMachine):
    postgres_url: str | None = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.folder = tempfile.TemporaryDirectory()
        url = self.postgres_url or f"sqlite+aiosqlite:///{Path(self.folder.name) / 'titip.db'}"
        if self.postgres_url:
            self.loop.run_until_complete(reset_postgres(self.postgres_url))
        self.db = Database(url)
        self.clock = FrozenClock()
        self.earned = 0
        self.keys = 0

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def attempt(self, coroutine) -> None:
        try:
            self.run(coroutine)
        except UserInputError:
            pass

    @initialize()
    def start(self) -> None:
        async def setup() -> None:
            await upgrade(self.db)
            self.http = httpx.AsyncClient()
            self.sandbox = SandboxPayouts(secret="s", public_url="http://127.0.0.1:1", http=self.http)
            self.w = Withdrawals(self.db, self.clock, self.sandbox, fee=1_500, approval_above=300_000,
                                 new_account_hold_hours=0, check_every_s=1, admins=[("telegram", "1")])
            inbound = Inbounds(self.db, self.clock)
            self.tina = (await inbound.register(channel="telegram", external_id="tina", display_name="Tina",
                                                update_key=None)).user.id
            self.admin = (await inbound.register(channel="telegram", external_id="admin", display_name="Admin",
                                                 update_key=None)).user.id
            async with self.db.write() as session:
                await session.execute(update(User).where(User.id == self.tina).values(verified_at=self.clock.now()))
            draft = await self.w.draft_account(self.tina, "bca", "0011223344", "Tina")
            await self.w.confirm_account(self.tina, draft.id)
        self.run(setup())
        self.earn(400_000)

    def earn(self, amount: int) -> None:
        async def post() -> None:
            async with self.db.write() as session:
                await ledger.post(session, [ledger.Move(f"earned:{self.earned}:{amount}", ledger.ADJUSTMENT,
                                                        ledger.earnings(self.tina), amount, "adjust")],
                                  self.clock.now())
        self.run(post())
        self.earned += amount

    def teardown(self) -> None:
        self.run(self.http.aclose())
        self.run(self.db.close())
        self.loop.close()
        self.folder.cleanup()

    def payouts(self) -> list[tuple[int, str, int]]:
        async def read():
            async with self.db.read() as session:
                return (await session.execute(select(Payout.id, Payout.status, Payout.attempt)
                                              .order_by(Payout.id))).all()
        return [tuple(r) for r in self.run(read())]

    # --- what people, the job, the provider and admins do -----------------------------------------------

    @rule(amount=st.sampled_from([50_000, 99_000, 150_000, 250_000, 400_000, None]), double=st.booleans())
    def withdraw(self, amount, double) -> None:
        self.keys += 1
        key = f"k{self.keys}"

        async def tap() -> None:
            quote = await self.w.quote(self.tina, amount)
            taps = [self.w.request(self.tina, quote.amount, key) for _ in range(2 if double else 1)]
            await asyncio.gather(*taps)
        self.attempt(tap())

    @rule(amount=st.sampled_from([50_000, 120_000]))
    def more_earnings(self, amount) -> None:
        self.earn(amount)

    @rule(seconds=st.sampled_from([0, 2]))
    def job(self, seconds) -> None:
        self.clock.advance(seconds=seconds)
        self.run(self.w.run())

    @precondition(lambda self: self.payouts())
    @rule(data=st.data(), outcome=st.sampled_from(OUTCOMES), stale=st.booleans())
    def provider_reports(self, data, outcome, stale) -> None:
        payout_id, _, attempt = data.draw(st.sampled_from(self.payouts()))
        if attempt == 0:
            return
        number = max(1, attempt - 1) if stale else attempt
        report = PayoutReport(outcome, provider_ref=f"titip-{payout_id}-{number}", key=f"titip-{payout_id}-{number}",
                              code="X" if outcome in ("failed", "no_funds") else None)
        self.run(self.w.apply(payout_id, number, report))

    @precondition(lambda self: self.payouts())
    @rule(data=st.data(), decision=st.sampled_from(["setuju", "tolak", "berhasil", "gagal", "saldo"]))
    def admin_decides(self, data, decision) -> None:
        payout_id = data.draw(st.sampled_from(self.payouts()))[0]
        self.attempt(self.w.decide(self.admin, payout_id, decision, "dicek di dasbor"))

    @precondition(lambda self: self.payouts())
    @rule(data=st.data())
    def unknown_after_a_lost_answer(self, data) -> None:
        """What a provider without idempotency leads to: the payout in doubt, for an admin."""
        from services.payout_machine import PayoutEvent

        payout_id, _, attempt = data.draw(st.sampled_from(self.payouts()))
        self.run(self.w._move(payout_id, attempt, PayoutEvent.UNKNOWN, detail="timeout"))

    # --- invariants -------------------------------------------------------------------------------------

    @invariant()
    def books_hold(self) -> None:
        assert self.run(books.check(self.db)) == []

    @invariant()
    def money_is_conserved_and_each_hold_matches_its_payout(self) -> None:
        async def read():
            async with self.db.read() as session:
                accounts = {(k, key): (b, s) for k, key, b, s in (await session.execute(
                    select(Account.kind, Account.key, Account.balance, Account.status))).all()}
                transfers = (await session.execute(select(Transfer.reference, Transfer.amount).where(
                    Transfer.reference.like("payout:%")))).all()
                payouts = (await session.execute(select(Payout.id, Payout.status, Payout.amount, Payout.fee))).all()
            return accounts, transfers, payouts

        accounts, transfers, payouts = self.run(read())
        moved = {reference: amount for reference, amount in transfers}
        earnings = accounts.get(("earnings", str(self.tina)), (0, None))[0]
        held = sum(b for (kind, key), (b, _) in accounts.items() if kind == "hold" and key.startswith("payout:"))
        out = sum(moved.get(f"payout:{p}:send", 0) - moved.get(f"payout:{p}:reverse", 0) for p, *_ in payouts)
        fees = sum(moved.get(f"payout:{p}:fee", 0) - moved.get(f"payout:{p}:fee-back", 0) for p, *_ in payouts)
        assert earnings + held + out + fees == self.earned, (earnings, held, out, fees, self.earned)
        for payout_id, status, amount, fee in payouts:
            balance, hold_status = accounts[("hold", f"payout:{payout_id}")]
            sent, voided = f"payout:{payout_id}:send" in moved, f"payout:{payout_id}:void" in moved
            assert not (sent and voided), (payout_id, status)
            if status in IN_FLIGHT:
                assert (balance, hold_status, sent, voided) == (amount + fee, "pending", False, False), payout_id
            elif status in ("completed", "reversed"):
                assert (balance, hold_status, sent) == (0, "posted", True), (payout_id, status)
                assert (f"payout:{payout_id}:reverse" in moved) == (status == "reversed")
            else:
                assert (balance, hold_status, voided) == (0, "voided", True), (payout_id, status)


def test_money_is_conserved_through_any_sequence_of_withdrawal_events(db_url):
    if db_url.startswith("sqlite"):
        run_state_machine_as_test(Withdrawing, settings=settings(settings.default, max_examples=40,
                                                                 stateful_step_count=40, deadline=None))
        return
    machine = type("WithdrawingOnPostgres", (Withdrawing,), {"postgres_url": db_url})
    run_state_machine_as_test(machine, settings=settings(settings.default, max_examples=10, stateful_step_count=40,
                                                         deadline=None))
