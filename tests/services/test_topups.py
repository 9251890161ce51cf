"""Starting a top-up: amount rules, one order id per attempt, failover across gateways."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from bot.app import build_runtime
from services.errors import AllGatewaysFailed, AmountError, UserInputError
from storage.migrate import upgrade
from storage.models import Payment
from tests.support.harness import write_settings


async def runtime_for(tmp_path, url, midtrans, gateways):
    settings = write_settings(tmp_path, {
        "database": {"url": url},
        "payments": {"gateways": gateways, "midtrans": midtrans.config()},
    })
    rt = build_runtime(settings)
    await upgrade(rt.db)
    return rt


async def payments(rt) -> list[tuple[str, str, str | None]]:
    async with rt.db.read() as session:
        rows = (await session.scalars(select(Payment).order_by(Payment.id))).all()
        return [(p.gateway, p.status, p.flag_reason) for p in rows]


async def user_id(rt) -> int:
    inbound = await rt.services.inbound.register(channel="telegram", external_id="1", display_name="A", update_key=None)
    return inbound.user.id


@pytest.mark.parametrize("failure", [503, 500, 401])
async def test_a_failing_first_gateway_fails_over_to_the_next(tmp_path, fresh_db_url, midtrans, failure):
    rt = await runtime_for(tmp_path, fresh_db_url, midtrans, ["midtrans", "sandbox"])
    try:
        midtrans.create_failures.append(failure)
        link = await rt.services.topups.start(user_id=await user_id(rt), customer_name="A", amount=50_000)
        assert link.gateway == "sandbox" and "/pay/sandbox/" in link.payment_url
        rows = await payments(rt)
        assert [(g, s) for g, s, _ in rows] == [("midtrans", "failed"), ("sandbox", "pending")]
        assert rows[0][2].startswith("create failed: midtrans")
    finally:
        await rt.http.aclose()
        await rt.db.close()


async def test_when_every_gateway_fails_nothing_is_left_half_created(tmp_path, fresh_db_url, midtrans):
    await midtrans.stop()  # connection refused
    rt = await runtime_for(tmp_path, fresh_db_url, midtrans, ["midtrans"])
    try:
        with pytest.raises(AllGatewaysFailed):
            await rt.services.topups.start(user_id=await user_id(rt), customer_name="A", amount=50_000)
        assert [(g, s) for g, s, _ in await payments(rt)] == [("midtrans", "failed")]
    finally:
        await rt.http.aclose()
        await rt.db.close()


async def test_amounts_outside_the_configured_range_are_refused_before_any_gateway_call(
    tmp_path, fresh_db_url, midtrans
):
    rt = await runtime_for(tmp_path, fresh_db_url, midtrans, ["midtrans"])
    try:
        uid = await user_id(rt)
        for amount, key in ((9_999, "amount_too_small"), (10_000_001, "amount_too_large")):
            with pytest.raises(AmountError) as caught:
                await rt.services.topups.start(user_id=uid, customer_name="A", amount=amount)
            assert caught.value.key == key
        assert midtrans.orders == {} and await payments(rt) == []
    finally:
        await rt.http.aclose()
        await rt.db.close()


async def test_every_attempt_gets_its_own_order_id(tmp_path, fresh_db_url, midtrans):
    rt = await runtime_for(tmp_path, fresh_db_url, midtrans, ["midtrans"])
    try:
        uid = await user_id(rt)
        links = [await rt.services.topups.start(user_id=uid, customer_name="A", amount=amount)
                 for amount in (50_000, 60_000, 70_000)]
        assert len({link.order_id for link in links}) == 3
        assert all(len(link.order_id) <= 50 for link in links)
    finally:
        await rt.http.aclose()
        await rt.db.close()


async def test_the_same_amount_again_returns_the_unpaid_link_and_pending_top_ups_are_capped(
        tmp_path, fresh_db_url, midtrans):
    rt = await runtime_for(tmp_path, fresh_db_url, midtrans, ["midtrans"])
    try:
        uid = await user_id(rt)
        first = await rt.services.topups.start(user_id=uid, customer_name="A", amount=50_000)
        again = await rt.services.topups.start(user_id=uid, customer_name="A", amount=50_000)
        assert again.reused and again.order_id == first.order_id and again.payment_url == first.payment_url
        for amount in (60_000, 70_000):
            await rt.services.topups.start(user_id=uid, customer_name="A", amount=amount)
        with pytest.raises(UserInputError) as caught:
            await rt.services.topups.start(user_id=uid, customer_name="A", amount=80_000)
        assert caught.value.key == "topup_too_many_pending" and caught.value.params["most"] == 3
        assert len(midtrans.orders) == 3  # four requests, one reused: three gateway transactions
    finally:
        await rt.http.aclose()
        await rt.db.close()


async def test_sixty_top_ups_at_once_create_at_most_the_cap_of_gateway_transactions(tmp_path, fresh_db_url, midtrans):
    rt = await runtime_for(tmp_path, fresh_db_url, midtrans, ["midtrans"])
    try:
        uid = await user_id(rt)
        results = await asyncio.gather(*(rt.services.topups.start(user_id=uid, customer_name="A", amount=50_000)
                                         for _ in range(60)), return_exceptions=True)
        links = [r for r in results if not isinstance(r, Exception)]
        refused = [r for r in results if isinstance(r, UserInputError)]
        assert len(links) + len(refused) == 60
        assert 1 <= len(midtrans.orders) <= 3 and len({link.order_id for link in links}) <= 3
        async with rt.db.read() as session:
            created = await session.scalar(select(func.count()).select_from(Payment))
        assert created == len(midtrans.orders)
    finally:
        await rt.http.aclose()
        await rt.db.close()


async def test_twenty_checks_ask_the_gateway_once_per_payment_within_the_cooldown(tmp_path, fresh_db_url, midtrans):
    rt = await runtime_for(tmp_path, fresh_db_url, midtrans, ["midtrans"])
    try:
        uid = await user_id(rt)
        for amount in (50_000, 60_000, 70_000):
            await rt.services.topups.start(user_id=uid, customer_name="A", amount=amount)
        for _ in range(20):
            views = await rt.services.topups.check_now(uid)
            assert len(views) == 3 and all(v.payment_url for v in views)
        assert len(midtrans.status_calls) == 3
    finally:
        await rt.http.aclose()
        await rt.db.close()
