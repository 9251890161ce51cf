"""Inbound updates per second, end to end, for Telegram and WhatsApp.

    python bench/inbound.py [--updates 5000] [--users 1000] [--concurrency 64] [--db sqlite|postgresql]

Starts the fake platforms (tests/support/platforms_process.py) and `python -m bot serve` as subprocesses, then posts
signed WhatsApp webhook bodies and Telegram updates carrying `SALDO` (registers the update in the database,
reads the balance, replies) and measures from the first post until the fake platform has received every
reply. The platforms' rate limits are lifted for this measurement (with them, replies are capped at 30/s on
Telegram and 80/s per WhatsApp number by design). The ceiling is a bare aiohttp endpoint driven by the same
client in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = ROOT / "tests" / "support" / "platforms_process.py"  # the fake platforms, a process of their own
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from callbacks import BARE_SERVER, fresh_pg_database  # noqa: E402

from tests.support.processes import free_port, wait_healthy  # noqa: E402

TG_TOKEN, TG_SECRET = "1:bench-token", "bench-secret"
WA_PHONE, WA_SECRET, WA_VERIFY, WA_TOKEN = "1098765", "bench-app-secret", "bench-verify", "bench-wa-token"


def wa_body(i: int, user: int) -> tuple[bytes, dict[str, str]]:
    wa_id = f"62811{user:07d}"
    payload = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
        "value": {"messaging_product": "whatsapp", "metadata": {"display_phone_number": "62811", "phone_number_id":
                  WA_PHONE}, "contacts": [{"profile": {"name": "Bench"}, "wa_id": wa_id, "user_id": f"ID.{wa_id}"}],
                  "messages": [{"from": wa_id, "id": f"wamid.bench{i:09d}", "timestamp": "1763600000",
                                "type": "text", "text": {"body": "SALDO"}}]}}]}]}
    raw = json.dumps(payload, ensure_ascii=True).encode()
    sig = "sha256=" + hmac.new(WA_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-Hub-Signature-256": sig, "Content-Type": "application/json"}


def tg_body(i: int, user: int) -> tuple[bytes, dict[str, str]]:
    uid = 7_000_000 + user
    raw = json.dumps({"update_id": 10_000_000 + i, "message": {
        "message_id": i, "date": 1763600000, "chat": {"id": uid, "type": "private"},
        "from": {"id": uid, "is_bot": False, "first_name": "Bench"}, "text": "/saldo",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}]}}).encode()
    return raw, {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": "application/json"}


async def post_all(url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int) -> dict[int, int]:
    statuses: dict[int, int] = {}
    queue = iter(requests)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as client:

        async def worker() -> None:
            for body, headers in queue:
                async with client.post(url, data=body, headers=headers) as response:
                    await response.read()
                    statuses[response.status] = statuses.get(response.status, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses


async def replies(platform_port: int) -> dict[str, int]:
    async with aiohttp.ClientSession() as client:
        async with client.get(f"http://127.0.0.1:{platform_port}/count") as response:
            return await response.json()


async def measure(channel: str, port: int, platform_port: int, n: int, users: int, concurrency: int) -> dict:
    make = wa_body if channel == "whatsapp" else tg_body
    path = "/whatsapp/webhook" if channel == "whatsapp" else "/telegram/webhook"
    requests = [make(i, i % users) for i in range(n)]
    before = (await replies(platform_port))[channel]
    start = time.perf_counter()
    statuses = await post_all(f"http://127.0.0.1:{port}{path}", requests, concurrency)
    acked = time.perf_counter() - start
    deadline = time.perf_counter() + 120
    while (await replies(platform_port))[channel] - before < n and time.perf_counter() < deadline:
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - start
    done = (await replies(platform_port))[channel] - before
    return {"channel": channel, "updates": n, "replied": done, "seconds": round(elapsed, 3),
            "per_second": round(done / elapsed, 1), "acked_per_second": round(n / acked, 1), "statuses": statuses}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--channels", default="whatsapp,telegram")
    args = parser.parse_args()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            bare_port = free_port()
            procs.append(subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)]))
            await wait_healthy(bare_port, procs[-1])
            bodies = [wa_body(i, i % args.users) for i in range(args.updates)]
            t0 = time.perf_counter()
            await post_all(f"http://127.0.0.1:{bare_port}/payments/midtrans/notify", bodies, args.concurrency)
            ceiling = args.updates / (time.perf_counter() - t0)
            procs.pop().terminate()

            platform_port = free_port()
            procs.append(subprocess.Popen([sys.executable, str(PLATFORMS),
                                           str(platform_port)]))
            await asyncio.sleep(1.0)
            if args.db == "postgresql":
                url = await fresh_pg_database()
            else:
                url = f"sqlite+aiosqlite:///{tmp}/inbound.db"
            port = free_port()
            env = {**os.environ, "PYTHONPATH": str(ROOT), "BOT_DATABASE__URL": url,
                   "BOT_SERVER__HOST": "127.0.0.1", "BOT_SERVER__PORT": str(port),
                   "BOT_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}", "BOT_LOG__LEVEL": "WARNING",
                   "BOT_RECONCILE__ENABLED": "false",
                   "BOT_TELEGRAM__TOKEN": TG_TOKEN, "BOT_TELEGRAM__MODE": "webhook",
                   "BOT_TELEGRAM__WEBHOOK_SECRET": TG_SECRET,
                   "BOT_TELEGRAM__API_BASE_URL": f"http://127.0.0.1:{platform_port}/bot",
                   "BOT_TELEGRAM__RATE_PER_SECOND": "1000000", "BOT_TELEGRAM__PER_CHAT_INTERVAL_S": "0",
                   "BOT_WHATSAPP__PHONE_ID": WA_PHONE, "BOT_WHATSAPP__TOKEN": WA_TOKEN,
                   "BOT_WHATSAPP__APP_SECRET": WA_SECRET, "BOT_WHATSAPP__VERIFY_TOKEN": WA_VERIFY,
                   "BOT_WHATSAPP__API_BASE_URL": f"http://127.0.0.1:{platform_port}",
                   "BOT_WHATSAPP__RATE_PER_SECOND": "1000000", "BOT_WHATSAPP__PER_RECIPIENT_INTERVAL_S": "0"}
            procs.append(subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=tmp, env=env))
            await wait_healthy(port, procs[-1])
            await asyncio.sleep(1.0)  # Telegram's getMe / setWebhook at start
            results = [await measure(ch, port, platform_port, args.updates, args.users, args.concurrency)
                       for ch in args.channels.split(",")]
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)
    print(f"\nceiling (bare aiohttp endpoint, same client): {ceiling:.0f} req/s   database: {args.db}")
    print(f"{'channel':<10}{'updates':>8}{'replied':>9}{'updates/s':>11}{'% ceiling':>10}{'acked/s':>9}")
    for r in results:
        print(f"{r['channel']:<10}{r['updates']:>8}{r['replied']:>9}{r['per_second']:>11.0f}"
              f"{100 * r['per_second'] / ceiling:>9.0f}%{r['acked_per_second']:>9.0f}")
    print(json.dumps({"ceiling_per_second": round(ceiling, 1), "database": args.db, "results": results}, indent=2))
    return 0 if all(r["replied"] == r["updates"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
