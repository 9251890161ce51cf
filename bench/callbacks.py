"""Credited Midtrans callbacks per second and ack latency, against the real server in a separate process.

    python bench/callbacks.py [--db sqlite|postgresql|both] [--pg-processes 1,2] [--payments 20000] [--rate 1000]

For each setup (SQLite with one server process; PostgreSQL with one and with two processes sharing it):
seeds pending payments, starts `python -m bot serve` as subprocess(es), then from this process (1) fires
most payments' signed `settlement` callbacks as fast as `--concurrency` connections allow (credited/s,
p50/p99), spread over the processes, (2) sends the remaining payments' callbacks at a fixed `--rate` for a
few seconds (p50/p99 ack at that rate), and checks that every balance is exact afterwards. Ceilings from
the same run: a bare aiohttp
endpoint (reads the body, answers OK) driven by the same client, and the database's own one-row commit loop.
Also RSS idle and peak per process, and start -> /healthz 200. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.payments.midtrans import signature  # noqa: E402
from tests.support.processes import ServerProcess, current_rss_mb, free_port, peak_rss_mb, wait_healthy  # noqa: E402

SERVER_KEY = "SB-Mid-server-BENCH"
PG_ADMIN = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
PG_BENCH = "postgresql+asyncpg://postgres@127.0.0.1:5432/titip_bench"
BARE_SERVER = """
import sys
from aiohttp import web
async def ok(request):
    await request.read()
    return web.Response(text="OK")
