"""A bot written against the top-up Worker (bot-topup-backend v1.1.1, protocols-more.md §9) works against Titip
after changing only its base URL and shared secret: this test plays that bot with the Worker's exact request
and response shapes, and checks the forwarded credit the way the Worker README's example bot does."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from storage.models import OutboxMessage
from tests.support.client_bot import FakeClientBot
from tests.support.harness import AppUnderTest
from tests.support.money import assert_books_hold
from tests.support.waiting import wait_for
from tests.webhooks.test_deposit_api import api_config, pay

CREATED_KEYS = {"ok", "depositId", "reference", "paymentUrl"}
STATUS_KEYS = {"ok", "depositId", "userId", "amount", "status", "credited", "paymentUrl", "reference", "createdAt",
               "callbackReceived", "creditedAt", "creditResult"}


@pytest.fixture
async def worker_bot():
    async with FakeClientBot() as bot:
        yield bot


@pytest.fixture
async def app(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, api_config()) as running:
        yield running


async def worker_client(app: AppUnderTest, bot: FakeClientBot) -> str:
    """`clients add bot --worker --callback-url <the bot's /internal/deposit-callback>`; the bot's new secret."""
    creds = await app.runtime.api.clients.add("legacybot", bot.worker_url(), worker=True)
    bot.shared_secret = creds.api_key  # the one setting the bot's operator changes, besides the base URL
    return creds.api_key


async def test_a_worker_bot_creates_reads_and_is_credited_through_titip_unchanged(app, worker_bot):
    secret = await worker_client(app, worker_bot)
    auth = {"Authorization": f"Bearer {secret}"}
    health = (await app.http.get("/health")).json()
    assert health["ok"] is True and isinstance(health["timestamp"], int)

    created = await app.http.post("/deposit/create", headers=auth, json={
        "userId": "778899", "amount": 50_000, "msisdn": "6281234567890", "email": "budi@example.com",
        "productDetails": "Deposit saldo bot"})
    assert created.status_code == 200, created.text
    body = created.json()
    assert set(body) == CREATED_KEYS and body["ok"] is True
    assert body["depositId"].startswith("DEP") and body["paymentUrl"].startswith(app.url)

    status = (await app.http.get("/deposit/status", params={"depositId": body["depositId"]}, headers=auth)).json()
    assert set(status) == STATUS_KEYS
    assert (status["status"], status["credited"], status["callbackReceived"], status["creditResult"]) == (
        "PENDING", False, False, None)
    assert status["userId"] == "778899" and status["amount"] == 50_000 and isinstance(status["createdAt"], int)

    order_id = body["paymentUrl"].rsplit("/", 1)[1]
    assert await pay(app, order_id, 50_000, times=3) == [200, 200, 200]
    await wait_for(lambda: worker_bot.accepted())
    (credit,) = worker_bot.accepted()  # verified as the README bot verifies: Bearer, then HMAC of the JSON
    assert credit.path == "/internal/deposit-callback"
    assert list(credit.json) == ["depositId", "userId", "amount", "reference", "status"]
    assert credit.json == {"depositId": body["depositId"], "userId": "778899", "amount": 50_000,
                           "reference": body["reference"], "status": "PAID"}
    assert credit.body == json.dumps(credit.json, separators=(",", ":")).encode()  # compact, as it re-serialises

    async def credited():
        now = (await app.http.get("/deposit/status", params={"depositId": body["depositId"]}, headers=auth)).json()
        return now if now["credited"] else None

    status = await wait_for(credited)
    assert (status["status"], status["callbackReceived"], status["creditResult"]) == ("PAID", True, {"ok": True})
    assert isinstance(status["creditedAt"], int) and status["creditedAt"] >= status["createdAt"]
    await assert_books_hold(app.runtime.db)


async def test_the_workers_idempotent_deposit_id_and_its_error_shapes(app, worker_bot):
    secret = await worker_client(app, worker_bot)
    auth = {"Authorization": f"Bearer {secret}"}
    request = {"userId": "1", "amount": 20_000, "depositId": "DEPF8A3B9C4E5D2", "productDetails": "x"}
    first = (await app.http.post("/deposit/create", headers=auth, json=request)).json()
    again = (await app.http.post("/deposit/create", headers=auth, json=request)).json()
    assert first == again and first["depositId"] == "DEPF8A3B9C4E5D2"
    wrong = await app.http.post("/deposit/create", headers={"Authorization": "Bearer nope"}, json=request)
    assert wrong.status_code == 401 and wrong.json() == {"ok": False, "message": "Unauthorized"}
    missing = await app.http.get("/deposit/status", params={"depositId": "DEP000"}, headers=auth)
    assert missing.status_code == 404 and missing.json()["ok"] is False
    api_client = await app.runtime.api.clients.add("modern", "http://127.0.0.1:9/hook")
    refused = await app.http.post("/deposit/create", headers={"Authorization": f"Bearer {api_client.api_key}"},
                                  json=request)
    assert refused.status_code == 401  # the Worker's routes are for --worker clients


async def test_an_invoice_no_gateway_can_create_answers_502_in_the_workers_shape(tmp_path, fresh_db_url, midtrans,
                                                                              worker_bot):
    config = {**api_config(), "payments": {"gateways": ["midtrans"], "midtrans": midtrans.config()}}
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        secret = await worker_client(app, worker_bot)
        midtrans.create_failures = [500]
        answer = await app.http.post("/deposit/create", headers={"Authorization": f"Bearer {secret}"},
                                     json={"userId": "1", "amount": 20_000})
        assert answer.status_code == 502
        body = answer.json()
        assert (body["ok"], body["message"], set(body["detail"])) == (False, "Gagal membuat invoice", {"raw"})


async def test_a_reversed_worker_deposit_reads_reversed_is_not_forwarded_and_admins_are_told(tmp_path, fresh_db_url,
                                                                                          midtrans, worker_bot):
    config = {**api_config(), "payments": {"gateways": ["midtrans"], "midtrans": midtrans.config()}}
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        secret = await worker_client(app, worker_bot)
        auth = {"Authorization": f"Bearer {secret}"}
        made = (await app.http.post("/deposit/create", headers=auth, json={"userId": "9", "amount": 30_000})).json()
        (order_id,) = list(midtrans.orders)
        assert (await app.http.post("/payments/midtrans/notify", json=midtrans.settle(order_id))).status_code == 200
        await wait_for(lambda: worker_bot.accepted())
        deny = midtrans.settle(order_id, "deny", fraud_status=None)
        assert (await app.http.post("/payments/midtrans/notify", json=deny)).status_code == 200
        status = (await app.http.get("/deposit/status", params={"depositId": made["depositId"]}, headers=auth)).json()
        assert status["status"] == "REVERSED"
        async with app.runtime.db.read() as session:
            alerts = (await session.scalars(select(OutboxMessage.template).where(OutboxMessage.chat_id == "999"))).all()
            forwards = (await session.scalars(select(OutboxMessage.template).where(
                OutboxMessage.channel == "webhook"))).all()
        assert "admin_deposit_reversed" in alerts and forwards == ["deposit.paid"]
        assert len(worker_bot.deliveries) == 1
        await assert_books_hold(app.runtime.db)
