"""Operational figures for /healthz, /metrics and admins, read from the database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text

from services.clock import Clock
from services.errors import StorageUnavailable
from storage.db import Database
from storage.models import OutboxMessage, Payment, Payout, User


@dataclass(frozen=True)
class Snapshot:
    payments_by_status: dict[tuple[str, str], int]  # (gateway, status) -> count
    outbox_by_status: dict[tuple[str, str], int]  # (channel, status) -> count
    users: int
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
                oldest = await session.scalar(select(func.min(OutboxMessage.created_at)).where(
                    OutboxMessage.status == "pending"))
                payouts = await session.execute(
                    select(Payout.provider, Payout.status, func.count()).group_by(Payout.provider, Payout.status))
                return Snapshot(
                    payments_by_status={(g, s): n for g, s, n in payments},
                    outbox_by_status={(c, s): n for c, s, n in outbox},
                    users=int(users or 0),
                    oldest_pending_s=max(0.0, (self._clock.now() - oldest).total_seconds()) if oldest else 0.0,
                    payouts_by_status={(p, s): n for p, s, n in payouts},
                )
        except Exception as exc:
            raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc
