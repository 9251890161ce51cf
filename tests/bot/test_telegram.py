"""A Telegram user tops up end to end over real sockets: our server, a fake Bot API and a fake Midtrans on
127.0.0.1, wired only through configuration (telegram.api_base_url, payments.midtrans.*_base_url)."""

from __future__ import annotations

import re

import pytest

from tests.support.harness import AppUnderTest
from tests.support.midtrans import FakeMidtrans
from tests.support.money import assert_books_hold, wallets_total
from tests.support.telegram import FakeBotAPI, telegram_callback_update, telegram_text_update
from tests.support.waiting import said, wait_for

SECRET = "webhook-Secret_123"
HEADER = {"X-Telegram-Bot-Api-Secret-Token": SECRET}


@pytest.fixture
async def fakes():
    bot, midtrans = FakeBotAPI(), FakeMidtrans()
    await bot.start()
    await midtrans.start()
    yield bot, midtrans
    await bot.stop()
    await midtrans.stop()


def config(bot: FakeBotAPI, midtrans: FakeMidtrans, gateways: list[str]) -> dict:
    return {
        "telegram": {"token": bot.token, "mode": "webhook", "webhook_secret": SECRET, "api_base_url": bot.base_url},
        "payments": {
            "gateways": gateways,
            "midtrans": midtrans.config(),
        },
    }


async def test_telegram_user_tops_up_through_midtrans_and_is_told_when_credited(tmp_path, fresh_db_url, fakes):
    bot, midtrans = fakes
    async with AppUnderTest(tmp_path, fresh_db_url, config(bot, midtrans, ["midtrans"])) as app:
        assert [c.params["secret_token"] for c in bot.calls if c.method == "setWebhook"] == [SECRET]
        assert any(c.method == "setMyCommands" for c in bot.calls)

        response = await app.http.post("/telegram/webhook", json=telegram_text_update(1, 777, "/topup 50000"),
                                       headers=HEADER)
        assert response.status_code == 200
        await wait_for(lambda: midtrans.orders)
        order_id, order = next(iter(midtrans.orders.items()))
        assert order.gross_amount == 50_000
        assert order.headers["X-Override-Notification"] == f"{app.url}/payments/midtrans/notify"
        await wait_for(lambda: any(order_id in t and "Rp50.000" in t for t in bot.texts_to(777)))

        notification = midtrans.settle(order_id)
        response = await app.http.post("/payments/midtrans/notify", json=notification)
        assert response.status_code == 200

        await wait_for(lambda: said(bot.texts_to(777), "Saldo bertambah Rp50.000", "saldo sekarang Rp50.000 ✅"))
        await app.http.post("/telegram/webhook", json=telegram_text_update(2, 777, "/saldo"), headers=HEADER)
        await wait_for(lambda: said(bot.texts_to(777), "Saldo kamu: Rp50.000."))
        await app.http.post("/telegram/webhook", json=telegram_text_update(3, 777, "/riwayat"), headers=HEADER)
        await wait_for(lambda: any(t.startswith("Transaksi terakhir:\n+Rp50.000 · top up") for t in bot.texts_to(777)))


async def test_sandbox_checkout_page_pays_and_credits_a_telegram_user(tmp_path, fresh_db_url, fakes):
    bot, midtrans = fakes
    async with AppUnderTest(tmp_path, fresh_db_url, config(bot, midtrans, ["sandbox"])) as app:
        await app.http.post("/telegram/webhook", json=telegram_text_update(10, 555, "/topup"), headers=HEADER)
        await wait_for(lambda: bot.sent())
        keyboard = bot.sent()[-1]["reply_markup"]
        assert "topup:50000" in str(keyboard) and "Rp1.000.000" in str(keyboard)

        await app.http.post("/telegram/webhook", json=telegram_callback_update(11, 555, "topup:100000"), headers=HEADER)
        link_text = await wait_for(lambda: next((t for t in bot.texts_to(555) if "/pay/sandbox/" in t), None))
        path = re.search(r"/pay/sandbox/[A-Z0-9-]+", link_text).group(0)
        assert any(c.method == "answerCallbackQuery" for c in bot.calls)

        page = await app.http.get(path)
        assert page.status_code == 200 and "Rp100.000" in page.text
        paid = await app.http.post(path, data={"outcome": "paid"})
        assert paid.status_code == 200 and "berhasil" in paid.text

        await wait_for(lambda: said(bot.texts_to(555), "Saldo bertambah Rp100.000", "saldo sekarang Rp100.000 ✅"))
        again = await app.http.get(path)
        assert "sudah selesai" in again.text


