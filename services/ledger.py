"""The double-entry ledger: every movement of money is a transfer from one account (debited) to another
(credited), with a positive amount and a unique reference. This module is the only writer of `transfers`.

    credit-normal accounts (wallet, earnings, escrow, hold, client, revenue, suspense): balance = credits - debits
    debit-normal accounts (gateway, provider, receivable, fees, adjustment):            balance = debits - credits

Guarantees, each enforced by the database whatever the code does:
- a reference is unique: posting it again with the same accounts and amount is a no-op; anything different is a
  LedgerConflict (admins are alerted by the caller), never silently skipped;
- a tracked account's balance (in its normal sign) is moved by the database itself when a transfer is inserted
  (a trigger) and can never be negative: CHECK (balance >= 0) refuses the transfer, whoever inserts it;
- transfers are append-only (triggers refuse UPDATE and DELETE).

Derived accounts (gateway, revenue, fees, adjustment) are never locked or updated per transfer: two processes
settling at once would otherwise serialise on "the Midtrans account". Their balance is the sum of their transfers.
Lock order everywhere: accounts by id, then payments, then orders.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from services.errors import InsufficientFunds, LedgerConflict
from services.kinds import CREDIT_NORMAL, DERIVED, AccountKind
from storage.models import Account, Transfer
from storage.queries import dialect_of, insert_or_skip, pairs_in


@dataclass(frozen=True)
class Ref:
    """An account by what it is: (kind, key), e.g. (wallet, "12"), (gateway, "midtrans"), (revenue, "")."""

    kind: AccountKind
    key: str = ""
    user_id: int | None = None


def wallet(user_id: int) -> Ref:
    return Ref(AccountKind.WALLET, str(user_id), user_id)


def earnings(user_id: int) -> Ref:
    return Ref(AccountKind.EARNINGS, str(user_id), user_id)


def receivable(user_id: int) -> Ref:
    return Ref(AccountKind.RECEIVABLE, str(user_id), user_id)


def escrow(order_id: int, buyer_id: int) -> Ref:
    """An order's escrow (otomatis trips): the buyer's money until it is released or refunded."""
    return Ref(AccountKind.ESCROW, str(order_id), buyer_id)


def gateway(name: str) -> Ref:
    return Ref(AccountKind.GATEWAY, name)


def provider(name: str) -> Ref:
    """A payout provider's account: our money sent out through it."""
    return Ref(AccountKind.PROVIDER, name)


def client(client_id: int) -> Ref:
    """A client bot's account: its deposits, owed to it until the operator pays it (`clients settle`)."""
    return Ref(AccountKind.CLIENT, str(client_id))


def client_receivable(client_id: int) -> Ref:
    """What a client bot owes us: a reversed deposit its account could not cover (its next deposits repay it)."""
    return Ref(AccountKind.RECEIVABLE, f"client:{client_id}")


def hold(what: str, user_id: int | None = None) -> Ref:
    """A hold account: "broadcast:7", later "payout:3"."""
    return Ref(AccountKind.HOLD, what, user_id)


REVENUE, SUSPENSE, ADJUSTMENT, FEES = (Ref(AccountKind.REVENUE), Ref(AccountKind.SUSPENSE),
                                       Ref(AccountKind.ADJUSTMENT), Ref(AccountKind.FEES))


@dataclass
class AccountRow:
    """An account as a writer holds it in its transaction: read (and locked) once per batch, its balance kept
    current as transfers are posted. A plain row, not an ORM object: a settling batch reads hundreds."""

    id: int
    kind: str
    key: str
    user_id: int | None
    balance: int
    status: str | None


@dataclass(frozen=True)
class Move:
    """One transfer to post: `amount` from `debit` to `credit`."""

    reference: str
    debit: Ref
    credit: Ref
    amount: int
    kind: str
    payment_id: int | None = None


