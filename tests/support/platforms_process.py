"""The Telegram Bot API and WhatsApp Graph API fakes as one process of their own, for benchmarks: only the calls a
benchmark makes, answered as the real APIs answer them, counted and timestamped (kept minimal, so that the
fake is never what a benchmark measures).

    python tests/support/platforms_process.py PORT [--telegram-limits]

Answers sendMessage / Graph `messages` like the real APIs and counts them; GET /count returns
{"telegram": n, "whatsapp": m, "telegram_429": k, "accepted_at": [...], "accepted_chats": [...],
"whatsapp_at": [...], "whatsapp_to": [...]} (times are time.monotonic(), which every process on the machine shares).
With --telegram-limits it enforces Telegram's limits like the Bot API does: at most 30 messages in any
second overall and one per second to the same chat, answering 429 with parameters.retry_after otherwise.
"""

from __future__ import annotations

import itertools
import sys
import time
from collections import deque

from aiohttp import web

counts = {"telegram": 0, "whatsapp": 0, "telegram_429": 0}
accepted_at: list[float] = []
accepted_chats: list[str] = []
whatsapp_at: list[float] = []
whatsapp_to: list[str] = []
ids = itertools.count(1)
LIMITS = "--telegram-limits" in sys.argv
recent: deque[float] = deque()
last_per_chat: dict[str, float] = {}


def limited(chat_id: str) -> float | None:
    """Seconds to wait when a send now would exceed Telegram's limits, else None (and the send is booked)."""
    now = time.monotonic()
    while recent and now - recent[0] >= 1.0:
        recent.popleft()
    if len(recent) >= 30:
        return 1.0 - (now - recent[0])
    if now - last_per_chat.get(chat_id, -10.0) < 1.0:
        return 1.0 - (now - last_per_chat[chat_id])
    recent.append(now)
    last_per_chat[chat_id] = now
    return None


async def bot_api(request: web.Request) -> web.Response:
    method = request.match_info["method"]
    if method == "getMe":
        return web.json_response({"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "Bench",
                                                         "username": "BenchBot"}})
    if method in ("sendMessage", "sendPhoto"):
        form = await request.json() if request.content_type == "application/json" else await request.post()
        if LIMITS:
            wait = limited(str(form.get("chat_id")))
            if wait is not None:
                counts["telegram_429"] += 1
                return web.json_response({"ok": False, "error_code": 429, "description": "Too Many Requests",
                                          "parameters": {"retry_after": max(1, round(wait))}}, status=429)
        counts["telegram"] += 1
        accepted_at.append(time.monotonic())
        accepted_chats.append(str(form.get("chat_id")))
        return web.json_response({"ok": True, "result": {"message_id": next(ids), "date": 0,
                                                         "chat": {"id": 1, "type": "private"}, "text": "x"}})
    return web.json_response({"ok": True, "result": True})


async def graph_api(request: web.Request) -> web.Response:
    body = await request.json()
    counts["whatsapp"] += 1
    whatsapp_at.append(time.monotonic())
    whatsapp_to.append(str(body.get("to")))
    return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": body.get("to"),
                              "wa_id": body.get("to")}], "messages": [{"id": f"wamid.{next(ids)}"}]})


async def count(request: web.Request) -> web.Response:
    return web.json_response({**counts, "accepted_at": accepted_at, "accepted_chats": accepted_chats,
                              "whatsapp_at": whatsapp_at, "whatsapp_to": whatsapp_to})


def main() -> None:
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", bot_api)
    app.router.add_post("/{version}/{phone_id}/messages", graph_api)
    app.router.add_get("/count", count)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)  # noqa: E501


if __name__ == "__main__":
    main()
