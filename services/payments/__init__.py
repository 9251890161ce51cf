"""The `PaymentGateway` port and the plain values that cross it. One adapter module per gateway."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, Protocol

import httpx

from services.errors import BadSignature, GatewayUnavailable, MalformedCallback
from services.signing import same_secret

# What a gateway says about a payment, in our words. The state machine in services/settlement.py decides
# what each means for a payment in a given state (e.g. "failed" after "paid" is a reversal).
GatewayStatus = Literal["pending", "hold", "paid", "failed", "expired", "refunded", "ignored"]


@dataclass(frozen=True)
class PaymentRequest:
    order_id: str
    amount: int
    description: str
    customer_name: str
    notify_url: str
    return_url: str
    expiry_minutes: int
    # Who pays, when the requester knows (a client bot's deposit may say): passed on where the gateway takes it.
    email: str | None = None
    phone: str | None = None


@dataclass(frozen=True)
class CreatedPayment:
    payment_url: str
    gateway_ref: str | None = None
    qr_string: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Notification:
    """One verified statement from a gateway about one order (a callback or a status-API answer)."""

    gateway: str
    order_id: str
    event_key: str  # unique per (gateway, delivery of a state): the dedupe key
    status: GatewayStatus
    raw_status: str
    amount: int | None  # what the gateway says was paid, in Rupiah; None when it does not say
    gateway_ref: str | None = None
    refund_amount: int | None = None  # this refund
    refunded_total: int | None = None  # all refunds of this payment so far, when the gateway lists them
    method: str | None = None  # the payment method the payer used, as the gateway names it
    fee: int | None = None  # the gateway's fee, when it reports one
    payload: dict[str, Any] = field(default_factory=dict)
    # The gateway documents that this failure can follow a success and takes the money back
    # (Midtrans: settlement -> deny). Any other late failure after a success changes nothing.
    reverses_success: bool = False


@dataclass(frozen=True)
class CallbackAnswer:
    """What the gateway expects in the body of a successful callback response."""

    body: str = "OK"
    content_type: str = "text/plain"


class PaymentGateway(Protocol):
    name: str
    callback_answer: CallbackAnswer

    def must_confirm(self, notification: Notification) -> bool:
        """True when this callback's signature does not cover the outcome it claims, so that it is applied
        only if the status API says the same (Midtrans signs the status code, which settlement and refund
        share; Duitku does not sign resultCode)."""

    async def create(self, request: PaymentRequest) -> CreatedPayment:
        """Create a payment link; raise GatewayUnavailable (retryable) or GatewayError."""

    def parse_callback(self, raw_body: bytes, headers: Mapping[str, str]) -> Notification:
        """Verify the signature over the raw request, then parse; raise BadSignature or MalformedCallback."""

    async def fetch_status(self, order_id: str, gateway_ref: str | None) -> Notification | None:
        """Ask the gateway's status API; None when the gateway has no such attempt (yet)."""


def verify_equal(expected: str, given: str | None) -> None:
    """A callback's signature or token, checked with `same_secret`; BadSignature when it does not match."""
    if not given:
        raise BadSignature("missing signature")
    if not same_secret(expected, given):
        raise BadSignature("signature mismatch")


def parse_rupiah(value: object, what: str = "amount") -> int:
    """'50000.00', '50000', 50000 or 50000.0 -> 50000; fractional Rupiah or garbage -> MalformedCallback."""
    if isinstance(value, bool) or value is None:
        raise MalformedCallback(f"{what} missing or not a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise MalformedCallback(f"{what} is not a number: {value!r}") from None
    if not number.is_finite() or number != number.to_integral_value() or number < 0:
        raise MalformedCallback(f"{what} is not a whole, non-negative Rupiah amount: {value!r}")
    return int(number)


def parse_json_object(raw_body: bytes) -> dict[str, Any]:
    """A callback body that must be one JSON object; anything else is MalformedCallback (400)."""
    try:
        data = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: "[[[[..." nested too deep
        raise MalformedCallback("body is not JSON") from None
    if not isinstance(data, dict):
        raise MalformedCallback("body is not a JSON object")
    return data


def require_str(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise MalformedCallback(f"field {key!r} missing or not a string")
    return value


async def call_gateway(gateway: str, what: str, request: Awaitable[httpx.Response]) -> httpx.Response:
    """Send a gateway API request; a transport failure or a 5xx is GatewayUnavailable (try elsewhere/later)."""
    try:
        response = await request
    except httpx.HTTPError as exc:
        raise GatewayUnavailable(gateway, f"{what} failed: {type(exc).__name__}") from exc
    if response.status_code >= 500:
        raise GatewayUnavailable(gateway, f"{what} answered HTTP {response.status_code}")
    return response
