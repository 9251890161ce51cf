"""kill -9 at seeded random moments under a callback storm, orders, a broadcast, escrow payments, releases and
refunds, and payouts through a misbehaving provider: no invariant breaks.
A short run of tests/crash.py; `bench/crash.py` runs hundreds of rounds."""

from __future__ import annotations

import os

from tests.support.crash import CrashHarness, summarize

ROUNDS = int(os.environ.get("TITIP_CRASH_ROUNDS", "3"))


async def test_killing_the_server_anywhere_loses_and_doubles_nothing(tmp_path, fresh_db_url):
    async with CrashHarness(tmp_path, fresh_db_url, seed=20261122) as harness:
        results = [await harness.round(n) for n in range(1, ROUNDS + 1)]
    report = summarize(results)
    assert report["violations"] == 0, report["first_violations"]
    assert report["payments"] == ROUNDS * harness.payments_per_round
    # The escrow paths ran: orders paid from wallets, then released or refunded, through the kills.
    ended = report["escrow_orders"]
    assert ended.get("received", 0) > 0 and ended.get("refunded", 0) > 0, ended
    # Payouts ran through the kills too: sent and completed, or failed and returned.
    assert report["payouts"].get("completed", 0) > 0, report["payouts"]
