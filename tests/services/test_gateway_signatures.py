"""Known answers for each gateway's signature, computed by hand with md5sum / openssl from protocols.md."""

from __future__ import annotations

import json

import httpx
import pytest

from services.errors import BadSignature, MalformedCallback
from services.payments import doku, duitku
from services.payments.doku import DokuGateway
from services.payments.duitku import DuitkuGateway
from services.payments.xendit import XenditGateway

BODY = b'{"order":{"invoice_number":"TT1","amount":50000}}'


def test_duitku_request_signature_is_md5_of_code_order_amount_key():
    # printf '%s' 'DS10001TT150000apikey' | md5sum
    assert duitku.request_signature("DS10001", "TT1", 50000, "apikey") == "25f95638624fd71b414e21a53a094d0c"


def test_duitku_callback_signature_puts_the_amount_before_the_order():
    # printf '%s' 'DS1000150000TT1apikey' | md5sum
    assert duitku.callback_signature("DS10001", "50000", "TT1", "apikey") == "233c62fd75a525f844d0bb9230442aad"


def test_duitku_status_signature():
    # printf '%s' 'DS10001TT1apikey' | md5sum
    assert duitku.status_signature("DS10001", "TT1", "apikey") == "790061f68b5a2533d832fcf73a8796db"


def test_doku_digest_and_signature_with_body():
    # openssl dgst -sha256 -binary body.json | base64; then the five lines | openssl dgst -sha256 -hmac SK-1
    assert doku.digest(BODY) == "vKbE/dWNjjwE4/pwR0qfLRySwUh9Z3TKiSX383oqy3U="
    assert doku.signature("SK-1", "MCH-0001", "req-1", "2026-11-20T03:24:25Z", "/payments/doku/notify", BODY) == (
        "HMACSHA256=PSWmHdCzvoF6I900tvXbi8D3Z8qruVDbiXpxkCm6zGQ=")


def test_doku_signature_for_get_has_no_digest_line():
    assert doku.signature("SK-1", "MCH-0001", "req-2", "2026-11-20T03:24:25Z", "/orders/v1/status/TT1", None) == (
        "HMACSHA256=8S/2onnTommNN/nlj4hSd0+Cv+GUql+2xf03jokC9xc=")


def _unused_http() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(500)))


def test_doku_notification_is_verified_against_our_own_notify_path():
    gw = DokuGateway(client_id="MCH-0001", secret_key="SK-1", base_url="https://x", http=_unused_http())
    raw = json.dumps({"order": {"invoice_number": "TT1", "amount": 50000},
                      "transaction": {"status": "SUCCESS"}}).encode()
    headers = {"Client-Id": "MCH-0001", "Request-Id": "r-9", "Request-Timestamp": "2026-11-20T03:24:25Z"}
    good = doku.signature("SK-1", "MCH-0001", "r-9", "2026-11-20T03:24:25Z", "/payments/doku/notify", raw)
    parsed = gw.parse_callback(raw, {**headers, "Signature": good})
    assert (parsed.status, parsed.amount, parsed.event_key) == ("paid", 50000, "r-9")
    elsewhere = doku.signature("SK-1", "MCH-0001", "r-9", "2026-11-20T03:24:25Z", "/notify", raw)
    with pytest.raises(BadSignature):
        gw.parse_callback(raw, {**headers, "Signature": elsewhere})
    with pytest.raises(BadSignature):
        gw.parse_callback(raw, {**headers, "Signature": "HMACSHA256=é"})


def test_xendit_token_is_compared_exactly():
    gw = XenditGateway(secret_key="xnd", callback_token="tok-1", base_url="https://x", http=_unused_http())
    raw = json.dumps({"id": "inv1", "external_id": "TT1", "status": "PAID", "amount": 50000,
                      "paid_amount": 50000}).encode()
    assert gw.parse_callback(raw, {"x-callback-token": "tok-1"}).status == "paid"
    for bad in ("tok-2", "", "tok-1 ", "tök-1"):
        with pytest.raises(BadSignature):
            gw.parse_callback(raw, {"x-callback-token": bad})


def test_duitku_callback_that_is_not_a_form_is_malformed():
    gw = DuitkuGateway(merchant_code="DS10001", api_key="apikey", base_url="https://x", http=_unused_http())
    with pytest.raises(MalformedCallback):
        gw.parse_callback(b"\xff\xfe", {})
    with pytest.raises(MalformedCallback):
        gw.parse_callback(b"merchantCode=DS10001", {})
