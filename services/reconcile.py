"""The reconciler: ask the gateways about payments whose callback may never come.

Candidates: unfinished (created/pending) payments, failed or expired ones still within the grace window
after creation (a late payment is still money received), and paid-but-not-credited ones. Each is claimed
with a lease so that several processes never check the same payment at once; checks run with bounded
concurrency and each payment is isolated from the others' errors and timeouts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update

from services.clock import Clock
from services.errors import GatewayError
from services.settlement import Settlement
from storage.db import Database
from storage.models import Payment

log = logging.getLogger(__name__)


@dataclass
class ReconcileReport:
    checked: int = 0
    changed: int = 0
    errors: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Candidate:
    id: int
    order_id: str
    gateway: str
    gateway_ref: str | None
    status: str
    created_at: datetime


class Reconciler:
    def __init__(
        self,
        db: Database,
        settlement: Settlement,
        clock: Clock,
        *,
        concurrency: int = 8,
        grace_hours: float = 24.0,
        status_timeout_s: float = 15.0,
        lease_s: float = 120.0,
        batch_limit: int = 1000,
    ) -> None:
        self._db = db
        self._settlement = settlement
        self._clock = clock
        self._concurrency = concurrency
        self._grace = timedelta(hours=grace_hours)
        self._timeout = status_timeout_s
        self._lease = timedelta(seconds=lease_s)
        self._limit = batch_limit

    async def run_logged(self) -> ReconcileReport:
        """One round, as the periodic job runs it: what it found goes to the log."""
        report = await self.run_once()
        if report.checked:
            log.info("reconcile: %s", report)
        return report

    async def run_once(self) -> ReconcileReport:
        candidates = await self._claim()
        report = ReconcileReport()
        semaphore = asyncio.Semaphore(self._concurrency)

        async def check(candidate: _Candidate) -> None:
            async with semaphore:
                try:
                    result = await self._check(candidate)
                except Exception as exc:  # one payment's trouble never stops the batch
                    report.errors += 1
                    log.warning("reconcile %s failed: %s", candidate.order_id, exc or type(exc).__name__)
                    result = "error"
                finally:
                    await self._release(candidate.id)
                report.checked += 1
                report.outcomes[result] = report.outcomes.get(result, 0) + 1
                if result not in ("no_change", "not_found", "duplicate", "error", "pending"):
                    report.changed += 1

        await asyncio.gather(*(check(c) for c in candidates))
        return report

    async def _check(self, c: _Candidate) -> str:
        gateway = self._settlement.gateway(c.gateway)
        if gateway is None:
            return "gateway_disabled"
        try:
            notification = await asyncio.wait_for(gateway.fetch_status(c.order_id, c.gateway_ref), self._timeout)
        except TimeoutError:
            raise GatewayError(c.gateway, "status API timed out") from None
        if notification is None:
            # Not attempted yet (Midtrans 404 until a method is chosen). Past the grace window it never will be.
            if c.status in ("created", "pending") and c.created_at < self._clock.now() - self._grace:
                return (await self._settlement.expire_stale(c.id, c.order_id)).result
            return "not_found"
        return (await self._settlement.apply(notification, source="reconcile")).result

    async def _claim(self) -> list[_Candidate]:
        now = self._clock.now()
        async with self._db.write() as session:
            rows = (
                await session.scalars(
                    select(Payment)
                    .where(
                        or_(
                            Payment.status.in_(("created", "pending")),
                            and_(Payment.status.in_(("failed", "expired")), Payment.created_at >= now - self._grace),
                            and_(Payment.status == "paid", Payment.credited_at.is_(None)),
                        ),
                        or_(Payment.lease_until.is_(None), Payment.lease_until < now),
                    )
                    .order_by(Payment.checked_at.is_not(None), Payment.checked_at, Payment.id)
                    .limit(self._limit)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if rows:
                await session.execute(
                    update(Payment)
                    .where(Payment.id.in_([r.id for r in rows]))
                    .values(lease_until=now + self._lease)
                )
            return [_Candidate(r.id, r.order_id, r.gateway, r.gateway_ref, r.status, r.created_at) for r in rows]

    async def _release(self, payment_id: int) -> None:
        try:
            async with self._db.write() as session:
                await session.execute(
                    update(Payment)
                    .where(Payment.id == payment_id)
                    .values(lease_until=None, checked_at=self._clock.now())
                )
        except Exception:  # the lease expires by itself
            log.warning("reconcile: could not release lease on payment %s", payment_id)
