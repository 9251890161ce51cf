"""The deposit API over real sockets, as a client bot uses it: create, read, pay, be told; and every way a
request can be refused, each changing nothing."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import pytest
from sqlalchemy import func, select

from services import ledger
from services.clients import request_signature
from services.clock import FrozenClock
from storage.models import Account, Deposit, OutboxMessage, Payment, Transfer
from tests.support.client_bot import FakeClientBot
from tests.support.harness import AppUnderTest
from tests.support.money import assert_books_hold, balance, wallets_total
from tests.support.waiting import wait_for

API_SECRET = "k" * 40


def api_config(**api) -> dict:
    return {"api": {"enabled": True, "secret_key": API_SECRET, **api}, "admin": {"telegram_ids": ["999"]}}


@pytest.fixture
async def receiver():
    async with FakeClientBot() as bot:
        yield bot


@pytest.fixture
async def app(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, api_config()) as running:
        yield running


async def add_client(app: AppUnderTest, receiver: FakeClientBot | None = None, name: str = "shopbot", **options):
    credentials = await app.runtime.api.clients.add(
        name, receiver.hook_url() if receiver else "http://127.0.0.1:9/hook", **options)
    if receiver is not None:
        receiver.webhook_secret = credentials.webhook_secret
    return credentials


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def create(app: AppUnderTest, key: str, **body):
    return await app.http.post("/api/v1/deposits", json={"user_ref": "u-42", "amount": 25_000, **body},
                               headers=bearer(key))


async def pay(app: AppUnderTest, order_id: str, amount: int = 25_000, times: int = 1) -> list[int]:
    """The sandbox gateway's signed callback, `times` times at once (a gateway retrying)."""
    sandbox = app.runtime.gateways[0]
    body, headers = sandbox.signed_callback(order_id, amount, "paid")
    answers = await asyncio.gather(*(app.http.post("/payments/sandbox/notify", content=body, headers=headers)
                                     for _ in range(times)))
    return [a.status_code for a in answers]


async def deposits_count(app: AppUnderTest) -> int:
    async with app.runtime.db.read() as session:
        return int(await session.scalar(select(func.count()).select_from(Deposit)) or 0)


async def test_a_deposit_is_created_paid_once_under_duplicate_callbacks_and_forwarded_signed(app, receiver):
    creds = await add_client(app, receiver)
    first = await create(app, creds.api_key, deposit_id="ord-1", description="Top up 25rb")
    assert first.status_code == 201, first.text
    created = first.json()
    assert created["deposit_id"] == "ord-1" and created["status"] == "pending" and created["amount"] == 25_000
    assert created["payment_url"].startswith(app.url + "/pay/sandbox/")
    again = await create(app, creds.api_key, deposit_id="ord-1", description="Top up 25rb")
    assert again.status_code == 200 and again.json() == created  # idempotent: the same deposit
    order_id = created["payment_url"].rsplit("/", 1)[1]

    assert await pay(app, order_id, times=10) == [200] * 10
    await wait_for(lambda: receiver.accepted())
    client_id = (await app.runtime.api.clients.summaries())[0]
    assert client_id.owed == 25_000 and client_id.paid == 1
    async with app.runtime.db.read() as session:
        settled = (await session.scalars(select(Transfer.reference).where(Transfer.kind == "deposit"))).all()
    assert len(settled) == 1  # ten callbacks, one credit
    assert await wallets_total(app.runtime.db) == 0  # never a Titip wallet's money
    delivered = receiver.accepted()[0]
    assert delivered.verified  # checked with the standardwebhooks library and the client's whsec_ secret
    assert delivered.headers["webhook-id"].startswith("dep_") and delivered.headers["webhook-id"].endswith("_paid")
    assert delivered.json["type"] == "deposit.paid"
    assert delivered.json["data"] | {"paid_at": None} == {
        "deposit_id": "ord-1", "status": "paid", "amount": 25_000, "user_ref": "u-42", "reference": order_id,
        "gateway": "sandbox", "paid_at": None}

    read = await app.http.get("/api/v1/deposits/ord-1", headers=bearer(creds.api_key))
    assert read.status_code == 200
    body = read.json()
    assert body["status"] == "paid" and body["paid_at"]
    assert body["forwarding"] | {"delivered_at": None} == {"delivered": True, "attempts": 1, "event": "deposit.paid",
                                                           "last_status": 200, "delivered_at": None}
    await assert_books_hold(app.runtime.db)