def natural_delta(kind: str, side: str, amount: int) -> int:
    """How a transfer changes an account's balance in its normal sign: a credit raises a credit-normal
    account, a debit raises a debit-normal one."""
    credit_normal = kind in CREDIT_NORMAL
    raises = (side == "credit") == credit_normal
    return amount if raises else -amount


async def accounts(session: AsyncSession, refs: Iterable[Ref], now: datetime, *,
                   lock: bool = True) -> dict[Ref, AccountRow]:
    """The accounts, created on first use; tracked ones locked FOR UPDATE in id order (PostgreSQL; SQLite's
    write transaction is exclusive already). Derived accounts are never locked.

    Existing accounts (nearly always) cost one statement: tracked ones are read with their lock, derived ones
    without; only missing ones are inserted (ON CONFLICT DO NOTHING: another process may create one meanwhile)
    and read again."""
    wanted = {r: r for r in refs}
    if not wanted:
        return {}
    found = await _read_accounts(session, list(wanted), lock=lock)
    missing = [r for r in wanted if (r.kind.value, r.key) not in found]
    if missing:
        await session.execute(insert_or_skip(session, Account.__table__, ["kind", "key"]), [
            {"kind": r.kind.value, "key": r.key, "user_id": r.user_id, "balance": 0,
             "status": "pending" if r.kind is AccountKind.HOLD else None, "created_at": now}
            for r in missing])
        found.update(await _read_accounts(session, missing, lock=lock))
    return {r: found[(r.kind.value, r.key)] for r in wanted}


async def _read_accounts(session: AsyncSession, refs: list[Ref], *, lock: bool) -> dict[tuple[str, str], AccountRow]:
    tracked = [(r.kind.value, r.key) for r in refs if r.kind not in DERIVED]
    derived = [(r.kind.value, r.key) for r in refs if r.kind in DERIVED]
    locking = lock and dialect_of(session) != "sqlite"
    groups = [(tracked, locking), (derived, False)] if locking else [(tracked + derived, False)]
    found: dict[tuple[str, str], AccountRow] = {}
    for keys, with_lock in groups:
        if not keys:
            continue
        query = (select(Account.id, Account.kind, Account.key, Account.user_id, Account.balance, Account.status)
                 .where(pairs_in(Account.kind, Account.key, keys)).order_by(Account.id))
        if with_lock:
            query = query.with_for_update()  # each read returns what the lock saw: these are rows, not cached objects
        found.update({(row.kind, row.key): AccountRow(*row) for row in (await session.execute(query)).all()})
    return found


