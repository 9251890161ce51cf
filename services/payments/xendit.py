"""Xendit Invoice: create, callbacks authenticated by the x-callback-token header, invoice status."""

from __future__ import annotations

import base64
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

TOKEN_HEADER = "x-callback-token"
_STATUS: dict[str, GatewayStatus] = {"PAID": "paid", "SETTLED": "paid", "EXPIRED": "expired", "PENDING": "pending"}


class XenditGateway:
    name = "xendit"
    callback_answer = CallbackAnswer("OK")

    def must_confirm(self, notification: Notification) -> bool:
        return False  # the callback token authenticates Xendit itself; the body is Xendit's word

    def __init__(self, *, secret_key: str, callback_token: str, base_url: str, http: httpx.AsyncClient) -> None:
        self._token = callback_token
        self._base = base_url.rstrip("/")
        self._http = http
        auth = base64.b64encode(f"{secret_key}:".encode()).decode()
        self._headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}

    async def create(self, request: PaymentRequest) -> CreatedPayment:
        body = {
            "external_id": request.order_id, "amount": request.amount, "currency": "IDR",
            "description": request.description, "invoice_duration": request.expiry_minutes * 60,
            "success_redirect_url": request.return_url, "failure_redirect_url": request.return_url,
            "customer": {"given_names": (request.customer_name or "Titip")[:50],
                         **({"email": request.email} if request.email else {}),
                         **({"mobile_number": request.phone} if request.phone else {})},
        }
        if request.email:
            body["payer_email"] = request.email
        response = await call_gateway(
            self.name, "create", self._http.post(f"{self._base}/v2/invoices", json=body, headers=self._headers)
        )
        if response.status_code not in (200, 201):
            raise GatewayError(self.name, f"create refused: HTTP {response.status_code} {response.text[:200]}")
        try:
            data = response.json()
            return CreatedPayment(payment_url=data["invoice_url"], gateway_ref=data["id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise GatewayUnavailable(self.name, "create answered without invoice_url") from exc

    def parse_callback(self, raw_body: bytes, headers: Mapping[str, str]) -> Notification:
        verify_equal(self._token, headers.get(TOKEN_HEADER))
        data = parse_json_object(raw_body)
        return self._notification(data)

    def _notification(self, data: dict[str, Any]) -> Notification:
        invoice_id = require_str(data, "id")
        raw_status = require_str(data, "status")
        paid = data.get("paid_amount")
        return Notification(
            gateway=self.name, order_id=require_str(data, "external_id"),
            event_key=f"{invoice_id}:{raw_status}", status=_STATUS.get(raw_status.upper(), "ignored"),
            raw_status=raw_status, amount=parse_rupiah(paid if paid is not None else data.get("amount")),
            gateway_ref=invoice_id, payload=data,
            method=data.get("payment_method") if isinstance(data.get("payment_method"), str) else None,
        )

    async def fetch_status(self, order_id: str, gateway_ref: str | None) -> Notification | None:
        if not gateway_ref:
            return None  # the invoice was never created
        response = await call_gateway(
            self.name, "status", self._http.get(f"{self._base}/v2/invoices/{gateway_ref}", headers=self._headers)
        )
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise GatewayError(self.name, f"status refused: HTTP {response.status_code}")
        try:
            return self._notification(response.json())
        except (ValueError, MalformedCallback) as exc:
            raise GatewayError(self.name, f"status answer unusable: {exc}") from exc
