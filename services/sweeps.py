"""The jastip sweep, a periodic job: trips past their deadline close, unpaid orders past their expiry give
their stock back, broadcast deliveries that reached a final state are settled; their notices go out at once."""

from __future__ import annotations

import logging

from services.broadcasts import Broadcasts
from services.orders import Orders
from services.signals import Signal
from services.trips import Trips

log = logging.getLogger(__name__)


class JastipSweep:
    def __init__(self, trips: Trips, orders: Orders, broadcasts: Broadcasts, notices_queued: Signal) -> None:
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
        if closed or expired or settled or stale:
            log.info("jastip sweep: %d trips closed, %d orders expired", closed, expired)
            self._notices_queued.fire()
        return closed, expired
