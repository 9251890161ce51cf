"""Loopback fakes of Duitku, DOKU Checkout and Xendit Invoice, and the callbacks they send, signed as documented."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from services.payments import doku as doku_sig
from services.payments import duitku as duitku_sig
from tests.support.servers import LoopbackServer


class FakeDuitku(LoopbackServer):
    name = "duitku"
    merchant_code = "DS10001"
    api_key = "duitku-API-key-0001"

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.create_failures: list[int] = []
        app = web.Application()
        app.router.add_post("/webapi/api/merchant/v2/inquiry", self._inquiry)
        app.router.add_post("/webapi/api/merchant/transactionStatus", self._status)
        super().__init__(app)

    def config(self) -> dict[str, Any]:
        return {"merchant_code": self.merchant_code, "api_key": self.api_key, "base_url": self.url}

    async def _inquiry(self, request: web.Request) -> web.Response:
        if self.create_failures:
            return web.json_response({"Message": "scripted"}, status=self.create_failures.pop(0))
        body = await request.json()
        expected = duitku_sig.request_signature(body["merchantCode"], body["merchantOrderId"],
                                                body["paymentAmount"], self.api_key)
        if body.get("signature") != expected or not isinstance(body["paymentAmount"], int):
            return web.json_response({"Message": "Wrong signature"}, status=401)
        order_id = body["merchantOrderId"]
        reference = f"DS1000126{len(self.orders):06d}"
        self.orders[order_id] = {"amount": body["paymentAmount"], "reference": reference, "status": "01",
                                 "request": body}
        return web.json_response({
            "merchantCode": self.merchant_code, "reference": reference,
            "paymentUrl": f"https://sandbox.duitku.com/topup/v2/TopUp.aspx?ref={reference}", "vaNumber": "",
            "qrString": "00020101021226660014ID.CO.QRIS.WWW0118936009140000000000",
            "amount": str(body["paymentAmount"]),
            "statusCode": "00", "statusMessage": "SUCCESS",
        })

    async def _status(self, request: web.Request) -> web.Response:
        body = await request.json()
        order = self.orders.get(body["merchantOrderId"])
        if body.get("signature") != duitku_sig.status_signature(self.merchant_code, body["merchantOrderId"],
                                                                 self.api_key):
            return web.json_response({"Message": "Wrong signature"}, status=401)
        if order is None:
            return web.json_response({"Message": "Transaction not found"}, status=400)
        return web.json_response({"merchantOrderId": body["merchantOrderId"], "reference": order["reference"],
                                  "amount": str(order["amount"]), "statusCode": order["status"],
                                  "statusMessage": "SUCCESS" if order["status"] == "00" else "PROCESS"})

    def set_status(self, order_id: str, kind: str) -> None:
        self.orders[order_id]["status"] = {"paid": "00", "pending": "01", "failed": "02", "expired": "02"}[kind]

    def callback(self, order_id: str, kind: str = "paid", amount: int | None = None) -> tuple[bytes, dict[str, str]]:
        order = self.orders.get(order_id, {"amount": amount or 50_000, "reference": "DS-unknown"})
        shown = str(amount if amount is not None else order["amount"])
        result = "00" if kind == "paid" else "01"
        if kind == "paid":
            self.set_status(order_id, "paid") if order_id in self.orders else None
        form = {
            "merchantCode": self.merchant_code, "amount": shown, "merchantOrderId": order_id,
            "productDetail": "Top up saldo Titip", "additionalParam": "", "paymentCode": "SP",
            "resultCode": result, "merchantUserId": "", "reference": order["reference"],
            "signature": duitku_sig.callback_signature(self.merchant_code, shown, order_id, self.api_key),
            "spUserHash": "",
        }
        return urlencode(form).encode(), {"Content-Type": "application/x-www-form-urlencoded"}

    def forge(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        return body.replace(b"signature=", b"signature=0"), headers


class FakeDoku(LoopbackServer):
    name = "doku"
    client_id = "BRN-0201-1690000000000"
    secret_key = "SK-doku-secret-0001"

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.create_failures: list[int] = []
        app = web.Application()
        app.router.add_post("/checkout/v1/payment", self._create)
        app.router.add_get("/orders/v1/status/{invoice}", self._status)
        super().__init__(app)

    def config(self) -> dict[str, Any]:
        return {"client_id": self.client_id, "secret_key": self.secret_key, "base_url": self.url}

    def _verified(self, request: web.Request, raw: bytes | None) -> bool:
        h = request.headers
        expected = doku_sig.signature(self.secret_key, h.get("Client-Id", ""), h.get("Request-Id", ""),
                                      h.get("Request-Timestamp", ""), request.path, raw)
        return h.get("Signature") == expected and h.get("Request-Timestamp", "").endswith("Z")

    async def _create(self, request: web.Request) -> web.Response:
        if self.create_failures:
            return web.json_response({"message": ["scripted"]}, status=self.create_failures.pop(0))
        raw = await request.read()
        if not self._verified(request, raw):
            return web.json_response({"message": ["Invalid Signature"]}, status=400)
        body = json.loads(raw)
        invoice = body["order"]["invoice_number"]
        self.orders[invoice] = {"amount": body["order"]["amount"], "status": "PENDING", "request": body}
        return web.json_response({"message": ["SUCCESS"], "response": {
            "order": {"amount": str(body["order"]["amount"]), "invoice_number": invoice},
            "payment": {"payment_due_date": 60, "token_id": uuid.uuid4().hex,
                        "url": f"https://sandbox.doku.com/checkout/link/{invoice}"}}})

    async def _status(self, request: web.Request) -> web.Response:
        if not self._verified(request, None):
            return web.json_response({"message": ["Invalid Signature"]}, status=400)
        order = self.orders.get(request.match_info["invoice"])
        if order is None or order["status"] == "PENDING":
            return web.json_response({"message": ["Not Found"]}, status=404)
        return web.json_response({"order": {"invoice_number": request.match_info["invoice"], "amount": order["amount"]},
                                  "transaction": {"status": order["status"], "date": "2026-11-20T03:24:25Z"}})

    def set_status(self, order_id: str, kind: str) -> None:
        self.orders[order_id]["status"] = {"paid": "SUCCESS", "pending": "PENDING", "failed": "FAILED",
                                           "expired": "EXPIRED"}[kind]

    def callback(self, order_id: str, kind: str = "paid", amount: int | None = None) -> tuple[bytes, dict[str, str]]:
        status = {"paid": "SUCCESS", "pending": "PENDING", "failed": "FAILED", "expired": "EXPIRED"}[kind]
        if order_id in self.orders and kind == "paid":
            self.orders[order_id]["status"] = status
        shown = amount if amount is not None else self.orders.get(order_id, {}).get("amount", 50_000)
        raw = json.dumps({
            "service": {"id": "VIRTUAL_ACCOUNT"}, "acquirer": {"id": "BCA"}, "channel": {"id": "VIRTUAL_ACCOUNT_BCA"},
            "order": {"invoice_number": order_id, "amount": shown},
            "transaction": {"status": status, "date": "2026-11-20T03:24:25Z", "original_request_id": "abc"},
        }).encode()
        request_id, ts = str(uuid.uuid4()), "2026-11-20T03:24:25Z"
        headers = {"Client-Id": self.client_id, "Request-Id": request_id, "Request-Timestamp": ts,
                   "Content-Type": "application/json",
                   "Signature": doku_sig.signature(self.secret_key, self.client_id, request_id, ts,
                                                   "/payments/doku/notify", raw)}
        return raw, headers

    def forge(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        return body.replace(b'"amount": ', b'"amount": 1'), headers  # body changed after signing


class FakeXendit(LoopbackServer):
    name = "xendit"
    secret_key = "xnd_development_SECRET0001"
    callback_token = "xendit-callback-TOKEN-0001"

    def __init__(self) -> None:
        self.orders: dict[str, dict[str, Any]] = {}
        self.create_failures: list[int] = []
        app = web.Application()
        app.router.add_post("/v2/invoices", self._create)
        app.router.add_get("/v2/invoices/{id}", self._status)
        super().__init__(app)

    def config(self) -> dict[str, Any]:
        return {"secret_key": self.secret_key, "callback_token": self.callback_token, "base_url": self.url}

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == "Basic " + base64.b64encode(
            f"{self.secret_key}:".encode()).decode()

    def _invoice(self, order_id: str) -> dict[str, Any]:
        o = self.orders[order_id]
        invoice = {"id": o["id"], "external_id": order_id, "status": o["status"], "amount": o["amount"],
                   "currency": "IDR", "invoice_url": f"https://checkout-staging.xendit.co/web/{o['id']}",
                   "expiry_date": "2026-11-21T03:24:25.000Z", "merchant_name": "Titip"}
        if o["status"] in ("PAID", "SETTLED"):
            invoice.update(paid_amount=o["amount"], paid_at="2026-11-20T03:30:00.000Z", payment_method="QR_CODE",
                           payment_channel="QRIS")
        return invoice

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error_code": "INVALID_API_KEY"}, status=401)
        if self.create_failures:
            return web.json_response({"error_code": "SERVER_ERROR"}, status=self.create_failures.pop(0))
        body = await request.json()
        invoice_id = hashlib.sha1(body["external_id"].encode()).hexdigest()[:24]
        self.orders[body["external_id"]] = {"id": invoice_id, "amount": body["amount"], "status": "PENDING",
                                            "request": body}
        return web.json_response(self._invoice(body["external_id"]))

    async def _status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error_code": "INVALID_API_KEY"}, status=401)
        for order_id, o in self.orders.items():
            if o["id"] == request.match_info["id"]:
                return web.json_response(self._invoice(order_id))
        return web.json_response({"error_code": "INVOICE_NOT_FOUND_ERROR"}, status=404)

    def set_status(self, order_id: str, kind: str) -> None:
        self.orders[order_id]["status"] = {"paid": "PAID", "pending": "PENDING", "failed": "EXPIRED",
                                           "expired": "EXPIRED"}[kind]

    def callback(self, order_id: str, kind: str = "paid", amount: int | None = None) -> tuple[bytes, dict[str, str]]:
        if order_id in self.orders:
            if kind == "paid":
                self.set_status(order_id, "paid")
            body = self._invoice(order_id)
            body["status"] = {"paid": "PAID", "pending": "PENDING", "failed": "EXPIRED", "expired": "EXPIRED"}[kind]
        else:
            body = {"id": "inv_unknown", "external_id": order_id, "status": "PAID", "amount": amount or 50_000,
                    "paid_amount": amount or 50_000, "currency": "IDR"}
        if amount is not None:
            body["paid_amount"] = amount
        headers = {"x-callback-token": self.callback_token, "Content-Type": "application/json"}
        return json.dumps(body).encode(), headers

    def forge(self, body: bytes, headers: dict[str, str]) -> tuple[bytes, dict[str, str]]:
        return body, {**headers, "x-callback-token": "guessed-token"}
