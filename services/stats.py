"""Operational figures for /healthz, /metrics and admins, read from the database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text

from services.clock import Clock
from services.errors import StorageUnavailable
from services.kinds import AccountKind
from storage.db import Database
from storage.models import Account, OutboxMessage, Payment, Payout, Transfer, User


@dataclass(frozen=True)
class Snapshot:
    payments_by_status: dict[tuple[str, str], int]  # (gateway, status) -> count
    outbox_by_status: dict[tuple[str, str], int]  # (channel, status) -> count
    users: int
    balance_total: int
    ledger_total: int
    credited_total: int
    oldest_pending_s: float = 0.0  # how long the oldest notice still waiting has waited
    payouts_by_status: dict[tuple[str, str], int] | None = None  # (provider, status) -> count


class Stats:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def ping(self) -> None:
        """Raise StorageUnavailable unless the database answers a trivial query."""
        try:
            async with self._db.read() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:
            raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc

    async def snapshot(self) -> Snapshot:
        try:
            async with self._db.read() as session:
                payments = await session.execute(
                    select(Payment.gateway, Payment.status, func.count()).group_by(Payment.gateway, Payment.status)
                )
                outbox = await session.execute(
                    select(OutboxMessage.channel, OutboxMessage.status, func.count()).group_by(
                        OutboxMessage.channel, OutboxMessage.status
                    )
                )
                users = await session.scalar(select(func.count()).select_from(User))
                wallets = select(Account.id).where(Account.kind == AccountKind.WALLET.value).scalar_subquery()
                balance = await session.scalar(select(func.coalesce(func.sum(Account.balance), 0)).where(
                    Account.kind == AccountKind.WALLET.value))
                into = await session.scalar(select(func.coalesce(func.sum(Transfer.amount), 0)).where(
                    Transfer.credit_id.in_(wallets)))
                out = await session.scalar(select(func.coalesce(func.sum(Transfer.amount), 0)).where(
                    Transfer.debit_id.in_(wallets)))
                ledger = int(into or 0) - int(out or 0)
                credited = await session.scalar(
                    select(func.coalesce(func.sum(Transfer.amount), 0)).where(Transfer.kind == "topup")
                )
                oldest = await session.scalar(select(func.min(OutboxMessage.created_at)).where(
                    OutboxMessage.status == "pending"))
                payouts = await session.execute(
                    select(Payout.provider, Payout.status, func.count()).group_by(Payout.provider, Payout.status))
                return Snapshot(
                    payments_by_status={(g, s): n for g, s, n in payments},
                    outbox_by_status={(c, s): n for c, s, n in outbox},
                    users=int(users or 0),
                    balance_total=int(balance or 0),
                    ledger_total=int(ledger or 0),
                    credited_total=int(credited or 0),
                    oldest_pending_s=max(0.0, (self._clock.now() - oldest).total_seconds()) if oldest else 0.0,
                    payouts_by_status={(p, s): n for p, s, n in payouts},
                )
        except Exception as exc:
            raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc
