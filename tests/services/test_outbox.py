"""Outbox delivery through the real Telegram adapter to a fake Bot API on loopback: retries, restarts, leases."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from bot.app import build_runtime
from handlers.i18n import render_notice
from services.clock import FrozenClock
from services.outbox import OutboxSender, enqueue
from storage.migrate import upgrade
from storage.models import OutboxMessage
from tests.support.harness import write_settings
from tests.support.telegram import FakeBotAPI


async def make_runtime(tmp_path, url, bot: FakeBotAPI | None, clock=None):
    config = {"database": {"url": url}, "payments": {"gateways": ["sandbox"]}}
    if bot is not None:
        config["telegram"] = {"token": bot.token, "mode": "webhook", "webhook_secret": "s",
                              "api_base_url": bot.base_url}
    rt = build_runtime(write_settings(tmp_path, config), clock=clock or FrozenClock())
    await upgrade(rt.db)
    if rt.telegram is not None:
        await rt.telegram.start()
    return rt


async def close(rt) -> None:
    await rt.delivery.close()
    if rt.telegram is not None:
        await rt.telegram.stop()
    await rt.http.aclose()
    await rt.db.close()


async def queue(rt, chat_ids, template="payment_credited") -> None:
    async with rt.db.write() as session:
        for i, chat in enumerate(chat_ids):
            await enqueue(session, channel="telegram", chat_id=str(chat), language="id", template=template,
                          params={"amount": 50_000, "balance": 50_000, "order_id": f"TT{i}"},
                          now=rt.clock.now(), dedupe_key=f"test:{chat}:{i}")


async def rows(rt) -> list[tuple[str, str, int]]:
    async with rt.db.read() as session:
        found = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all()
        return [(r.chat_id, r.status, r.attempts) for r in found]


async def test_a_429_is_retried_after_retry_after_and_then_delivered(tmp_path, fresh_db_url, bot):
    rt = await make_runtime(tmp_path, fresh_db_url, bot)
    try:
        await queue(rt, [42])
        bot.fail_next = [(429, 1)]
        assert await rt.outbox.deliver_due() == 1
        assert await rows(rt) == [("42", "pending", 1)]
        assert await rt.outbox.deliver_due() == 0  # not due yet
        rt.clock.advance(seconds=5)
        assert await rt.outbox.deliver_due() == 1
        assert await rows(rt) == [("42", "sent", 2)]
        assert bot.texts_to(42) == ["Saldo bertambah Rp50.000 (kode TT0) — saldo sekarang Rp50.000 ✅"]
    finally:
        await close(rt)


async def test_server_errors_back_off_and_nothing_is_lost(tmp_path, fresh_db_url, bot):
    rt = await make_runtime(tmp_path, fresh_db_url, bot)
    try:
        await queue(rt, [1, 2, 3])
        bot.fail_next = [(502, None), (500, None), (503, None)]
        await rt.outbox.deliver_due()
        assert [s for _, s, _ in await rows(rt)] == ["pending"] * 3
        rt.clock.advance(minutes=1)
        await rt.outbox.deliver_due()
        assert [s for _, s, _ in await rows(rt)] == ["sent"] * 3
        assert all(len(bot.texts_to(c)) == 1 for c in (1, 2, 3))
    finally:
        await close(rt)


async def test_a_blocked_chat_is_marked_failed_and_not_retried(tmp_path, fresh_db_url, bot):
    rt = await make_runtime(tmp_path, fresh_db_url, bot)
    try:
        await queue(rt, [7])
        bot.fail_next = [(403, None)]
        await rt.outbox.deliver_due()
        rt.clock.advance(hours=1)
        assert await rt.outbox.deliver_due() == 0
        assert await rows(rt) == [("7", "failed", 1)]
    finally:
        await close(rt)


async def test_notices_queued_while_telegram_was_off_are_delivered_after_a_restart(tmp_path, fresh_db_url, bot):
    clock = FrozenClock()
    offline = await make_runtime(tmp_path, fresh_db_url, None, clock)
    await queue(offline, [11, 12])
    assert await offline.outbox.deliver_due() == 0
    await close(offline)

    online = await make_runtime(tmp_path, fresh_db_url, bot, clock)
    try:
        assert await online.outbox.deliver_due() == 2
        assert [s for _, s, _ in await rows(online)] == ["sent", "sent"]
    finally:
        await close(online)


async def test_two_senders_never_send_the_same_notice(tmp_path, fresh_db_url, bot):
    rt = await make_runtime(tmp_path, fresh_db_url, bot)
    try:
        await queue(rt, range(100, 160))
        second = OutboxSender(rt.db, rt.delivery, render_notice, rt.clock, rt.signals, batch_size=7)
        first = OutboxSender(rt.db, rt.delivery, render_notice, rt.clock, rt.signals, batch_size=5)
        while sum(await asyncio.gather(first.deliver_due(), second.deliver_due())):
            pass
        sent = [c.params["chat_id"] for c in bot.calls if c.method == "sendMessage"]
        assert sorted(sent) == sorted(str(c) for c in range(100, 160))
    finally:
        await close(rt)
