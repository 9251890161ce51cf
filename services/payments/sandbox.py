"""The built-in sandbox gateway for development and demos.

It behaves like a real gateway from the outside: `create` returns a checkout link served by our own server
(`GET /pay/sandbox/{order_id}`); pressing Pay or Fail there makes the sandbox POST an HMAC-SHA256-signed
callback to `/payments/sandbox/notify` over HTTP, exactly as Midtrans would. Its memory of outcomes (what
its status API answers) lives in this process: after a restart it answers "not attempted" until paid again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from services.errors import GatewayUnavailable, MalformedCallback
from services.payments import (
    CallbackAnswer,
    CreatedPayment,
    Notification,
    PaymentRequest,
    parse_json_object,
    parse_rupiah,
    require_str,
    verify_equal,
)

SIGNATURE_HEADER = "X-Sandbox-Signature"
_STATUSES = {"paid": "paid", "failed": "failed", "expired": "expired", "pending": "pending"}


def sign(secret: str, raw_body: bytes) -> str:
    return hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()


async def post_to_ourselves(http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
                            who: str) -> int:
    """A sandbox's signed callback sent to our own notify route, as a real gateway or provider would; its status."""
    try:
        response = await http.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise GatewayUnavailable(who, f"callback to ourselves failed: {type(exc).__name__}") from exc
    return response.status_code


@dataclass
class _Charge:
    amount: int
    status: str = "pending"
    event_id: str = ""


class SandboxGateway:
    name = "sandbox"
    callback_answer = CallbackAnswer('{"status":"ok"}', "application/json")

    def must_confirm(self, notification: Notification) -> bool:
        return False  # the signature covers the whole body

    def __init__(self, *, secret: str, public_url: str, http: httpx.AsyncClient) -> None:
        self._secret = secret
        self._public_url = public_url.rstrip("/")
        self._http = http
        self._charges: dict[str, _Charge] = {}

    async def create(self, request: PaymentRequest) -> CreatedPayment:
        self._charges[request.order_id] = _Charge(amount=request.amount)
        return CreatedPayment(
            payment_url=f"{self._public_url}/pay/sandbox/{request.order_id}", gateway_ref=request.order_id
        )

    def signed_callback(self, order_id: str, amount: int, outcome: str) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the callback the sandbox sends for `outcome` ('paid' or 'failed')."""
        if outcome not in _STATUSES:
            raise ValueError(f"unknown sandbox outcome {outcome!r}")
        event_id = f"sbx-{secrets.token_hex(8)}"
        body = json.dumps(
            {"order_id": order_id, "event_id": event_id, "status": outcome, "amount": amount}, separators=(",", ":")
        ).encode()
        charge = self._charges.setdefault(order_id, _Charge(amount=amount))
        # What the sandbox "received" is what its status API reports from now on, as a real gateway's would.
        charge.status, charge.event_id, charge.amount = outcome, event_id, amount
        return body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}

    async def complete(self, order_id: str, amount: int, outcome: str) -> int:
        """Press Pay/Fail: send the signed callback to our own notify route; returns its HTTP status."""
        body, headers = self.signed_callback(order_id, amount, outcome)
        return await post_to_ourselves(self._http, f"{self._public_url}/payments/sandbox/notify", body, headers,
                                       self.name)

    def parse_callback(self, raw_body: bytes, headers: Mapping[str, str]) -> Notification:
        verify_equal(sign(self._secret, raw_body), headers.get(SIGNATURE_HEADER))
        data = parse_json_object(raw_body)
        status = require_str(data, "status")
        if status not in _STATUSES:
            raise MalformedCallback(f"unknown status {status!r}")
        return Notification(
            gateway=self.name,
            order_id=require_str(data, "order_id"),
            event_key=require_str(data, "event_id"),
            status=_STATUSES[status],  # type: ignore[arg-type]
            raw_status=status,
            amount=parse_rupiah(data.get("amount")),
            gateway_ref=data.get("order_id"),
            method="sandbox",
            payload=data,
        )

    async def fetch_status(self, order_id: str, gateway_ref: str | None) -> Notification | None:
        charge = self._charges.get(order_id)
        if charge is None or charge.status == "pending":
            return None
        return Notification(
            gateway=self.name,
            order_id=order_id,
            event_key=charge.event_id,
            status=_STATUSES[charge.status],  # type: ignore[arg-type]
            raw_status=charge.status,
            amount=charge.amount,
            gateway_ref=order_id,
        )
