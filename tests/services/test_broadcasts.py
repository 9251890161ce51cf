"""Paid broadcasts: held up front, charged per accepted message, failures released, never below zero."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from bot.app import build_runtime
from services.clock import FrozenClock
from services.errors import InsufficientFunds
from storage.migrate import upgrade
from storage.models import OutboxMessage
from tests.support.harness import write_settings
from tests.support.money import assert_books_hold


@pytest.fixture
async def rt(tmp_path, fresh_db_url, bot):
    settings = write_settings(tmp_path, {
        "database": {"url": fresh_db_url}, "payments": {"gateways": ["sandbox"]},
        "telegram": {"token": bot.token, "mode": "webhook", "webhook_secret": "s", "api_base_url": bot.base_url,
                     "rate_per_second": 10000, "per_chat_interval_s": 0},
        "broadcast": {"price_per_message": 500, "progress_interval_s": 0},
        "outbox": {"batch_size": 10},  # several rounds per broadcast, so progress shows in steps
    })
    runtime = build_runtime(settings, clock=FrozenClock())
    await upgrade(runtime.db)
    await runtime.telegram.start()
    yield runtime
    await runtime.telegram.stop()
    await runtime.http.aclose()
    await runtime.db.close()


async def trip_with(rt, participants: int, balance: int) -> int:
    owner = (await rt.services.inbound.register(channel="telegram", external_id="1", display_name="J",
                                              update_key=None)).user.id
    if balance:
        await rt.services.wallet.credit(owner, balance, reference="seed")
    await rt.services.trips.create(owner, "jpn25", "Jastip Jepang", rt.clock.now() + timedelta(days=3))
    for i in range(participants):
        uid = (await rt.services.inbound.register(channel="telegram", external_id=str(5000 + i), display_name="P",
                                                update_key=None)).user.id
        await rt.services.trips.join(uid, "jpn25", f"P{i}")
    return owner


async def deliver_all(rt) -> None:
    while await rt.outbox.deliver_due():
        pass
    await rt.services.broadcasts.settle()


async def ledger_sum(rt, owner: int) -> int:
    """The wallet's balance, after checking that the books hold (stored balances = their transfers, holds
    resolved to zero)."""
    await assert_books_hold(rt.db)
    return await rt.services.wallet.balance(owner)


async def test_a_broadcast_to_100_charges_exactly_the_accepted_messages(rt, bot):
    owner = await trip_with(rt, 100, 100_000)
    bot.blocked_chats = {str(5000 + i) for i in range(0, 100, 20)}  # 5 % refuse
    preview = await rt.services.broadcasts.preview(owner, "jpn25", "Produk baru sudah masuk!")
    assert (preview.recipients, preview.total, preview.balance) == (100, 50_000, 100_000)
    started = (await rt.services.broadcasts.confirm(owner, preview.id)).started
    assert started is not None and started.balance == 50_000  # the whole amount is held first

    await deliver_all(rt)
    receipt = await rt.services.broadcasts.receipt(preview.id)
    assert (receipt.sent, receipt.failed, receipt.charged, receipt.released) == (95, 5, 47_500, 2_500)
    assert await rt.services.wallet.balance(owner) == 100_000 - 47_500 == await ledger_sum(rt, owner)
    texts = [t for t in bot.texts_to(1) if "Siaran #" in t]
    assert texts == [f"Siaran #{preview.id} selesai: 95 terkirim, 5 gagal. Dibayar Rp47.500, dikembalikan Rp2.500."]
    assert len([c for c in bot.calls if c.method == "sendMessage" and "📢" in c.params["text"]]) == 95


async def test_two_broadcasts_on_a_balance_that_covers_one_never_go_negative(rt):
    owner = await trip_with(rt, 10, 5_000)  # covers exactly one broadcast of 10 × 500
    first = await rt.services.broadcasts.preview(owner, "jpn25", "satu")
    second = await rt.services.broadcasts.preview(owner, "jpn25", "dua")
    broadcasts = rt.services.broadcasts
    results = await asyncio.gather(broadcasts.confirm(owner, first.id), broadcasts.confirm(owner, second.id),
                                   return_exceptions=True)
    assert sum(isinstance(r, InsufficientFunds) for r in results) == 1
    assert await rt.services.wallet.balance(owner) == 0 == await ledger_sum(rt, owner)
    async with rt.db.read() as session:
        queued = await session.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.template == "broadcast_message"))
    assert queued == 10


async def test_a_failure_reported_after_sending_gives_that_message_back_once(rt, bot):
    owner = await trip_with(rt, 3, 10_000)
    preview = await rt.services.broadcasts.preview(owner, "jpn25", "halo")
    await rt.services.broadcasts.confirm(owner, preview.id)
    await deliver_all(rt)
    assert await rt.services.wallet.balance(owner) == 10_000 - 1_500
    async with rt.db.read() as session:
        wamid = await session.scalar(select(OutboxMessage.provider_message_id).where(
            OutboxMessage.template == "broadcast_message").limit(1))
    for _ in range(2):  # the status webhook may be delivered twice
        await rt.outbox.delivery_failed("telegram", wamid, "131026: undeliverable")
        await rt.services.broadcasts.settle()
    receipt = await rt.services.broadcasts.receipt(preview.id)
    assert (receipt.sent, receipt.failed, receipt.charged, receipt.released) == (2, 1, 1_000, 500)
    assert await rt.services.wallet.balance(owner) == 9_000 == await ledger_sum(rt, owner)


async def test_a_confirmed_broadcast_cannot_be_confirmed_or_cancelled_again(rt):
    owner = await trip_with(rt, 2, 10_000)
    preview = await rt.services.broadcasts.preview(owner, "jpn25", "x")
    await rt.services.broadcasts.confirm(owner, preview.id)
    with pytest.raises(Exception) as caught:
        await rt.services.broadcasts.confirm(owner, preview.id)
    assert getattr(caught.value, "key", "") == "broadcast_already"
    assert not await rt.services.broadcasts.cancel(owner, preview.id)
    assert await rt.services.wallet.balance(owner) == 9_000


async def test_on_telegram_the_start_message_is_edited_into_the_final_count(rt, bot):
    from handlers.router import Incoming

    owner = await trip_with(rt, 30, 20_000)
    bot.blocked_chats = {"5003", "5017"}
    preview = await rt.services.broadcasts.preview(owner, "jpn25", "Produk baru!")
    tap = Incoming(channel="telegram", chat_id="1", user_id="1", display_name="J",
                   callback_data=f"bc:ok:{preview.id}", update_key="tap-1")
    await rt.conversation.respond(tap)  # the "started" message, as the adapter sends it
    await rt.conversation.drain()
    started = next(c.params for c in bot.calls if c.method == "sendMessage" and "Siaran dikirim" in c.params["text"])

    await deliver_all(rt)
    await rt.progress.drain()
    edits = [c.params for c in bot.calls if c.method == "editMessageText"]
    assert len(edits) >= 3, "progress was not shown while the broadcast ran"
    assert "berjalan: 10/30 diproses" in edits[0]["text"]
    assert {(str(e["chat_id"]), str(e["message_id"])) for e in edits} == {("1", str(started["_message_id"]))}
    assert edits[-1]["text"] == (f"✅ Siaran #{preview.id} selesai: 28 dari 30 terkirim, 2 gagal. "
                                 "Rinciannya ada di struk.")
    assert await rt.services.wallet.balance(owner) == 20_000 - 28 * 500 == await ledger_sum(rt, owner)


async def test_send_charges_only_what_the_preview_showed_and_a_changed_audience_gets_a_fresh_preview(rt):
    owner = await trip_with(rt, 1, 10_000)
    preview = await rt.services.broadcasts.preview(owner, "jpn25", "Barang sudah dibeli!")
    assert (preview.recipients, preview.total, preview.text) == (1, 500, "Barang sudah dibeli!")
    for i in range(2):  # two more people join after the preview was shown
        uid = (await rt.services.inbound.register(channel="telegram", external_id=str(7000 + i), display_name="N",
                                                update_key=None)).user.id
        await rt.services.trips.join(uid, "jpn25", f"N{i}")
    done = await rt.services.broadcasts.confirm(owner, preview.id)
    assert done.started is None and done.reason == "audience"
    assert (done.fresh.recipients, done.fresh.total, done.fresh.text) == (3, 1_500, "Barang sudah dibeli!")
    assert await rt.services.wallet.balance(owner) == 10_000  # nothing held or charged for the stale preview
    with pytest.raises(Exception) as caught:  # the stale preview cannot be sent any more
        await rt.services.broadcasts.confirm(owner, preview.id)
    assert getattr(caught.value, "key", "") == "broadcast_already"
    started = (await rt.services.broadcasts.confirm(owner, done.fresh.id)).started
    assert started.total == 1_500 and await rt.services.wallet.balance(owner) == 8_500


async def test_a_preview_older_than_fifteen_minutes_is_shown_again_instead_of_sent(rt):
    owner = await trip_with(rt, 2, 10_000)
    preview = await rt.services.broadcasts.preview(owner, "jpn25", "halo")
    rt.clock.advance(minutes=16)
    done = await rt.services.broadcasts.confirm(owner, preview.id)
    assert done.started is None and done.reason == "expired" and done.fresh.total == 1_000
    assert await rt.services.wallet.balance(owner) == 10_000


async def test_the_preview_shows_the_text_and_offers_a_top_up_when_the_balance_is_short(rt, bot):
    from handlers.router import Incoming

    await trip_with(rt, 4, 500)
    ask = Incoming(channel="telegram", chat_id="1", user_id="1", display_name="J",
                   text="BROADCAST jpn25 Barang tiba Senin", update_key="bc-ask")
    (reply,) = await rt.conversation.handle(ask)
    assert "Barang tiba Senin" in reply.text and "4 penerima × Rp500 = Rp2.000" in reply.text
    assert "Saldo kurang Rp1.500" in reply.text
    labels = [b.label for row in reply.buttons for b in row]
    assert labels == ["Kirim siaran", "Batalkan siaran", "Isi saldo Rp10.000"]  # the minimum top-up covers it
