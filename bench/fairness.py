"""Fairness: how long a quiet user waits for a reply while someone else floods the bot, wall clock.

    python bench/fairness.py [--quiet 20] [--flood 200] [--channels telegram,whatsapp] [--quick]

Starts the fake platforms (tests/support/platforms_process.py, no limits of their own) and `python -m bot
serve` with the real pacing settings (Telegram 29/s overall and 1/s per chat; WhatsApp 80/s and ~1 per 6 s
per recipient, replies exempt). Per channel, two phases:
  baseline — the quiet user sends SALDO every 1.2 s (slower than its own per-chat limit), nobody else writes;
  flood    — the same, while another user sends `--flood` messages as fast as the server takes them.
Latency = from posting the quiet user's message until the fake platform accepted the reply to it (both
processes read the same monotonic clock). The baseline is the same-run ceiling for the flood phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
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

from inbound import TG_SECRET, TG_TOKEN, WA_PHONE, WA_SECRET, WA_TOKEN, WA_VERIFY, replies, tg_body, wa_body  # noqa: E402
from report import print_table  # noqa: E402

from tests.support.processes import free_port, wait_healthy  # noqa: E402

QUIET, FLOODER = 1, 2
_ids = iter(range(1, 10_000_000))


def request_for(channel: str, user: int) -> tuple[str, bytes, dict[str, str]]:
    if channel == "telegram":
        body, headers = tg_body(next(_ids), user)
        return "/telegram/webhook", body, headers
    body, headers = wa_body(next(_ids), user)
    return "/whatsapp/webhook", body, headers


def chat_of(channel: str, user: int) -> str:
    return str(7_000_000 + user) if channel == "telegram" else f"62811{user:07d}"


def accepted(counts: dict, channel: str, chat: str) -> list[float]:
    times, chats = ((counts["accepted_at"], counts["accepted_chats"]) if channel == "telegram"
                    else (counts["whatsapp_at"], counts["whatsapp_to"]))
    return [t for t, c in zip(times, chats, strict=True) if c == chat]


async def phase(client: aiohttp.ClientSession, base: str, platform: int, channel: str, quiet: int, flood: int) -> dict:
    chat = chat_of(channel, QUIET)
    before = len(accepted(await replies(platform), channel, chat))
    flooding = None
    if flood:
        async def blast() -> None:
            for _ in range(flood):
                path, body, headers = request_for(channel, FLOODER)
                async with client.post(base + path, data=body, headers=headers) as response:
                    await response.read()

        flooding = asyncio.create_task(blast())
        await asyncio.sleep(0.2)  # the flood is under way
    posted: list[float] = []
    for _ in range(quiet):
        path, body, headers = request_for(channel, QUIET)
        posted.append(time.monotonic())
        async with client.post(base + path, data=body, headers=headers) as response:
            await response.read()
        await asyncio.sleep(1.2)
    deadline = time.monotonic() + 60
    while len(accepted(await replies(platform), channel, chat)) - before < quiet and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if flooding is not None:
        await flooding
    got = accepted(await replies(platform), channel, chat)[before:before + quiet]
    waits = sorted(reply - sent for sent, reply in zip(posted, got, strict=False))
    p99 = waits[min(len(waits) - 1, round(0.99 * (len(waits) - 1)))] if waits else float("nan")
    return {"replies": len(got), "p50_ms": round(1000 * statistics.median(waits), 1) if waits else None,
            "p99_ms": round(1000 * p99, 1), "max_ms": round(1000 * waits[-1], 1) if waits else None}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quiet", type=int, default=20)
    parser.add_argument("--flood", type=int, default=200)
    parser.add_argument("--channels", default="telegram,whatsapp")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.quiet, args.flood = 5, 50
    procs: list[subprocess.Popen] = []
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            platform = free_port()
            procs.append(subprocess.Popen([sys.executable, str(PLATFORMS), str(platform)]))
            await asyncio.sleep(1.0)
            port = free_port()
            env = {**os.environ, "PYTHONPATH": str(ROOT), "BOT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp}/fair.db",
                   "BOT_SERVER__HOST": "127.0.0.1", "BOT_SERVER__PORT": str(port), "BOT_LOG__LEVEL": "WARNING",
                   "BOT_RECONCILE__ENABLED": "false",
                   "BOT_TELEGRAM__TOKEN": TG_TOKEN, "BOT_TELEGRAM__MODE": "webhook",
                   "BOT_TELEGRAM__WEBHOOK_SECRET": TG_SECRET,
                   "BOT_TELEGRAM__API_BASE_URL": f"http://127.0.0.1:{platform}/bot",
                   "BOT_WHATSAPP__PHONE_ID": WA_PHONE, "BOT_WHATSAPP__TOKEN": WA_TOKEN,
                   "BOT_WHATSAPP__APP_SECRET": WA_SECRET, "BOT_WHATSAPP__VERIFY_TOKEN": WA_VERIFY,
                   "BOT_WHATSAPP__API_BASE_URL": f"http://127.0.0.1:{platform}"}
            procs.append(subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=tmp, env=env))
            await wait_healthy(port, procs[-1])
            await asyncio.sleep(1.0)  # Telegram's getMe / setWebhook at start
            async with aiohttp.ClientSession() as client:
                for channel in args.channels.split(","):
                    base = f"http://127.0.0.1:{port}"
                    alone = await phase(client, base, platform, channel, args.quiet, 0)
                    flooded = await phase(client, base, platform, channel, args.quiet, args.flood)
                    results.append({"channel": channel, "flood_messages": args.flood, "baseline": alone,
                                    "while_flooding": flooded})
        finally:
            for p in reversed(procs):  # the server first, while the platform can still answer
                p.terminate()
                p.wait(timeout=30)
    print_table(["channel", "quiet replies", "alone p50/p99 ms", f"during a {args.flood}-message flood p50/p99 ms",
                 "max ms"],
                [(r["channel"], r["while_flooding"]["replies"],
                  f"{r['baseline']['p50_ms']} / {r['baseline']['p99_ms']}",
                  f"{r['while_flooding']['p50_ms']} / {r['while_flooding']['p99_ms']}",
                  r["while_flooding"]["max_ms"]) for r in results])
    print(json.dumps(results, indent=2))
    return 0 if all(r["while_flooding"]["replies"] == args.quiet for r in results) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
