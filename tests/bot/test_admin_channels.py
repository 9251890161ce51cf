"""An admin resolves a held payment end to end, on Telegram and on WhatsApp, both ways: credited after the gateway
confirms it, and refused (the money goes back by the gateway's refund, or outside Titip). Real sockets: our server,
a fake Bot API / Graph API and a fake Midtrans on 127.0.0.1."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import AdminAction, Payment
from tests.support.harness import AppUnderTest
from tests.support.midtrans import FakeMidtrans
from tests.support.money import assert_books_hold, wallets_total
from tests.support.telegram import FakeBotAPI, telegram_callback_update, telegram_text_update
from tests.support.waiting import said, wait_for
from tests.support.whatsapp import FakeGraphAPI, button_update, signed, text_update

SECRET = "webhook-Secret_123"
HEADER = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
ADMIN_TG, USER_TG = 999, 777
ADMIN_WA, USER_WA = "6281100000001", "6281234567890"


@pytest.fixture
async def bot():
    fake = FakeBotAPI()
    await fake.start()
    yield fake
    await fake.stop()


async def status_of(app: AppUnderTest, order_id: str) -> str:
    async with app.runtime.db.read() as session:
        return await session.scalar(select(Payment.status).where(Payment.order_id == order_id))


async def actions(app: AppUnderTest) -> list[str]:
    async with app.runtime.db.read() as session:
        return list((await session.scalars(select(AdminAction.action).order_by(AdminAction.id))).all())


async def pay_less_than_billed(app: AppUnderTest, midtrans: FakeMidtrans, known: set[str]) -> str:
    """The newest Midtrans order is paid with Rp45.000 instead of the bill: the payment is held."""
    order_id = await wait_for(lambda: next((o for o in midtrans.orders if o not in known), None))
    midtrans.orders[order_id].gross_amount = 45_000  # what the payer actually paid
    assert (await app.http.post("/payments/midtrans/notify", json=midtrans.settle(order_id))).status_code == 200
    async def held() -> bool:
        return await status_of(app, order_id) == "held"

    await wait_for(held)
    return order_id


async def test_a_telegram_admin_credits_one_held_payment_by_button_and_refuses_another_by_command(
        tmp_path, fresh_db_url, bot, midtrans):
    config = {"telegram": {"token": bot.token, "mode": "webhook", "webhook_secret": SECRET,
                           "api_base_url": bot.base_url},
              "payments": {"gateways": ["midtrans"], "midtrans": midtrans.config()},
              "admin": {"telegram_ids": [str(ADMIN_TG)]}}
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        async def tg(update_id: int, user: int, text: str | None = None, data: str | None = None) -> None:
            update = (telegram_text_update(update_id, user, text) if data is None
                      else telegram_callback_update(update_id, user, data))
            assert (await app.http.post("/telegram/webhook", json=update, headers=HEADER)).status_code == 200

        # Credit: the admin is alerted with buttons and taps "Ya, masukkan saldo".
        await tg(1, USER_TG, "/topup 50000")
        first = await pay_less_than_billed(app, midtrans, set())
        await wait_for(lambda: said(bot.texts_to(USER_TG), "sedang diperiksa admin"))
        alert = await wait_for(lambda: next((p for p in bot.sent() if str(p["chat_id"]) == str(ADMIN_TG)
                                             and first in p["text"]), None))
        assert "tagihannya Rp50.000, tapi gateway melaporkan Rp45.000" in alert["text"]
        buttons = [b["callback_data"] for row in bot.keyboard(alert) for b in row]
        assert buttons == [f"adm:kredit:{first}", f"adm:tolak:{first}", f"adm:cek:{first}"]
        await tg(2, ADMIN_TG, data=f"adm:kredit:{first}")
        await wait_for(lambda: said(bot.texts_to(ADMIN_TG), f"{first}: Rp45.000 dimasukkan ke saldo"))
        await wait_for(lambda: said(bot.texts_to(USER_TG), "Rp45.000 masuk ke saldomu — saldo sekarang Rp45.000"))
        assert await status_of(app, first) == "paid" and await wallets_total(app.runtime.db) == 45_000

        # Refuse: typed, then the gateway's refund brings the money back out of suspense.
        await tg(3, USER_TG, "/topup 50000")
        second = await pay_less_than_billed(app, midtrans, {first})
        await tg(4, ADMIN_TG, f"/admin tolak {second} nominal tidak sesuai, minta bayar ulang")
        await wait_for(lambda: said(bot.texts_to(ADMIN_TG), f"Pembayaran {second} ditolak"))
        await wait_for(lambda: said(bot.texts_to(USER_TG), f"Pembayaran {second} (Rp45.000) tidak bisa kami terima"))
        refund = midtrans.settle(second, "refund", refund_amount="45000.00", refund_key="rk-1")
        assert (await app.http.post("/payments/midtrans/notify", json=refund)).status_code == 200
        await wait_for(lambda: said(bot.texts_to(USER_TG), f"Pembayaran {second} (Rp45.000) sudah dikembalikan"))
        assert await status_of(app, second) == "refunded" and await wallets_total(app.runtime.db) == 45_000
        assert await actions(app) == ["credit", "refuse"]
        await assert_books_hold(app.runtime.db)


async def test_a_whatsapp_admin_credits_by_command_and_refuses_by_buttons_with_the_money_returned_outside(
        tmp_path, fresh_db_url, midtrans):
    async with FakeGraphAPI() as graph:
        # Notices to one person are paced ~1 per 6 s on WhatsApp; this conversation has many in a minute.
        config = {"whatsapp": {**graph.config(), "per_recipient_interval_s": 0.05},
                  "payments": {"gateways": ["midtrans"], "midtrans": midtrans.config()},
                  "admin": {"whatsapp_ids": [ADMIN_WA]}}
        async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
            async def wa(payload) -> None:
                raw, headers = signed(payload)
                assert (await app.http.post("/whatsapp/webhook", content=raw, headers=headers)).status_code == 200

            await wa(text_update(ADMIN_WA, "admin", "wamid.a0", name="Ani"))  # within the 24-hour window
            await wait_for(lambda: said(graph.texts_to(ADMIN_WA), "Ringkasan Titip"))

            # Credit, typed.
            await wa(text_update(USER_WA, "TOPUP 50000", "wamid.u1"))
            first = await pay_less_than_billed(app, midtrans, set())
            await wait_for(lambda: said(graph.texts_to(ADMIN_WA), f"Pembayaran {first}: tagihannya Rp50.000"))
            await wa(text_update(ADMIN_WA, f"ADMIN KREDIT {first} selisih biaya transfer", "wamid.a1", name="Ani"))
            await wait_for(lambda: said(graph.texts_to(ADMIN_WA), f"{first}: Rp45.000 dimasukkan ke saldo"))
            await wait_for(lambda: said(graph.texts_to(USER_WA), "Rp45.000 masuk ke saldomu"))

            # Refuse with the alert's reply button, then "Sudah dikembalikan di luar Titip" from a list.
            await wa(text_update(USER_WA, "TOPUP 50000", "wamid.u2"))
            second = await pay_less_than_billed(app, midtrans, {first})
            alert = await wait_for(lambda: next((m for m in graph.messages if m.get("to") == ADMIN_WA
                                                 and second in str(m) and m.get("type") == "interactive"), None))
            assert [b["reply"]["id"] for b in alert["interactive"]["action"]["buttons"]] == [
                f"adm:kredit:{second}", f"adm:tolak:{second}", f"adm:cek:{second}"]
            await wa(button_update(ADMIN_WA, f"adm:tolak:{second}", "Tolak & kembalikan", "wamid.a2"))
            refused = await wait_for(lambda: next((m for m in graph.messages if m.get("to") == ADMIN_WA
                                                   and f"Pembayaran {second} ditolak" in str(m)), None))
            [row] = refused["interactive"]["action"]["sections"][0]["rows"]  # the label is too long for a button
            assert row["id"] == f"adm:luar:{second}" and row["description"] == "Sudah dikembalikan di luar Titip"
            await wait_for(lambda: said(graph.texts_to(USER_WA), f"Pembayaran {second} (Rp45.000) tidak bisa"))
            await wa(button_update(ADMIN_WA, row["id"], row["title"], "wamid.a3", kind="list_reply"))
            await wait_for(lambda: said(graph.texts_to(ADMIN_WA), f"{second}: Rp45.000 dicatat sudah kembali"))
            await wait_for(lambda: said(graph.texts_to(USER_WA), f"Pembayaran {second} (Rp45.000) sudah dikembalikan"))
            assert await status_of(app, second) == "refunded" and await wallets_total(app.runtime.db) == 45_000
            assert await actions(app) == ["credit", "refuse", "refunded_outside"]
            await assert_books_hold(app.runtime.db)
