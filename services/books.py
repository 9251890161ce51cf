"""Reading the books: the ledger's invariants (`python -m bot ledger check`, the crash harness after every round,
a periodic job for /metrics), the transfers as CSV (`ledger export`) and the per-gateway day report to compare
with a gateway's settlement report (`ledger gateways --day`)."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import case, func, select
from sqlalchemy.orm import aliased

from services.kinds import CREDIT_NORMAL, DERIVED, AccountKind, HoldStatus, PaymentStatus
from storage.db import Database
from storage.models import Account, Payment, Transfer

WIB = timezone(timedelta(hours=7))
SETTLING = ("topup", "deposit", "held-credit")  # transfers that put a paid payment's money where it belongs


@dataclass(frozen=True, slots=True)
class Audit:
    """What one pass over the whole ledger found: the violated invariants and the money totals /metrics shows
    (read here, where every transfer is summed anyway, rather than by a second scan on every metrics refresh)."""

    problems: list[str]
    wallets_balance: int  # Σ the wallets' stored balances
    wallets_ledger: int  # what the wallets' transfers add up to (equals the balances)
    credited: int  # Σ top-up credits


async def check(db: Database) -> list[str]:
    """Every violated invariant, one line each; [] when the books hold."""
    return (await audit(db)).problems


async def audit(db: Database) -> Audit:
    problems: list[str] = []
    wallets_balance = wallets_ledger = 0
    async with db.read() as session:
        debits = dict((await session.execute(
            select(Transfer.debit_id, func.sum(Transfer.amount)).group_by(Transfer.debit_id))).all())
        credits = dict((await session.execute(
            select(Transfer.credit_id, func.sum(Transfer.amount)).group_by(Transfer.credit_id))).all())
        total_debits, total_credits = sum(map(int, debits.values())), sum(map(int, credits.values()))
        if total_debits != total_credits:
            problems.append(f"Σ debits {total_debits} ≠ Σ credits {total_credits}")
        for account in (await session.scalars(select(Account).order_by(Account.id))).all():
            kind = AccountKind(account.kind)
            moved_in, moved_out = int(credits.get(account.id, 0)), int(debits.get(account.id, 0))
            natural = moved_in - moved_out if kind in CREDIT_NORMAL else moved_out - moved_in
            name = f"{kind.value}:{account.key or '-'} (#{account.id})"
            if kind is AccountKind.WALLET:
                wallets_balance += account.balance
                wallets_ledger += natural
            if kind not in DERIVED and account.balance != natural:
                problems.append(f"{name}: stored balance {account.balance} ≠ its transfers {natural}")
            if kind in CREDIT_NORMAL and natural < 0:
                problems.append(f"{name}: credit-normal account is negative ({natural})")
            # (A provider's account goes below zero by design: hold -> provider, as gateway -> wallet takes the
            # gateway's above it.)
            if kind is AccountKind.RECEIVABLE and natural < 0:
                problems.append(f"{name}: negative ({natural})")
            if kind is AccountKind.HOLD and account.status not in (None, HoldStatus.PENDING.value) and natural:
                problems.append(f"{name}: resolved ({account.status}) but holds {natural}")
            if kind is AccountKind.ESCROW and account.status == "closed" and natural:
                problems.append(f"{name}: closed but holds {natural}")
        settled: dict[int, int] = {}
        credited = 0
        for payment_id, times, topups in (await session.execute(
                select(Transfer.payment_id, func.count(),
                       func.sum(case((Transfer.kind == "topup", Transfer.amount), else_=0)))
                .where(Transfer.kind.in_(SETTLING)).group_by(Transfer.payment_id))).all():
            settled[payment_id] = times
            credited += int(topups or 0)
        held = dict((await session.execute(
            select(Transfer.payment_id, func.count()).where(Transfer.kind == "held")
            .group_by(Transfer.payment_id))).all())
        for payment_id, order_id, status, credited_at in (await session.execute(
                select(Payment.id, Payment.order_id, Payment.status, Payment.credited_at))).all():
            times = int(settled.get(payment_id, 0))
            if credited_at is not None and times != 1:
                problems.append(f"payment {order_id} ({status}): credited, settled {times} times")
            if credited_at is None and times:
                problems.append(f"payment {order_id} ({status}): not credited, yet settled {times} times")
            if status in (PaymentStatus.HELD.value, PaymentStatus.REFUSED.value) and int(held.get(payment_id, 0)) != 1:
                problems.append(f"payment {order_id}: held, its money in suspense {held.get(payment_id, 0)} times")
    return Audit(problems, wallets_balance, wallets_ledger, credited)


async def money_by_kind(db: Database, since: datetime | None = None) -> dict[AccountKind, int]:
    """Every account kind's total in its normal sign: its balance now, or (with `since`) how much it moved since."""
    debit, credit = aliased(Account), aliased(Account)
    totals: dict[AccountKind, int] = dict.fromkeys(AccountKind, 0)
    async with db.read() as session:
        for side, alias, column in (("credit", credit, Transfer.credit_id), ("debit", debit, Transfer.debit_id)):
            query = select(alias.kind, func.sum(Transfer.amount)).join(alias, alias.id == column).group_by(alias.kind)
            if since is not None:
                query = query.where(Transfer.created_at >= since)
            for kind, amount in (await session.execute(query)).all():
                account_kind = AccountKind(kind)
                raises = (side == "credit") == (account_kind in CREDIT_NORMAL)
                totals[account_kind] += int(amount) if raises else -int(amount)
    return totals


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0, 0), tzinfo=WIB)
    return start, start + timedelta(days=1)


