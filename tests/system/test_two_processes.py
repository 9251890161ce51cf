"""Two server processes on one PostgreSQL, each with its own outbox sender and reconciler, webhook traffic
hitting either: every payment credited once, every notice sent once, no payment checked by both at once."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiohttp
import pytest
from sqlalchemy import func, insert, select

from storage.db import Database
from storage.models import OutboxMessage, Payment, Transfer, User
from tests.support.midtrans import FakeMidtrans, MidtransOrder
from tests.support.money import assert_books_hold, wallets_total
from tests.support.processes import ServerProcess
from tests.support.telegram import FakeBotAPI, telegram_text_update
from tests.support.waiting import wait_for

USERS, PAYMENTS, SECRET = 40, 300, "two-proc-secret"


@pytest.fixture
async def fakes():
    async with FakeBotAPI() as bot, FakeMidtrans(status_delay_s=0.02) as midtrans:
        yield bot, midtrans


async def seed(url: str, midtrans: FakeMidtrans) -> list[dict]:
    now = datetime.now(UTC)
    db = Database(url)
    async with db.write() as session:
        await session.execute(insert(User), [{"channel": "telegram", "external_id": str(500_000 + i),
                                              "language": "id", "created_at": now}
                                             for i in range(USERS)])
        ids = (await session.scalars(select(User.id).order_by(User.id))).all()
        notes = []
        for i in range(PAYMENTS):
            order_id = f"TWO-{i:04d}"
            midtrans.orders[order_id] = MidtransOrder(order_id, 20_000 + i, {}, {})
            notes.append(midtrans.settle(order_id))
        await session.execute(insert(Payment), [
            {"order_id": n["order_id"], "user_id": ids[i % USERS], "gateway": "midtrans", "amount": 20_000 + i,
             "status": "pending", "created_at": now, "updated_at": now} for i, n in enumerate(notes)])
    await db.close()
    return notes


async def test_two_processes_share_the_work_and_never_double_it(tmp_path, fresh_db_url, fakes):
    if not fresh_db_url.startswith("postgresql"):
        pytest.skip("several processes share one PostgreSQL; an SQLite file belongs to one process")
    bot, midtrans = fakes
    notes = await seed(fresh_db_url, midtrans)
    env = {
        "BOT_PAYMENTS__GATEWAYS": '["midtrans"]', "BOT_PAYMENTS__MIDTRANS__SERVER_KEY": midtrans.server_key,
        "BOT_PAYMENTS__MIDTRANS__API_BASE_URL": midtrans.url, "BOT_PAYMENTS__MIDTRANS__SNAP_BASE_URL": midtrans.url,
        "BOT_TELEGRAM__TOKEN": bot.token, "BOT_TELEGRAM__MODE": "webhook", "BOT_TELEGRAM__WEBHOOK_SECRET": SECRET,
        "BOT_TELEGRAM__API_BASE_URL": bot.base_url, "BOT_TELEGRAM__RATE_PER_SECOND": "100000",
        "BOT_TELEGRAM__PER_CHAT_INTERVAL_S": "0", "BOT_OUTBOX__POLL_INTERVAL_S": "0.05",
        "BOT_OUTBOX__BATCH_SIZE": "20", "BOT_RECONCILE__INTERVAL_S": "0.2",
    }
    servers = [ServerProcess(tmp_path, fresh_db_url, env, log_path=tmp_path / f"server{i}.log") for i in range(2)]
    for server in servers:
        await server.start()
    try:
        async with aiohttp.ClientSession() as http:

            async def post(server: ServerProcess, path: str, body: bytes, headers: dict[str, str]) -> int:
                async with http.post(server.url + path, data=body, headers=headers) as response:
                    return response.status

            # Every callback for the first 200 payments goes to both processes at once; the last 100 get no
            # callback at all, so only the two reconcilers (racing each other) can credit them.
            json_headers = {"Content-Type": "application/json"}
            answers = await asyncio.gather(*(post(s, "/payments/midtrans/notify", json.dumps(n).encode(), json_headers)
                                             for n in notes[:200] for s in servers))
            assert set(answers) == {200}
            updates = [post(servers[i % 2], "/telegram/webhook",
                            json.dumps(telegram_text_update(i + 1, 500_000 + i, "SALDO")).encode(),
                            {**json_headers, "X-Telegram-Bot-Api-Secret-Token": SECRET}) for i in range(USERS)]
            assert set(await asyncio.gather(*updates)) == {200}

        db = Database(fresh_db_url)
        try:
            async def settled() -> bool:
                async with db.read() as session:
                    unpaid = await session.scalar(select(func.count()).where(Payment.status != "paid"))
                    unsent = await session.scalar(select(func.count()).where(OutboxMessage.status != "sent"))
                return unpaid == 0 and unsent == 0

            await wait_for(settled, timeout=60, interval=0.2)
            async with db.read() as session:
                credits = dict((await session.execute(
                    select(Transfer.reference, func.count()).group_by(Transfer.reference))).all())
                notices = await session.scalar(select(func.count()).select_from(OutboxMessage))
            balances = await wallets_total(db)
            await assert_books_hold(db)
        finally:
            await db.close()
    finally:
        for server in servers:
            await server.stop()

    assert len(credits) == PAYMENTS and set(credits.values()) == {1}  # each payment credited exactly once
    assert balances == sum(20_000 + i for i in range(PAYMENTS))
    credit_texts = [c for c in bot.calls if c.method == "sendMessage" and "Saldo bertambah" in c.params["text"]]
    assert notices == PAYMENTS and len(credit_texts) == PAYMENTS  # each notice sent once, by one of them
    assert len({c.params["text"] + str(c.params["chat_id"]) for c in credit_texts}) == PAYMENTS
    saldo_replies = [c for c in bot.calls if c.method == "sendMessage" and "Saldo kamu" in c.params["text"]]
    assert len(saldo_replies) == USERS  # webhook traffic was served by both
    assert midtrans.overlapping_status == []  # never checked by both reconcilers at once
    assert set(midtrans.status_calls) >= {n["order_id"] for n in notes[200:]}


async def test_processes_starting_together_on_an_empty_database_migrate_one_after_the_other(db_url):
    if not db_url.startswith("postgresql"):
        pytest.skip("several processes share one PostgreSQL; an SQLite file belongs to one process")
    from sqlalchemy import text

    from storage.migrate import upgrade
    from tests.conftest import reset_postgres

    await reset_postgres(db_url)
    engines = [Database(db_url) for _ in range(4)]
    try:
        await asyncio.gather(*(upgrade(db) for db in engines))  # no "relation already exists"
        async with engines[0].read() as session:
            assert await session.scalar(text("SELECT count(*) FROM alembic_version")) == 1
    finally:
        for db in engines:
            await db.close()
