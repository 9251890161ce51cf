"""GET /api/v1/openapi.json (OpenAPI 3.1: the deposit routes, their errors, and the events we send, under
`webhooks`) and GET /api/docs, the same document as a page (no CDN, no script)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from webhooks.templating import render

STATUS = {"$ref": "#/components/schemas/Status"}


def _error(description: str) -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


SIGNING = [
    {"name": "X-Timestamp", "in": "header", "required": False, "schema": {"type": "string", "pattern": "^[0-9]+$"},
     "description": "Unix seconds, within ±300 s of ours. Required (with X-Nonce and X-Signature) for clients "
                    "added with --require-signature; checked whenever present."},
    {"name": "X-Nonce", "in": "header", "required": False,
     "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{8,64}$"},
     "description": "Unique per client for 10 minutes (a reused nonce is refused: 401)."},
    {"name": "X-Signature", "in": "header", "required": False,
     "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
     "description": "hex HMAC-SHA256 over `timestamp + \".\" + nonce + \".\" + raw body`, keyed with the "
                    "client's signing secret."},
]
ERRORS = {"400": _error("Malformed: not JSON, a field missing or of the wrong type."),
          "401": _error("Missing or wrong API key, a disabled client (create), a bad or stale signature, a reused "
                        "nonce."),
          "429": {**_error("Over api.rate_per_minute for this client."),
                  "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}},
          "503": _error("Payment gateways or the database are unavailable: retry later (same deposit_id).")}

DEPOSIT_EVENT = {
    "type": "object", "required": ["type", "data"],
    "properties": {"type": {"type": "string", "enum": ["deposit.paid", "deposit.failed", "deposit.expired",
                                                       "deposit.reversed"]},
                   "data": {"$ref": "#/components/schemas/DepositEventData"}},
}


def spec() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the deposit API."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Titip deposit API", "version": "1",
                 "description": "Create deposits (payment links through Titip's gateways) for your bot's users and "
                                "be told, by a signed webhook (Standard Webhooks), when each is paid. Amounts are "
                                "whole Rupiah. Deposits are idempotent on your deposit_id."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/deposits": {"post": {
                "summary": "Create a deposit", "operationId": "createDeposit", "parameters": SIGNING,
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/DepositCreate"}}}},
                "responses": {
                    "201": {"description": "Created.", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/DepositCreated"}}}},
                    "200": {"description": "This deposit_id was created before: the same deposit.", "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/DepositCreated"}}}},
                    "409": _error("This deposit_id was created before with another amount or user_ref."),
                    "422": _error("Amount outside this client's limits (the body says minimum or maximum)."),
                    **ERRORS}}},
            "/api/v1/deposits/{deposit_id}": {"get": {
                "summary": "Read a deposit and how its forwarding goes", "operationId": "getDeposit",
                "parameters": [{"name": "deposit_id", "in": "path", "required": True,
                                "schema": {"type": "string"}}, *SIGNING],
                "responses": {"200": {"description": "The deposit.", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Deposit"}}}},
                    "404": _error("No such deposit for this client."), **ERRORS}}},
        },
        "webhooks": {"deposit": {"post": {
            "summary": "A deposit changed (sent to your callback URL)",
            "description": "Signed per Standard Webhooks: headers webhook-id (`dep_<id>_<type>`, the same on every "
                           "retry: deduplicate on it), webhook-timestamp (unix seconds) and webhook-signature "
                           "(`v1,<base64 HMAC-SHA256 of id.timestamp.body>` with your whsec_ secret; two during "
                           "a rotation). Answer 2xx; anything else is retried with backoff for 3 days.",
            "requestBody": {"content": {"application/json": {"schema": DEPOSIT_EVENT}}},
            "responses": {"200": {"description": "Received."}}}}},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "Your API key (tk_…), from `python -m bot clients add`."}},
            "schemas": {
                "DepositCreate": {"type": "object", "required": ["user_ref", "amount"], "properties": {
                    "deposit_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$",
                                   "description": "Yours; generated when omitted. The same again returns the same "
                                                  "deposit."},
                    "user_ref": {"type": "string", "maxLength": 128, "description": "Your user, opaque to us."},
                    "amount": {"type": "integer", "minimum": 1, "description": "Rupiah, within your limits."},
                    "description": {"type": "string", "maxLength": 255},
                    "customer": {"type": "object", "properties": {"email": {"type": "string"},
                                                                  "phone": {"type": "string"}}}}},
                "DepositCreated": {"type": "object", "required": ["deposit_id", "status", "amount", "payment_url"],
                                   "properties": {
                                       "deposit_id": {"type": "string"}, "status": STATUS,
                                       "amount": {"type": "integer"}, "payment_url": {"type": "string"},
                                       "qr_string": {"type": "string"},
                                       "expires_at": {"type": ["string", "null"], "format": "date-time"}}},
                "Deposit": {"type": "object", "required": ["deposit_id", "status", "amount", "forwarding"],
                            "properties": {
                                "deposit_id": {"type": "string"}, "status": STATUS,
                                "amount": {"type": "integer"}, "paid_at": {"type": "string", "format": "date-time"},
                                "user_ref": {"type": "string"}, "reference": {"type": "string"},
                                "forwarding": {"$ref": "#/components/schemas/Forwarding"}}},
                "Forwarding": {"type": "object", "required": ["delivered", "attempts"], "properties": {
                    "delivered": {"type": "boolean"}, "attempts": {"type": "integer"},
                    "event": {"type": "string"}, "last_status": {"type": "integer"},
                    "last_error": {"type": "string"},
                    "next_attempt_at": {"type": "string", "format": "date-time"},
                    "delivered_at": {"type": "string", "format": "date-time"}}},
                "DepositEventData": {"type": "object", "properties": {
                    "deposit_id": {"type": "string"}, "status": STATUS,
                    "amount": {"type": "integer"}, "user_ref": {"type": "string"},
                    "reference": {"type": "string"}, "gateway": {"type": "string"},
                    "paid_at": {"type": "string", "format": "date-time"}}},
                "Status": {"type": "string", "enum": ["pending", "paid", "failed", "expired", "reversed"]},
                "Error": {"type": "object", "required": ["error", "message"], "properties": {
                    "error": {"type": "string"}, "message": {"type": "string"},
                    "minimum": {"type": "integer"}, "maximum": {"type": "integer"}}},
            },
        },
    }


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(spec())


async def docs(request: web.Request) -> web.Response:
    document = spec()
    operations = [(path, method.upper(), op) for path, methods in document["paths"].items()
                  for method, op in methods.items()]
    return render("api_docs.html", request, {"spec": document, "operations": operations})
