"""Loopback fakes of the payout providers — Xendit Payouts v2, Midtrans Payouts (Iris), Duitku disbursement —
speaking their wire formats (protocols-more.md §1–3), with scripts for what goes wrong: an answer lost after the
payout was made (504), the provider's balance running out, a refusal. Each counts the transfers it really made,
so a test can assert "at most once"."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from services.payouts import midtrans as iris_sig
from services.payouts.duitku import PURPOSE
from services.payouts.duitku import sha256 as duitku_sha256
from tests.support.servers import LoopbackServer


def _basic(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    user, _, _ = base64.b64decode(header[6:]).decode().partition(":")
    return user


@dataclass
class Made:
    """A transfer the provider made (or accepted): what a bank statement would show."""

    ref: str
    key: str
    amount: int
    account: str
    status: str
    failure_code: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FakeXenditPayouts(LoopbackServer):
    """POST /v2/payouts (Idempotency-key), GET /v2/payouts?reference_id=…, callbacks with x-callback-token."""

    secret_key = "xnd_development_PAYOUTS0001"
    callback_token = "xendit-payout-callback-token-0001"

    def __init__(self) -> None:
        self.made: dict[str, Made] = {}  # by Idempotency-key
        self.creates = 0
        # Scripted answers to the next creates: "lost" (made, then 504), "down" (not made, 503),
        # "duplicate_error" (a reused key answers DUPLICATE_TRANSACTION_ERROR), "refuse" (400 validation error).
        self.script: list[str] = []
        app = web.Application()
        app.router.add_post("/v2/payouts", self._create)
        app.router.add_get("/v2/payouts", self._list)
        super().__init__(app)

    def config(self) -> dict[str, Any]:
        return {"secret_key": self.secret_key, "callback_token": self.callback_token, "base_url": self.url}

    def _object(self, made: Made) -> dict[str, Any]:
        body = {"id": made.ref, "reference_id": made.key, "amount": made.amount, "currency": "IDR",
                "channel_code": made.extra["channel_code"], "status": made.status,
                "channel_properties": {"account_number": made.account}, "business_id": "biz-1",
                "created": "2026-12-02T10:00:00Z", "updated": "2026-12-02T10:00:00Z"}
        if made.failure_code:
            body["failure_code"] = made.failure_code
        return body

    async def _create(self, request: web.Request) -> web.Response:
        if _basic(request) != self.secret_key:
            return web.json_response({"error_code": "INVALID_API_KEY", "message": "bad key"}, status=401)
        key = request.headers.get("Idempotency-key")
        if not key:
            return web.json_response({"error_code": "API_VALIDATION_ERROR", "message": "idempotency"}, status=400)
        self.creates += 1
        action = self.script.pop(0) if self.script else "ok"
        if action == "down":
            return web.json_response({"error_code": "SERVER_ERROR"}, status=503)
        if action == "refuse":
            return web.json_response({"error_code": "RECIPIENT_ACCOUNT_NUMBER_ERROR", "message": "bad account"},
                                     status=400)
        body = await request.json()
        if key in self.made:
            if action == "duplicate_error":
                return web.json_response({"error_code": "DUPLICATE_TRANSACTION_ERROR", "message": "used"},
                                         status=409)
            return web.json_response(self._object(self.made[key]))
        made = Made(f"disb-{len(self.made) + 1:06d}", key, body["amount"],
                    body["channel_properties"]["account_number"], "ACCEPTED",
                    extra={"channel_code": body["channel_code"], "holder": body["channel_properties"].get(
                        "account_holder_name")})
        self.made[key] = made
        if action == "lost":
            return web.json_response({"error_code": "SERVER_ERROR"}, status=504)
        return web.json_response(self._object(made))

    async def _list(self, request: web.Request) -> web.Response:
        if _basic(request) != self.secret_key:
            return web.json_response({"error_code": "INVALID_API_KEY"}, status=401)
        key = request.query.get("reference_id")
        found = [self._object(m) for m in self.made.values() if m.key == key]
        return web.json_response({"data": found, "has_more": False, "links": []})

    def finish(self, key: str, status: str, failure_code: str | None = None) -> tuple[bytes, dict[str, str]]:
        """The provider decides: the payout's new status, and the callback it sends about it."""
        made = self.made[key]
        made.status, made.failure_code = status, failure_code
        event = {"SUCCEEDED": "payout.succeeded", "FAILED": "payout.failed", "REVERSED": "payout.reversed"}
        body = json.dumps({"event": event.get(status, "payout.updated"), "business_id": "biz-1",
                           "created": "2026-12-02T10:05:00Z", "data": self._object(made)}).encode()
        return body, {"Content-Type": "application/json", "x-callback-token": self.callback_token}

    def transfers(self) -> int:
        """Payouts that moved money (made and not failed)."""
        return sum(1 for m in self.made.values() if m.status not in ("FAILED", "CANCELLED"))


