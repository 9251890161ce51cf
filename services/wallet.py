"""Users, balances and the append-only ledger.

The balance column is a cache of the ledger kept in the same transaction as every entry; the database
refuses a negative balance (CHECK) and a second entry with the same reference (UNIQUE), so neither a
race nor a retry can overdraw or double-post.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.clock import Clock
from services.errors import DataConflict, InsufficientFunds
from storage.db import Database
from storage.models import LedgerEntry, Payment, User


@dataclass(frozen=True)
class UserView:
    id: int
    channel: str
    external_id: str
    language: str
    balance: int
    display_name: str | None = None
    username: str | None = None


@dataclass(frozen=True)
class LedgerLine:
    amount: int
    balance_after: int
    kind: str
    reference: str
    created_at: datetime
    subject: str = ""  # what it was for, as a person knows it: a payment's order code, "#7" for broadcast 7


def user_view(user: User) -> UserView:
    return UserView(user.id, user.channel, user.external_id, user.language, user.balance, user.display_name,
                    user.username)


# Ledger references name what an entry was for: "<kind>:<payment id>" for payments, "bchold:<broadcast id>"
# and "bcfail:<broadcast id>:<user id>" for broadcasts.
_PAYMENT_REFS = ("topup", "reversal", "refund")
_BROADCAST_REFS = ("bchold", "bcfail")


async def post_entry(
    session: AsyncSession, *, user_id: int, amount: int, kind: str, reference: str, now: datetime
) -> int:
    """Move `amount` (signed) on the user's balance and append the ledger entry; returns the new balance.

    Raises InsufficientFunds when a debit would go below zero, DataConflict (when committed) if `reference` was used.
    Runs in the caller's transaction.
    """
    result = await session.execute(
        update(User)
        .where(User.id == user_id, User.balance + amount >= 0)
        .values(balance=User.balance + amount)
        .returning(User.balance)
    )
    balance = result.scalar_one_or_none()
    if balance is None:
        current = await session.scalar(select(User.balance).where(User.id == user_id))
        raise InsufficientFunds(balance=current or 0, needed=-amount)
    session.add(
        LedgerEntry(
            user_id=user_id, amount=amount, balance_after=balance, kind=kind, reference=reference, created_at=now
        )
    )
    await session.flush()
    return balance


class Wallet:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def balance(self, user_id: int) -> int:
        async with self._db.read() as session:
            return (await session.scalar(select(User.balance).where(User.id == user_id))) or 0

    async def history(self, user_id: int, limit: int = 10) -> list[LedgerLine]:
        async with self._db.read() as session:
            rows = await session.scalars(
                select(LedgerEntry)
                .where(LedgerEntry.user_id == user_id)
                .order_by(LedgerEntry.id.desc())
                .limit(limit)
            )
            entries = list(rows)
            payment_ids = {int(r.reference.split(":")[1]) for r in entries
                           if r.reference.split(":")[0] in _PAYMENT_REFS and r.reference.split(":")[1].isdigit()}
            codes = dict((await session.execute(
                select(Payment.id, Payment.order_id).where(Payment.id.in_(payment_ids)))).all()) if payment_ids else {}

            def subject(reference: str) -> str:
                kind, _, rest = reference.partition(":")
                head = rest.split(":")[0]
                if kind in _PAYMENT_REFS and head.isdigit():
                    return codes.get(int(head), "")
                if kind in _BROADCAST_REFS and head.isdigit():
                    return f"#{head}"
                return ""

            return [LedgerLine(r.amount, r.balance_after, r.kind, r.reference, r.created_at, subject(r.reference))
                    for r in entries]

    async def set_language(self, user_id: int, language: str) -> None:
        async with self._db.write() as session:
            await session.execute(update(User).where(User.id == user_id).values(language=language))

    async def debit(self, user_id: int, amount: int, *, kind: str, reference: str) -> int:
        """Take `amount` from the balance once per `reference`; returns the new balance.

        A repeated reference returns the current balance without debiting again.
        """
        if amount <= 0:
            raise ValueError("debit amount must be positive")
        try:
            async with self._db.write() as session:
                return await post_entry(
                    session, user_id=user_id, amount=-amount, kind=kind, reference=reference, now=self._clock.now()
                )
        except DataConflict:
            return await self.balance(user_id)

    async def credit(self, user_id: int, amount: int, *, kind: str, reference: str) -> int:
        """Add `amount` once per `reference` (admin adjustments, releases); returns the new balance."""
        if amount <= 0:
            raise ValueError("credit amount must be positive")
        try:
            async with self._db.write() as session:
                return await post_entry(
                    session, user_id=user_id, amount=amount, kind=kind, reference=reference, now=self._clock.now()
                )
        except DataConflict:
            return await self.balance(user_id)

    async def totals(self) -> tuple[int, int]:
        """(sum of balances, sum of ledger entries): equal unless something is badly wrong."""
        async with self._db.read() as session:
            balances = await session.scalar(select(func.coalesce(func.sum(User.balance), 0)))
            ledger = await session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)))
            return int(balances or 0), int(ledger or 0)
