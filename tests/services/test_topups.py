"""Starting a top-up: amount rules, one order id per attempt, failover across gateways."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.app import build_runtime
from services.errors import AllGatewaysFailed, AmountError
from storage.migrate import upgrade
from storage.models import Payment
from tests.harness import write_settings




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
    inbound = await rt.wallet.register_inbound(channel="telegram", external_id="1", display_name="A", update_key=None)
    return inbound.user.id


@pytest.mark.parametrize("failure", [503, 500, 401])
async def test_a_failing_first_gateway_fails_over_to_the_next(tmp_path, fresh_db_url, midtrans, failure):
    rt = await runtime_for(tmp_path, fresh_db_url, midtrans, ["midtrans", "sandbox"])
    try:
        midtrans.create_failures.append(failure)
        link = await rt.topups.start(user_id=await user_id(rt), customer_name="A", amount=50_000)
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
            await rt.topups.start(user_id=await user_id(rt), customer_name="A", amount=50_000)
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
                await rt.topups.start(user_id=uid, customer_name="A", amount=amount)
            assert caught.value.key == key
        assert midtrans.orders == {} and await payments(rt) == []
    finally:
        await rt.http.aclose()
        await rt.db.close()


async def test_every_attempt_gets_its_own_order_id(tmp_path, fresh_db_url, midtrans):
    rt = await runtime_for(tmp_path, fresh_db_url, midtrans, ["midtrans"])
    try:
        uid = await user_id(rt)
        links = [await rt.topups.start(user_id=uid, customer_name="A", amount=50_000) for _ in range(5)]
        assert len({link.order_id for link in links}) == 5
        assert all(len(link.order_id) <= 50 for link in links)
    finally:
        await rt.http.aclose()
        await rt.db.close()
