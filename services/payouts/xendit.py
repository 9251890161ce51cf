"""Xendit Payouts v2 (protocols-more.md §1): POST /v2/payouts with an Idempotency-key, callbacks authenticated by
the x-callback-token header, status by reference_id.

Assumptions protocols-more.md marks UNCERTAIN, and what this adapter does about each:
- e-wallet channel codes (ID_DANA, ID_OVO, ID_GOPAY, ID_SHOPEEPAY) are third-party readings: check them with
  GET /payouts_channels?currency=IDR before setting payouts.xendit.verified;
- reusing an Idempotency-key may answer the original payout or DUPLICATE_TRANSACTION_ERROR: both are handled
  (the latter by looking the attempt up by its reference_id);
- the compliance statuses (PENDING_COMPLIANCE_ASSESSMENT, COMPLIANCE_REJECTED) are not in the SDK's enum:
  pending and failed respectively; any other unknown status is treated as not final and logged;
- the v2 callback's event names (payout.failed, payout.reversed) were not all seen: we switch on data.status.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any

import httpx

from services.errors import GatewayUnavailable, MalformedCallback
from services.payments import CallbackAnswer, call_gateway, parse_json_object, require_str, verify_equal
from services.payouts import Outcome, PayoutOrder, PayoutReport, Remember, json_object
from services.payouts.banks import BY_WORD

log = logging.getLogger(__name__)
TOKEN_HEADER = "x-callback-token"
_STATUS: dict[str, Outcome] = {
    "ACCEPTED": "accepted", "REQUESTED": "accepted", "PENDING_COMPLIANCE_ASSESSMENT": "accepted",
    "LOCKED": "accepted", "SUCCEEDED": "completed", "FAILED": "failed", "COMPLIANCE_REJECTED": "failed",
    "CANCELLED": "cancelled", "EXPIRED": "failed", "REVERSED": "reversed",
}
NO_FUNDS = "INSUFFICIENT_BALANCE"


def report_of(data: Mapping[str, Any]) -> PayoutReport | None:
    """A payout object (create, get, list item, callback data) in our words; None for a status not yet known."""
    raw = str(data.get("status") or "").upper()
    outcome = _STATUS.get(raw)
    if outcome is None:
        log.warning("xendit payout %s: unknown status %r, treated as not final", data.get("id"), raw)
        return None
    code = data.get("failure_code") if isinstance(data.get("failure_code"), str) else None
    if outcome == "failed" and code == NO_FUNDS:
        outcome = "no_funds"
    return PayoutReport(outcome, provider_ref=str(data.get("id") or "") or None,
                        key=data.get("reference_id") if isinstance(data.get("reference_id"), str) else None,
                        code=code, detail=raw, event_key=f"{data.get('id')}:{raw}")


class XenditPayouts:
    name = "xendit"
    callback_answer = CallbackAnswer("OK")
    resend_safe = True
    failure_after_success_reverses = False
    confirm_callbacks = False

    def __init__(self, *, secret_key: str, callback_token: str, base_url: str, http: httpx.AsyncClient) -> None:
        self._token = callback_token
        self._base = base_url.rstrip("/")
        self._http = http
        auth = base64.b64encode(f"{secret_key}:".encode()).decode()
        self._headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}

    async def validate(self, bank: str, number: str) -> str | None:
        return None  # Payouts v2 has no account-name inquiry

    async def send(self, order: PayoutOrder, remember: Remember) -> PayoutReport:
        body = {
            "reference_id": order.key, "channel_code": BY_WORD[order.bank].xendit, "amount": order.amount,
            "currency": "IDR", "description": order.description[:100],
            "channel_properties": {"account_number": order.number, "account_holder_name": order.holder_name[:100]},
        }
        headers = {**self._headers, "Idempotency-key": order.key}
        response = await call_gateway(self.name, "create payout",
                                      self._http.post(f"{self._base}/v2/payouts", json=body, headers=headers))
        data = json_object(response)
        if response.status_code in (200, 201):
            report = report_of(data)
            if report is None:
                return PayoutReport("accepted", provider_ref=str(data.get("id") or "") or None, key=order.key)
            return report
        code = str(data.get("error_code") or f"HTTP_{response.status_code}")
        if code == "DUPLICATE_TRANSACTION_ERROR":
            # This key was used before: the attempt exists; its state is what the provider has.
            found = await self.status(order)
            if found is None:
                raise GatewayUnavailable(self.name, "duplicate key but no payout under its reference")
            return found
        if response.status_code == 429:
            raise GatewayUnavailable(self.name, "rate limited")
        if code == NO_FUNDS:
            return PayoutReport("no_funds", key=order.key, code=code)
        return PayoutReport("failed", key=order.key, code=code, detail=str(data.get("message") or "")[:200])

    async def status(self, order: PayoutOrder) -> PayoutReport | None:
        response = await call_gateway(self.name, "list payouts", self._http.get(
            f"{self._base}/v2/payouts", params={"reference_id": order.key, "limit": 10}, headers=self._headers))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise GatewayUnavailable(self.name, f"list payouts answered HTTP {response.status_code}")
        items = json_object(response).get("data")
        if not isinstance(items, list) or not items:
            return None
        return report_of(items[0]) or PayoutReport("accepted", provider_ref=str(items[0].get("id")), key=order.key)

    def parse_callback(self, raw_body: bytes, headers: Mapping[str, str]) -> PayoutReport:
        verify_equal(self._token, headers.get(TOKEN_HEADER))
        data = parse_json_object(raw_body)
        inner = data.get("data")
        if not isinstance(inner, dict):
            raise MalformedCallback("field 'data' missing or not an object")
        require_str(inner, "id")
        require_str(inner, "status")
        report = report_of(inner)
        if report is None:
            return PayoutReport("accepted", provider_ref=inner["id"], key=inner.get("reference_id"),
                                event_key=f"{inner['id']}:{inner['status']}")
        return report
