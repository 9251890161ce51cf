"""Forged and garbage requests (tests/forgery.py) against every gateway callback, the payout provider's callback,
both messenger webhooks and the deposit API's creates:
none is accepted, none gets a 5xx, nothing changes — and afterwards the untouched legitimate request works,
so each forgery really was one edit away from being accepted."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from storage.models import Deposit, Payment
from tests.support.forgery import ForgeryWorld, forge
from tests.support.waiting import wait_for

TARGETS = ["midtrans", "duitku", "doku", "xendit", "sandbox", "payout-midtrans", "telegram", "whatsapp", "api-deposit",
           "worker-deposit"]
EXAMPLES = 60


@pytest.mark.parametrize("name", TARGETS)
def test_no_forged_or_garbage_request_is_accepted_and_none_gets_a_5xx(tmp_path, fresh_db_url, name):
    # A loop of our own: hypothesis drives examples synchronously, each one runs the server until it answers.
    loop = asyncio.new_event_loop()
    world = ForgeryWorld(tmp_path, fresh_db_url)
    loop.run_until_complete(world.__aenter__())
    try:
        answers: list[int] = []

        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow])
        @given(data=st.data())
        def attempt(data):
            request = forge(world.targets[name], lambda lo, hi: data.draw(st.integers(lo, hi)),
                            world.max_body_bytes)
            status = loop.run_until_complete(world.send(request))
            answers.append(status)
            assert 400 <= status < 500, f"{request.mutations} -> {status}"

        attempt()
        assert len(answers) >= EXAMPLES
        assert loop.run_until_complete(world.nothing_happened()) == []

        # The untouched request is accepted: the forgeries were near-misses, not noise.
        assert loop.run_until_complete(world.send(world.legitimate(name))) == (201 if name == "api-deposit" else 200)
        loop.run_until_complete(_legitimate_effect(world, name))
    finally:
        loop.run_until_complete(world.__aexit__(None, None, None))
        loop.close()


async def _legitimate_effect(world: ForgeryWorld, name: str) -> None:
    if name in ForgeryWorld.GATEWAYS:
        async with world.app.runtime.db.read() as session:
            status = await session.scalar(select(Payment.status).where(Payment.order_id == world.orders[name]))
        assert status == "paid"
    elif name == "payout-midtrans":
        assert (await world.app.runtime.services.withdrawals.describe(world.payout_id)).status == "completed"
    elif name in ("api-deposit", "worker-deposit"):
        async with world.app.runtime.db.read() as session:
            assert (await session.scalars(select(Deposit.user_ref))).all() == ["victim"]
    elif name == "telegram":
        await wait_for(lambda: world.bot.texts_to(4242))
    else:
        await wait_for(lambda: world.graph.messages)
