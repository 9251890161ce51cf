"""Duitku V2: inquiry (create), form-encoded callbacks signed with MD5, transactionStatus for reconciliation."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

import httpx

from services.errors import GatewayError, GatewayUnavailable, MalformedCallback
from services.payments import (
    CallbackAnswer,
    CreatedPayment,
    GatewayStatus,
    Notification,
    PaymentRequest,
    call_gateway,
    parse_rupiah,
    verify_equal,
)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def request_signature(merchant_code: str, order_id: str, amount: int, api_key: str) -> str:
    """Inquiry: MD5(merchantCode + merchantOrderId + paymentAmount + apiKey)."""
    return md5(f"{merchant_code}{order_id}{amount}{api_key}")


def callback_signature(merchant_code: str, amount: str, order_id: str, api_key: str) -> str:
    """Callback: MD5(merchantCode + amount + merchantOrderId + apiKey) — amount *before* the order id."""
    return md5(f"{merchant_code}{amount}{order_id}{api_key}")


def status_signature(merchant_code: str, order_id: str, api_key: str) -> str:
    return md5(f"{merchant_code}{order_id}{api_key}")


class DuitkuGateway:
    name = "duitku"
    callback_answer = CallbackAnswer("SUCCESS")

    def must_confirm(self, notification: Notification) -> bool:
        # MD5(merchantCode + amount + merchantOrderId + apiKey) leaves resultCode out: a captured failure
        # notice with 01 changed to 00 would verify. Success and failure are confirmed with transactionStatus.
        return notification.status in ("paid", "failed")

    def __init__(
        self, *, merchant_code: str, api_key: str, base_url: str, http: httpx.AsyncClient, payment_method: str = "SP"
    ) -> None:
        self._merchant = merchant_code
        self._key = api_key
        self._base = base_url.rstrip("/")
        self._http = http
        self._method = payment_method

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await call_gateway(self.name, path, self._http.post(f"{self._base}{path}", json=body))

    async def create(self, request: PaymentRequest) -> CreatedPayment:
        body = {
            "merchantCode": self._merchant,
            "paymentAmount": request.amount,
            "paymentMethod": self._method,
            "merchantOrderId": request.order_id,
            "productDetails": request.description,
            "email": request.email or "pelanggan@titip.invalid",  # required by Duitku
            **({"phoneNumber": request.phone} if request.phone else {}),
            "customerVaName": (request.customer_name or "Titip")[:20],
            "callbackUrl": request.notify_url,
            "returnUrl": request.return_url,
            "expiryPeriod": request.expiry_minutes,
            "signature": request_signature(self._merchant, request.order_id, request.amount, self._key),
        }
        response = await self._post("/webapi/api/merchant/v2/inquiry", body)
        try:
            data = response.json()
        except ValueError as exc:
            raise GatewayUnavailable(self.name, "inquiry answered non-JSON") from exc
        if response.status_code != 200 or not isinstance(data, dict) or data.get("statusCode") != "00":
            message = data.get("statusMessage") if isinstance(data, dict) else None
            raise GatewayError(self.name, f"inquiry refused: HTTP {response.status_code} {message or ''}".strip())
        if not data.get("paymentUrl"):
            raise GatewayUnavailable(self.name, "inquiry answered without paymentUrl")
        return CreatedPayment(
            payment_url=data["paymentUrl"], gateway_ref=data.get("reference"), qr_string=data.get("qrString") or None
        )

    def parse_callback(self, raw_body: bytes, headers: Mapping[str, str]) -> Notification:
        try:
            form = {k: v[0] for k, v in parse_qs(raw_body.decode("utf-8"), strict_parsing=True).items()}
        except (UnicodeDecodeError, ValueError):
            raise MalformedCallback("body is not form-encoded") from None
        given = form.get("signature")
        merchant, amount, order_id = form.get("merchantCode"), form.get("amount"), form.get("merchantOrderId")
        if not (merchant and amount and order_id):
            raise MalformedCallback("merchantCode, amount or merchantOrderId missing")
        verify_equal(callback_signature(merchant, amount, order_id, self._key), given)
        if merchant != self._merchant:
            raise MalformedCallback("callback for another merchant")
        result = form.get("resultCode", "")
        reference = form.get("reference") or order_id
        return Notification(
            gateway=self.name,
            order_id=order_id,
            event_key=f"{reference}:{result}",
            status="paid" if result == "00" else "failed",
            raw_status=f"resultCode={result}",
            amount=parse_rupiah(amount),
            gateway_ref=reference,
            method=form.get("paymentCode") or None,
            payload=form,
        )

    async def fetch_status(self, order_id: str, gateway_ref: str | None) -> Notification | None:
        body = {"merchantCode": self._merchant, "merchantOrderId": order_id,
                "signature": status_signature(self._merchant, order_id, self._key)}
        response = await self._post("/webapi/api/merchant/transactionStatus", body)
        if response.status_code in (400, 404):
            return None
        try:
            data = response.json()
        except ValueError as exc:
            raise GatewayUnavailable(self.name, "status answered non-JSON") from exc
        if response.status_code != 200 or not isinstance(data, dict) or "statusCode" not in data:
            raise GatewayError(self.name, f"status refused: HTTP {response.status_code}")
        code = data["statusCode"]
        status: GatewayStatus = "paid" if code == "00" else "pending" if code == "01" else "failed"
        reference = data.get("reference") or order_id
        return Notification(
            gateway=self.name, order_id=order_id, event_key=f"{reference}:status:{code}", status=status,
            raw_status=f"statusCode={code}", amount=parse_rupiah(data.get("amount")), gateway_ref=reference,
            payload=json.loads(response.text),
        )
