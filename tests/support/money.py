"""Money in tests: reading balances and the books the way an auditor would."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from services import books, ledger
from services.kinds import AccountKind
from storage.db import Database
from storage.models import Account, Transfer


async def seed(db: Database, now: datetime, to: ledger.Ref, amount: int, reference: str) -> None:
    """Money in an account as earlier activity would have left it (adjustment → wallet or earnings); no chat
    command can do this."""
    async with db.write() as session:
        await ledger.post(session, [ledger.Move(reference, ledger.ADJUSTMENT, to, amount, "adjust")], now)


async def balance(db: Database, ref: ledger.Ref) -> int:
    """A tracked account's stored balance, 0 before it exists."""
    async with db.read() as session:
        found = await session.scalar(select(Account.balance).where(Account.kind == ref.kind.value,
                                                                   Account.key == ref.key))
        return int(found or 0)


async def wallets_total(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.coalesce(func.sum(Account.balance), 0)).where(
            Account.kind == AccountKind.WALLET.value)) or 0)


async def transfers_of_kind(db: Database, kind: str) -> dict[str, int]:
    """reference -> amount, for every transfer of `kind` ("topup", "hold", ...)."""
    async with db.read() as session:
        return dict((await session.execute(select(Transfer.reference, Transfer.amount)
                                           .where(Transfer.kind == kind))).all())


async def transfer_count(db: Database) -> int:
    async with db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Transfer)) or 0)


async def assert_books_hold(db: Database) -> None:
    problems = await books.check(db)
    assert problems == [], problems


async def wallet_ledger(db: Database) -> tuple[int, int]:
    """(what the wallets' transfers add up to, how many transfers touched a wallet)."""
    async with db.read() as session:
        wallets = select(Account.id).where(Account.kind == AccountKind.WALLET.value).scalar_subquery()
        into = int(await session.scalar(select(func.coalesce(func.sum(Transfer.amount), 0))
                                        .where(Transfer.credit_id.in_(wallets))) or 0)
        out = int(await session.scalar(select(func.coalesce(func.sum(Transfer.amount), 0))
                                       .where(Transfer.debit_id.in_(wallets))) or 0)
        count = int(await session.scalar(select(func.count()).select_from(Transfer).where(
            Transfer.credit_id.in_(wallets) | Transfer.debit_id.in_(wallets))) or 0)
    return into - out, count