async def export(db: Database, since: datetime | None = None) -> str:
    """Transfers as CSV: id, time (UTC), reference, kind, debit account, credit account, amount, payment."""
    debit, credit = aliased(Account), aliased(Account)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["id", "created_at", "reference", "kind", "debit", "credit", "amount", "payment"])
    async with db.read() as session:
        query = (select(Transfer, debit.kind, debit.key, credit.kind, credit.key, Payment.order_id)
                 .join(debit, debit.id == Transfer.debit_id).join(credit, credit.id == Transfer.credit_id)
                 .outerjoin(Payment, Payment.id == Transfer.payment_id).order_by(Transfer.id))
        if since is not None:
            query = query.where(Transfer.created_at >= since)
        for transfer, dkind, dkey, ckind, ckey, order_id in (await session.execute(query)).all():
            writer.writerow([transfer.id, transfer.created_at.isoformat(), transfer.reference, transfer.kind,
                             f"{dkind}:{dkey}", f"{ckind}:{ckey}", transfer.amount, order_id or ""])
    return out.getvalue()


async def gateways(db: Database, day: date, *, by_reference: bool = False) -> str:
    """One WIB day's money per (gateway, payment method) — or per gateway reference — as CSV with the columns
    gateway, method, count, gross, refunds, fees, net, suspense."""
    start, end = _day_bounds(day)
    account = aliased(Account)
    rows: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(
        ("count", "gross", "refunds", "fees", "suspense"), 0))
    async with db.read() as session:
        found = (await session.execute(
            select(Transfer.kind, Transfer.amount, Transfer.debit_id, Transfer.credit_id, account.id, account.key,
                   Payment.method, Payment.gateway_ref, Payment.order_id)
            .join(account, (account.id == Transfer.debit_id) | (account.id == Transfer.credit_id))
            .outerjoin(Payment, Payment.id == Transfer.payment_id)
            .where(account.kind == AccountKind.GATEWAY.value, Transfer.created_at >= start, Transfer.created_at < end)
        )).all()
    for kind, amount, debit_id, _credit_id, gateway_id, name, method, ref, order_id in found:
        key = (name, (ref or order_id or "-") if by_reference else (method or "-"))
        row = rows[key]
        if debit_id == gateway_id:  # money the gateway owes us: it arrived
            row["gross"] += amount
            row["count"] += 1
            if kind == "held":
                row["suspense"] += amount
        elif kind == "fee":
            row["fees"] += amount
        else:  # money back to the gateway: reversals and refunds
            row["refunds"] += amount
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["gateway", "reference" if by_reference else "method", "count", "gross", "refunds", "fees",
                     "net", "suspense"])
    for (name, what), row in sorted(rows.items()):
        net = row["gross"] - row["refunds"] - row["fees"]
        writer.writerow([name, what, row["count"], row["gross"], row["refunds"], row["fees"], net, row["suspense"]])
    return out.getvalue()
