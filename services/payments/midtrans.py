"""Midtrans Snap: create a transaction, verify notifications (SHA512 signature), query the status API."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import httpx

from services.errors import GatewayError, GatewayUnavailable, MalformedCallback
from services.payments import (
    CallbackAnswer,
    CreatedPayment,
    GatewayStatus,
    Notification,
    PaymentRequest,
    call_gateway,
    parse_json_object,
    parse_rupiah,
    require_str,
    verify_equal,
)

_FAILED = {"deny", "cancel", "failure"}
_REFUNDED = {"refund", "partial_refund", "chargeback", "partial_chargeback"}


def signature(order_id: str, status_code: str, gross_amount: str, server_key: str) -> str:
    """hex(SHA512(order_id + status_code + gross_amount + server_key)), over the strings exactly as sent."""
    return hashlib.sha512((order_id + status_code + gross_amount + server_key).encode()).hexdigest()


def map_status(transaction_status: str, fraud_status: str | None) -> GatewayStatus:
    """Midtrans's own outcome table: settlement, or capture+accept, is paid; capture+challenge is a hold."""
    if transaction_status == "settlement":
        return "paid"
    if transaction_status == "capture":
        if fraud_status in (None, "", "accept"):
            return "paid"
        if fraud_status == "challenge":
            return "hold"
        return "failed"
    if transaction_status in ("pending", "authorize"):
        return "pending"
    if transaction_status == "expire":
        return "expired"
    if transaction_status in _FAILED:
        return "failed"
    if transaction_status in _REFUNDED:
        return "refunded"
    return "ignored"


class MidtransGateway:
    name = "midtrans"
    callback_answer = CallbackAnswer("OK")

    def must_confirm(self, notification: Notification) -> bool:
        # The signature covers status_code, not transaction_status: settlement and refund share code 200, so
        # a replayed settlement notice renamed "refund" would verify. Money going back is confirmed.
        return notification.status == "refunded" or notification.reverses_success

    def __init__(
        self,
        *,
        server_key: str,
        snap_base_url: str,
        api_base_url: str,
        http: httpx.AsyncClient,
        enabled_payments: list[str] | None = None,
    ) -> None:
        self._server_key = server_key
        self._snap = snap_base_url.rstrip("/")
        self._api = api_base_url.rstrip("/")
        self._http = http
        self._enabled_payments = enabled_payments or []
        token = base64.b64encode(f"{server_key}:".encode()).decode()
        self._headers = {
            "Authorization": f"Basic {token}",
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    async def create(self, request: PaymentRequest) -> CreatedPayment:
        body: dict[str, Any] = {
            "transaction_details": {"order_id": request.order_id, "gross_amount": request.amount},
            "item_details": [
                {"id": "topup", "price": request.amount, "quantity": 1, "name": request.description[:50]}
            ],
            "customer_details": {"first_name": request.customer_name[:50] or "Titip",
                                 **({"email": request.email} if request.email else {}),
                                 **({"phone": request.phone} if request.phone else {})},
            "expiry": {"unit": "minutes", "duration": request.expiry_minutes},
            "callbacks": {"finish": request.return_url},
        }
        if self._enabled_payments:
            body["enabled_payments"] = self._enabled_payments
        # Route this transaction's notifications to us even if the dashboard names another URL.
        headers = {**self._headers, "X-Override-Notification": request.notify_url}
        response = await call_gateway(
            self.name, "create", self._http.post(f"{self._snap}/snap/v1/transactions", json=body, headers=headers)
        )
        if response.status_code not in (200, 201):
            raise GatewayError(self.name, f"create refused: HTTP {response.status_code} {response.text[:200]}")
        try:
            data = response.json()
            return CreatedPayment(payment_url=data["redirect_url"], gateway_ref=data.get("token"))
        except (ValueError, KeyError, TypeError) as exc:
            raise GatewayUnavailable(self.name, "create answered without redirect_url") from exc

    def parse_callback(self, raw_body: bytes, headers: Mapping[str, str]) -> Notification:
        data = parse_json_object(raw_body)
        order_id = require_str(data, "order_id")
        status_code = require_str(data, "status_code")
        gross_amount = require_str(data, "gross_amount")
        given = data.get("signature_key")
        verify_equal(
            signature(order_id, status_code, gross_amount, self._server_key),
            given if isinstance(given, str) else None,
        )
        return self._notification(data, source="callback")

    def _notification(self, data: dict[str, Any], source: str) -> Notification:
        order_id = require_str(data, "order_id")
        transaction_status = require_str(data, "transaction_status")
        fraud_status = data.get("fraud_status") if isinstance(data.get("fraud_status"), str) else None
        transaction_id = data.get("transaction_id") if isinstance(data.get("transaction_id"), str) else order_id
        status = map_status(transaction_status, fraud_status)
        refund_amount = refunded_total = None
        event_key = f"{transaction_id}:{transaction_status}:{fraud_status or ''}"
        if status == "refunded":
            if data.get("refund_amount") is not None:
                refund_amount = parse_rupiah(data.get("refund_amount"), "refund_amount")
            refunds = data.get("refunds")
            if isinstance(refunds, list) and refunds:  # every refund so far: the total is what counts
                refunded_total = sum(parse_rupiah(r.get("refund_amount") if isinstance(r, dict) else None,
                                                  "refunds[].refund_amount") for r in refunds)
            refund_key = data.get("refund_key") or data.get("refund_chargeback_id") or refunded_total \
                or refund_amount
            event_key += f":{refund_key}"
        return Notification(
            gateway=self.name,
            order_id=order_id,
            event_key=event_key[:200],
            status=status,
            raw_status=transaction_status if not fraud_status else f"{transaction_status}/{fraud_status}",
            amount=parse_rupiah(data.get("gross_amount"), "gross_amount"),
            gateway_ref=transaction_id,
            refund_amount=refund_amount,
            refunded_total=refunded_total,
            method=data.get("payment_type") if isinstance(data.get("payment_type"), str) else None,
            payload=data,
            reverses_success=transaction_status == "deny",
        )

    async def fetch_status(self, order_id: str, gateway_ref: str | None) -> Notification | None:
        response = await call_gateway(
            self.name, "status", self._http.get(f"{self._api}/v2/{order_id}/status", headers=self._headers)
        )
        if response.status_code == 404:
            return None  # the customer has not picked a payment method in Snap yet
        if response.status_code != 200:
            raise GatewayError(self.name, f"status refused: HTTP {response.status_code}")
        try:
            data = response.json()
        except ValueError as exc:
            raise GatewayUnavailable(self.name, "status answered non-JSON") from exc
        # The status API also says "not found" inside a 200.
        if not isinstance(data, dict) or str(data.get("status_code")) == "404" or "transaction_status" not in data:
            return None
        try:
            return self._notification(data, source="reconcile")
        except MalformedCallback as exc:
            raise GatewayError(self.name, f"status answer unusable: {exc}") from exc
