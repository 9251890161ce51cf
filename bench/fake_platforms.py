"""A minimal Telegram Bot API + WhatsApp Graph API for benchmarks, run as its own process.

    python bench/fake_platforms.py PORT

Answers sendMessage / Graph `messages` like the real APIs (no limits enforced) and counts them;
GET /count returns {"telegram": n, "whatsapp": m}.
"""

from __future__ import annotations

import itertools
import sys

from aiohttp import web

counts = {"telegram": 0, "whatsapp": 0}
ids = itertools.count(1)


async def bot_api(request: web.Request) -> web.Response:
    method = request.match_info["method"]
    if method == "getMe":
        return web.json_response({"ok": True, "result": {"id": 1, "is_bot": True, "first_name": "Bench",
                                                         "username": "BenchBot"}})
    if method in ("sendMessage", "sendPhoto"):
        await request.read()
        counts["telegram"] += 1
        return web.json_response({"ok": True, "result": {"message_id": next(ids), "date": 0,
                                                         "chat": {"id": 1, "type": "private"}, "text": "x"}})
    return web.json_response({"ok": True, "result": True})


async def graph_api(request: web.Request) -> web.Response:
    body = await request.json()
    counts["whatsapp"] += 1
    return web.json_response({"messaging_product": "whatsapp", "contacts": [{"input": body.get("to"),
                              "wa_id": body.get("to")}], "messages": [{"id": f"wamid.{next(ids)}"}]})


async def count(request: web.Request) -> web.Response:
    return web.json_response(counts)


def main() -> None:
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", bot_api)
    app.router.add_post("/{version}/{phone_id}/messages", graph_api)
    app.router.add_get("/count", count)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