async def test_the_same_deposit_id_with_another_amount_or_user_is_409_and_changes_nothing(app):
    creds = await add_client(app)
    assert (await create(app, creds.api_key, deposit_id="x1")).status_code == 201
    for changed in ({"amount": 30_000}, {"user_ref": "someone-else"}):
        answer = await create(app, creds.api_key, deposit_id="x1", **changed)
        assert answer.status_code == 409 and answer.json()["error"] == "conflict"
    async with app.runtime.db.read() as session:
        assert (await session.scalars(select(Payment.amount))).all() == [25_000]


async def test_amounts_outside_the_clients_own_limits_within_the_wallets_are_422(app):
    creds = await add_client(app, min_amount=20_000, max_amount=100_000)
    low = await create(app, creds.api_key, amount=15_000)
    high = await create(app, creds.api_key, amount=100_001)
    assert (low.status_code, low.json()["minimum"]) == (422, 20_000)
    assert (high.status_code, high.json()["maximum"]) == (422, 100_000)
    loose = await add_client(app, name="loose", min_amount=1)  # never below wallet.min_topup (10 000)
    assert (await create(app, loose.api_key, amount=5_000)).json()["minimum"] == 10_000
    assert await deposits_count(app) == 0


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'{"amount": 25000}', b'{"user_ref": "u", "amount": "25000"}',
                                 b'{"user_ref": "u", "amount": true}', b'{"user_ref": "u", "amount": 25000.5}',
                                 b'{"user_ref": "u", "amount": 25000, "deposit_id": "has space"}',
                                 b'{"user_ref": "u", "amount": 25000, "customer": "x"}',
                                 b'{"user_ref": "u", "amount": 25000, "customer": {"email": "nope"}}'])
async def test_malformed_requests_are_400_and_create_nothing(app, raw):
    creds = await add_client(app)
    answer = await app.http.post("/api/v1/deposits", content=raw, headers=bearer(creds.api_key))
    assert answer.status_code == 400 and answer.json()["error"] == "bad_request"
    assert await deposits_count(app) == 0


def signed(secret: str, raw: bytes, *, timestamp: int | None = None, nonce: str | None = None,
           signature: str | None = None) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    nonce = nonce or secrets.token_hex(12)
    return {"X-Timestamp": ts, "X-Nonce": nonce,
            "X-Signature": signature or request_signature(secret, ts, nonce, raw)}


async def test_every_authentication_failure_is_401_and_creates_nothing(app):
    creds = await add_client(app, require_signature=True)
    other = await add_client(app, name="other")
    raw = json.dumps({"user_ref": "u", "amount": 25_000}).encode()
    key_id = creds.api_key.split("_")[1]
    reused = signed(creds.signing_secret, raw)
    good = await app.http.post("/api/v1/deposits", content=raw, headers={**bearer(creds.api_key), **reused})
    assert good.status_code == 201, good.text
    attempts = {
        "no key": {},
        "not a bearer": {"Authorization": creds.api_key},
        "wrong key": bearer(f"tk_{key_id}_" + "A" * 43),
        "unknown key": bearer("tk_0123456789ab_" + "A" * 43),
        "unsigned, but this client must sign": bearer(creds.api_key),
        "signed with another client's secret": {**bearer(creds.api_key), **signed(other.signing_secret, raw)},
        "signature over another body": {**bearer(creds.api_key), **signed(creds.signing_secret, raw + b" ")},
        "stale timestamp": {**bearer(creds.api_key),
                            **signed(creds.signing_secret, raw, timestamp=int(time.time()) - 301)},
        # (Well beyond the 300 s window: this request goes out seconds after its timestamp was taken.)
        "timestamp from the future": {**bearer(creds.api_key),
                                      **signed(creds.signing_secret, raw, timestamp=int(time.time()) + 360)},
        "reused nonce": {**bearer(creds.api_key), **reused},
        "malformed signature": {**bearer(creds.api_key), **signed(creds.signing_secret, raw, signature="zz")},
        "non-ASCII key": {"Authorization": "Bearer tk_ünïcode".encode()},
    }
    for why, headers in attempts.items():
        answer = await app.http.post("/api/v1/deposits", content=raw, headers=headers)
        assert answer.status_code == 401, why
        assert answer.json() == {"error": "unauthorized", "message": "Unauthorized"}, why  # nothing to learn
    assert await deposits_count(app) == 1


