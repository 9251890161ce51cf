"""The reconciler and /cek: callbacks that never came, late payments, timeouts, leases, stale attempts."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select

from bot.app import build_runtime
from services.clock import FrozenClock
from services.reconcile import Reconciler
from storage.migrate import upgrade
from storage.models import OutboxMessage, Payment
from tests.support.harness import write_settings


@pytest.fixture
async def runtime(tmp_path, fresh_db_url, midtrans):
    settings = write_settings(tmp_path, {
        "database": {"url": fresh_db_url},
        "payments": {"gateways": ["midtrans"], "midtrans": midtrans.config()},
    })
    rt = build_runtime(settings, clock=FrozenClock())
    await upgrade(rt.db)
    yield rt
    await rt.http.aclose()
    await rt.db.close()


async def pay_attempt(rt, external_id: str = "u1", amount: int = 50_000) -> tuple[int, str]:
    user = (await rt.services.inbound.register(channel="telegram", external_id=external_id, display_name="A",
                                             update_key=None)).user.id
    link = await rt.services.topups.start(user_id=user, customer_name="A", amount=amount)
    return user, link.order_id


async def statuses(rt) -> dict[str, str]:
    async with rt.db.read() as session:
        return {p.order_id: p.status for p in (await session.scalars(select(Payment))).all()}


async def test_a_payment_whose_callback_never_came_is_credited_and_the_late_callback_changes_nothing(runtime, midtrans):
    user, order = await pay_attempt(runtime)
    notification = midtrans.settle(order)

    report = await runtime.reconciler.run_once()
    assert report.outcomes == {"credited": 1}
    assert await runtime.services.wallet.balance(user) == 50_000

    late = await runtime.settlement.receive_callback("midtrans", json.dumps(notification).encode(), {})
    assert late.outcome.result == "duplicate"
    assert await runtime.services.wallet.balance(user) == 50_000
    assert (await runtime.reconciler.run_once()).outcomes == {}


async def test_a_status_api_that_times_out_for_one_payment_does_not_block_the_others(runtime, midtrans):
    attempts = [await pay_attempt(runtime, f"u{i}") for i in range(5)]
    for _, order in attempts:
        midtrans.settle(order)
    midtrans.slow_status.add(attempts[0][1])
    reconciler = Reconciler(runtime.db, runtime.settlement, runtime.clock, concurrency=2, status_timeout_s=0.5)

    report = await reconciler.run_once()
    assert report.errors == 1 and report.outcomes.get("credited") == 4
    assert [await runtime.services.wallet.balance(u) for u, _ in attempts] == [0] + [50_000] * 4


async def test_not_attempted_yet_stays_pending_then_expires_after_the_grace_window(runtime, midtrans):
    user, order = await pay_attempt(runtime)
    assert (await runtime.reconciler.run_once()).outcomes == {"not_found": 1}
    assert (await statuses(runtime))[order] == "pending"

    runtime.clock.advance(hours=25)
    assert (await runtime.reconciler.run_once()).outcomes == {"expired": 1}
    assert (await statuses(runtime))[order] == "expired"
    async with runtime.db.read() as session:
        templates = (await session.scalars(select(OutboxMessage.template))).all()
    assert templates == ["payment_expired"]


async def test_an_expired_payment_paid_within_the_grace_window_is_still_credited(runtime, midtrans):
    user, order = await pay_attempt(runtime)
    expire = midtrans.settle(order, "expire")
    await runtime.settlement.receive_callback("midtrans", json.dumps(expire).encode(), {})
    assert (await statuses(runtime))[order] == "expired"
    midtrans.settle(order, "settlement")
    runtime.clock.advance(hours=2)
    assert (await runtime.reconciler.run_once()).outcomes == {"credited": 1}
    assert await runtime.services.wallet.balance(user) == 50_000


async def test_two_reconcilers_at_once_check_each_payment_once(runtime, midtrans):
    attempts = [await pay_attempt(runtime, f"u{i}") for i in range(20)]
    for _, order in attempts:
        midtrans.settle(order)
    other = Reconciler(runtime.db, runtime.settlement, runtime.clock)
    reports = await asyncio.gather(runtime.reconciler.run_once(), other.run_once())
    assert sum(r.checked for r in reports) == 20
    assert sorted(midtrans.status_calls) == sorted(order for _, order in attempts)
    assert sum([await runtime.services.wallet.balance(u) for u, _ in attempts]) == 20 * 50_000


async def test_cek_asks_the_gateway_now_and_credits(runtime, midtrans):
    user, order = await pay_attempt(runtime)
    midtrans.settle(order)
    views = await runtime.services.topups.check_now(user)
    assert [(v.order_id, v.status) for v in views] == [(order, "paid")]
    assert await runtime.services.wallet.balance(user) == 50_000
