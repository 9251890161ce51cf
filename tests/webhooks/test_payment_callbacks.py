"""POST /payments/{gateway}/notify over real sockets: storms, bad input and outages, asserting end state."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from sqlalchemy import func, select

from services.payments.midtrans import signature
from storage.models import Account, GatewayEvent, OutboxMessage, Payment
from tests.support.harness import AppUnderTest
from tests.support.midtrans import midtrans_notification
from tests.support.money import assert_books_hold, wallet_ledger, wallets_total


@pytest.fixture
async def app(tmp_path, fresh_db_url, midtrans):
    config = {
        "payments": {
            "gateways": ["midtrans"],
            "midtrans": midtrans.config(),
        },
        "admin": {"telegram_ids": ["999"]},
        "limits": {"max_pending_payments": 50},  # the storms seed many unpaid payments per user
    }
    async with AppUnderTest(tmp_path, fresh_db_url, config) as running:
        yield running


async def new_user(app: AppUnderTest, external_id: str) -> int:
    inbound = await app.runtime.services.inbound.register(
        channel="telegram", external_id=external_id, display_name="Budi", update_key=None
    )
    return inbound.user.id


async def new_payment(app: AppUnderTest, user_id: int, amount: int = 50_000) -> str:
    link = await app.runtime.services.topups.start(user_id=user_id, customer_name="Budi", amount=amount)
    return link.order_id


async def state(app: AppUnderTest) -> dict:
    """Money and states as an auditor reads them (and the books must hold whatever else is asserted)."""
    await assert_books_hold(app.runtime.db)
    ledger, entries = await wallet_ledger(app.runtime.db)
    async with app.runtime.db.read() as session:
        return {
            "balances": await wallets_total(app.runtime.db),
            "ledger": ledger,
            "entries": entries,
            "statuses": sorted((await session.scalars(select(Payment.status))).all()),
            "notices": await session.scalar(select(func.count()).select_from(OutboxMessage)),
        }


async def test_duplicate_storm_credits_each_payment_exactly_once(app, midtrans):
    users = [await new_user(app, f"u{i}") for i in range(20)]
    orders = [await new_payment(app, users[i % 20], 10_000 + i) for i in range(200)]
    paid = [midtrans.settle(o) for o in orders]
    late = [midtrans_notification(o, 10_000 + i, "pending", midtrans.server_key) for i, o in enumerate(orders)]

    # The 10 copies of each notification sit next to each other, so they are in flight at the same time.
    bodies = [json.dumps(n).encode() for n in paid for _ in range(10)] + [json.dumps(n).encode() for n in late]
    in_flight = asyncio.Semaphore(64)  # httpx's own pool queue is quadratic in waiting requests
    async with httpx.AsyncClient(base_url=app.url, limits=httpx.Limits(max_connections=64), timeout=60) as client:

        async def post(body: bytes) -> httpx.Response:
            async with in_flight:
                return await client.post(
                    "/payments/midtrans/notify", content=body, headers={"Content-Type": "application/json"}
                )

        responses = await asyncio.gather(*(post(b) for b in bodies))
    codes = [r.status_code for r in responses]
    assert codes.count(200) == len(bodies), {c: codes.count(c) for c in set(codes)}

    end = await state(app)
    expected = sum(10_000 + i for i in range(200))
    assert end["balances"] == end["ledger"] == expected
    assert end["entries"] == 200
    assert end["statuses"] == ["paid"] * 200
    async with app.runtime.db.read() as session:
        credited = await session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.template == "payment_credited")
        )
    assert credited == 200


async def test_settlement_before_pending_stays_paid(app, midtrans):
    order = await new_payment(app, await new_user(app, "ooo"))
    settle = midtrans.settle(order)
    pending = midtrans_notification(order, 50_000, "pending", midtrans.server_key)
    expire = midtrans_notification(order, 50_000, "expire", midtrans.server_key)
    for body in (settle, pending, expire, settle):
        assert (await app.http.post("/payments/midtrans/notify", json=body)).status_code == 200
    end = await state(app)
    assert end["statuses"] == ["paid"] and end["balances"] == 50_000 and end["entries"] == 1


async def test_amount_mismatch_is_held_not_credited_and_admins_are_told(app, midtrans):
    order = await new_payment(app, await new_user(app, "mm"), 50_000)
    body = midtrans_notification(order, 5_000, "settlement", midtrans.server_key)
    assert (await app.http.post("/payments/midtrans/notify", json=body)).status_code == 200
    end = await state(app)
    assert end["statuses"] == ["held"] and end["balances"] == 0 and end["entries"] == 0
    async with app.runtime.db.read() as session:
        alerts = (await session.scalars(select(OutboxMessage).where(OutboxMessage.chat_id == "999"))).all()
        flag = await session.scalar(select(Payment.flag_reason))
    assert [a.template for a in alerts] == ["admin_payment_held"]
    assert "5000" in flag and "50000" in flag


async def test_deny_after_settlement_reverses_the_credit_through_the_ledger(app, midtrans):
    order = await new_payment(app, await new_user(app, "rv"), 50_000)
    await app.http.post("/payments/midtrans/notify", json=midtrans.settle(order))
    deny = midtrans.settle(order, "deny", fraud_status=None)  # the status API says deny too
    assert (await app.http.post("/payments/midtrans/notify", json=deny)).status_code == 200
    end = await state(app)
    assert end["statuses"] == ["reversed"] and end["balances"] == end["ledger"] == 0 and end["entries"] == 2


async def test_refund_after_spending_debits_what_is_left_and_flags_the_rest(app, midtrans):
    user = await new_user(app, "rf")
    order = await new_payment(app, user, 50_000)
    await app.http.post("/payments/midtrans/notify", json=midtrans.settle(order))
    await app.runtime.services.wallet.debit(user, 30_000, reference="spent:1")
    refund = midtrans.settle(order, "refund", refund_amount="50000.00", refund_key="rk-1")
    assert (await app.http.post("/payments/midtrans/notify", json=refund)).status_code == 200
    end = await state(app)
    assert end["statuses"] == ["refunded"] and end["balances"] == end["ledger"] == 0
    async with app.runtime.db.read() as session:
        assert "30000 is owed" in (await session.scalar(select(Payment.flag_reason)))
        owed = await session.scalar(select(Account.balance).where(Account.kind == "receivable",
                                                                  Account.user_id == user))
    assert owed == 30_000  # booked to the user's receivable, not lost
    # The next top-up repays what is owed first.
    again = await new_payment(app, user, 50_000)
    await app.http.post("/payments/midtrans/notify", json=midtrans.settle(again))
    assert await app.runtime.services.wallet.balance(user) == 20_000
    async with app.runtime.db.read() as session:
        assert await session.scalar(select(Account.balance).where(Account.kind == "receivable",
                                                                  Account.user_id == user)) == 0
    await assert_books_hold(app.runtime.db)


async def test_a_replayed_notification_turned_into_a_refund_is_refused_unless_the_status_api_agrees(app, midtrans):
    # Midtrans signs the status *code*, which settlement and refund share: the signature alone cannot tell.
    user = await new_user(app, "rp")
    order = await new_payment(app, user, 50_000)
    settled = midtrans.settle(order)
    await app.http.post("/payments/midtrans/notify", json=settled)
    forged = {**settled, "transaction_status": "refund", "refund_amount": "50000.00"}
    assert (await app.http.post("/payments/midtrans/notify", json=forged)).status_code == 401
    end = await state(app)
    assert end["statuses"] == ["paid"] and end["balances"] == end["ledger"] == 50_000


async def test_capture_with_challenge_is_not_credited_until_accepted(app, midtrans):
    order = await new_payment(app, await new_user(app, "ch"))
    challenge = midtrans_notification(order, 50_000, "capture", midtrans.server_key, fraud_status="challenge")
    await app.http.post("/payments/midtrans/notify", json=challenge)
    assert (await state(app))["balances"] == 0
    accept = midtrans_notification(order, 50_000, "capture", midtrans.server_key, fraud_status="accept")
    await app.http.post("/payments/midtrans/notify", json=accept)
    assert (await state(app))["balances"] == 50_000


def _bad_requests(order: str, key: str) -> list[tuple[str, bytes, dict[str, str], int]]:
    good = midtrans_notification(order, 50_000, "settlement", key)
    wrong_sig = {**good, "signature_key": "0" * 128}
    reformatted = {**good, "gross_amount": "50000"}  # signature was made over "50000.00"
    other_key = midtrans_notification(order, 50_000, "settlement", "SB-Mid-server-OTHER")
    no_sig = {k: v for k, v in good.items() if k != "signature_key"}
    non_ascii_sig = {**good, "signature_key": "é" * 128}
    missing_order = {k: v for k, v in good.items() if k != "order_id"}
    json_ct = {"Content-Type": "application/json"}
    return [
        ("wrong signature", json.dumps(wrong_sig).encode(), json_ct, 401),
        ("gross_amount reformatted", json.dumps(reformatted).encode(), json_ct, 401),
        ("signed with another key", json.dumps(other_key).encode(), json_ct, 401),
        ("missing signature", json.dumps(no_sig).encode(), json_ct, 401),
        ("non-ASCII signature", json.dumps(non_ascii_sig, ensure_ascii=False).encode(), json_ct, 401),
        ("missing order_id", json.dumps(missing_order).encode(), json_ct, 400),
        ("malformed JSON", b'{"order_id": "x", ', json_ct, 400),
        ("empty body", b"", json_ct, 400),
        ("JSON array", b"[1,2,3]", json_ct, 400),
        ("not UTF-8", b"\xff\xfe\x00garbage", json_ct, 400),
        ("huge body", b'{"pad": "' + b"x" * 2_000_000 + b'"}', json_ct, 400),
    ]


async def test_bad_callbacks_get_the_contract_status_and_change_nothing(app, midtrans):
    order = await new_payment(app, await new_user(app, "bad"))
    before = await state(app)
    for name, body, headers, expected in _bad_requests(order, midtrans.server_key):
        response = await app.http.post("/payments/midtrans/notify", content=body, headers=headers)
        assert response.status_code == expected, name
    assert await state(app) == before
    async with app.runtime.db.read() as session:
        assert await session.scalar(select(func.count()).select_from(GatewayEvent)) == 0


async def test_non_ascii_signature_header_on_sandbox_is_401(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, {"payments": {"gateways": ["sandbox"]}}) as app:
        headers = {"X-Sandbox-Signature": "é".encode(), "Content-Type": "application/json"}
        response = await app.http.post("/payments/sandbox/notify", content=b'{"order_id":"x"}', headers=headers)
        assert response.status_code == 401


async def test_unknown_order_and_dashboard_test_notification_get_200_and_credit_nothing(app, midtrans):
    await new_payment(app, await new_user(app, "unk"))
    before = await state(app)
    for order in ("payment_notif_test_G123456789_abc", "TT-does-not-exist"):
        body = midtrans_notification(order, 50_000, "settlement", midtrans.server_key)
        assert (await app.http.post("/payments/midtrans/notify", json=body)).status_code == 200
    assert await state(app) == before


async def test_callbacks_get_503_while_postgres_is_unreachable_and_land_on_retry(tmp_path, proxied_postgres,
                                                                               midtrans):
    proxy, url = proxied_postgres
    config = {"payments": {"gateways": ["midtrans"], "midtrans": midtrans.config()}}
    async with AppUnderTest(tmp_path, url, config) as app:
        order = await new_payment(app, await new_user(app, "down"))
        body = midtrans.settle(order)
        await proxy.cut()
        try:
            response = await app.http.post("/payments/midtrans/notify", json=body)
            assert response.status_code == 503
            assert (await app.http.get("/healthz")).status_code == 503
        finally:
            await proxy.restore()
        assert (await app.http.get("/healthz")).status_code == 200
        assert (await state(app))["balances"] == 0
        assert (await app.http.post("/payments/midtrans/notify", json=body)).status_code == 200
        assert (await state(app))["balances"] == 50_000


def test_midtrans_signature_matches_a_known_answer():
    # printf '%s' "TT-1200""50000.00SB-Mid-server-KEY" | sha512sum
    assert signature("TT-1", "200", "50000.00", "SB-Mid-server-KEY") == (
        "1c8f599b1b23c0478d66ba2fdcfa4f3e4f60d820ae39cbcac912b1d80465f7df"
        "ee07bc75f5e1e633e0ab1e17f8bde9b764e8d6d48bd8f2d8e662676e88b708e9"
    )
