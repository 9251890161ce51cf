"""Broadcast pacing against Telegram's limits, and the raw engine rate with the limits lifted.

    python bench/broadcast.py [--recipients 1000]

Seeds a jastiper with a funded wallet and a trip with N participants, starts the fake Bot API
(tests/support/platforms_process.py) and `python -m bot serve` as subprocesses, sends `BROADCAST <slug> ...` and taps
Send as Telegram updates, and watches the fake API. Run 1: the fake enforces 30 msg/s overall and 1 msg/s
per chat (429 + retry_after); run 2: no limits and the bot's own pacing lifted. Prints accepted messages,
their rate against the allowed 30/s, 429s, and whether the receipt and the ledger match to the Rupiah.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = ROOT / "tests" / "support" / "platforms_process.py"  # the fake platforms, a process of their own
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import print_table  # noqa: E402

from tests.support.processes import free_port, wait_healthy  # noqa: E402

TOKEN, SECRET, OWNER_CHAT, PRICE = "1:bench-token", "bench-secret", 999_000_001, 500


async def seed(url: str, recipients: int) -> None:
    from sqlalchemy import insert, select

    from services import ledger
    from storage.db import Database
    from storage.migrate import upgrade
    from storage.models import Participant, Trip, User

    db = Database(url)
    await upgrade(db)
    now = datetime.now(UTC)
    funds = recipients * PRICE
    async with db.write() as session:
        await session.execute(insert(User), [{"channel": "telegram", "external_id": str(OWNER_CHAT),
                                              "language": "id", "created_at": now}] + [
            {"channel": "telegram", "external_id": str(800_000_000 + i), "language": "id",
             "created_at": now} for i in range(recipients)])
        owner = await session.scalar(select(User.id).where(User.external_id == str(OWNER_CHAT)))
        seed_money = ledger.Move("bench-seed", ledger.ADJUSTMENT, ledger.wallet(owner), funds, "adjust")
        await ledger.post(session, [seed_money], now)
        await session.execute(insert(Trip), [{"slug": "bench", "title": "Bench trip", "owner_id": owner,
                                              "deadline_at": now + timedelta(days=1), "status": "open",
                                              "created_at": now}])
        trip = await session.scalar(select(Trip.id))
        ids = (await session.scalars(select(User.id).where(User.id != owner))).all()
        await session.execute(insert(Participant), [{"trip_id": trip, "user_id": u, "name": "P", "status": "joined",
                                                     "joined_at": now, "updated_at": now} for u in ids])
    await db.close()


async def verify(url: str) -> dict:
    from sqlalchemy import func, select

    from services import books, ledger
    from storage.db import Database
    from storage.models import Account, BroadcastDelivery, User

    db = Database(url)
    async with db.read() as session:
        owner = await session.scalar(select(User.id).where(User.external_id == str(OWNER_CHAT)))
        balance = await session.scalar(select(Account.balance).where(Account.kind == "wallet",
                                                                     Account.key == ledger.wallet(owner).key))
        settled = dict((await session.execute(select(BroadcastDelivery.settled, func.count())
                                              .group_by(BroadcastDelivery.settled))).all())
    problems = await books.check(db)
    await db.close()
    # "ledger" is what the wallet's transfers say once the books hold (the check compares the two).
    return {"balance": int(balance or 0), "ledger": int(balance or 0) if not problems else -1, "settled": settled}


async def run(recipients: int, limits: bool, workdir: Path) -> dict:
    url = f"sqlite+aiosqlite:///{workdir}/broadcast-{int(limits)}.db"
    await seed(url, recipients)
    platform_port, port = free_port(), free_port()
    procs = [subprocess.Popen([sys.executable, str(PLATFORMS), str(platform_port)]
                              + (["--telegram-limits"] if limits else []))]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BOT_DATABASE__URL": url, "BOT_SERVER__HOST": "127.0.0.1",
           "BOT_SERVER__PORT": str(port), "BOT_SERVER__PUBLIC_URL": f"http://127.0.0.1:{port}",
           "BOT_LOG__LEVEL": "WARNING", "BOT_RECONCILE__ENABLED": "false", "BOT_TELEGRAM__TOKEN": TOKEN,
           "BOT_TELEGRAM__MODE": "webhook", "BOT_TELEGRAM__WEBHOOK_SECRET": SECRET,
           "BOT_TELEGRAM__API_BASE_URL": f"http://127.0.0.1:{platform_port}/bot",
           "BOT_BROADCAST__PRICE_PER_MESSAGE": str(PRICE), "BOT_OUTBOX__POLL_INTERVAL_S": "0.2"}
    if not limits:
        env.update({"BOT_TELEGRAM__RATE_PER_SECOND": "1000000", "BOT_TELEGRAM__PER_CHAT_INTERVAL_S": "0"})
    procs.append(subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=workdir, env=env))
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    try:
        await wait_healthy(port, procs[-1])
        await asyncio.sleep(1.5)
        async with aiohttp.ClientSession() as client:

            async def counts() -> dict:
                async with client.get(f"http://127.0.0.1:{platform_port}/count") as r:
                    return await r.json()

            def update(uid: int, **body) -> dict:
                return {"update_id": uid, **body}

            message = {"message_id": 1, "date": 0, "chat": {"id": OWNER_CHAT, "type": "private"},
                       "from": {"id": OWNER_CHAT, "is_bot": False, "first_name": "J"},
                       "text": "BROADCAST bench Barang sudah dibeli, cek PESANANKU"}
            await client.post(f"http://127.0.0.1:{port}/telegram/webhook", json=update(1, message=message),
                              headers=headers)
            await asyncio.sleep(1.5)
            before = await counts()
            callback = {"id": "cb", "chat_instance": "c", "data": "bc:ok:1",
                        "from": {"id": OWNER_CHAT, "is_bot": False, "first_name": "J"},
                        "message": {**message, "text": "preview"}}
            started = time.monotonic()
            await client.post(f"http://127.0.0.1:{port}/telegram/webhook", json=update(2, callback_query=callback),
                              headers=headers)
            target = before["telegram"] + recipients + 2  # the broadcast, "started" and the receipt
            deadline = started + recipients / 25 + 60
            while (await counts())["telegram"] < target and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            end = await counts()
        # The rate is the broadcast's own: messages to participants, not the jastiper's start message, its
        # progress edits and the receipt (those share the pacing but are not what is being measured).
        accepted = [at for at, chat in zip(end["accepted_at"], end["accepted_chats"], strict=True)
                    if chat != str(OWNER_CHAT)]
        span = (accepted[-1] - accepted[0]) if len(accepted) > 1 else 0.0
        rate = (len(accepted) - 1) / span if span else float(len(accepted))
        await asyncio.sleep(1.0)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    check = await verify(url)
    charged = check["settled"].get("charged", 0) * PRICE
    return {"limits": limits, "recipients": recipients, "accepted": len(accepted), "seconds": round(span, 2),
            "per_second": round(rate, 1), "of_allowed": round(rate / 30, 3) if limits else None,
            "responses_429": end["telegram_429"] - before["telegram_429"], "settled": check["settled"],
            "exact": check["balance"] == check["ledger"] == recipients * PRICE - charged
            and check["settled"].get("charged", 0) == recipients}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipients", type=int, default=1000)
    parser.add_argument("--limits", choices=("both", "on", "off"), default="both",
                        help="run with the platform limits enforced, lifted, or both (default)")
    args = parser.parse_args()
    modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.limits]
    with tempfile.TemporaryDirectory() as tmp:
        results = [await run(args.recipients, limits, Path(tmp)) for limits in modes]
    print_table(("limits", "accepted", "seconds", "msg/s", "of 30/s", "429s", "exact"),
                [("on" if r["limits"] else "off", r["accepted"], r["seconds"], r["per_second"],
                  f"{100 * r['of_allowed']:.0f}%" if r["of_allowed"] is not None else "-", r["responses_429"],
                  r["exact"]) for r in results])
    print(json.dumps(results, indent=2))
    return 0 if all(r["exact"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