async def test_a_disabled_client_cannot_create_but_reads_and_its_pending_deposits_settle_and_forward(app, receiver):
    creds = await add_client(app, receiver)
    order_id = (await create(app, creds.api_key, deposit_id="before")).json()["payment_url"].rsplit("/", 1)[1]
    assert await app.runtime.api.clients.disable("shopbot") is True
    assert (await create(app, creds.api_key, deposit_id="after")).status_code == 401
    assert (await app.http.get("/api/v1/deposits/before", headers=bearer(creds.api_key))).status_code == 200
    assert await pay(app, order_id) == [200]
    await wait_for(lambda: receiver.accepted())
    assert receiver.accepted()[0].json["data"]["deposit_id"] == "before"


async def test_a_client_never_reads_another_clients_deposit(app):
    mine = await add_client(app)
    theirs = await add_client(app, name="theirs")
    assert (await create(app, theirs.api_key, deposit_id="secret-1")).status_code == 201
    answer = await app.http.get("/api/v1/deposits/secret-1", headers=bearer(mine.api_key))
    assert answer.status_code == 404 and answer.json()["error"] == "not_found"
    # The same id is the other client's own, separate deposit.
    assert (await create(app, mine.api_key, deposit_id="secret-1", amount=40_000)).status_code == 201
    assert (await app.http.get("/api/v1/deposits/secret-1", headers=bearer(theirs.api_key))).json()["amount"] == 25_000


async def test_over_the_rate_limit_a_client_gets_429_with_retry_after_and_others_do_not(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, api_config(rate_per_minute=3)) as app:
        busy, calm = await add_client(app), await add_client(app, name="calm")
        answers = [await create(app, busy.api_key, deposit_id=f"r{i}") for i in range(5)]
        assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
        assert int(answers[3].headers["Retry-After"]) >= 1
        assert (await create(app, calm.api_key)).status_code == 201
        assert await deposits_count(app) == 4


async def test_with_the_api_disabled_every_api_route_is_404(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, {"api": {"enabled": False}}) as app:
        for method, path in (("POST", "/api/v1/deposits"), ("GET", "/api/v1/deposits/x"),
                             ("GET", "/api/v1/openapi.json"), ("GET", "/api/docs"), ("POST", "/deposit/create"),
                             ("GET", "/deposit/status?depositId=x"), ("GET", "/health")):
            assert (await app.http.request(method, path)).status_code == 404, path


