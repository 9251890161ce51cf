"""Through the whole server and the fake platforms: while one person floods the bot, another person's reply
and a credit notice go out at once — ahead of the flood's backlog, not behind it. (Ordering only: the timing
proof with the real pacing settings is tests/services/test_delivery.py; the wall clock is bench/fairness.py.)"""

from __future__ import annotations

import asyncio

from services.payments import Notification
from tests.support.harness import AppUnderTest
from tests.support.telegram import telegram_text_update
from tests.support.waiting import said, wait_for
from tests.support.whatsapp import signed, text_update

SECRET = "tg-secret"
FLOODER, QUIET, PAYER = 501, 502, 503
WA_FLOODER, WA_QUIET = "6281200000501", "6281200000502"


def config(bot, graph) -> dict:
    # Telegram's 1 message/s per chat shortened to 0.25 s so the flood's backlog drains within the test.
    return {"telegram": {"token": bot.token, "mode": "webhook", "webhook_secret": SECRET,
                         "api_base_url": bot.base_url, "per_chat_interval_s": 0.25},
            "whatsapp": graph.config(), "payments": {"gateways": ["sandbox"]}}


async def test_a_telegram_flood_delays_only_the_flooder(tmp_path, fresh_db_url, bot, graph):
    async with AppUnderTest(tmp_path, fresh_db_url, config(bot, graph)) as app:
        headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
        topup = telegram_text_update(1, PAYER, "/topup 50rb")
        await app.http.post("/telegram/webhook", json=topup, headers=headers)
        link = await wait_for(lambda: next((t for t in bot.texts_to(PAYER) if "/pay/sandbox/" in t), None))
        order_id = link.split("Kode pembayaran: ")[1].split()[0]
        await asyncio.gather(*(app.http.post("/telegram/webhook", headers=headers,
                                             json=telegram_text_update(100 + i, FLOODER, "/saldo"))
                               for i in range(40)))
        await wait_for(lambda: len(bot.texts_to(FLOODER)) >= 1)
        await app.http.post("/telegram/webhook", json=telegram_text_update(200, QUIET, "/saldo"), headers=headers)
        await app.runtime.settlement.apply(Notification(gateway="sandbox", order_id=order_id, event_key="paid",
                                                        status="paid", raw_status="paid", amount=50_000),
                                           source="callback")
        app.runtime.outbox.wake()
        await wait_for(lambda: said(bot.texts_to(QUIET), "Saldo kamu") and said(bot.texts_to(PAYER), "Saldo bertambah"))
        sent_to = [str(c.params.get("chat_id")) for c in bot.calls if c.method == "sendMessage"]
        flood_before_quiet = sent_to[:sent_to.index(str(QUIET))].count(str(FLOODER))
        flood_before_notice = sent_to[:sent_to.index(str(PAYER), sent_to.index(str(PAYER)) + 1)].count(str(FLOODER))
        assert flood_before_quiet <= 5 and flood_before_notice <= 5, (flood_before_quiet, flood_before_notice)
        await wait_for(lambda: len(bot.texts_to(FLOODER)) == 40, timeout=30)  # and the flooder gets every reply


async def test_a_whatsapp_flood_delays_only_the_flooder(tmp_path, fresh_db_url, bot, graph):
    async with AppUnderTest(tmp_path, fresh_db_url, config(bot, graph)) as app:
        async def post(wa_id: str, text: str, wamid: str) -> None:
            raw, headers = signed(text_update(wa_id, text, wamid))
            await app.http.post("/whatsapp/webhook", content=raw, headers=headers)

        await asyncio.gather(*(post(WA_FLOODER, "INFO nope", f"wamid.flood{i}") for i in range(60)))
        await wait_for(lambda: len(graph.texts_to(WA_FLOODER)) >= 1)
        await post(WA_QUIET, "SALDO", "wamid.quiet")
        await wait_for(lambda: said(graph.texts_to(WA_QUIET), "Saldo kamu"))
        order = [m.get("to") for m in graph.messages]
        ahead = order[:order.index(WA_QUIET)].count(WA_FLOODER)
        assert ahead < 30, ahead  # not behind the flood's backlog
        await wait_for(lambda: len(graph.texts_to(WA_FLOODER)) == 60, timeout=30)
