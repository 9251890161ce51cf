"""Outages: the messengers' APIs failing for a while, every gateway down, PostgreSQL gone mid-storm."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import func, select

from storage.models import OutboxMessage, Payment, Transfer
from tests.support.gateways import FakeDuitku
from tests.support.harness import AppUnderTest
from tests.support.money import assert_books_hold, wallets_total
from tests.support.telegram import telegram_text_update
from tests.support.waiting import said, wait_for
from tests.support.whatsapp import signed, text_update

SECRET = "outage-secret"


async def credit(app: AppUnderTest, channel: str, external_id: str, amount: int) -> None:
    rt = app.runtime
    user = (await rt.services.inbound.register(channel=channel, external_id=external_id, display_name="U",
                                             update_key=None)).user.id
    link = await rt.services.topups.start(user_id=user, customer_name="U", amount=amount)
    sandbox = next(g for g in rt.gateways if g.name == "sandbox")
    body, headers = sandbox.signed_callback(link.order_id, amount, "paid")
    assert (await app.http.post("/payments/sandbox/notify", content=body, headers=headers)).status_code == 200


async def test_notices_wait_out_a_bot_api_and_graph_api_outage_and_arrive_once_each(tmp_path, fresh_db_url, bot,
                                                                                   graph):
    config = {"payments": {"gateways": ["sandbox"]},
              "telegram": {"token": bot.token, "mode": "webhook", "webhook_secret": SECRET,
                           "api_base_url": bot.base_url},
              "whatsapp": graph.config(), "outbox": {"poll_interval_s": 0.1}}
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        bot.outage, graph.outage = (502, None), (503, 2)  # 5xx from both platforms
        tg_users, wa_users = [str(7000 + i) for i in range(5)], [f"62811000{i:04d}" for i in range(5)]
        for i, user in enumerate(tg_users):
            await credit(app, "telegram", user, 10_000 + i * 1_000)
        for i, user in enumerate(wa_users):
            await credit(app, "whatsapp", user, 20_000 + i * 1_000)
        await wait_for(lambda: len([c for c in bot.calls if c.method == "sendMessage!502"]) >= 5)
        bot.outage = (429, 1)  # then Telegram throttles
        await asyncio.sleep(2.5)
        assert not [c for c in bot.calls if c.method == "sendMessage"] and not graph.messages
        bot.outage = graph.outage = None

        async def all_sent() -> bool:
            async with app.runtime.db.read() as session:
                return await session.scalar(select(func.count()).where(OutboxMessage.status != "sent")) == 0

        await wait_for(all_sent, timeout=30, interval=0.2)
        async with app.runtime.db.read() as session:
            attempts = (await session.scalars(select(OutboxMessage.attempts))).all()
        assert len(attempts) == 10 and min(attempts) >= 2  # every notice met the outage, none was dropped
        for i, user in enumerate(tg_users):  # exactly one notice each, with its amount
            (text,) = bot.texts_to(user)
            assert text.startswith(f"Saldo bertambah Rp{10 + i}.000") and f"saldo sekarang Rp{10 + i}.000 ✅" in text
        for i, user in enumerate(wa_users):
            (text,) = graph.texts_to(user)
            assert text.startswith(f"Saldo bertambah Rp{20 + i}.000") and f"saldo sekarang Rp{20 + i}.000 ✅" in text


async def test_when_every_gateway_is_down_the_user_is_told_so_on_both_channels(tmp_path, fresh_db_url, bot, graph,
                                                                                 midtrans):
    async with FakeDuitku() as duitku:
        midtrans.create_failures, duitku.create_failures = [503] * 5, [502] * 5
        config = {"payments": {"gateways": ["midtrans", "duitku"], "midtrans": midtrans.config(),
                               "duitku": duitku.config()},
                  "telegram": {"token": bot.token, "mode": "webhook", "webhook_secret": SECRET,
                               "api_base_url": bot.base_url},
                  "whatsapp": graph.config()}
        async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
            await app.http.post("/telegram/webhook", json=telegram_text_update(1, 4321, "/topup 50000"),
                                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
            raw, headers = signed(text_update("6281300000001", "TOPUP 50000", "wamid.down1"))
            await app.http.post("/whatsapp/webhook", content=raw, headers=headers)
            told = "Maaf, layanan pembayaran sedang gangguan. Saldo kamu aman; coba lagi beberapa menit lagi."
            await wait_for(lambda: said(bot.texts_to(4321), told))
            await wait_for(lambda: said(graph.texts_to("6281300000001"), told))
            async with app.runtime.db.read() as session:
                statuses = (await session.scalars(select(Payment.status))).all()
            assert sorted(statuses) == ["failed"] * 4  # every attempt recorded as failed, none left half-made


async def test_postgres_gone_mid_storm_means_503s_then_the_exact_state(tmp_path, proxied_postgres, midtrans):
    proxy, url = proxied_postgres
    config = {"payments": {"gateways": ["midtrans"], "midtrans": midtrans.config()},
              # Leases taken just before the cut cannot be released: they lapse after lease_s (2 min by default).
              "reconcile": {"enabled": True, "interval_s": 0.3, "lease_s": 2}}
    async with AppUnderTest(tmp_path, url, config) as app:
        orders = []
        for i in range(60):
            user = (await app.runtime.services.inbound.register(channel="telegram", external_id=str(100 + i),
                                                              display_name="U", update_key=None)).user.id
            orders.append((await app.runtime.services.topups.start(user_id=user, customer_name="U",
                                                          amount=10_000 + i)).order_id)
        seen: set[int] = set()
        health: set[int] = set()

        async def gateway_retries(order: str, pause: float) -> None:
            await asyncio.sleep(pause)
            body = json.dumps(midtrans.settle(order))
            while True:  # as Midtrans does: until a 2xx
                status = (await app.http.post("/payments/midtrans/notify", content=body,
                                              headers={"Content-Type": "application/json"})).status_code
                seen.add(status)
                if status == 200:
                    return
                await asyncio.sleep(0.2)

        async def outage() -> None:
            await asyncio.sleep(0.3)
            await proxy.cut()
            for _ in range(5):
                health.add((await app.http.get("/healthz")).status_code)
                await asyncio.sleep(0.2)
            await proxy.restore()

        # 40 payments get callbacks spread over the outage; 20 are paid but their callbacks are lost, so
        # only the reconciler (asking the status API once the database is back) can credit them.
        for order in orders[40:]:
            midtrans.settle(order)
        await asyncio.gather(outage(), *(gateway_retries(o, i * 0.03) for i, o in enumerate(orders[:40])))
        assert seen <= {200, 503} and 503 in seen  # the outage was hit, and never answered 500
        assert health == {503}

        async def exact() -> bool:
            async with app.runtime.db.read() as session:
                paid = await session.scalar(select(func.count()).where(Payment.status == "paid"))
                return paid == 60

        await wait_for(exact, timeout=30, interval=0.2)
        async with app.runtime.db.read() as session:
            transfers = await session.scalar(select(func.count()).select_from(Transfer))
        assert transfers == 60 and await wallets_total(app.runtime.db) == sum(10_000 + i for i in range(60))
        await assert_books_hold(app.runtime.db)
        assert (await app.http.get("/healthz")).status_code == 200
