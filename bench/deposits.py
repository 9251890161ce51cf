"""The deposit API under load, against the real server in a separate process.

    python bench/deposits.py [--db sqlite|postgresql] [--creates 5000] [--forwards 10000] [--concurrency 64]

creates/s  POST /api/v1/deposits through the sandbox gateway adapter (each a new deposit: its row and its
           payment committed, the gateway asked, the link committed), `--concurrency` connections; next to a
           bare aiohttp endpoint answering the same route with a canned 201, driven by the same client.
forwards/s `--forwards` paid deposits whose events are queued (as settlement queues them) before the server
           starts; the rate at which a receiver in its own process gets them, each verified with the
           `standardwebhooks` library and counted once per webhook-id; next to that same receiver driven
           directly from here with signed requests (its own ceiling).
Then: every deposit forwarded exactly once per id, the books hold. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from callbacks import fresh_pg_database, summary  # noqa: E402

from tests.support.processes import ServerProcess, free_port, wait_healthy  # noqa: E402

API_SECRET = "bench-api-secret-0123456789abcdef"
BARE_API = """
import sys
from aiohttp import web
async def made(request):
    await request.read()
    return web.json_response({"deposit_id": "d", "status": "pending", "amount": 25000,
                              "payment_url": "http://127.0.0.1/pay/sandbox/x", "expires_at": None}, status=201)
