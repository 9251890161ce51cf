"""DOKU Checkout (non-SNAP): HMAC-SHA256 header signatures with a body Digest, notifications, order status."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from services.errors import BadSignature, GatewayError, GatewayUnavailable, MalformedCallback
from services.payments import (
    CallbackAnswer,
    CreatedPayment,
    GatewayStatus,
    Notification,
    PaymentRequest,
    call_gateway,
    parse_rupiah,
    require_str,
    verify_equal,
)

NOTIFY_PATH = "/payments/doku/notify"
_STATUS: dict[str, GatewayStatus] = {
    "SUCCESS": "paid", "FAILED": "failed", "EXPIRED": "expired", "TIMEOUT": "expired",
    "PENDING": "pending", "REDIRECT": "pending", "REFUNDED": "refunded",
}


def digest(raw_body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(raw_body).digest()).decode()


def signature(
    secret_key: str, client_id: str, request_id: str, timestamp: str, target: str, raw_body: bytes | None
) -> str:
    """'HMACSHA256=' + base64(HMAC-SHA256(secret, the header lines joined by \\n, no trailing newline))."""
    lines = [f"Client-Id:{client_id}", f"Request-Id:{request_id}", f"Request-Timestamp:{timestamp}",
             f"Request-Target:{target}"]
    if raw_body is not None:  # GET requests have no Digest line
        lines.append(f"Digest:{digest(raw_body)}")
    mac = hmac.new(secret_key.encode(), "\n".join(lines).encode(), hashlib.sha256).digest()
    return "HMACSHA256=" + base64.b64encode(mac).decode()


def _utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DokuGateway:
    name = "doku"
    callback_answer = CallbackAnswer("OK")

    def must_confirm(self, notification: Notification) -> bool:
        return False  # the signature covers the whole body

    def __init__(
        self, *, client_id: str, secret_key: str, base_url: str, http: httpx.AsyncClient,
        timestamp: Callable[[], str] = _utc_now,
    ) -> None:
        self._client_id = client_id
        self._secret = secret_key
        self._base = base_url.rstrip("/")
        self._http = http
        self._timestamp = timestamp

    def _headers(self, target: str, raw_body: bytes | None) -> dict[str, str]:
        request_id, ts = str(uuid.uuid4()), self._timestamp()
        headers = {
            "Client-Id": self._client_id, "Request-Id": request_id, "Request-Timestamp": ts,
            "Signature": signature(self._secret, self._client_id, request_id, ts, target, raw_body),
        }
        if raw_body is not None:
            headers["Content-Type"] = "application/json"
        return headers

    async def create(self, request: PaymentRequest) -> CreatedPayment:
        target = "/checkout/v1/payment"
        raw = json.dumps({
            "order": {"amount": request.amount, "invoice_number": request.order_id, "currency": "IDR",
                      "callback_url": request.return_url},
            "payment": {"payment_due_date": request.expiry_minutes},
            "customer": {"name": (request.customer_name or "Titip")[:50],
                         **({"email": request.email} if request.email else {}),
                         **({"phone": request.phone} if request.phone else {})},
        }, separators=(",", ":")).encode()
        response = await call_gateway(
            self.name, "create",
            self._http.post(f"{self._base}{target}", content=raw, headers=self._headers(target, raw)),
        )
        if response.status_code != 200:
            raise GatewayError(self.name, f"create refused: HTTP {response.status_code} {response.text[:200]}")
        try:
            url = response.json()["response"]["payment"]["url"]
        except (ValueError, KeyError, TypeError) as exc:
            raise GatewayUnavailable(self.name, "create answered without response.payment.url") from exc
        return CreatedPayment(payment_url=url, gateway_ref=request.order_id)

    def parse_callback(self, raw_body: bytes, headers: Mapping[str, str]) -> Notification:
        client_id, request_id = headers.get("Client-Id"), headers.get("Request-Id")
        timestamp = headers.get("Request-Timestamp")
        if not (client_id and request_id and timestamp):
            raise BadSignature("Client-Id, Request-Id or Request-Timestamp missing")
        expected = signature(self._secret, client_id, request_id, timestamp, NOTIFY_PATH, raw_body)
        verify_equal(expected, headers.get("Signature"))
        if client_id != self._client_id:
            raise MalformedCallback("notification for another client id")
        try:
            data = json.loads(raw_body)
            order, transaction = data["order"], data["transaction"]
        except (ValueError, UnicodeDecodeError, KeyError, TypeError, RecursionError):
            raise MalformedCallback("body is not a DOKU notification") from None
        return self._notification(order, transaction, event_key=request_id, payload=data)

    def _notification(self, order: object, transaction: object, *, event_key: str,
                      payload: dict[str, Any]) -> Notification:
        if not isinstance(order, dict) or not isinstance(transaction, dict):
            raise MalformedCallback("order / transaction missing")
        raw_status = require_str(transaction, "status")
        return Notification(
            gateway=self.name, order_id=require_str(order, "invoice_number"), event_key=event_key[:200],
            status=_STATUS.get(raw_status.upper(), "ignored"), raw_status=raw_status,
            amount=parse_rupiah(order.get("amount")), gateway_ref=order.get("invoice_number"), payload=payload,
        )

    async def fetch_status(self, order_id: str, gateway_ref: str | None) -> Notification | None:
        target = f"/orders/v1/status/{order_id}"
        response = await call_gateway(
            self.name, "status", self._http.get(f"{self._base}{target}", headers=self._headers(target, None))
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise GatewayError(self.name, f"status refused: HTTP {response.status_code}")
        try:
            data = response.json()
            status = data["transaction"]["status"]
            return self._notification(data["order"], data["transaction"],
                                      event_key=f"status:{order_id}:{status}", payload=data)
        except (ValueError, KeyError, TypeError, MalformedCallback) as exc:
            raise GatewayError(self.name, f"status answer unusable: {exc}") from exc
