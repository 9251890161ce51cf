"""Forwarding deposit events to client bots' servers: at least once under a stable id, whatever their server
does (errors, timeouts, an hour down, three days down), on the clock rather than by sleeping; and one slow
client never holds back another client or anyone's chat notice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from services.clock import FrozenClock
from storage.models import OutboxMessage
from tests.support.client_bot import FakeClientBot
from tests.support.harness import AppUnderTest
from tests.support.money import assert_books_hold
from tests.support.waiting import wait_for
from tests.webhooks.test_deposit_api import add_client, api_config, create, pay


@pytest.fixture
async def receiver():
    async with FakeClientBot() as bot:
        yield bot


async def forward_row(app: AppUnderTest) -> OutboxMessage:
    async with app.runtime.db.read() as session:
        return await session.scalar(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))


async def settled_for_now(app: AppUnderTest, clock: FrozenClock):
    """The forward is delivered, given up, or waits for a later moment than now: nothing is due."""
    row = await forward_row(app)
    if row is None:
        return None
    if row.status != "pending":
        return row
    return row if row.next_attempt_at > clock.now() and row.lease_until is None else None


async def paid_deposit(app: AppUnderTest, key: str, deposit_id: str = "d1") -> None:
    made = await create(app, key, deposit_id=deposit_id)
    assert made.status_code == 201, made.text
    assert await pay(app, made.json()["payment_url"].rsplit("/", 1)[1]) == [200]


async def test_a_server_answering_500_gets_the_same_event_again_until_it_acknowledges(tmp_path, fresh_db_url,
                                                                                      receiver):
    clock = FrozenClock()
    async with AppUnderTest(tmp_path, fresh_db_url, api_config(), clock=clock) as app:
        creds = await add_client(app, receiver)
        receiver.answers = [500, 502, 429]
        await paid_deposit(app, creds.api_key)
        while (row := await wait_for(lambda: settled_for_now(app, clock))).status == "pending":
            clock.advance(minutes=1)
        assert row.status == "sent" and row.attempts == 4 and row.last_status == 200
        assert [d.answered for d in receiver.deliveries] == [500, 502, 429, 200]
        assert len({d.headers["webhook-id"] for d in receiver.deliveries}) == 1  # one event, one id, every retry
        assert len({d.body for d in receiver.deliveries}) == 1  # and the same bytes
        assert all(d.verified for d in receiver.deliveries)  # each attempt signed afresh (its own timestamp)
        await assert_books_hold(app.runtime.db)


async def test_a_server_that_times_out_is_retried_and_may_see_the_event_twice_under_one_id(tmp_path, fresh_db_url,
                                                                                          receiver):
    clock = FrozenClock()
    async with AppUnderTest(tmp_path, fresh_db_url, api_config(forward_timeout_s=0.3), clock=clock) as app:
        creds = await add_client(app, receiver)
        receiver.hang_s = 1.0  # longer than we wait for an answer
        await paid_deposit(app, creds.api_key)
        row = await wait_for(lambda: settled_for_now(app, clock))
        assert row.status == "pending" and row.attempts == 1 and row.last_status is None
        assert "Timeout" in row.last_error
        receiver.hang_s = 0.0
        while (row := await wait_for(lambda: settled_for_now(app, clock))).status == "pending":
            clock.advance(minutes=1)
        assert row.status == "sent"
        await wait_for(lambda: len(receiver.deliveries) == 2)  # the hung one finished too, late
        assert len({d.headers["webhook-id"] for d in receiver.deliveries}) == 1


async def test_a_server_down_for_an_hour_receives_the_event_when_it_is_back(tmp_path, fresh_db_url, receiver):
    clock = FrozenClock()
    async with AppUnderTest(tmp_path, fresh_db_url, api_config(), clock=clock) as app:
        creds = await add_client(app, receiver)
        await receiver.down()
        await paid_deposit(app, creds.api_key)
        started = clock.now()
        while clock.now() - started < timedelta(hours=1):
            row = await wait_for(lambda: settled_for_now(app, clock))
            assert row.status == "pending"
            clock.advance(minutes=5)
        tries_while_down = (await forward_row(app)).attempts
        assert tries_while_down >= 5  # backing off: 2 s, 4 s, 8 s … then at most an hour apart
        await receiver.up()
        while (row := await wait_for(lambda: settled_for_now(app, clock))).status == "pending":
            clock.advance(minutes=10)
        assert row.status == "sent" and row.attempts == tries_while_down + 1
        assert len(receiver.accepted()) == 1
        assert (await app.runtime.api.clients.summaries())[0].owed == 25_000  # credited once, whatever happened


async def test_after_three_days_of_failures_admins_are_told_and_resend_delivers_it(tmp_path, fresh_db_url, receiver):
    clock = FrozenClock()
    async with AppUnderTest(tmp_path, fresh_db_url, api_config(), clock=clock) as app:
        creds = await add_client(app, receiver)
        receiver.answers = [503] * 1000
        await paid_deposit(app, creds.api_key)
        while (row := await wait_for(lambda: settled_for_now(app, clock))).status == "pending":
            clock.advance(hours=1)
        assert row.status == "failed" and row.last_status == 503
        assert (clock.now() - row.created_at).days >= 3
        async with app.runtime.db.read() as session:
            alerts = (await session.scalars(select(OutboxMessage).where(
                OutboxMessage.template == "admin_forward_failed"))).all()
        assert [(a.chat_id, a.params["client"], a.params["deposit_id"]) for a in alerts] == [("999", "shopbot", "d1")]
        tried = len(receiver.deliveries)
        receiver.answers = []
        assert await app.runtime.api.clients.resend("shopbot", "d1") == 1
        row = await wait_for(lambda: settled_for_now(app, clock))
        while row.status == "pending":
            clock.advance(minutes=1)
            row = await wait_for(lambda: settled_for_now(app, clock))
        assert row.status == "sent" and len(receiver.deliveries) == tried + 1
        assert receiver.deliveries[-1].headers["webhook-id"] == receiver.deliveries[0].headers["webhook-id"]


async def test_a_client_whose_server_hangs_never_delays_another_client_or_a_chat_notice(tmp_path, fresh_db_url):
    async with FakeClientBot(hang_s=30.0) as slow, FakeClientBot() as quick, \
            AppUnderTest(tmp_path, fresh_db_url, api_config(forward_timeout_s=60, rate_per_minute=1000)) as app:
        slow_creds = await add_client(app, slow, name="slowbot")
        quick_creds = await add_client(app, quick, name="quickbot")
        for n in range(40):  # more than the slow client may have in flight
            await paid_deposit(app, slow_creds.api_key, f"s{n}")
        await wait_for(lambda: len(slow.deliveries) == 0 and app.runtime.webhook is not None)
        await paid_deposit(app, quick_creds.api_key, "q1")
        person = await app.runtime.services.inbound.register(channel="playground", external_id="v1.siti",
                                                             display_name="Siti", update_key=None)
        link = await app.runtime.services.topups.start(user_id=person.user.id, customer_name="Siti", amount=50_000)
        assert await pay(app, link.order_id, amount=50_000) == [200]

        async def notice_sent():
            async with app.runtime.db.read() as session:
                return await session.scalar(select(OutboxMessage.status).where(
                    OutboxMessage.chat_id == "v1.siti", OutboxMessage.template == "payment_credited")) == "sent"

        await wait_for(lambda: quick.accepted())
        await wait_for(notice_sent)
        assert slow.deliveries == []  # not one of the slow client's has even been answered yet