async def post(session: AsyncSession, moves: Sequence[Move], now: datetime,
               known: dict[Ref, AccountRow] | None = None, *, expect_new: bool = False) -> list[Move]:
    """Post transfers in the caller's transaction; returns those newly posted (a repeated reference with the same
    accounts and amount is skipped). Raises LedgerConflict, or InsufficientFunds when a tracked account would go
    below zero (checked here for a clear answer; the database's CHECK refuses it anyway).

    `expect_new`: the caller's moves come from state changes guarded by a conditional update (settlement), so
    their references are new: they are inserted at once (ON CONFLICT DO NOTHING … RETURNING) and only a
    reference the database already had is read back and compared — one statement instead of two."""
    moves = [m for m in moves if m.amount > 0]
    if not moves:
        return []
    refs = {m.debit for m in moves} | {m.credit for m in moves}
    found = dict(known or {})
    missing = [r for r in refs if r not in found]
    if missing:
        found.update(await accounts(session, missing, now))
    existing = {} if expect_new else await _posted(session, [m.reference for m in moves])
    fresh: list[Move] = []
    seen: dict[str, Move] = {}
    for move in moves:
        before = existing.get(move.reference)
        if before is not None:
            _same_or_conflict(before, move, found)
            continue
        if move.reference in seen:
            if seen[move.reference] != move:
                raise LedgerConflict(move.reference, "two different transfers in one batch")
            continue
        seen[move.reference] = move
        fresh.append(move)
    if not fresh:
        return []
    deltas = _deltas(fresh, found)
    for account in {a.id: a for a in found.values()}.values():
        change = deltas.get(account.id, 0)
        if change < 0 and account.balance + change < 0:
            raise InsufficientFunds(balance=account.balance, needed=-change)
    # The database moves the tracked balances itself when a transfer is inserted (trigger), and refuses one
    # that would go negative whoever inserts it.
    rows = [{"reference": m.reference, "debit_id": found[m.debit].id, "credit_id": found[m.credit].id,
             "amount": m.amount, "kind": m.kind, "payment_id": m.payment_id, "created_at": now} for m in fresh]
    if expect_new:
        table = Transfer.__table__
        # executemany with RETURNING (SQLAlchemy's insertmanyvalues: a few multi-row statements, compiled once).
        inserted = set((await session.execute(insert_or_skip(session, table, ["reference"])
                                              .returning(table.c.reference), rows)).scalars())
        if len(inserted) < len(fresh):  # posted before: the same transfer, or a conflict
            again = [m for m in fresh if m.reference not in inserted]
            before = await _posted(session, [m.reference for m in again])
            for move in again:
                _same_or_conflict(before[move.reference], move, found)
            fresh = [m for m in fresh if m.reference in inserted]
            deltas = _deltas(fresh, found)
    else:
        await session.execute(Transfer.__table__.insert(), rows)
    for account in {a.id: a for a in found.values()}.values():
        account.balance += deltas.get(account.id, 0)  # as the trigger just wrote it: current for the next post
    return fresh


async def _posted(session: AsyncSession, references: list[str]) -> dict[str, Any]:
    return {row.reference: row for row in (await session.execute(
        select(Transfer.reference, Transfer.debit_id, Transfer.credit_id, Transfer.amount)
        .where(Transfer.reference.in_(references)))).all()}


def _same_or_conflict(before: Any, move: Move, found: dict[Ref, AccountRow]) -> None:
    same = (found[move.debit].id, found[move.credit].id, move.amount)
    if (before.debit_id, before.credit_id, before.amount) != same:
        raise LedgerConflict(move.reference, f"posted before as {before.debit_id}->{before.credit_id} "
                                             f"{before.amount}, now {same[0]}->{same[1]} {same[2]}")


def _deltas(moves: Sequence[Move], found: dict[Ref, AccountRow]) -> dict[int, int]:
    """How the moves change each tracked account's balance (derived accounts keep none)."""
    deltas: dict[int, int] = {}
    for move in moves:
        for ref, side in ((move.debit, "debit"), (move.credit, "credit")):
            if ref.kind in DERIVED:
                continue
            account = found[ref]
            deltas[account.id] = deltas.get(account.id, 0) + natural_delta(ref.kind, side, move.amount)
    return deltas


async def balances(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(wallet, earnings) per user."""
    if not user_ids:
        return {}
    rows = (await session.execute(
        select(Account.user_id, Account.kind, Account.balance)
        .where(Account.user_id.in_(list(user_ids)),
               Account.kind.in_((AccountKind.WALLET.value, AccountKind.EARNINGS.value))))).all()
    result = {u: (0, 0) for u in user_ids}
    for user_id, kind, balance in rows:
        if user_id is None:  # not a person's account (the query asks for people's)
            continue
        wallet_balance, earnings_balance = result[user_id]
        result[user_id] = (balance, earnings_balance) if kind == AccountKind.WALLET else (wallet_balance, balance)
    return result


def derived_balance_sql(account_id_column: ColumnElement[int]) -> ColumnElement[int]:
    """SQL for a derived account's balance in its normal sign (sum of its transfers)."""
    return func.coalesce(func.sum(case((Transfer.credit_id == account_id_column, Transfer.amount),
                                       else_=-Transfer.amount)), 0)