async def test_failed_sandbox_payment_is_told_and_credits_nothing(tmp_path, fresh_db_url, fakes):
    bot, midtrans = fakes
    async with AppUnderTest(tmp_path, fresh_db_url, config(bot, midtrans, ["sandbox"])) as app:
        await app.http.post("/telegram/webhook", json=telegram_text_update(20, 556, "/topup 25rb"), headers=HEADER)
        link_text = await wait_for(lambda: next((t for t in bot.texts_to(556) if "/pay/sandbox/" in t), None))
        path = re.search(r"/pay/sandbox/[A-Z0-9-]+", link_text).group(0)
        await app.http.post(path, data={"outcome": "failed"})
        await wait_for(lambda: any("gagal" in t and "Saldo tidak berubah" in t for t in bot.texts_to(556)))
        assert await wallets_total(app.runtime.db) == 0
        await assert_books_hold(app.runtime.db)


async def test_english_user_gets_english_replies_and_notices(tmp_path, fresh_db_url, fakes):
    bot, midtrans = fakes
    async with AppUnderTest(tmp_path, fresh_db_url, config(bot, midtrans, ["midtrans"])) as app:
        await app.http.post("/telegram/webhook", json=telegram_text_update(30, 600, "/bahasa en"), headers=HEADER)
        await wait_for(lambda: said(bot.texts_to(600), "Language set to English."))
        await app.http.post("/telegram/webhook", json=telegram_text_update(31, 600, "/topup 1,5jt"), headers=HEADER)
        await wait_for(lambda: midtrans.orders)
        order_id = next(iter(midtrans.orders))
        assert midtrans.orders[order_id].gross_amount == 1_500_000
        await app.http.post("/payments/midtrans/notify", json=midtrans.settle(order_id))
        await wait_for(lambda: said(bot.texts_to(600), "Balance topped up Rp1.500.000", "balance now Rp1.500.000 ✅"))
        await app.http.post("/telegram/webhook", json=telegram_text_update(32, 600, "/topup 5000"), headers=HEADER)
        await wait_for(lambda: said(bot.texts_to(600), "The minimum top-up is Rp10.000."))


async def test_retried_telegram_update_is_handled_once(tmp_path, fresh_db_url, fakes):
    bot, midtrans = fakes
    async with AppUnderTest(tmp_path, fresh_db_url, config(bot, midtrans, ["midtrans"])) as app:
        update = telegram_text_update(40, 601, "/topup 50rb")
        for _ in range(3):
            assert (await app.http.post("/telegram/webhook", json=update, headers=HEADER)).status_code == 200
        await wait_for(lambda: midtrans.orders)
        await app.http.post("/telegram/webhook", json=telegram_text_update(41, 601, "/saldo"), headers=HEADER)
        await wait_for(lambda: said(bot.texts_to(601), "Saldo kamu: Rp0."))
        assert len(midtrans.orders) == 1


async def test_telegram_webhook_refuses_forged_and_garbage_updates(tmp_path, fresh_db_url, fakes):
    bot, midtrans = fakes
    async with AppUnderTest(tmp_path, fresh_db_url, config(bot, midtrans, ["midtrans"])) as app:
        update = telegram_text_update(50, 602, "/topup 50rb")
        assert (await app.http.post("/telegram/webhook", json=update)).status_code == 403
        wrong = {"X-Telegram-Bot-Api-Secret-Token": "nope"}
        assert (await app.http.post("/telegram/webhook", json=update, headers=wrong)).status_code == 403
        non_ascii = {"X-Telegram-Bot-Api-Secret-Token": "s\u00e9cret".encode()}
        assert (await app.http.post("/telegram/webhook", json=update, headers=non_ascii)).status_code == 403
        garbage = await app.http.post("/telegram/webhook", content=b"{not json", headers=HEADER)
        assert garbage.status_code == 400
        assert midtrans.orders == {}


