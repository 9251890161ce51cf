"""Prometheus metrics (prometheus-client), on a registry of their own created by the composition root.

Counters and histograms are updated where things happen (requests, sends, notices). Database figures
(payments by state, outbox by state, the oldest waiting notice) come from a periodic job that stores a snapshot;
the money totals come from the ledger check's pass over every transfer (`server.ledger_check_interval_s`), not
from the frequent snapshot — summing 10 million transfers every 15 s is what a busy ledger cannot afford. A scrape
only formats what the jobs found, so it never queries the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from services import books
from services.stats import Snapshot, Stats
from storage.db import Database

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
WAIT_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("titip_http_requests", "HTTP requests by route and status.",
                                ["method", "route", "status"], registry=self.registry)
        self.request_seconds = Histogram("titip_http_request_duration_seconds", "HTTP request latency by route.",
                                         ["method", "route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.callback_to_notice = Histogram(
            "titip_callback_to_notice_seconds",
            "From the committed credit (the gateway's callback) to the platform accepting its notice.",
            buckets=WAIT_BUCKETS, registry=self.registry)
        self.notices = Counter("titip_notices", "Outbox notices by channel and outcome.", ["channel", "outcome"],
                               registry=self.registry)
        self.pacing_wait = Histogram("titip_delivery_wait_seconds",
                                     "How long a message waited for its turn (pacing) before it was sent.",
                                     ["channel", "priority"], buckets=WAIT_BUCKETS, registry=self.registry)
        self.ledger_violations = Gauge("titip_ledger_violations",
                                       "Ledger invariants violated at the last check (0 = the books hold).",
                                       registry=self.registry)
        self.balance = Gauge("titip_balance_rupiah", "Sum of all wallet balances (at the last ledger check).",
                             registry=self.registry)
        self.ledger = Gauge("titip_ledger_rupiah", "What the wallets' transfers add up to (equals the balances; "
                            "at the last ledger check).", registry=self.registry)
        self.credited = Gauge("titip_credited_rupiah", "Sum of all top-up credits (at the last ledger check).",
                              registry=self.registry)
        self.database = DatabaseFigures()
        self.registry.register(self.database)

    async def check_books(self, db: Database) -> int:
        """The periodic job: the ledger's invariants, published as a gauge (and logged when broken), and the money
        totals the same pass over the transfers found."""
        found = await books.audit(db)
        problems = found.problems
        self.ledger_violations.set(len(problems))
        self.balance.set(found.wallets_balance)
        self.ledger.set(found.wallets_ledger)
        self.credited.set(found.credited)
        if problems:
            log.error("ledger check: %d violation(s): %s", len(problems), "; ".join(problems[:5]))
        return len(problems)

    def observe_wait(self, channel: str, priority: int, seconds: float) -> None:
        self.pacing_wait.labels(channel, {0: "reply", 1: "notice"}.get(priority, "broadcast")).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class DatabaseFigures(Collector):
    """Gauges from the latest snapshot the periodic job took (never from the scrape itself)."""

    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None
        self.up = 0
        self.taken_at = 0.0

    async def refresh(self, stats: Stats) -> None:
        """The periodic job: one snapshot; the database marked down when it cannot be taken."""
        try:
            self.snapshot = await stats.snapshot()
            self.up, self.taken_at = 1, time.time()
        except Exception:
            self.up = 0
            raise

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("titip_database_up", "1 when the last snapshot could read the database.",
                                value=self.up)
        snap = self.snapshot
        if snap is None:
            return
        yield GaugeMetricFamily("titip_snapshot_timestamp_seconds", "When the database figures were read.",
                                value=self.taken_at)
        payments = GaugeMetricFamily("titip_payments", "Payments by gateway and status.", labels=["gateway", "status"])
        for (gateway, status), count in sorted(snap.payments_by_status.items()):
            payments.add_metric([gateway, status], count)
        yield payments
        outbox = GaugeMetricFamily("titip_outbox_messages", "Outbox notices by channel and status.",
                                   labels=["channel", "status"])
        for (channel, status), count in sorted(snap.outbox_by_status.items()):
            outbox.add_metric([channel, status], count)
        yield outbox
        yield GaugeMetricFamily("titip_outbox_oldest_pending_seconds", "Age of the oldest notice still waiting.",
                                value=snap.oldest_pending_s)
        payouts = GaugeMetricFamily("titip_payouts", "Withdrawals by provider and status (watch unknown and "
                                    "waiting_funds: an admin must act).", labels=["provider", "status"])
        for (provider, status), count in sorted((snap.payouts_by_status or {}).items()):
            payouts.add_metric([provider, status], count)
        yield payouts
        yield GaugeMetricFamily("titip_users", "Known users.", value=snap.users)
