"""The built-in sandbox payout provider for development and demos (never in production: bot/settings.py).

It behaves like a real provider from the outside: `send` accepts the payout and leaves it at the sandbox page
(`GET /pay/sandbox/payouts/{payout_id}`); pressing Berhasil / Gagal / Saldo habis / Dibalik there makes the
sandbox POST an HMAC-SHA256-signed callback to `/payouts/sandbox/notify` over HTTP, as a real provider would.
Its memory (what its status API answers) lives in this process: after a restart it has no record, and an
attempt that was in flight is sent again under the same key, as with Xendit's idempotency key.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from services.errors import MalformedCallback
from services.payments import CallbackAnswer, parse_json_object, require_str, verify_equal
from services.payments.sandbox import post_to_ourselves, sign
from services.payouts import Outcome, PayoutOrder, PayoutReport, Remember

SIGNATURE_HEADER = "X-Sandbox-Signature"
OUTCOMES: tuple[Outcome, ...] = ("completed", "failed", "no_funds", "reversed")


@dataclass
class _Sent:
    key: str
    amount: int
    outcome: Outcome = "accepted"
    event_id: str = ""


class SandboxPayouts:
    name = "sandbox"
    callback_answer = CallbackAnswer('{"status":"ok"}', "application/json")
    resend_safe = True
    failure_after_success_reverses = False
    confirm_callbacks = False

    def __init__(self, *, secret: str, public_url: str, http: httpx.AsyncClient) -> None:
        self._secret = secret
        self._public_url = public_url.rstrip("/")
        self._http = http
        self._sent: dict[str, _Sent] = {}  # by attempt key

    def page_url(self, payout_id: int) -> str:
        return f"{self._public_url}/pay/sandbox/payouts/{payout_id}"

    async def validate(self, bank: str, number: str) -> str | None:
        return None  # the sandbox knows no bank's records

    async def send(self, order: PayoutOrder, remember: Remember) -> PayoutReport:
        sent = self._sent.setdefault(order.key, _Sent(order.key, order.amount))  # the same key: the same payout
        return PayoutReport(sent.outcome, provider_ref=order.key, key=order.key)

    async def status(self, order: PayoutOrder) -> PayoutReport | None:
        sent = self._sent.get(order.key)
        if sent is None:
            return None
        return PayoutReport(sent.outcome, provider_ref=order.key, key=order.key, event_key=sent.event_id)

    def signed_callback(self, key: str, amount: int, outcome: str) -> tuple[bytes, dict[str, str]]:
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown sandbox payout outcome {outcome!r}")
        event_id = f"sbxp-{secrets.token_hex(8)}"
        body = json.dumps({"reference": key, "event_id": event_id, "status": outcome, "amount": amount},
                          separators=(",", ":")).encode()
        sent = self._sent.setdefault(key, _Sent(key, amount))
        sent.outcome, sent.event_id = outcome, event_id
        return body, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(self._secret, body)}

    async def complete(self, key: str, amount: int, outcome: str) -> int:
        """Press a button on the sandbox page: the signed callback goes to our own notify route."""
        body, headers = self.signed_callback(key, amount, outcome)
        return await post_to_ourselves(self._http, f"{self._public_url}/payouts/sandbox/notify", body, headers,
                                       self.name)

    def parse_callback(self, raw_body: bytes, headers: Mapping[str, str]) -> PayoutReport:
        verify_equal(sign(self._secret, raw_body), headers.get(SIGNATURE_HEADER))
        data = parse_json_object(raw_body)
        status = require_str(data, "status")
        if status not in OUTCOMES:
            raise MalformedCallback(f"unknown status {status!r}")
        key = require_str(data, "reference")
        return PayoutReport(status, provider_ref=key, key=key,
                            code="SANDBOX_" + status.upper() if status in ("failed", "no_funds") else None,
                            event_key=require_str(data, "event_id"))
