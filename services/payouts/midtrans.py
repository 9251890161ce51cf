"""Midtrans Payouts, formerly Iris (protocols-more.md §2): create with the Creator key, approve with the Approver
key, notifications signed with Iris-Signature = SHA-512(raw body + merchant key), status by reference_no, and
account validation that returns the holder's name.

Assumptions protocols-more.md marks UNCERTAIN, and what this adapter does about each:
- no idempotency key is documented for creating payouts: `resend_safe` is False, so an attempt whose outcome is
  unknown (timeout, 5xx) is never sent again; the payout goes to `unknown` and admins resolve it after checking
  the Midtrans dashboard (ADMIN PENARIKAN);
- whether approval can be automatic: when payouts.midtrans.approver_key is set we approve each payout at once;
  without it the payout waits at Midtrans until someone approves it there;
- OVO's beneficiary_bank code differs between versions of the docs ("ovo" here); check it in sandbox;
- error_code "016" (merchant balance not enough) is read as the provider's own balance running out.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

import httpx

from services.errors import GatewayUnavailable, MalformedCallback, UserInputError
from services.payments import CallbackAnswer, call_gateway, parse_json_object, parse_rupiah, require_str, verify_equal
from services.payouts import Outcome, PayoutOrder, PayoutReport, Remember, json_object
from services.payouts.banks import BY_WORD

SIGNATURE_HEADER = "Iris-Signature"
NO_FUNDS_CODES = frozenset({"016"})
_STATUS: dict[str, Outcome] = {"queued": "accepted", "approved": "accepted", "processed": "accepted",
                               "completed": "completed", "failed": "failed", "rejected": "failed"}


def signature(raw_body: bytes, merchant_key: str) -> str:
    return hashlib.sha512(raw_body + merchant_key.encode()).hexdigest()


def _basic(key: str) -> dict[str, str]:
    token = base64.b64encode(f"{key}:".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json", "Accept": "application/json"}


def report_of(data: Mapping[str, Any]) -> PayoutReport | None:
    raw = str(data.get("status") or "").lower()
    outcome = _STATUS.get(raw)
    if outcome is None:
        return None
    code = str(data["error_code"]) if data.get("error_code") is not None else None
    if outcome == "failed" and code in NO_FUNDS_CODES:
        outcome = "no_funds"
    ref = str(data.get("reference_no") or "") or None
    return PayoutReport(outcome, provider_ref=ref, code=code or (raw if raw == "rejected" else None),
                        detail=str(data.get("error_message") or "")[:200],
                        event_key=f"{ref}:{raw}:{data.get('updated_at', '')}")


class MidtransPayouts:
    name = "midtrans"
    callback_answer = CallbackAnswer("OK")
    resend_safe = False
    failure_after_success_reverses = True
    confirm_callbacks = False

    def __init__(self, *, creator_key: str, approver_key: str | None, merchant_key: str, base_url: str,
                 http: httpx.AsyncClient) -> None:
        self._creator = _basic(creator_key)
        self._approver = _basic(approver_key) if approver_key else None
        self._merchant_key = merchant_key
        self._base = base_url.rstrip("/")
        self._http = http

    async def validate(self, bank: str, number: str) -> str | None:
        response = await call_gateway(self.name, "account validation", self._http.get(
            f"{self._base}/account_validation", params={"bank": BY_WORD[bank].midtrans, "account": number},
            headers=self._creator))
        if response.status_code in (400, 404, 422):
            raise UserInputError("payout_account_invalid")
        if response.status_code != 200:
            raise GatewayUnavailable(self.name, f"account validation answered HTTP {response.status_code}")
        name = json_object(response).get("account_name")
        return str(name) if name else None

    async def send(self, order: PayoutOrder, remember: Remember) -> PayoutReport:
        body = {"payouts": [{
            "beneficiary_name": order.holder_name[:100], "beneficiary_account": order.number,
            "beneficiary_bank": BY_WORD[order.bank].midtrans, "amount": f"{order.amount}.00",
            "notes": f"{order.description} {order.key}"[:100],
        }]}
        response = await call_gateway(self.name, "create payout",
                                      self._http.post(f"{self._base}/payouts", json=body, headers=self._creator))
        data = json_object(response)
        if response.status_code not in (200, 201):
            if response.status_code == 429:
                raise GatewayUnavailable(self.name, "rate limited")
            code = str(data.get("error_code") or f"HTTP_{response.status_code}")
            outcome: Outcome = "no_funds" if code in NO_FUNDS_CODES else "failed"
            detail = str(data.get("error_message") or data.get("errors") or "")[:200]
            return PayoutReport(outcome, key=order.key, code=code, detail=detail)
        created = data.get("payouts")
        if not isinstance(created, list) or not created or not created[0].get("reference_no"):
            raise GatewayUnavailable(self.name, "create answered without a reference_no")
        ref = str(created[0]["reference_no"])
        await remember(ref, {})
        if self._approver is not None:
            approved = await call_gateway(self.name, "approve payout", self._http.post(
                f"{self._base}/payouts/approve", json={"reference_nos": [ref]}, headers=self._approver))
            if approved.status_code != 200:
                # Created and not approved: it waits at Midtrans (someone approves it there); never re-created.
                return PayoutReport("accepted", provider_ref=ref, key=order.key, detail="not approved")
        return PayoutReport("accepted", provider_ref=ref, key=order.key)

    async def status(self, order: PayoutOrder) -> PayoutReport | None:
        if not order.provider_ref:
            return None  # created without our learning its reference_no: only the dashboard can tell
        response = await call_gateway(self.name, "payout details", self._http.get(
            f"{self._base}/payouts/{order.provider_ref}", headers=self._creator))
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise GatewayUnavailable(self.name, f"payout details answered HTTP {response.status_code}")
        return report_of(json_object(response)) or PayoutReport("accepted", provider_ref=order.provider_ref)

    def parse_callback(self, raw_body: bytes, headers: Mapping[str, str]) -> PayoutReport | None:
        verify_equal(signature(raw_body, self._merchant_key), headers.get(SIGNATURE_HEADER))
        data = parse_json_object(raw_body)
        status = require_str(data, "status")
        if status == "topup":
            return None  # a top-up of our Iris balance: nothing to apply to a payout
        require_str(data, "reference_no")
        parse_rupiah(data.get("amount"))
        report = report_of(data)
        if report is None:
            raise MalformedCallback(f"unknown payout status {status!r}")
        return report