app = web.Application()
app.router.add_post("/api/v1/deposits", made)
app.router.add_get("/healthz", lambda r: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""
RECEIVER = """
import sys
from aiohttp import web
from standardwebhooks import Webhook
hook = Webhook(sys.argv[2])
seen, deliveries = set(), [0]
async def receive(request):
    body = await request.read()
    hook.verify(body, dict(request.headers))
    seen.add(request.headers["webhook-id"])
    deliveries[0] += 1
    return web.Response(status=204)
async def count(request):
    return web.json_response({"unique": len(seen), "deliveries": deliveries[0]})
app = web.Application()
app.router.add_post("/hook", receive)
app.router.add_get("/count", count)
app.router.add_get("/healthz", lambda r: web.Response(text="ok"))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""


async def blast(url: str, bodies: list[bytes], headers: list[dict[str, str]], concurrency: int) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    work = iter(zip(bodies, headers, strict=True))
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as client:

        async def worker() -> None:
            for body, head in work:
                t0 = time.perf_counter()
                async with client.post(url, data=body, headers=head) as response:
                    await response.read()
                latencies.append(time.perf_counter() - t0)
                statuses[response.status] = statuses.get(response.status, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return summary(latencies, elapsed, statuses)


def create_bodies(count: int, prefix: str) -> list[bytes]:
    return [json.dumps({"deposit_id": f"{prefix}{i}", "user_ref": f"u{i % 500}", "amount": 25_000}).encode()
            for i in range(count)]


async def setup_client(url: str, callback_url: str):
    from services.clients import Clients
    from services.clock import SystemClock
    from services.sealing import Sealer
    from storage.db import Database
    from storage.migrate import upgrade

    db = Database(url)
    await upgrade(db)
    credentials = await Clients(db, SystemClock(), Sealer(API_SECRET)).add("benchbot", callback_url)
    await db.close()
    return credentials


async def queue_paid_deposits(url: str, count: int) -> None:
    """`count` deposits paid and settled as settlement leaves them (payment, transfer, queued event), in bulk."""
    from sqlalchemy import insert, select

    from services import forwarding, ledger
    from services.kinds import DepositFormat, PaymentStatus
    from storage.db import Database
    from storage.models import Client, Deposit, OutboxMessage, Payment

    db = Database(url)
    now = datetime.now(UTC)
    async with db.write() as session:
        client_id = await session.scalar(select(Client.id))
        accounts = await ledger.accounts(session, [ledger.client(client_id), ledger.gateway("sandbox")], now)
        account_id = accounts[ledger.client(client_id)].id
        for start in range(0, count, 2000):
            chunk = range(start, min(count, start + 2000))
            await session.execute(insert(Deposit), [
                {"client_id": client_id, "deposit_id": f"F{i}", "user_ref": f"u{i}", "amount": 25_000,
                 "customer": {}, "format": "api", "created_at": now} for i in chunk])
            rows = dict((await session.execute(select(Deposit.deposit_id, Deposit.id).where(
                Deposit.deposit_id.in_([f"F{i}" for i in chunk])))).all())
            await session.execute(insert(Payment), [
                {"order_id": f"BENCHDEP-{i:07d}", "deposit_id": rows[f"F{i}"], "gateway": "sandbox", "amount": 25_000,
                 "status": "paid", "purpose": "deposit", "account_id": account_id, "paid_amount": 25_000,
                 "created_at": now, "updated_at": now, "paid_at": now, "credited_at": now} for i in chunk])
            ids = dict((await session.execute(select(Payment.order_id, Payment.id).where(
                Payment.order_id.in_([f"BENCHDEP-{i:07d}" for i in chunk])))).all())
            await ledger.post(session, [ledger.Move(f"deposit:{ids[f'BENCHDEP-{i:07d}']}", ledger.gateway("sandbox"),
                                                    ledger.client(client_id), 25_000, "deposit",
                                                    ids[f"BENCHDEP-{i:07d}"]) for i in chunk], now, known=accounts)
            await session.execute(insert(OutboxMessage), [forwarding.event_row(
                forwarding.DepositFacts(rows[f"F{i}"], client_id, f"F{i}", f"u{i}", 25_000, DepositFormat.API,
                                        "benchbot"), "deposit.paid", status=PaymentStatus.PAID,
                reference=f"BENCHDEP-{i:07d}", gateway_reference=None, paid_at=now, gateway="sandbox", now=now)
                for i in chunk])
    await db.close()


async def receiver_count(port: int) -> dict:
    async with aiohttp.ClientSession() as client, client.get(f"http://127.0.0.1:{port}/count") as r:
        return await r.json()


async def measure(args: argparse.Namespace) -> dict:
    from services.forwarding import standard_headers

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url = f"sqlite+aiosqlite:///{tmp}/deposits.db" if args.db == "sqlite" else await fresh_pg_database()
        receiver_port = free_port()
        credentials = await setup_client(url, f"http://127.0.0.1:{receiver_port}/hook")
        auth = {"Authorization": f"Bearer {credentials.api_key}", "Content-Type": "application/json"}

        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_API, str(bare_port)])
        try:
            await wait_healthy(bare_port, bare)
            bodies = create_bodies(args.creates, "B")
            bare_creates = await blast(f"http://127.0.0.1:{bare_port}/api/v1/deposits", bodies,
                                       [auth] * len(bodies), args.concurrency)
        finally:
            bare.terminate()
            bare.wait(timeout=10)

        env = {"BOT_API__ENABLED": "true", "BOT_API__SECRET_KEY": API_SECRET, "BOT_API__RATE_PER_MINUTE": "100000000",
               "BOT_RECONCILE__ENABLED": "false", "BOT_PAYMENTS__GATEWAYS": '["sandbox"]',
               "BOT_JASTIP__MEDIA_DIR": str(workdir / "media")}
        receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(receiver_port), credentials.webhook_secret])
        server = ServerProcess(workdir, url, env)
        try:
            await wait_healthy(receiver_port, receiver)
            await server.start()
            warm = create_bodies(min(500, args.creates), "W")
            await blast(f"{server.url}/api/v1/deposits", warm, [auth] * len(warm), args.concurrency)
            bodies = create_bodies(args.creates, "C")
            creates = await blast(f"{server.url}/api/v1/deposits", bodies, [auth] * len(bodies), args.concurrency)
            await server.stop()

            # The receiver's own ceiling: signed requests straight from here, the same concurrency.
            stamp = int(time.time())
            events = [json.dumps({"type": "deposit.paid", "data": {"deposit_id": f"X{i}", "amount": 25_000}})
                      for i in range(args.forwards)]
            heads = [standard_headers([credentials.webhook_secret], f"bare_{i}", stamp, body)
                     for i, body in enumerate(events)]
            bare_forwards = await blast(f"http://127.0.0.1:{receiver_port}/hook", [e.encode() for e in events], heads,
                                        args.concurrency)
            before = await receiver_count(receiver_port)

            await queue_paid_deposits(url, args.forwards)
            await server.start()
            start = time.perf_counter()
            while True:
                got = await receiver_count(receiver_port)
                if got["unique"] - before["unique"] >= args.forwards or time.perf_counter() - start > 300:
                    break
                await asyncio.sleep(0.05)
            forward_seconds = time.perf_counter() - start
            await asyncio.sleep(1.0)
            after = await receiver_count(receiver_port)
        finally:
            await server.stop()
            receiver.terminate()
            receiver.wait(timeout=10)
        from services import books
        from storage.db import Database

        db = Database(url)
        problems = await books.check(db)
        await db.close()
    delivered = after["unique"] - before["unique"]
    return {
        "database": args.db,
        "creates": creates, "bare_creates": bare_creates,
        "forwards": {"events": args.forwards, "delivered_unique": delivered,
                     "deliveries": after["deliveries"] - before["deliveries"], "seconds": round(forward_seconds, 3),
                     "per_second": round(delivered / forward_seconds, 1)},
        "bare_forwards": bare_forwards, "books": problems,
        "exact": not problems and delivered == args.forwards and set(creates["statuses"]) == {201},
    }


def print_table(report: dict) -> None:
    c, bc, f, bf = report["creates"], report["bare_creates"], report["forwards"], report["bare_forwards"]
    print(f"\n{'measure (' + report['database'] + ')':<34}{'per s':>9}{'bare per s':>12}{'ratio':>8}{'p50 ms':>8}"
          f"{'p99 ms':>8}  target")
    print(f"{'deposits created (sandbox)':<34}{c['per_second']:>9.0f}{bc['per_second']:>12.0f}"
          f"{c['per_second'] / bc['per_second']:>8.0%}{c['p50_ms']:>8}{c['p99_ms']:>8}  ≥ 500/s: "
          f"{'yes' if c['per_second'] >= 500 else 'NO'}")
    print(f"{'events forwarded (verified)':<34}{f['per_second']:>9.0f}{bf['per_second']:>12.0f}"
          f"{f['per_second'] / bf['per_second']:>8.0%}{'-':>8}{'-':>8}  ≥ 1,000/s: "
          f"{'yes' if f['per_second'] >= 1000 else 'NO'}")
    print(f"forwarded {f['delivered_unique']} of {f['events']} (deliveries {f['deliveries']}); books: "
          f"{report['books'] or 'ok'}; exact: {report['exact']}")


def parser() -> argparse.ArgumentParser:
    found = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    found.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    found.add_argument("--creates", type=int, default=5000)
    found.add_argument("--forwards", type=int, default=10_000)
    found.add_argument("--concurrency", type=int, default=64)
    return found


async def main() -> int:
    report = await measure(parser().parse_args())
    print_table(report)
    print(json.dumps(report, indent=2))
    return 0 if report["exact"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