async def test_nonsense_chat_input_gets_a_helpful_reply(tmp_path, fresh_db_url, fakes):
    bot, midtrans = fakes
    async with AppUnderTest(tmp_path, fresh_db_url, config(bot, midtrans, ["midtrans"])) as app:
        await app.http.post("/telegram/webhook", json=telegram_text_update(60, 603, "/topup lima puluh"),
                            headers=HEADER)
        await wait_for(lambda: any("bukan nominal" in t for t in bot.texts_to(603)))
        await app.http.post("/telegram/webhook", json=telegram_text_update(61, 603, "/terbang"), headers=HEADER)
        await wait_for(lambda: any('perintah "terbang" tidak dikenal' in t for t in bot.texts_to(603)))
        await app.http.post("/telegram/webhook", json=telegram_text_update(62, 603, "asdf qwerty"), headers=HEADER)
        await wait_for(lambda: any("belum mengerti" in t for t in bot.texts_to(603)))
        not_understood = next(c.params for c in bot.calls if "belum mengerti" in str(c.params.get("text")))
        assert [b["callback_data"] for b in bot.keyboard(not_understood)[0]] == ["help:wallet", "help:buyer",
                                                                              "help:jastiper"]
        await app.http.post("/telegram/webhook", json=telegram_text_update(63, 603, "halo kak"), headers=HEADER)
        await wait_for(lambda: any(t.startswith("Halo Siti! 👋") for t in bot.texts_to(603)))
        assert midtrans.orders == {}


async def test_polling_mode_takes_updates_from_get_updates_and_replies(tmp_path, fresh_db_url, fakes):
    bot, midtrans = fakes
    cfg = config(bot, midtrans, ["midtrans"])
    cfg["telegram"] = {**cfg["telegram"], "mode": "polling"}
    bot.pending_updates.append(telegram_text_update(70, 604, "/saldo"))
    async with AppUnderTest(tmp_path, fresh_db_url, cfg):
        await wait_for(lambda: said(bot.texts_to(604), "Saldo kamu: Rp0."))
        assert any(c.method == "deleteWebhook" for c in bot.calls)
        assert not any(c.method == "setWebhook" for c in bot.calls)


async def test_metrics_expose_payments_outbox_and_request_counts(tmp_path, fresh_db_url, fakes):
    bot, midtrans = fakes
    async with AppUnderTest(tmp_path, fresh_db_url, config(bot, midtrans, ["midtrans"])) as app:
        await app.http.post("/telegram/webhook", json=telegram_text_update(80, 605, "/topup 50rb"), headers=HEADER)
        await wait_for(lambda: midtrans.orders)
        await app.http.post("/payments/midtrans/notify", json=midtrans.settle(next(iter(midtrans.orders))))
        await wait_for(lambda: said(bot.texts_to(605), "Saldo bertambah"))
        before = (await app.http.get("/metrics")).text  # the figures of the last snapshot, not of the scrape
        assert 'titip_payments{gateway="midtrans",status="paid"}' not in before
        await app.runtime.jobs.run_once("metrics")  # the periodic job reads the database
        await app.runtime.jobs.run_once("ledger-check")  # ... and the ledger check sums the money
        text = (await app.http.get("/metrics")).text
        assert 'titip_payments{gateway="midtrans",status="paid"} 1.0' in text
        assert "titip_credited_rupiah 50000.0" in text
        assert "titip_balance_rupiah 50000.0" in text and "titip_ledger_rupiah 50000.0" in text
        assert 'titip_http_requests_total{method="POST",route="/payments/{gateway}/notify",status="200"} 1.0' in text
        assert 'titip_http_request_duration_seconds_count{method="POST",route="/payments/{gateway}/notify"} 1.0' \
            in text
        assert "titip_database_up 1.0" in text
        assert "titip_callback_to_notice_seconds_count 1.0" in text
        assert 'titip_delivery_wait_seconds_count{channel="telegram",priority="notice"}' in text
        assert 'titip_notices_total{channel="telegram",outcome="sent"} 1.0' in text
