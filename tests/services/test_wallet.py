"""The wallet's guarantees, enforced by the database: no overdraft under concurrency, no edits to the ledger."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from services.clock import SystemClock
from services.errors import InsufficientFunds, StorageDataError
from services.inbound import Inbounds
from services.wallet import Wallet
from tests.support.money import assert_books_hold

# The database's refusal, as storage/ maps it (a CHECK is a DataConflict; a trigger's RAISE may stay a driver error).
REFUSED = (DBAPIError, StorageDataError)


async def make_user(db, external_id: str = "u1") -> int:
    inbound = await Inbounds(db, SystemClock()).register(channel="telegram", external_id=external_id,
                                                          display_name="Ani", update_key=None)
    return inbound.user.id


async def test_fifty_concurrent_debits_never_overdraw(db):
    wallet = Wallet(db, SystemClock())
    user = await make_user(db)
    await wallet.credit(user, 10_000, reference="seed")

    async def debit(i: int) -> str:
        try:
            await wallet.debit(user, 1_000, reference=f"d{i}")
            return "ok"
        except InsufficientFunds:
            return "refused"

    results = await asyncio.gather(*(debit(i) for i in range(50)))
    assert results.count("ok") == 10 and results.count("refused") == 40
    assert await wallet.balance(user) == 0
    await assert_books_hold(db)


async def test_fifty_concurrent_debits_from_separate_engines_never_overdraw(fresh_db_url):
    """Two engines behave like two processes: no shared asyncio lock, only the database decides."""
    from storage.db import Database

    engines = [Database(fresh_db_url), Database(fresh_db_url)]
    wallets = [Wallet(e, SystemClock()) for e in engines]
    try:
        user = await make_user(engines[0])
        await wallets[0].credit(user, 7_000, reference="seed")

        async def debit(i: int) -> bool:
            try:
                await wallets[i % 2].debit(user, 1_000, reference=f"d{i}")
                return True
            except InsufficientFunds:
                return False

        results = await asyncio.gather(*(debit(i) for i in range(50)))
        assert sum(results) == 7
        assert await wallets[1].balance(user) == 0
        await assert_books_hold(engines[1])
    finally:
        for e in engines:
            await e.close()


async def test_a_repeated_debit_reference_debits_once(db):
    wallet = Wallet(db, SystemClock())
    user = await make_user(db)
    await wallet.credit(user, 5_000, reference="seed")
    await asyncio.gather(*(wallet.debit(user, 2_000, reference="same") for _ in range(5)))
    assert await wallet.balance(user) == 3_000
    assert len(await wallet.history(user)) == 2


async def test_the_database_refuses_a_negative_balance_even_from_raw_sql(db):
    wallet = Wallet(db, SystemClock())
    user = await make_user(db)
    await wallet.credit(user, 1_000, reference="seed")
    with pytest.raises(REFUSED):
        async with db.write() as session:
            await session.execute(text("UPDATE accounts SET balance = -1 WHERE user_id = :id"), {"id": user})
    assert await wallet.balance(user) == 1_000


async def test_a_transfer_inserted_behind_the_applications_back_cannot_overdraw_a_wallet(db):
    """Raw SQL, no application code: the database moves the balance itself and refuses a negative one."""
    wallet = Wallet(db, SystemClock())
    user = await make_user(db)
    await wallet.credit(user, 1_000, reference="seed")
    insert = text("INSERT INTO transfers (reference, debit_id, credit_id, amount, kind, created_at) "
                  "SELECT :ref, w.id, a.id, :amount, 'raw', w.created_at FROM accounts w, accounts a "
                  "WHERE w.kind = 'wallet' AND w.user_id = :uid AND a.kind = 'adjustment'")
    with pytest.raises(REFUSED):
        async with db.write() as session:
            await session.execute(insert, {"ref": "raw-1", "amount": 1_001, "uid": user})
    async with db.write() as session:  # within the balance it goes through, and the balance follows
        await session.execute(insert, {"ref": "raw-2", "amount": 400, "uid": user})
    assert await wallet.balance(user) == 600
    await assert_books_hold(db)


async def test_a_reference_posted_again_differently_is_a_conflict_not_a_silent_skip(db):
    from services.errors import LedgerConflict

    wallet = Wallet(db, SystemClock())
    user = await make_user(db)
    await wallet.credit(user, 1_000, reference="seed")
    assert await wallet.credit(user, 1_000, reference="seed") == 1_000  # the same again: nothing happens
    with pytest.raises(LedgerConflict):
        await wallet.credit(user, 2_000, reference="seed")
    assert await wallet.balance(user) == 1_000


async def test_the_ledger_is_append_only(db):
    wallet = Wallet(db, SystemClock())
    user = await make_user(db)
    await wallet.credit(user, 5_000, reference="seed")
    for statement in ("UPDATE transfers SET amount = 999999", "DELETE FROM transfers"):
        with pytest.raises(REFUSED):
            async with db.write() as session:
                await session.execute(text(statement))
    assert [line.amount for line in await wallet.history(user)] == [5_000]