class FakeIris(LoopbackServer):
    """Midtrans Payouts: POST /payouts (Creator key), POST /payouts/approve (Approver key), GET /payouts/{ref},
    GET /account_validation; notifications signed with Iris-Signature = SHA-512(body + merchant key)."""

    creator_key = "IRIS-creator-key-0001"
    approver_key = "IRIS-approver-key-0001"
    merchant_key = "IRIS-merchant-0001"
    accounts = {("bca", "0011223344"): "SITI AMINAH", ("mandiri", "1111222233333"): "TINA JASTIP"}

    def __init__(self) -> None:
        self.made: dict[str, Made] = {}  # by reference_no
        self.creates = 0
        self.script: list[str] = []  # "lost" (made, then 504), "down" (503, not made)
        app = web.Application()
        app.router.add_post("/payouts", self._create)
        app.router.add_post("/payouts/approve", self._approve)
        app.router.add_get("/payouts/{ref}", self._details)
        app.router.add_get("/account_validation", self._validate)
        super().__init__(app)

    def config(self) -> dict[str, Any]:
        return {"creator_key": self.creator_key, "approver_key": self.approver_key,
                "merchant_key": self.merchant_key, "base_url": self.url}

    async def _create(self, request: web.Request) -> web.Response:
        if _basic(request) != self.creator_key:
            return web.json_response({"error_message": "not authorized"}, status=401)
        self.creates += 1
        action = self.script.pop(0) if self.script else "ok"
        if action == "down":
            return web.json_response({"error_message": "maintenance"}, status=503)
        body = await request.json()
        created = []
        for item in body["payouts"]:
            amount = item["amount"]
            if not isinstance(amount, str) or not amount.endswith(".00"):
                return web.json_response({"error_message": "amount must be a string"}, status=400)
            ref = f"ir{len(self.made) + 1:012d}"
            self.made[ref] = Made(ref, item["notes"], int(amount[:-3]), item["beneficiary_account"], "queued",
                                  extra={"bank": item["beneficiary_bank"]})
            created.append({"status": "queued", "reference_no": ref})
        if action == "lost":
            return web.json_response({"error_message": "gateway timeout"}, status=504)
        return web.json_response({"payouts": created}, status=201)

    async def _approve(self, request: web.Request) -> web.Response:
        if _basic(request) != self.approver_key:
            return web.json_response({"error_message": "not authorized"}, status=401)
        for ref in (await request.json())["reference_nos"]:
            self.made[ref].status = "approved"
        return web.json_response({"status": "ok"})

    async def _details(self, request: web.Request) -> web.Response:
        if _basic(request) != self.creator_key:
            return web.json_response({"error_message": "not authorized"}, status=401)
        made = self.made.get(request.match_info["ref"])
        if made is None:
            return web.json_response({"error_message": "not found"}, status=404)
        return web.json_response({"reference_no": made.ref, "amount": f"{made.amount}.00", "status": made.status,
                                  "beneficiary_account": made.account, "bank": made.extra["bank"]})

    async def _validate(self, request: web.Request) -> web.Response:
        if _basic(request) != self.creator_key:
            return web.json_response({"error_message": "not authorized"}, status=401)
        name = self.accounts.get((request.query["bank"], request.query["account"]))
        if name is None:
            return web.json_response({"error_message": "Account does not exist"}, status=400)
        return web.json_response({"account_no": request.query["account"], "account_name": name,
                                  "bank_name": request.query["bank"]})

    def finish(self, ref: str, status: str, error_code: str | None = None) -> tuple[bytes, dict[str, str]]:
        made = self.made[ref]
        made.status = status
        body: dict[str, Any] = {"reference_no": ref, "amount": f"{made.amount}.00", "status": status,
                                "updated_at": "2026-12-02T10:05:00Z"}
        if error_code:
            body |= {"error_code": error_code, "error_message": "scripted failure"}
        raw = json.dumps(body).encode()
        return raw, {"Content-Type": "application/json",
                     iris_sig.SIGNATURE_HEADER: iris_sig.signature(raw, self.merchant_key)}

    def transfers(self) -> int:
        return sum(1 for m in self.made.values() if m.status not in ("failed", "rejected"))


