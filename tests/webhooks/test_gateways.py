"""Duitku, DOKU and Xendit through the real server: verify, dedupe, order, amount, reconcile, failover."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from storage.models import Payment
from tests.support.gateways import FakeDoku, FakeDuitku, FakeXendit
from tests.support.harness import AppUnderTest
from tests.support.money import assert_books_hold, transfers_of_kind, wallets_total

FAKES = {"duitku": FakeDuitku, "doku": FakeDoku, "xendit": FakeXendit}


@pytest.fixture(params=sorted(FAKES))
async def fake(request):
    async with FAKES[request.param]() as server:
        yield server


@pytest.fixture
async def app(tmp_path, fresh_db_url, fake):
    config = {"payments": {"gateways": [fake.name, "sandbox"], fake.name: fake.config()}}
    async with AppUnderTest(tmp_path, fresh_db_url, config) as running:
        yield running


async def start_payment(app, external_id: str = "62812", amount: int = 50_000):
    user = (await app.runtime.services.inbound.register(channel="whatsapp", external_id=external_id,
                                                      display_name="Siti", update_key=None)).user.id
    link = await app.runtime.services.topups.start(user_id=user, customer_name="Siti", amount=amount)
    return user, link


async def post(app, fake, body: bytes, headers: dict[str, str]) -> int:
    return (await app.http.post(f"/payments/{fake.name}/notify", content=body, headers=headers)).status_code


async def totals(app) -> tuple[int, int, list[str]]:
    """(all wallets, top-up transfers, payment states), after checking that the books hold."""
    await assert_books_hold(app.runtime.db)
    async with app.runtime.db.read() as session:
        statuses = sorted((await session.scalars(select(Payment.status))).all())
    credits = await transfers_of_kind(app.runtime.db, "topup")
    return await wallets_total(app.runtime.db), len(credits), statuses


async def test_a_paid_callback_credits_once_however_often_it_arrives(app, fake):
    user, link = await start_payment(app)
    assert link.gateway == fake.name and link.order_id in fake.orders
    body, headers = fake.callback(link.order_id, "paid")
    codes = await asyncio.gather(*(post(app, fake, body, headers) for _ in range(5)))
    assert codes == [200] * 5
    assert await totals(app) == (50_000, 1, ["paid"])


async def test_a_forged_callback_is_401_and_changes_nothing(app, fake):
    _, link = await start_payment(app)
    body, headers = fake.forge(*fake.callback(link.order_id, "paid"))
    assert await post(app, fake, body, headers) == 401
    unsigned = {k: v for k, v in headers.items() if k.lower() in ("content-type",)}
    assert await post(app, fake, body, unsigned) == 401
    assert await totals(app) == (0, 0, ["pending"])


async def test_an_amount_mismatch_is_held_not_credited(app, fake):
    _, link = await start_payment(app)
    assert await post(app, fake, *fake.callback(link.order_id, "paid", amount=5_000)) == 200
    assert await totals(app) == (0, 0, ["held"])


async def test_an_unknown_order_is_200_and_credits_nothing(app, fake):
    await start_payment(app)
    assert await post(app, fake, *fake.callback("TT-nobody", "paid", amount=50_000)) == 200
    assert await totals(app) == (0, 0, ["pending"])


async def test_a_late_failure_after_payment_changes_nothing(app, fake):
    _, link = await start_payment(app)
    assert await post(app, fake, *fake.callback(link.order_id, "paid")) == 200
    assert await post(app, fake, *fake.callback(link.order_id, "expired")) == 200
    assert await post(app, fake, *fake.callback(link.order_id, "failed")) == 200
    assert await totals(app) == (50_000, 1, ["paid"])


async def test_the_reconciler_credits_from_the_status_api(app, fake):
    user, link = await start_payment(app)
    first = await app.runtime.reconciler.run_once()  # not paid yet: "not found" or "still pending"
    assert first.checked == 1 and set(first.outcomes) <= {"not_found", "no_change"}
    assert await totals(app) == (0, 0, ["pending"])
    fake.set_status(link.order_id, "paid")
    report = await app.runtime.reconciler.run_once()
    assert report.outcomes.get("credited") == 1
    assert await post(app, fake, *fake.callback(link.order_id, "paid")) == 200  # the late callback
    assert await totals(app) == (50_000, 1, ["paid"])


async def test_a_503_on_create_fails_over_to_the_next_gateway(app, fake):
    fake.create_failures.append(503)
    _, link = await start_payment(app)
    assert link.gateway == "sandbox"
    assert (await totals(app))[2] == ["failed", "pending"]


async def test_a_duitku_failure_notice_rewritten_as_success_is_refused(tmp_path, fresh_db_url):
    # Duitku's callback signature leaves resultCode out, so 01 -> 00 still verifies; the status API decides.
    async with FakeDuitku() as fake:
        config = {"payments": {"gateways": ["duitku"], "duitku": fake.config()}}
        async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
            _, link = await start_payment(app)
            failed, headers = fake.callback(link.order_id, "failed")
            assert b"resultCode=01" in failed
            rewritten = failed.replace(b"resultCode=01", b"resultCode=00")
            assert await post(app, fake, rewritten, headers) == 401
            assert await totals(app) == (0, 0, ["pending"])
            assert await post(app, fake, *fake.callback(link.order_id, "paid")) == 200  # the real one still works
            assert await totals(app) == (50_000, 1, ["paid"])
