"""The jastip sweep, a periodic job: trips past their deadline close, unpaid orders past their expiry give
their stock back, broadcast deliveries that reached a final state are settled, shipped otomatis orders whose
release time came are released to the jastiper (their buyers reminded two days before), payment proofs past
their retention are deleted; the notices go out at once."""

from __future__ import annotations

import logging

from services.broadcasts import Broadcasts
from services.escrow import Escrow
from services.orders import Orders
from services.signals import Signal
from services.trips import Trips

log = logging.getLogger(__name__)


class JastipSweep:
    def __init__(self, trips: Trips, orders: Orders, broadcasts: Broadcasts, notices_queued: Signal, *,
                 escrow: Escrow | None = None, proof_retention_days: float = 180.0) -> None:
        self._escrow = escrow
        self._proof_days = proof_retention_days
        self._trips = trips
        self._orders = orders
        self._broadcasts = broadcasts
        self._notices_queued = notices_queued

    async def run(self) -> tuple[int, int]:
        """(trips closed, orders expired)."""
        closed = await self._trips.close_due()
        expired = await self._orders.expire_due()
        settled = await self._broadcasts.settle()
        stale = await self._broadcasts.expire_stale()
        released = await self._escrow.release_due() if self._escrow is not None else 0
        reminded = await self._escrow.remind_due() if self._escrow is not None else 0
        overdue = await self._escrow.ship_overdue() if self._escrow is not None else (0, 0)
        finals = await self._escrow.final_payments_due() if self._escrow is not None else (0, 0)
        purged = await self._orders.purge_proofs(self._proof_days)
        if purged:
            log.info("jastip sweep: %d payment proofs past their retention deleted", purged)
        if closed or expired or settled or stale or released or reminded or any(overdue) or any(finals):
            log.info("jastip sweep: %d trips closed, %d orders expired, %d escrows released", closed, expired,
                     released)
            self._notices_queued.fire()
        return closed, expired