app = web.Application()
app.router.add_post("/payments/midtrans/notify", ok)
app.router.add_get("/healthz", lambda r: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


def notification(order_id: str, amount: int, status: str = "settlement") -> bytes:
    gross = f"{amount}.00"
    code = "200" if status == "settlement" else "201"
    return json.dumps({
        "transaction_time": "2026-11-20 10:24:25", "transaction_status": status,
        "transaction_id": f"tx-{order_id}", "status_code": code, "order_id": order_id,
        "gross_amount": gross, "fraud_status": "accept", "payment_type": "bank_transfer",
        "signature_key": signature(order_id, code, gross, SERVER_KEY), "currency": "IDR",
    }).encode()


async def fresh_pg_database(name: str = "titip_bench") -> str:
    """An empty database `name` on the local PostgreSQL; returns its URL."""
    from sqlalchemy import text

    from storage.db import Database

    admin = Database(PG_ADMIN)
    async with admin.engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.close()
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


async def prepare_database(url: str, payments: int, users: int) -> list[tuple[str, int]]:
    from sqlalchemy import insert, text

    from services import ledger
    from storage.db import Database
    from storage.migrate import upgrade
    from storage.models import Payment, User

    if url.startswith("postgresql"):
        await fresh_pg_database()
    db = Database(url)
    await upgrade(db)
    now = datetime.now(UTC)
    orders = [(f"BENCH-{i:07d}", 10_000 + (i % 97) * 1_000) for i in range(payments)]
    async with db.write() as session:
        await session.execute(insert(User), [
            {"channel": "telegram", "external_id": str(900_000 + u), "language": "id",
             "created_at": now} for u in range(users)
        ])
        ids = (await session.execute(text("SELECT id FROM users ORDER BY id"))).scalars().all()
        # As a top-up request leaves them: each payment names the wallet it settles into.
        wallets = await ledger.accounts(session, [ledger.wallet(u) for u in ids], now, lock=False)
        for start in range(0, payments, 5000):
            await session.execute(insert(Payment), [
                {"order_id": o, "user_id": ids[i % users], "gateway": "midtrans", "amount": a, "status": "pending",
                 "account_id": wallets[ledger.wallet(ids[i % users])].id, "created_at": now, "updated_at": now}
                for i, (o, a) in enumerate(orders[start:start + 5000], start=start)
            ])
    await db.close()
    return orders


async def verify(url: str, orders: list[tuple[str, int]]) -> dict:
    from sqlalchemy import func, select

    from services import books
    from storage.db import Database
    from storage.models import Account, OutboxMessage, Payment, Transfer

    db = Database(url)
    async with db.read() as session:
        result = {
            "balances": int(await session.scalar(select(func.sum(Account.balance))
                                                 .where(Account.kind == "wallet")) or 0),
            "ledger": int(await session.scalar(select(func.coalesce(func.sum(Transfer.amount), 0))
                                               .where(Transfer.kind == "topup"))),
            "entries": int(await session.scalar(select(func.count()).select_from(Transfer))),
            "paid": int(await session.scalar(select(func.count()).where(Payment.status == "paid"))),
            "notices": int(await session.scalar(select(func.count()).select_from(OutboxMessage))),
        }
    result["books"] = await books.check(db)
    await db.close()
    expected = sum(a for _, a in orders)
    result["exact"] = (not result["books"] and result["balances"] == result["ledger"] == expected
                       and result["entries"] == len(orders) and result["paid"] == len(orders)
                       and result["notices"] == len(orders))
    return result


async def blast(ports: list[int], bodies: list[bytes], concurrency: int) -> dict:
    """Every body once, `concurrency` in flight spread over the servers at `ports`: rate and latency."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    queue = iter(bodies)
    connector = aiohttp.TCPConnector(limit=concurrency)
    urls = [f"http://127.0.0.1:{port}/payments/midtrans/notify" for port in ports]
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as client:

        async def worker(url: str) -> None:
            for body in queue:
                t0 = time.perf_counter()
                async with client.post(url, data=body, headers=headers) as response:
                    await response.read()
                    latencies.append(time.perf_counter() - t0)
                    statuses[response.status] = statuses.get(response.status, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker(urls[i % len(urls)]) for i in range(concurrency)))
        elapsed = time.perf_counter() - start
    return summary(latencies, elapsed, statuses)


async def paced(ports: list[int], bodies: list[bytes], rate: float) -> dict:
    """Send at a fixed `rate` per second (open loop), round-robin over `ports`: latency at that load."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    urls = [f"http://127.0.0.1:{port}/payments/midtrans/notify" for port in ports]
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as client:

        async def one(url: str, body: bytes) -> None:
            t0 = time.perf_counter()
            async with client.post(url, data=body, headers=headers) as response:
                await response.read()
                latencies.append(time.perf_counter() - t0)
                statuses[response.status] = statuses.get(response.status, 0) + 1

        tasks = []
        start = time.perf_counter()
        for i, body in enumerate(bodies):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(urls[i % len(urls)], body)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return summary(latencies, elapsed, statuses)


def summary(latencies: list[float], elapsed: float, statuses: dict[int, int]) -> dict:
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000  # noqa: E731
    return {
        "requests": len(latencies), "seconds": round(elapsed, 3), "per_second": round(len(latencies) / elapsed, 1),
        "p50_ms": round(pick(0.50), 2), "p99_ms": round(pick(0.99), 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else 0, "statuses": statuses,
    }


async def bare_ceiling(bodies: list[bytes], concurrency: int, rate: float, paced_seconds: float) -> dict:
    """The bare endpoint at full load, and its ack latency at the same fixed rate as the real server."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)])
    try:
        await wait_healthy(port, process)
        found = await blast([port], bodies, concurrency)
        found["paced"] = await paced([port], bodies[: int(rate * paced_seconds)], rate)
        return found
    finally:
        process.terminate()
        process.wait(timeout=10)


async def commit_ceiling(url: str, commits: int = 2000) -> dict:
    """The database's own ceiling: one-row INSERT transactions committed one after another, same settings
    (SQLite WAL + synchronous=FULL), no HTTP. Batching is how credits/s can exceed it."""
    from sqlalchemy import text

    from storage.db import Database

    db = Database(url)
    try:
        async with db.write() as session:
            await session.execute(text("CREATE TABLE IF NOT EXISTS bench_commits (v INTEGER NOT NULL)"))
        start = time.perf_counter()
        for i in range(commits):
            async with db.write() as session:
                await session.execute(text("INSERT INTO bench_commits (v) VALUES (:v)"), {"v": i})
        elapsed = time.perf_counter() - start
        async with db.write() as session:
            await session.execute(text("DROP TABLE bench_commits"))
    finally:
        await db.close()
    return {"commits": commits, "per_second": round(commits / elapsed, 1)}


async def run_database(kind: str, processes: int, args: argparse.Namespace, workdir: Path) -> dict:
    url = f"sqlite+aiosqlite:///{workdir}/bench-{processes}.db" if kind == "sqlite" else PG_BENCH
    orders = await prepare_database(url, args.payments, args.users)
    ceiling = await commit_ceiling(url)
    # No chat channel, as before the playground existed: its outbox claims (every notice is queued for a
    # Telegram user the playground cannot reach) would be measured instead of the payment path.
    env = {"BOT_PAYMENTS__GATEWAYS": '["midtrans"]', "BOT_PAYMENTS__MIDTRANS__SERVER_KEY": SERVER_KEY,
           "BOT_RECONCILE__ENABLED": "false", "BOT_SERVER__PLAYGROUND": "false"}
    servers = [ServerProcess(workdir, url, env) for _ in range(processes)]
    try:
        startups = [await server.start() for server in servers]
        await asyncio.sleep(0.5)
        idle_rss = max(current_rss_mb(server.pid) for server in servers)
        ports = [server.port for server in servers]
        # Most payments as fast as they go (credited/s; this also warms the server up), then the rest, fresh
        # payments too, at a fixed rate: the ack latency a gateway sees at that load.
        count = min(len(orders) // 2, int(args.rate * args.paced_seconds))
        throughput = await blast(ports, [notification(o, a) for o, a in orders[count:]], args.concurrency)
        at_rate = await paced(ports, [notification(o, a) for o, a in orders[:count]], args.rate)
        peak_rss = max(peak_rss_mb(server.pid) for server in servers)
    finally:
        for server in servers:
            await server.stop()
    check = await verify(url, orders)
    return {"database": kind, "processes": processes, "startup_s": round(max(startups), 2),
            "credited": throughput, "paced": at_rate, "idle_rss_mb": round(idle_rss, 1),
            "peak_rss_mb": round(peak_rss, 1), "commit_ceiling": ceiling, "verify": check}


async def measure(args: argparse.Namespace) -> dict:
    """Every configuration asked for, with the HTTP ceiling measured in the same run."""
    setups = ([("sqlite", 1)] if args.db in ("sqlite", "both") else []) + \
        ([("postgresql", n) for n in args.pg_processes] if args.db in ("postgresql", "both") else [])
    with tempfile.TemporaryDirectory() as tmp:
        ceiling_bodies = [notification(f"BARE-{i}", 50_000) for i in range(args.payments)]
        ceiling = await bare_ceiling(ceiling_bodies, args.concurrency, args.rate, args.paced_seconds)
        results = [await run_database(kind, n, args, Path(tmp)) for kind, n in setups]
    return {"ceiling": ceiling, "results": results}


def print_table(report: dict) -> None:
    ceiling = report["ceiling"]
    print(f"\nceiling (bare aiohttp endpoint, same client): {ceiling['per_second']:.0f} req/s, "
          f"p50 {ceiling['p50_ms']} ms, p99 {ceiling['p99_ms']} ms; at {ceiling['paced']['per_second']:.0f}/s: "
          f"p50 {ceiling['paced']['p50_ms']} ms, p99 {ceiling['paced']['p99_ms']} ms")
    print(f"{'setup':<15}{'credited/s':>11}{'% http':>8}{'commits/s':>10}{'p50 ms':>8}{'p99 ms':>8}"
          f"{'@rate/s':>9}{'p50 ms':>8}{'p99 ms':>8}{'RSS idle':>9}{'RSS peak':>9}{'start s':>8}  exact")
    for r in report["results"]:
        c, p = r["credited"], r["paced"]
        name = f"{r['database']} x{r['processes']}"
        print(f"{name:<15}{c['per_second']:>11.0f}{100 * c['per_second'] / ceiling['per_second']:>7.0f}%"
              f"{r['commit_ceiling']['per_second']:>10.0f}{c['p50_ms']:>8}{c['p99_ms']:>8}{p['per_second']:>9.0f}"
              f"{p['p50_ms']:>8}{p['p99_ms']:>8}{r['idle_rss_mb']:>9}{r['peak_rss_mb']:>9}{r['startup_s']:>8}"
              f"  {r['verify']['exact']}")


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    found.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    found.add_argument("--pg-processes", type=lambda v: [int(x) for x in v.split(",")], default=[1, 2],
                       help="server processes sharing PostgreSQL, e.g. 1,2 (default)")
    found.add_argument("--payments", type=int, default=20_000)
    found.add_argument("--users", type=int, default=500)
    found.add_argument("--concurrency", type=int, default=128)
    found.add_argument("--rate", type=float, default=1000)
    found.add_argument("--paced-seconds", type=float, default=5)
    return found


def passed(report: dict) -> bool:
    return all(r["verify"]["exact"] and set(r["credited"]["statuses"]) == {200}
               and set(r["paced"]["statuses"]) == {200} for r in report["results"])


async def main() -> int:
    report = await measure(parser().parse_args())
    print_table(report)
    print(json.dumps(report, indent=2))
    return 0 if passed(report) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
