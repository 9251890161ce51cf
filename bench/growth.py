"""How settlement's cost grows with the ledger: credited callbacks/s and ack p99 with 0, 1 and 10 million
transfers already in the books, on SQLite and PostgreSQL (one server process each). Not part of --quick.

    python bench/growth.py [--db sqlite|postgresql|both] [--sizes 0,1000000,10000000] [--payments 20000]

The history is seeded in bulk before the server starts (SQLite: one executemany per 50,000 rows; PostgreSQL:
COPY), through the real schema — the balance trigger moves the seeded wallets, the unique reference and the four
other indexes of `transfers` are maintained — spread over 100,000 wallets and a year of `created_at`. Then the
same storm as bench/callbacks.py (as fast as 128 connections allow, then ~1,000/s for the ack latency), the bare
endpoint measured in the same run. Prints a table and JSON; the seeding time is reported too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from callbacks import (  # noqa: E402
    PG_BENCH,
    SERVER_KEY,
    bare_ceiling,
    blast,
    notification,
    paced,
    prepare_database,
    verify,
)

from tests.support.processes import ServerProcess  # noqa: E402

WALLETS = 100_000
CHUNK = 50_000


async def seed_history(url: str, transfers: int) -> float:
    """`transfers` historical top-ups, gateway -> one of WALLETS seeded wallets; the seconds it took."""
    if not transfers:
        return 0.0
    from sqlalchemy import insert, select

    from services import ledger
    from storage.db import Database
    from storage.models import Account, Transfer

    started = time.perf_counter()
    db = Database(url)
    now = datetime.now(UTC)
    async with db.write() as session:
        await session.execute(insert(Account), [
            {"kind": "wallet", "key": f"history-{i}", "balance": 0, "created_at": now} for i in range(WALLETS)])
        ids = (await session.scalars(select(Account.id).where(Account.key.like("history-%"))
                                     .order_by(Account.id))).all()
        gateway = (await ledger.accounts(session, [ledger.gateway("midtrans")], now, lock=False))[
            ledger.gateway("midtrans")].id
    year = timedelta(days=365).total_seconds()

    def row(i: int) -> tuple:
        return (f"history:{i}", gateway, ids[i % WALLETS], 10_000 + i % 97 * 1_000, "topup",
                now - timedelta(seconds=year * (1 - i / transfers)))

    if db.is_sqlite:
        for start in range(0, transfers, CHUNK):
            async with db.write() as session:
                await session.execute(insert(Transfer), [
                    dict(zip(("reference", "debit_id", "credit_id", "amount", "kind", "created_at"), row(i),
                             strict=True)) for i in range(start, min(transfers, start + CHUNK))])
    else:
        import asyncpg
        from sqlalchemy.engine import make_url

        u = make_url(url)
        conn = await asyncpg.connect(host=u.host, port=u.port or 5432, user=u.username, database=u.database)
        try:
            for start in range(0, transfers, 500_000):
                await conn.copy_records_to_table(
                    "transfers", columns=["reference", "debit_id", "credit_id", "amount", "kind", "created_at"],
                    records=[row(i) for i in range(start, min(transfers, start + 500_000))])
            await conn.execute("ANALYZE")
        finally:
            await conn.close()
    await db.close()
    return time.perf_counter() - started


async def run(kind: str, size: int, args: argparse.Namespace, workdir: Path) -> dict:
    url = f"sqlite+aiosqlite:///{workdir}/growth-{size}.db" if kind == "sqlite" else PG_BENCH
    orders = await prepare_database(url, args.payments, 500)
    seeded = await seed_history(url, size)
    env = {"BOT_PAYMENTS__GATEWAYS": '["midtrans"]', "BOT_PAYMENTS__MIDTRANS__SERVER_KEY": SERVER_KEY,
           "BOT_RECONCILE__ENABLED": "false", "BOT_SERVER__PLAYGROUND": "false",
           "BOT_SERVER__LEDGER_CHECK_INTERVAL_S": "86400"}
    server = ServerProcess(workdir, url, env)
    try:
        await server.start()
        count = min(len(orders) // 2, int(args.rate * 5))
        throughput = await blast([server.port], [notification(o, a) for o, a in orders[count:]], 128)
        at_rate = await paced([server.port], [notification(o, a) for o, a in orders[:count]], args.rate)
    finally:
        await server.stop()
    check = await verify(url, orders) if size <= 1_000_000 else {"exact": "not checked (books check over 10M rows)"}
    if size and isinstance(check.get("entries"), int):
        check["exact"] = not check["books"] and check["paid"] == len(orders)  # (entries include the history)
    return {"database": kind, "history": size, "seed_s": round(seeded, 1), "credited": throughput,
            "paced": at_rate, "exact": check.get("exact")}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[0, 1_000_000, 10_000_000])
    parser.add_argument("--payments", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=1000)
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    with tempfile.TemporaryDirectory() as tmp:
        ceiling = await bare_ceiling([notification(f"BARE-{i}", 50_000) for i in range(args.payments)], 128,
                                     args.rate, 5)
        results = [await run(kind, size, args, Path(tmp)) for kind in kinds for size in args.sizes]
    print(f"\nbare endpoint: {ceiling['per_second']:.0f} req/s; at {ceiling['paced']['per_second']:.0f}/s "
          f"p99 {ceiling['paced']['p99_ms']} ms")
    print(f"{'database':<12}{'history':>12}{'seed s':>8}{'credited/s':>12}{'% bare':>8}{'p99 ms @1000/s':>16}  exact")
    for r in results:
        print(f"{r['database']:<12}{r['history']:>12,}{r['seed_s']:>8}{r['credited']['per_second']:>12.0f}"
              f"{100 * r['credited']['per_second'] / ceiling['per_second']:>7.0f}%{r['paced']['p99_ms']:>16}"
              f"  {r['exact']}")
    print(json.dumps({"ceiling": ceiling, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
