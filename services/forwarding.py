"""What a client bot's server receives when one of its deposits changes, and how it is signed. Pure: no I/O.

An event is queued in the outbox (channel "webhook", destination: the client's id) in the same transaction as
the change it announces, with its body fixed then, so every retry sends the same bytes under the same id:

    webhook-id  dep_<deposit>_<paid|failed|expired|reversed>   one event per (deposit, type), stable across retries
    api         POST callback_url, Standard Webhooks: webhook-id, webhook-timestamp (unix seconds of this attempt),
                webhook-signature "v1,<base64 HMAC-SHA256 of id.timestamp.body>" once per valid secret (rotation),
                body {"type": "deposit.paid", "data": {deposit}}
    worker      POST callback_url as the top-up Worker did: Authorization: Bearer <key>, X-Signature: hex
                HMAC-SHA256 of the body with that key, body {"depositId","userId","amount","reference","status"}
                as compact JSON in that order (its README's bot re-serialises the JSON to check it); only PAID
                is forwarded in this format.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.kinds import Channel, DepositFormat, PaymentStatus
from services.messaging import OutgoingMessage, WebhookEvent
from services.outbox import notice_row

EVENT_TYPES = ("deposit.paid", "deposit.failed", "deposit.expired", "deposit.reversed")

# A deposit's state as a client bot reads it (API and Worker vocabularies).
_API_STATUS = {PaymentStatus.CREATED: "pending", PaymentStatus.PENDING: "pending", PaymentStatus.HELD: "pending",
               PaymentStatus.PAID: "paid", PaymentStatus.FAILED: "failed", PaymentStatus.REFUSED: "failed",
               PaymentStatus.EXPIRED: "expired", PaymentStatus.REVERSED: "reversed",
               PaymentStatus.REFUNDED: "reversed", PaymentStatus.PARTIALLY_REFUNDED: "reversed"}
_WORKER_STATUS = {"pending": "PENDING", "paid": "PAID", "failed": "FAILED", "expired": "FAILED",
                  "reversed": "REVERSED"}


def api_status(status: PaymentStatus) -> str:
    """pending | paid | failed | expired | reversed (a held payment is still pending for the client)."""
    return _API_STATUS[status]


def worker_status(status: PaymentStatus) -> str:
    return _WORKER_STATUS[api_status(status)]


@dataclass(frozen=True)
class DepositFacts:
    """What an event says about a deposit: its row, its client, and the payment that settled it."""

    id: int  # the deposit's row id (in the webhook id)
    client_id: int
    deposit_id: str  # the client's
    user_ref: str
    amount: int
    format: DepositFormat
    client: str = ""  # the client bot's name (for admins)


def webhook_id(deposit_row_id: int, event_type: str) -> str:
    """`dep_<id>_<type>`: no dots (Standard Webhooks ids must not contain one)."""
    return f"dep_{deposit_row_id}_{event_type.removeprefix('deposit.')}"


def compact(body: Mapping[str, Any]) -> str:
    """The bytes we sign are the bytes we send: minified, non-ASCII as is, keys in the order given."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)


def deposit_data(facts: DepositFacts, *, status: PaymentStatus, reference: str, paid_at: datetime | None,
                 gateway: str | None = None, amount: int | None = None, refunded: int = 0) -> dict[str, Any]:
    """`amount`: what the deposit brought its client (an admin may credit another amount than asked, when the
    payer paid another); `refunded`: what the gateway took back of it so far."""
    data: dict[str, Any] = {"deposit_id": facts.deposit_id, "status": api_status(status),
                            "amount": facts.amount if amount is None else amount, "user_ref": facts.user_ref,
                            "reference": reference}
    if refunded:
        data["refunded_amount"] = refunded
    if gateway:
        data["gateway"] = gateway
    if paid_at is not None:
        data["paid_at"] = paid_at.isoformat()
    return data


def event_row(facts: DepositFacts, event_type: str, *, status: PaymentStatus, reference: str,
              gateway_reference: str | None, paid_at: datetime | None, gateway: str, now: datetime,
              amount: int | None = None, refunded: int = 0) -> dict[str, Any] | None:
    """The outbox row that forwards `event_type` for this deposit, or None when its format forwards no such event."""
    if facts.format is DepositFormat.WORKER:
        if event_type != "deposit.paid":
            return None
        body = {"depositId": facts.deposit_id, "userId": facts.user_ref,
                "amount": facts.amount if amount is None else amount,
                "reference": gateway_reference or reference, "status": "PAID"}
    else:
        body = {"type": event_type, "data": deposit_data(facts, status=status, reference=reference, paid_at=paid_at,
                                                         gateway=gateway, amount=amount, refunded=refunded)}
    wid = webhook_id(facts.id, event_type)
    return notice_row(channel=Channel.WEBHOOK.value, chat_id=str(facts.client_id), language="id",
                      template=event_type, params={"webhook_id": wid, "format": facts.format.value,
                                                   "body": compact(body), "client": facts.client,
                                                   "deposit_id": facts.deposit_id},
                      now=now, dedupe_key=wid)


def give_up_alerts(admins: Sequence[tuple[str, str]]) -> Callable[[Any, str, datetime], list[dict[str, Any]]]:
    """What admins are told when an event's retries ran out (the outbox's on_give_up): which client, which
    deposit, why, and the command that sends it again."""

    def alerts(row: Any, why: str, now: datetime) -> list[dict[str, Any]]:
        params = {"client": row.params.get("client", row.chat_id), "deposit_id": row.params.get("deposit_id", "?"),
                  "event": row.template, "error": why[:200]}
        return [notice_row(channel=channel, chat_id=chat_id, language="id", template="admin_forward_failed",
                           params=params, now=now,
                           dedupe_key=f"admin:forward-failed:{row.id}:{now:%Y%m%d%H%M}:{channel}:{chat_id}"[:128])
                for channel, chat_id in admins]

    return alerts


def as_message(template: str, params: Mapping[str, Any]) -> OutgoingMessage:
    """An outbox row of the webhook channel as the message its adapter sends."""
    event = WebhookEvent(id=str(params["webhook_id"]), type=template, body=str(params["body"]),
                         format=DepositFormat(str(params.get("format", DepositFormat.API.value))))
    return OutgoingMessage(text="", event=event)


def standard_signature(secrets: Sequence[str], msg_id: str, timestamp: int, body: str) -> str:
    """The `webhook-signature` header: `v1,<base64>` for each secret (`whsec_<base64>`), space-separated."""
    signed = f"{msg_id}.{timestamp}.{body}".encode()
    parts = []
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        parts.append("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode())
    return " ".join(parts)


def standard_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": standard_signature(secrets, msg_id, timestamp, body),
            "Content-Type": "application/json"}


def worker_headers(key: str, body: str) -> dict[str, str]:
    signature = hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()
    return {"Authorization": f"Bearer {key}", "X-Signature": signature, "Content-Type": "application/json"}


def worker_acknowledged(status: int, body: bytes) -> bool:
    """The Worker's bots answer 200 {"ok": true}; anything else is a failed delivery."""
    if not 200 <= status < 300:
        return False
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("ok") is True