async def test_cors_is_answered_for_the_clients_own_origins_only(app):
    creds = await add_client(app, origins=["https://shop.example"])
    allowed = await app.http.options("/api/v1/deposits", headers={
        "Origin": "https://shop.example", "Access-Control-Request-Method": "POST"})
    assert allowed.status_code == 204 and allowed.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "Authorization" in allowed.headers["Access-Control-Allow-Headers"]
    stranger = await app.http.options("/api/v1/deposits", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in stranger.headers
    made = await app.http.post("/api/v1/deposits", json={"user_ref": "u", "amount": 25_000},
                               headers={**bearer(creds.api_key), "Origin": "https://shop.example"})
    assert made.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    other = await app.http.post("/api/v1/deposits", json={"user_ref": "u", "amount": 25_000},
                                headers={**bearer(creds.api_key), "Origin": "https://evil.example"})
    assert other.status_code == 201 and "Access-Control-Allow-Origin" not in other.headers


async def test_the_openapi_document_describes_the_routes_and_the_docs_page_renders_it(app):
    spec = (await app.http.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {"/api/v1/deposits", "/api/v1/deposits/{deposit_id}"}
    assert {"201", "200", "400", "401", "409", "422", "429", "503"} <= set(spec["paths"]["/api/v1/deposits"]["post"]
                                                                            ["responses"])
    assert "deposit" in spec["webhooks"]
    page = await app.http.get("/api/docs")
    assert page.status_code == 200 and "POST /api/v1/deposits" in page.text and "webhook-id" in page.text


async def test_after_a_rotation_both_credentials_work_until_the_grace_ends_and_both_signatures_are_sent(
        tmp_path, fresh_db_url, receiver):
    clock = FrozenClock()
    async with AppUnderTest(tmp_path, fresh_db_url, api_config(rotation_grace_hours=24), clock=clock) as app:
        old = await add_client(app, receiver)
        new = await app.runtime.api.clients.rotate("shopbot")
        assert new.api_key != old.api_key and new.webhook_secret != old.webhook_secret
        made = await create(app, old.api_key, deposit_id="r1")
        assert made.status_code == 201 and (await create(app, new.api_key, deposit_id="r2")).status_code == 201
        await pay(app, made.json()["payment_url"].rsplit("/", 1)[1])
        await wait_for(lambda: receiver.accepted())
        signature = receiver.accepted()[0].headers["webhook-signature"]
        assert len(signature.split(" ")) == 2  # one per valid secret: a receiver with either verifies it
        for secret in (old.webhook_secret, new.webhook_secret):
            from standardwebhooks import Webhook

            Webhook(secret).verify(receiver.accepted()[0].body, receiver.accepted()[0].headers)
        clock.advance(hours=24, seconds=1)
        assert (await create(app, old.api_key, deposit_id="r3")).status_code == 401
        assert (await create(app, new.api_key, deposit_id="r3")).status_code == 201


async def test_the_ledger_knows_what_is_owed_to_each_client_and_settling_pays_it_down_once(app, receiver):
    creds = await add_client(app, receiver)
    for n in range(3):
        made = await create(app, creds.api_key, deposit_id=f"s{n}")
        await pay(app, made.json()["payment_url"].rsplit("/", 1)[1])
    clients = app.runtime.api.clients
    (summary,) = await clients.summaries()
    assert summary.owed == 75_000
    assert await clients.settle("shopbot", 50_000, "BCA-7781") is True
    assert await clients.settle("shopbot", 50_000, "BCA-7781") is False  # the same payment recorded once
    with pytest.raises(Exception, match="ledger conflict"):
        await clients.settle("shopbot", 60_000, "BCA-7781")
    with pytest.raises(Exception, match="insufficient_funds"):
        await clients.settle("shopbot", 30_000, "BCA-7782")  # more than is owed: the database refuses it
    async with app.runtime.db.read() as session:
        client_id = await session.scalar(select(Account.key).where(Account.kind == "client"))
    assert await balance(app.runtime.db, ledger.client(int(client_id))) == 25_000
    await assert_books_hold(app.runtime.db)


async def test_forwarding_state_is_visible_while_the_clients_server_fails(app, receiver):
    creds = await add_client(app, receiver)
    receiver.answers = [500] * 50
    made = await create(app, creds.api_key, deposit_id="f1")
    await pay(app, made.json()["payment_url"].rsplit("/", 1)[1])
    await wait_for(lambda: receiver.deliveries)
    async def failing():
        body = (await app.http.get("/api/v1/deposits/f1", headers=bearer(creds.api_key))).json()
        return body if body["forwarding"]["attempts"] >= 1 else None
    body = await wait_for(failing)
    forwarding = body["forwarding"]
    assert forwarding["delivered"] is False and forwarding["last_status"] == 500
    assert forwarding["last_error"].startswith("HTTP 500") and forwarding["next_attempt_at"]
    async with app.runtime.db.read() as session:
        row = await session.scalar(select(OutboxMessage).where(OutboxMessage.channel == "webhook"))
    assert row.status == "pending" and row.dedupe_key.endswith("_paid")


async def test_a_reversed_deposit_takes_back_what_the_client_is_owed_books_the_rest_and_forwards_it(
        tmp_path, fresh_db_url, midtrans, receiver):
    config = {**api_config(), "payments": {"gateways": ["midtrans"], "midtrans": midtrans.config()}}
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        creds = await add_client(app, receiver)
        clients = app.runtime.api.clients
        assert (await create(app, creds.api_key, deposit_id="big", amount=50_000)).status_code == 201
        (first,) = list(midtrans.orders)
        assert (await app.http.post("/payments/midtrans/notify", json=midtrans.settle(first))).status_code == 200
        assert await clients.settle("shopbot", 30_000, "BCA-1")  # the operator paid most of it over already
        deny = midtrans.settle(first, "deny", fraud_status=None)
        assert (await app.http.post("/payments/midtrans/notify", json=deny)).status_code == 200
        (summary,) = await clients.summaries()
        assert (summary.owed, summary.receivable) == (0, 30_000)
        await wait_for(lambda: {d.json["type"] for d in receiver.accepted()} == {"deposit.paid", "deposit.reversed"})
        reversed_ = next(d for d in receiver.accepted() if d.json["type"] == "deposit.reversed")
        assert reversed_.json["data"]["status"] == "reversed"
        assert reversed_.headers["webhook-id"].endswith("_reversed")
        async with app.runtime.db.read() as session:
            alerts = (await session.scalars(select(OutboxMessage.template).where(OutboxMessage.chat_id == "999"))).all()
        assert "admin_payment_owed" in alerts
        # The client's next deposit repays what it owes first.
        assert (await create(app, creds.api_key, deposit_id="next", amount=40_000)).status_code == 201
        second = next(o for o in midtrans.orders if o != first)
        assert (await app.http.post("/payments/midtrans/notify", json=midtrans.settle(second))).status_code == 200
        (summary,) = await clients.summaries()
        assert (summary.owed, summary.receivable) == (10_000, 0)
        read = (await app.http.get("/api/v1/deposits/big", headers=bearer(creds.api_key))).json()
        assert read["status"] == "reversed"
        await assert_books_hold(app.runtime.db)


async def test_a_deposit_paid_with_another_amount_is_held_for_admins_and_an_admins_credit_forwards_it(
        tmp_path, fresh_db_url, midtrans, receiver):
    from tests.support.midtrans import midtrans_notification

    config = {**api_config(), "payments": {"gateways": ["midtrans"], "midtrans": midtrans.config()}}
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        creds = await add_client(app, receiver)
        assert (await create(app, creds.api_key, deposit_id="odd", amount=50_000)).status_code == 201
        (order_id,) = list(midtrans.orders)
        paid_less = midtrans_notification(order_id, 45_000, "settlement", midtrans.server_key)
        midtrans.orders[order_id].status = paid_less  # the status API says the same
        assert (await app.http.post("/payments/midtrans/notify", json=paid_less)).status_code == 200
        admin_service = app.runtime.services.admin
        (case,) = await admin_service.attention()
        assert (case.order_id, case.payer, case.paid_amount) == (order_id, "bot shopbot (u-42)", 45_000)
        assert (await app.http.get("/api/v1/deposits/odd", headers=bearer(creds.api_key))).json()["status"] == "pending"
        assert receiver.deliveries == []  # nothing is forwarded while it is held
        admin = (await app.runtime.services.inbound.register(channel="telegram", external_id="999",
                                                             display_name="Admin", update_key=None)).user
        assert (await admin_service.credit(admin, order_id, "payer confirmed by phone")).result == "credited"
        await wait_for(lambda: receiver.accepted())
        data = receiver.accepted()[0].json["data"]
        assert (data["status"], data["amount"]) == ("paid", 45_000)  # what reached the client's account
        assert (await clients_owed(app)) == 45_000
        await assert_books_hold(app.runtime.db)


async def clients_owed(app: AppUnderTest) -> int:
    return (await app.runtime.api.clients.summaries())[0].owed


async def test_client_secrets_are_never_stored_in_the_clear(app):
    api = await add_client(app)
    worker = await app.runtime.api.clients.add("legacy", "http://127.0.0.1:9/cb", worker=True)
    async with app.runtime.db.read() as session:
        from storage.models import ClientKey

        stored = " ".join(str(value) for row in (await session.execute(select(ClientKey))).scalars()
                          for value in vars(row).values())
    for secret in (api.api_key, api.signing_secret, api.webhook_secret, worker.api_key, worker.signing_secret,
                   worker.webhook_secret):
        assert secret not in stored and secret.split("_", 1)[1] not in stored


async def test_a_deposit_whose_creation_was_cut_off_by_a_crash_is_created_again_on_retry(tmp_path, fresh_db_url):
    clock = FrozenClock()
    async with AppUnderTest(tmp_path, fresh_db_url, api_config(), clock=clock) as app:
        creds = await add_client(app)
        first = await create(app, creds.api_key, deposit_id="cut")
        assert first.status_code == 201
        # As a server killed between asking the gateway and writing its answer leaves it.
        async with app.runtime.db.write() as session:
            from sqlalchemy import update

            await session.execute(update(Payment).values(status="created", payment_url=None))
        clock.advance(seconds=30)
        again = await create(app, creds.api_key, deposit_id="cut")
        assert again.status_code == 200 and again.json()["payment_url"]
        async with app.runtime.db.read() as session:
            statuses = (await session.scalars(select(Payment.status).order_by(Payment.id))).all()
            flags = (await session.scalars(select(Payment.flag_reason).order_by(Payment.id))).all()
        assert statuses == ["failed", "pending"] and "interrupted" in flags[0]
