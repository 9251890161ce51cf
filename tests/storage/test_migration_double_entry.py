"""Migration 0007 carries a database filled by the single-entry code over to double entry, on SQLite and on
PostgreSQL: one transfer per historical entry (its reference and time kept), outstanding reversal shortfalls as
receivables, held payments in suspense, finished broadcasts' charges in revenue — balances unchanged and the
books' check green after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from services import books
from storage.db import Database
from storage.migrate import upgrade
from storage.models import Account, Payment, Transfer, UTCDateTime

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def when(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


# The tables as revision 0006 left them (only the columns the rows below fill).
USERS = sa.table("users", sa.column("id"), sa.column("channel"), sa.column("external_id"), sa.column("language"),
                 sa.column("balance"), sa.column("created_at", UTCDateTime()))
ENTRIES = sa.table("ledger_entries", sa.column("user_id"), sa.column("amount"), sa.column("balance_after"),
                   sa.column("kind"), sa.column("reference"), sa.column("created_at", UTCDateTime()))
PAYMENTS = sa.table("payments", sa.column("id"), sa.column("order_id"), sa.column("user_id"), sa.column("gateway"),
                    sa.column("amount"), sa.column("status"), sa.column("flag_reason"),
                    sa.column("created_at", UTCDateTime()), sa.column("updated_at", UTCDateTime()),
                    sa.column("paid_at", UTCDateTime()), sa.column("credited_at", UTCDateTime()))
TRIPS = sa.table("trips", sa.column("id"), sa.column("slug"), sa.column("title"), sa.column("owner_id"),
                 sa.column("deadline_at", UTCDateTime()), sa.column("status"), sa.column("created_at", UTCDateTime()))
BROADCASTS = sa.table("broadcasts", sa.column("id"), sa.column("trip_id"), sa.column("owner_id"), sa.column("text"),
                      sa.column("price"), sa.column("recipients"), sa.column("status"),
                      sa.column("created_at", UTCDateTime()), sa.column("finished_at", UTCDateTime()))


async def fill_as_the_single_entry_code_did(db: Database) -> None:
    """Three people: Ani topped up, broadcast (one message failed and came back) and was given 5.000 by an admin;
    Budi topped up, spent most of it on a broadcast still running, then the bank reversed his payment (40.000
    owed); Cici paid 45.000 against a 50.000 bill (held), has a payment pending and one refunded."""
    entries = [
        (1, 100_000, 100_000, "topup", "topup:1", 1), (1, -30_000, 70_000, "broadcast_hold", "bchold:1", 2),
        (1, 10_000, 80_000, "broadcast_release", "bcfail:1:3", 3), (1, 5_000, 85_000, "adjust", "admin-gift:1", 4),
        (2, 50_000, 50_000, "topup", "topup:2", 5), (2, -40_000, 10_000, "broadcast_hold", "bchold:2", 6),
        (2, -10_000, 0, "reversal", "reversal:2", 7),
        (3, 20_000, 20_000, "topup", "topup:5", 8), (3, -20_000, 0, "refund", "refund:5", 9),
    ]
    async with db.write() as session:
        await session.execute(sa.insert(USERS), [
            {"id": i, "channel": "telegram", "external_id": str(100 + i), "language": "id", "balance": balance,
             "created_at": T0} for i, balance in ((1, 85_000), (2, 0), (3, 0))])
        await session.execute(sa.insert(PAYMENTS), [
            {"id": 1, "order_id": "TT1", "user_id": 1, "gateway": "midtrans", "amount": 100_000, "status": "paid",
             "flag_reason": None, "created_at": when(0), "updated_at": when(1), "paid_at": when(1),
             "credited_at": when(1)},
            {"id": 2, "order_id": "TT2", "user_id": 2, "gateway": "duitku", "amount": 50_000, "status": "reversed",
             "flag_reason": "reversed: could take only 10000 of 50000 back; 40000 outstanding",
             "created_at": when(4), "updated_at": when(7), "paid_at": when(5), "credited_at": when(5)},
            {"id": 3, "order_id": "TT3", "user_id": 3, "gateway": "xendit", "amount": 50_000, "status": "held",
             "flag_reason": "amount mismatch: gateway says 45000, we asked 50000", "created_at": when(7),
             "updated_at": when(8), "paid_at": None, "credited_at": None},
            {"id": 4, "order_id": "TT4", "user_id": 3, "gateway": "midtrans", "amount": 75_000, "status": "pending",
             "flag_reason": None, "created_at": when(8), "updated_at": when(8), "paid_at": None,
             "credited_at": None},
            {"id": 5, "order_id": "TT5", "user_id": 3, "gateway": "midtrans", "amount": 20_000, "status": "refunded",
             "flag_reason": None, "created_at": when(7), "updated_at": when(9), "paid_at": when(8),
             "credited_at": when(8)},
        ])
        await session.execute(sa.insert(ENTRIES), [
            {"user_id": u, "amount": a, "balance_after": b, "kind": k, "reference": r, "created_at": when(h)}
            for u, a, b, k, r, h in entries])
        await session.execute(sa.insert(TRIPS), [{"id": 1, "slug": "jpn25", "title": "Jepang", "owner_id": 1,
                                                  "deadline_at": when(100), "status": "open", "created_at": T0}])
        await session.execute(sa.insert(BROADCASTS), [
            {"id": 1, "trip_id": 1, "owner_id": 1, "text": "Halo", "price": 10_000, "recipients": 3, "status": "done",
             "created_at": when(2), "finished_at": when(3)},
            {"id": 2, "trip_id": 1, "owner_id": 2, "text": "Hai", "price": 10_000, "recipients": 4,
             "status": "running", "created_at": when(6), "finished_at": None}])


@pytest.fixture
async def migrated(empty_db_url):
    db = Database(empty_db_url)
    await upgrade(db, "0006")
    await fill_as_the_single_entry_code_did(db)
    await upgrade(db)
    yield db
    await db.close()


async def balances(db: Database) -> dict[tuple[str, str], int]:
    async with db.read() as session:
        return {(a.kind, a.key): a.balance for a in (await session.scalars(select(Account))).all()}


async def test_every_balance_survives_and_the_books_hold(migrated):
    assert await books.check(migrated) == []
    found = await balances(migrated)
    assert {k: v for k, v in found.items() if k[0] == "wallet"} == {("wallet", "1"): 85_000, ("wallet", "2"): 0,
                                                                      ("wallet", "3"): 0}
    assert found[("receivable", "2")] == 40_000  # what the reversal could not take back
    assert found[("suspense", "")] == 45_000  # the held payment's money, waiting for an admin
    assert found[("hold", "broadcast:2")] == 40_000  # the running broadcast keeps its hold
    assert found[("hold", "broadcast:1")] == 0  # the finished one's charge went to revenue
    money = await books.money_by_kind(migrated)
    assert money["revenue"] == 20_000 and money["adjustment"] == 5_000


async def test_each_entry_becomes_one_transfer_with_its_reference_and_time(migrated):
    async with migrated.read() as session:
        transfers = {t.reference: t for t in (await session.scalars(select(Transfer))).all()}
    for reference in ("topup:1", "bchold:1", "bcfail:1:3", "admin-gift:1", "topup:2", "bchold:2", "reversal:2",
                      "topup:5", "refund:5"):
        assert reference in transfers, reference
    assert transfers["topup:1"].amount == 100_000 and transfers["topup:1"].created_at == when(1)
    assert transfers["reversal:2"].amount == 10_000 and transfers["owed:2"].amount == 40_000
    assert transfers["held:3"].amount == 45_000 and transfers["bcpost:1"].amount == 20_000


async def test_payments_know_where_their_money_went(migrated):
    async with migrated.read() as session:
        payments = {p.order_id: p for p in (await session.scalars(select(Payment))).all()}
        wallets = dict((await session.execute(select(Account.key, Account.id).where(Account.kind == "wallet"))).all())
    assert all(p.purpose == "topup" and p.account_id == wallets[str(p.user_id)] for p in payments.values())
    assert payments["TT2"].paid_amount == 50_000 and payments["TT2"].refunded_amount == 50_000
    assert payments["TT3"].paid_amount == 45_000 and payments["TT4"].paid_amount is None


async def test_a_database_whose_balances_do_not_add_up_is_refused_not_migrated(empty_db_url):
    db = Database(empty_db_url)
    try:
        await upgrade(db, "0006")
        async with db.write() as session:
            await session.execute(sa.insert(USERS), [{"id": 1, "channel": "telegram", "external_id": "9",
                                                      "language": "id", "balance": 1_000, "created_at": T0}])
        with pytest.raises(Exception, match="does not add up"):
            await upgrade(db)
    finally:
        await db.close()
