"""WhatsApp end to end over real sockets: our server, a fake Graph API and fake gateways on 127.0.0.1."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from storage.models import OutboxMessage
from tests.support.harness import AppUnderTest
from tests.support.waiting import said, wait_for
from tests.support.whatsapp import VERIFY_TOKEN, button_update, signed, status_update, text_update

WA = "6281234567890"






@pytest.fixture
async def app(tmp_path, fresh_db_url, graph, midtrans):
    config = {
        "whatsapp": graph.config(),
        "payments": {"gateways": ["midtrans"], "midtrans": midtrans.config()},
    }
    async with AppUnderTest(tmp_path, fresh_db_url, config) as running:
        yield running


async def send(app, payload) -> int:
    raw, headers = signed(payload)
    return (await app.http.post("/whatsapp/webhook", content=raw, headers=headers)).status_code


async def test_whatsapp_user_tops_up_and_is_told_when_credited(app, graph, midtrans):
    assert await send(app, text_update(WA, "TOPUP 50000", "wamid.in1")) == 200
    await wait_for(lambda: midtrans.orders)
    order_id = next(iter(midtrans.orders))
    await wait_for(lambda: any(order_id in t and "Rp50.000" in t for t in graph.texts_to(WA)))
    assert (await app.http.post("/payments/midtrans/notify", json=midtrans.settle(order_id))).status_code == 200
    await wait_for(lambda: said(graph.texts_to(WA), "Saldo bertambah Rp50.000", "saldo sekarang Rp50.000 ✅"))
    await send(app, text_update(WA, "saldo", "wamid.in2"))
    await wait_for(lambda: said(graph.texts_to(WA), "Saldo kamu: Rp50.000."))


async def test_presets_come_as_a_list_and_a_tapped_row_starts_a_topup(app, graph, midtrans):
    await send(app, text_update(WA, "topup", "wamid.p1"))
    await wait_for(lambda: graph.messages)
    interactive = graph.messages[-1]["interactive"]
    assert interactive["type"] == "list"  # five presets: more than three reply buttons allow
    rows = interactive["action"]["sections"][0]["rows"]
    assert [r["title"] for r in rows][:2] == ["Rp50.000", "Rp100.000"]
    await send(app, button_update(WA, rows[1]["id"], rows[1]["title"], "wamid.p2", kind="list_reply"))
    await wait_for(lambda: midtrans.orders)
    assert next(iter(midtrans.orders.values())).gross_amount == 100_000


async def test_language_buttons_are_reply_buttons(app, graph):
    await send(app, text_update(WA, "BAHASA", "wamid.l1"))
    await wait_for(lambda: graph.messages)
    assert graph.messages[-1]["interactive"]["type"] == "button"
    await send(app, button_update(WA, "lang:en", "English", "wamid.l2"))
    await wait_for(lambda: said(graph.texts_to(WA), "Language set to English."))


async def test_the_same_webhook_body_twice_is_handled_once(app, graph, midtrans):
    payload = text_update(WA, "TOPUP 75rb", "wamid.dup")
    assert await send(app, payload) == 200
    assert await send(app, payload) == 200
    await wait_for(lambda: midtrans.orders)
    await send(app, text_update(WA, "SALDO", "wamid.after"))
    await wait_for(lambda: said(graph.texts_to(WA), "Saldo kamu: Rp0."))
    assert len(midtrans.orders) == 1


async def test_bad_or_missing_signature_and_wrong_verify_token_are_refused(app, graph, midtrans):
    raw, headers = signed(text_update(WA, "TOPUP 50000", "wamid.f1"), secret="not-the-secret")
    assert (await app.http.post("/whatsapp/webhook", content=raw, headers=headers)).status_code in (401, 403)
    unsigned = {"Content-Type": "application/json"}
    assert (await app.http.post("/whatsapp/webhook", content=raw, headers=unsigned)).status_code in (401, 403)
    hostile = {"X-Hub-Signature-256": "sha256=é".encode(), "Content-Type": "application/json"}
    assert (await app.http.post("/whatsapp/webhook", content=raw, headers=hostile)).status_code in (401, 403)
    ok = await app.http.get("/whatsapp/webhook", params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                                           "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    wrong = await app.http.get("/whatsapp/webhook", params={"hub.mode": "subscribe", "hub.verify_token": "nope",
                                                              "hub.challenge": "1"})
    assert wrong.status_code == 403
    assert midtrans.orders == {} and graph.messages == []


async def test_a_failed_status_webhook_marks_the_notice_failed(app, graph, midtrans):
    await send(app, text_update(WA, "TOPUP 50000", "wamid.s1"))
    await wait_for(lambda: midtrans.orders)
    await app.http.post("/payments/midtrans/notify", json=midtrans.settle(next(iter(midtrans.orders))))
    await wait_for(lambda: any("Saldo bertambah" in t for t in graph.texts_to(WA)))
    credited = next(m for m in graph.messages if m.get("type") == "text" and "Saldo bertambah" in m["text"]["body"])
    assert await send(app, status_update(WA, credited["_wamid"])) == 200

    async def failed():
        async with app.runtime.db.read() as session:
            row = (await session.scalars(select(OutboxMessage))).one()
            return row.status == "failed" and "131026" in (row.last_error or "")

    await wait_for(failed)


async def test_a_notice_outside_the_24_hour_window_without_a_template_is_recorded_undeliverable(
    app, graph, midtrans
):
    await send(app, text_update(WA, "TOPUP 50000", "wamid.w1"))
    await wait_for(lambda: midtrans.orders)
    from datetime import timedelta

    from sqlalchemy import update

    from storage.models import User

    async with app.runtime.db.write() as session:  # the user last wrote two days ago
        await session.execute(update(User).values(last_inbound_at=app.runtime.clock.now() - timedelta(days=2)))
    await app.http.post("/payments/midtrans/notify", json=midtrans.settle(next(iter(midtrans.orders))))

    async def undeliverable():
        async with app.runtime.db.read() as session:
            row = (await session.scalars(select(OutboxMessage))).one()
            return row.status == "failed" and "whatsapp.templates.payment_credited" in (row.last_error or "")

    await wait_for(undeliverable)
    assert not any("Saldo bertambah" in t for t in graph.texts_to(WA))


@pytest.fixture
async def templated_app(tmp_path, fresh_db_url, graph, midtrans):
    config = {
        "whatsapp": {**graph.config(), "templates": {"payment_credited": "saldo_masuk"}},
        "payments": {"gateways": ["midtrans"], "midtrans": midtrans.config()},
    }
    async with AppUnderTest(tmp_path, fresh_db_url, config) as running:
        yield running


async def outbox_row(app) -> OutboxMessage:
    async with app.runtime.db.read() as session:
        return (await session.scalars(select(OutboxMessage))).one()


async def test_outside_the_window_the_configured_template_is_sent(templated_app, graph, midtrans):
    from datetime import timedelta

    from sqlalchemy import update

    from storage.models import User

    app = templated_app
    await send(app, text_update(WA, "TOPUP 50000", "wamid.t1"))
    await wait_for(lambda: midtrans.orders)
    async with app.runtime.db.write() as session:
        await session.execute(update(User).values(last_inbound_at=app.runtime.clock.now() - timedelta(hours=25)))
    await app.http.post("/payments/midtrans/notify", json=midtrans.settle(next(iter(midtrans.orders))))
    await wait_for(lambda: said(graph.texts_to(WA), "template:saldo_masuk"))
    template = next(m for m in graph.messages if m.get("type") == "template")["template"]
    assert template["language"]["code"] == "id"
    values = [p["text"] for p in template["components"][0]["parameters"]]
    assert values[1:] == ["Rp50.000", "Rp50.000"]

    # The fake Graph API records the message before it answers; the row is marked sent only after the answer.
    async def marked_sent():
        return (await outbox_row(app)).status == "sent"

    await wait_for(marked_sent)


async def test_meta_saying_the_window_is_closed_switches_to_the_template(templated_app, graph, midtrans):
    app = templated_app
    await send(app, text_update(WA, "TOPUP 50000", "wamid.t2"))
    await wait_for(lambda: midtrans.orders)
    # Script the failure only once the link reply is out, so that it hits the credit notice.
    await wait_for(lambda: any(next(iter(midtrans.orders)) in t for t in graph.texts_to(WA)))
    graph.fail_next = [(400, 131047)]
    await app.http.post("/payments/midtrans/notify", json=midtrans.settle(next(iter(midtrans.orders))))
    await wait_for(lambda: said(graph.texts_to(WA), "template:saldo_masuk"))
    assert [f["_code"] for f in graph.failures] == [131047]


@pytest.mark.parametrize(("code", "minimum_delay"), [(131056, 3.2), (130429, 5.0)])
async def test_rate_limit_errors_are_retried_later_not_dropped(app, graph, midtrans, code, minimum_delay):
    await send(app, text_update(WA, "TOPUP 50000", "wamid.r1"))
    await wait_for(lambda: midtrans.orders)
    await wait_for(lambda: any(next(iter(midtrans.orders)) in t for t in graph.texts_to(WA)))
    graph.fail_next = [(400, code)]
    await app.http.post("/payments/midtrans/notify", json=midtrans.settle(next(iter(midtrans.orders))))

    async def rescheduled():
        row = await outbox_row(app)
        return row.attempts == 1 and row.status == "pending" and row

    row = await wait_for(rescheduled)
    assert (row.next_attempt_at - row.created_at).total_seconds() >= minimum_delay
    assert str(code) in row.last_error


async def test_a_shared_trip_link_goes_with_a_link_preview_and_a_payment_button_without(app, graph):
    await send(app, text_update(WA, "TRIP BARU wa01 Jastip Medan | 2099-12-31 20:00", "wamid.t1"))
    await wait_for(lambda: said(graph.texts_to(WA), "Trip wa01 dibuat"))
    shared = next(m for m in graph.messages if m.get("type") == "text" and "Trip wa01 dibuat" in m["text"]["body"])
    assert f"{app.url}/t/wa01" in shared["text"]["body"] and shared["text"]["preview_url"] is True
    await send(app, text_update(WA, "saldo", "wamid.t2"))
    await wait_for(lambda: said(graph.texts_to(WA), "Saldo kamu"))
    balance = next(m for m in graph.messages if "Saldo kamu" in str(m))
    assert balance["type"] == "interactive"  # buttons: no preview flag on an interactive message