class FakeDuitkuDisbursement(LoopbackServer):
    """Duitku online transfer: inquirysandbox → transfersandbox → inquirystatus, SHA-256 signatures over plain
    concatenations; callbacks signed without timestamp or purpose."""

    user_id = 3551
    email = "ops@titip.test"
    secret_key = "duitku-disbursement-secret-0001"
    accounts = {("014", "8760673566"): "SITI AMINAH", ("1012", "6281234567890"): "SITI AMINAH"}

    def __init__(self) -> None:
        self.inquiries: dict[int, dict[str, Any]] = {}  # by disburseId
        self.transferred: dict[int, int] = {}  # disburseId -> times its money was sent
        self.transfer_calls = 0
        # "lost" (sent, then 504), "down" (503, not sent), "no_funds" (-510), "invalid" (76), "pending" (80)
        self.script: list[str] = []
        app = web.Application()
        base = "/webapi/api/disbursement"
        app.router.add_post(f"{base}/inquirysandbox", self._inquiry)
        app.router.add_post(f"{base}/transfersandbox", self._transfer)
        app.router.add_post(f"{base}/inquirystatus", self._status)
        super().__init__(app)

    def config(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "email": self.email, "secret_key": self.secret_key, "base_url": self.url}

    async def _inquiry(self, request: web.Request) -> web.Response:
        b = await request.json()
        expected = duitku_sha256(b["email"], b["timestamp"], b["bankCode"], b["bankAccount"], b["amountTransfer"],
                                 b["purpose"], self.secret_key)
        if b.get("signature") != expected or b.get("senderId") != self.user_id:
            return web.json_response({"responseCode": "-191", "responseDesc": "Wrong signature"})
        name = self.accounts.get((b["bankCode"], b["bankAccount"]))
        if name is None:
            return web.json_response({"responseCode": "76", "responseDesc": "Invalid destination account"})
        disburse_id = 1000 + len(self.inquiries) + 1
        self.inquiries[disburse_id] = {**b, "accountName": name, "custRefNumber": f"0000{disburse_id}"}
        return web.json_response({"email": b["email"], "bankCode": b["bankCode"], "bankAccount": b["bankAccount"],
                                  "amountTransfer": b["amountTransfer"], "accountName": name,
                                  "custRefNumber": f"0000{disburse_id}", "disburseId": disburse_id,
                                  "responseCode": "00", "responseDesc": "Success"})

    async def _transfer(self, request: web.Request) -> web.Response:
        b = await request.json()
        inquiry = self.inquiries.get(b["disburseId"])
        expected = duitku_sha256(b["email"], b["timestamp"], b["bankCode"], b["bankAccount"], b["accountName"],
                                 b["custRefNumber"], b["amountTransfer"], b["purpose"], b["disburseId"],
                                 self.secret_key)
        if inquiry is None or b.get("signature") != expected or b["purpose"] != PURPOSE:
            return web.json_response({"responseCode": "-191", "responseDesc": "Wrong signature"})
        self.transfer_calls += 1
        action = self.script.pop(0) if self.script else "ok"
        if action == "down":
            return web.json_response({"responseCode": "EE"}, status=503)
        if action == "no_funds":
            return web.json_response({"responseCode": "-510", "responseDesc": "Insufficient Fund"})
        if action == "invalid":
            return web.json_response({"responseCode": "76", "responseDesc": "Invalid destination account"})
        if b["disburseId"] in self.transferred:
            return web.json_response({"responseCode": "-142", "responseDesc": "Transaction already finished"})
        self.transferred[b["disburseId"]] = self.transferred.get(b["disburseId"], 0) + 1
        if action == "lost":
            return web.json_response({"responseCode": "EE"}, status=504)
        code = "80" if action == "pending" else "00"
        return web.json_response({"responseCode": code, "responseDesc": "Success", "disburseId": b["disburseId"],
                                  "amountTransfer": b["amountTransfer"]})

    async def _status(self, request: web.Request) -> web.Response:
        b = await request.json()
        if b.get("signature") != duitku_sha256(b["email"], b["timestamp"], b["disburseId"], self.secret_key):
            return web.json_response({"responseCode": "-191", "responseDesc": "Wrong signature"})
        if b["disburseId"] not in self.transferred:
            return web.json_response({"responseCode": "-420", "responseDesc": "Transfer not found"})
        return web.json_response({"responseCode": "00", "responseDesc": "Success", "disburseId": b["disburseId"]})

    def callback(self, disburse_id: int, status_code: str = "00") -> tuple[bytes, dict[str, str]]:
        i = self.inquiries[disburse_id]
        signature = duitku_sha256(self.email, i["bankCode"], i["bankAccount"], i["accountName"], i["custRefNumber"],
                                  i["amountTransfer"], disburse_id, self.secret_key)
        body = {"disburseId": disburse_id, "userId": self.user_id, "email": self.email, "bankCode": i["bankCode"],
                "bankAccount": i["bankAccount"], "amountTransfer": i["amountTransfer"], "accountName": i["accountName"],
                "custRefNumber": i["custRefNumber"], "statusCode": status_code,
                "statusDesc": "Success" if status_code == "00" else "Failed", "errorMessage": "",
                "signature": signature}
        return json.dumps(body).encode(), {"Content-Type": "application/json"}

    def transfers(self) -> int:
        return sum(self.transferred.values())


def forged(body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The same callback with its signature or token replaced by an attacker's guess."""
    out = dict(headers)
    for name in ("x-callback-token", iris_sig.SIGNATURE_HEADER, "X-Sandbox-Signature"):
        if name in out:
            out[name] = hashlib.sha256(b"guess").hexdigest()
    if not any(n in out for n in ("x-callback-token", iris_sig.SIGNATURE_HEADER, "X-Sandbox-Signature")):
        data = json.loads(body)
        data["signature"] = hashlib.sha256(b"guess").hexdigest()
        body = json.dumps(data).encode()
    return body, out
