"""A fake Midtrans (Snap + status API) on loopback, and notifications signed as Midtrans signs them."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from services.payments.midtrans import signature as midtrans_signature
from tests.support.servers import LoopbackServer


@dataclass
class MidtransOrder:
    order_id: str
    gross_amount: int
    body: dict[str, Any]
    headers: dict[str, str]
    status: dict[str, Any] | None = None  # what the status API answers; None = 404 (not attempted yet)


@dataclass
class FakeMidtrans(LoopbackServer):
    name = "midtrans"  # the face every gateway fake has: name, config(), callback()
    server_key: str = "SB-Mid-server-TESTKEY123"
    orders: dict[str, MidtransOrder] = field(default_factory=dict)
    create_failures: list[int] = field(default_factory=list)
    slow_status: set[str] = field(default_factory=set)
    status_calls: list[str] = field(default_factory=list)
    status_delay_s: float = 0.0  # every status answer takes this long (makes overlapping checks visible)
    overlapping_status: list[str] = field(default_factory=list)  # orders asked about while already being asked
    _asking: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        app = web.Application()
        app.router.add_post("/snap/v1/transactions", self._create)
        app.router.add_get("/v2/{order_id}/status", self._status)
        self._released = asyncio.Event()
        super().__init__(app)

    async def stop(self) -> None:
        self._released.set()
        await super().stop()

    def config(self) -> dict[str, Any]:
        """The [payments.midtrans] settings that point the bot at this fake."""
        return {"server_key": self.server_key, "snap_base_url": self.url, "api_base_url": self.url}

    def _authorized(self, request: web.Request) -> bool:
        import base64

        expected = "Basic " + base64.b64encode(f"{self.server_key}:".encode()).decode()
        return request.headers.get("Authorization") == expected

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error_messages": ["Access denied"]}, status=401)
        if self.create_failures:
            return web.json_response({"error_messages": ["scripted"]}, status=self.create_failures.pop(0))
        body = await request.json()
        details = body["transaction_details"]
        if not isinstance(details["gross_amount"], int):
            return web.json_response({"error_messages": ["gross_amount must be an integer"]}, status=400)
        order_id = details["order_id"]
        if order_id in self.orders:
            return web.json_response({"error_messages": ["order_id has already been taken"]}, status=406)
        self.orders[order_id] = MidtransOrder(order_id, details["gross_amount"], body, dict(request.headers))
        token = f"tok-{order_id}"
        return web.json_response(
            {"token": token, "redirect_url": f"https://app.sandbox.midtrans.com/snap/v2/vtweb/{token}"}, status=201
        )

    async def _status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status_code": "401", "status_message": "Unauthorized"}, status=401)
        order_id = request.match_info["order_id"]
        self.status_calls.append(order_id)
        if order_id in self._asking:
            self.overlapping_status.append(order_id)
        self._asking.add(order_id)
        try:
            if self.status_delay_s:
                await asyncio.sleep(self.status_delay_s)
            return await self._status_answer(request, order_id)
        finally:
            self._asking.discard(order_id)

    async def _status_answer(self, request: web.Request, order_id: str) -> web.Response:
        if order_id in self.slow_status:
            try:  # hang like a stuck gateway, until the test is over
                await asyncio.wait_for(self._released.wait(), timeout=30)
            except TimeoutError:
                pass
        order = self.orders.get(order_id)
        if order is None or order.status is None:
            return web.json_response(
                {"status_code": "404", "status_message": "Transaction doesn't exist."}, status=404
            )
        return web.json_response(order.status)

    def callback(self, order_id: str, kind: str = "paid", amount=None) -> tuple[bytes, dict[str, str]]:
        """A settlement notification for `order_id` as raw body and headers (the face every gateway fake has)."""
        return json.dumps(self.settle(order_id)).encode(), {"Content-Type": "application/json"}

    def settle(self, order_id: str, transaction_status: str = "settlement", **extra: Any) -> dict[str, Any]:
        """Mark the order in the status API and return the matching signed notification."""
        order = self.orders[order_id]
        note = midtrans_notification(
            order_id, order.gross_amount, transaction_status, self.server_key, **extra
        )
        order.status = note
        return note


_STATUS_CODES = {"settlement": "200", "capture": "200", "pending": "201", "deny": "202", "cancel": "202",
                 "expire": "407", "refund": "200", "partial_refund": "200", "failure": "202"}


def midtrans_notification(
    order_id: str,
    amount: int | str,
    transaction_status: str,
    server_key: str,
    *,
    transaction_id: str | None = None,
    fraud_status: str | None = "accept",
    gross_amount: str | None = None,
    sign_amount: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Midtrans HTTP notification as Midtrans sends it: gross_amount a string with two decimals, signed."""
    gross = gross_amount if gross_amount is not None else f"{int(amount)}.00"
    status_code = _STATUS_CODES.get(transaction_status, "200")
    body = {
        "transaction_time": "2026-11-20 10:24:25",
        "transaction_status": transaction_status,
        "transaction_id": transaction_id or f"tx-{order_id}",
        "status_message": "midtrans payment notification",
        "status_code": status_code,
        "signature_key": midtrans_signature(order_id, status_code, sign_amount or gross, server_key),
        "payment_type": "bank_transfer",
        "order_id": order_id,
        "merchant_id": "G123456789",
        "gross_amount": gross,
        "currency": "IDR",
        **extra,
    }
    if fraud_status is not None:
        body["fraud_status"] = fraud_status
    return body


def as_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()
