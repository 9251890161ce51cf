"""The Midtrans adapter on httpx.MockTransport: request shape, status mapping, status API answers."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from services.errors import BadSignature, GatewayError, GatewayUnavailable, MalformedCallback
from services.payments import PaymentRequest
from services.payments.midtrans import MidtransGateway, map_status
from tests.support.midtrans import midtrans_notification

KEY = "SB-Mid-server-UNIT"


def gateway(handler) -> MidtransGateway:
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return MidtransGateway(server_key=KEY, snap_base_url="https://snap.test", api_base_url="https://api.test",
                           http=client, enabled_payments=["gopay", "other_qris"])


REQUEST = PaymentRequest(order_id="TT1", amount=50_000, description="Top up saldo Titip", customer_name="Siti",
                         notify_url="https://me/payments/midtrans/notify", return_url="https://me/pay/done",
                         expiry_minutes=60)


async def test_create_sends_snap_request_with_basic_auth_and_integer_amount():
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"] = str(request.url)
        seen["auth"] = request.headers["Authorization"]
        seen["body"] = json.loads(request.content)
        return httpx.Response(201, json={"token": "t1", "redirect_url": "https://pay/t1"})

    created = await gateway(handler).create(REQUEST)
    assert created.payment_url == "https://pay/t1" and created.gateway_ref == "t1"
    assert seen["url"] == "https://snap.test/snap/v1/transactions"
    assert seen["auth"] == "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
    assert seen["body"]["transaction_details"] == {"order_id": "TT1", "gross_amount": 50000}
    assert sum(i["price"] * i["quantity"] for i in seen["body"]["item_details"]) == 50000
    assert seen["body"]["enabled_payments"] == ["gopay", "other_qris"]


@pytest.mark.parametrize(("status", "error"), [(500, GatewayUnavailable), (503, GatewayUnavailable),
                                                (401, GatewayError), (406, GatewayError)])
async def test_create_failures_are_typed_for_failover(status, error):
    with pytest.raises(error):
        await gateway(lambda r: httpx.Response(status, json={"error_messages": ["x"]})).create(REQUEST)


async def test_create_timeout_is_unavailable():
    def handler(request):
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(GatewayUnavailable):
        await gateway(handler).create(REQUEST)


@pytest.mark.parametrize(
    ("status", "fraud", "expected"),
    [("settlement", None, "paid"), ("capture", "accept", "paid"), ("capture", "challenge", "hold"),
     ("capture", "deny", "failed"), ("pending", None, "pending"), ("deny", None, "failed"),
     ("cancel", None, "failed"), ("failure", None, "failed"), ("expire", None, "expired"),
     ("refund", None, "refunded"), ("partial_refund", None, "refunded"), ("chargeback", None, "refunded"),
     ("something_new", None, "ignored")],
)
def test_status_mapping_follows_midtrans(status, fraud, expected):
    assert map_status(status, fraud) == expected


def test_callback_is_verified_over_the_strings_as_sent():
    gw = gateway(lambda r: httpx.Response(500))
    good = midtrans_notification("TT1", 50_000, "settlement", KEY)
    parsed = gw.parse_callback(json.dumps(good).encode(), {})
    assert (parsed.order_id, parsed.status, parsed.amount) == ("TT1", "paid", 50_000)
    with pytest.raises(BadSignature):
        gw.parse_callback(json.dumps({**good, "gross_amount": "50000"}).encode(), {})
    with pytest.raises(MalformedCallback):
        gw.parse_callback(json.dumps({**good, "gross_amount": 50000}).encode(), {})


async def test_status_api_404_means_not_attempted_yet():
    gw = gateway(lambda r: httpx.Response(404, json={"status_code": "404"}))
    assert await gw.fetch_status("TT1", None) is None
    gw = gateway(lambda r: httpx.Response(200, json={"status_code": "404", "status_message": "not found"}))
    assert await gw.fetch_status("TT1", None) is None


async def test_status_api_answer_becomes_a_notification():
    body = midtrans_notification("TT1", 50_000, "settlement", KEY)
    gw = gateway(lambda r: httpx.Response(200, json=body))
    notification = await gw.fetch_status("TT1", None)
    assert notification is not None and notification.status == "paid" and notification.amount == 50_000
