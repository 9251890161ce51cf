"""Telegram and WhatsApp users top up through each real gateway, end to end over real sockets."""

from __future__ import annotations

import re

import pytest

from tests.support.gateways import FakeDoku, FakeDuitku, FakeXendit
from tests.support.harness import AppUnderTest
from tests.support.midtrans import FakeMidtrans
from tests.support.telegram import telegram_text_update
from tests.support.waiting import said, wait_for
from tests.support.whatsapp import signed, text_update

SECRET = "tg-secret"


KITS = {"midtrans": FakeMidtrans, "duitku": FakeDuitku, "doku": FakeDoku, "xendit": FakeXendit}


@pytest.fixture(params=sorted(KITS))
async def gateway(request):
    async with KITS[request.param]() as fake:
        yield fake


@pytest.mark.parametrize("channel", ["telegram", "whatsapp"])
async def test_a_user_tops_up_through_each_gateway_on_each_channel(tmp_path, fresh_db_url, gateway, bot, graph,
                                                                    channel):
    config = {
        "telegram": {"token": bot.token, "mode": "webhook", "webhook_secret": SECRET, "api_base_url": bot.base_url},
        "whatsapp": graph.config(),
        "payments": {"gateways": [gateway.name], gateway.name: gateway.config()},
    }
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        if channel == "telegram":
            await app.http.post("/telegram/webhook", json=telegram_text_update(1, 4242, "/topup 50rb"),
                                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
            texts = lambda: bot.texts_to(4242)  # noqa: E731
            prefix = "/"
        else:
            raw, headers = signed(text_update("6285700000001", "TOPUP 50rb", "wamid.gw1"))
            await app.http.post("/whatsapp/webhook", content=raw, headers=headers)
            texts = lambda: graph.texts_to("6285700000001")  # noqa: E731
            prefix = ""
        await wait_for(lambda: gateway.orders)
        order_id = next(iter(gateway.orders))
        link = await wait_for(lambda: next((t for t in texts() if order_id in t), None))
        assert re.search(r"https?://\S+", link) and f"{prefix}cek" in link
        if gateway.name == "duitku":  # Duitku returned a QRIS string: a QR image follows the link
            await wait_for(lambda: any("Scan QRIS" in t for t in texts()))
        body, headers = gateway.callback(order_id, "paid")
        response = await app.http.post(f"/payments/{gateway.name}/notify", content=body, headers=headers)
        assert response.status_code == 200
        await wait_for(lambda: said(texts(), "Saldo bertambah Rp50.000", "saldo sekarang Rp50.000 ✅"))
