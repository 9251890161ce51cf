"""Hostile bodies get a 4xx and one WARNING line — never a 5xx, an ERROR or a traceback — and change nothing."""

from __future__ import annotations

import json
import logging

from sqlalchemy import func, select

from storage.models import GatewayEvent, InboundUpdate
from tests.support.harness import AppUnderTest

SECRET = "tg-secret"
DEEP = b"[" * 200_000


def config(bot, graph, midtrans) -> dict:
    return {"telegram": {"token": bot.token, "mode": "webhook", "webhook_secret": SECRET,
                         "api_base_url": bot.base_url},
            "whatsapp": graph.config(), "payments": {"gateways": ["midtrans", "sandbox"],
                                                     "midtrans": midtrans.config()}}


def problems(caplog) -> list[str]:
    return [f"{r.levelname} {r.name}: {r.getMessage()[:120]}" for r in caplog.records if r.levelno >= logging.ERROR]


async def test_deeply_nested_json_to_a_gateway_is_400_with_a_warning(tmp_path, fresh_db_url, bot, graph, midtrans,
                                                                      caplog):
    caplog.set_level(logging.WARNING)
    async with AppUnderTest(tmp_path, fresh_db_url, config(bot, graph, midtrans)) as app:
        for gateway in ("midtrans", "sandbox"):
            response = await app.http.post(f"/payments/{gateway}/notify", content=DEEP,
                                           headers={"Content-Type": "application/json"})
            assert response.status_code in (400, 401), gateway
        response = await app.http.post("/telegram/webhook", content=DEEP,
                                       headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert response.status_code == 400
        response = await app.http.post("/whatsapp/webhook", content=DEEP, headers={
            "Content-Type": "application/json", "X-Hub-Signature-256": signed_raw(DEEP)})
        assert response.status_code == 400
        async with app.runtime.db.read() as session:
            assert await session.scalar(select(func.count()).select_from(GatewayEvent)) == 0
    assert problems(caplog) == []
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def signed_raw(raw: bytes) -> str:
    import hashlib
    import hmac

    from tests.support.whatsapp import APP_SECRET

    return "sha256=" + hmac.new(APP_SECRET.encode(), raw, hashlib.sha256).hexdigest()


async def test_a_malformed_update_from_telegram_itself_is_acknowledged_and_logged(tmp_path, fresh_db_url, bot, graph,
                                                                                 midtrans, caplog):
    caplog.set_level(logging.WARNING)
    async with AppUnderTest(tmp_path, fresh_db_url, config(bot, graph, midtrans)) as app:
        for body in ({"update_id": 1, "message": "x"}, {"update_id": 2, "callback_query": [1, 2]},
                     {"update_id": 3, "message": {"chat": "nope"}}):
            response = await app.http.post("/telegram/webhook", content=json.dumps(body),
                                           headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
            assert response.status_code == 200  # acknowledged: Telegram would otherwise resend it forever
        response = await app.http.post("/telegram/webhook", content=b'{"update_id": true}',
                                       headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})
        assert response.status_code == 400
        async with app.runtime.db.read() as session:
            assert await session.scalar(select(func.count()).select_from(InboundUpdate)) == 0
    assert problems(caplog) == []
    assert any("could not be read" in r.getMessage() for r in caplog.records)
