"""The playground's side of the conversation, in plain values: who the visitor may be (personas), the signed
visitor cookie, and the stored conversation that is replayed when the page reconnects.

A visitor is a random id kept in a signed cookie; each persona of a visitor is a real user (channel
`playground`, external id `<visitor>.<persona>`), with its own wallet, orders and history. The playground runs
only in development (bot/settings.py refuses it in production).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from services.clock import Clock
from services.messaging import OutgoingMessage
from storage.db import Database
from storage.models import PlaygroundMessage

HISTORY_LIMIT = 200  # messages replayed per persona on reconnect


@dataclass(frozen=True)
class Persona:
    key: str  # the last part of the chat id: "<visitor>.<key>"
    name: str  # the display name the conversation sees
    label_key: str  # catalog key of the tab label
    admin: bool = False


PERSONAS: tuple[Persona, ...] = (
    Persona("tina", "Tina", "pg_persona_tina"),
    Persona("siti", "Siti", "pg_persona_siti"),
    Persona("rina", "Rina", "pg_persona_rina"),
    # In development (the only place the playground runs) this persona is an admin, so admin flows can be tried.
    Persona("admin", "Admin", "pg_persona_admin", admin=True),
)
BY_KEY = {p.key: p for p in PERSONAS}


def chat_id(visitor: str, persona: str) -> str:
    return f"{visitor}.{persona}"


def split_chat(chat: str) -> tuple[str, str]:
    """(visitor, persona key) of a playground chat id."""
    visitor, _, persona = chat.rpartition(".")
    return visitor, persona


def is_playground_admin(channel: str, external_id: str) -> bool:
    """The Admin persona of any visitor (the playground exists only in development)."""
    return channel == "playground" and split_chat(external_id)[1] == "admin"


class VisitorCookie:
    """`<visitor>.<signature>`: a visitor id the server issued, so nobody can take another visitor's id."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def _sign(self, visitor: str) -> str:
        digest = hmac.new(self._key, visitor.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self) -> tuple[str, str]:
        """A new (visitor, cookie value)."""
        visitor = secrets.token_urlsafe(16)
        return visitor, f"{visitor}.{self._sign(visitor)}"

    def visitor(self, cookie: str | None) -> str | None:
        """The visitor of a cookie value, or None when it is missing or was not signed by us."""
        if not cookie or "." not in cookie:
            return None
        visitor, _, signature = cookie.rpartition(".")
        if not visitor or len(visitor) > 40 or not hmac.compare_digest(signature, self._sign(visitor)):
            return None
        return visitor


@dataclass(frozen=True)
class StoredMessage:
    id: int
    chat_id: str
    direction: str  # in | out
    body: dict[str, Any]
    has_attachment: bool
    created_at: datetime


def outgoing_body(message: OutgoingMessage) -> dict[str, Any]:
    """What the page needs to show a reply: its text, buttons and what is attached (the bytes are stored apart)."""
    body: dict[str, Any] = {
        "text": message.text,
        "buttons": [[{"label": b.label, "data": b.data, "url": b.url} for b in row] for row in message.buttons],
    }
    if message.photo is not None:
        body["photo"] = True
    if message.document is not None:
        body["document"] = message.document_name
    return body


class PlaygroundHistory:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def add(self, chat: str, direction: str, body: dict[str, Any],
                  attachment: bytes | None = None) -> StoredMessage:
        now = self._clock.now()
        async with self._db.write() as session:
            row = PlaygroundMessage(chat_id=chat, direction=direction, body=body, attachment=attachment,
                                    created_at=now)
            session.add(row)
            await session.flush()
            return StoredMessage(row.id, chat, direction, body, attachment is not None, now)

    async def recent(self, chats: list[str], limit: int = HISTORY_LIMIT) -> dict[str, list[StoredMessage]]:
        """The last `limit` messages of each chat, oldest first."""
        found: dict[str, list[StoredMessage]] = {}
        async with self._db.read() as session:
            for chat in chats:
                rows = (await session.execute(
                    select(PlaygroundMessage.id, PlaygroundMessage.direction, PlaygroundMessage.body,
                           PlaygroundMessage.attachment.is_not(None), PlaygroundMessage.created_at)
                    .where(PlaygroundMessage.chat_id == chat)
                    .order_by(PlaygroundMessage.id.desc()).limit(limit))).all()
                found[chat] = [StoredMessage(int(r[0]), chat, str(r[1]), dict(r[2]), bool(r[3]), r[4])
                               for r in reversed(rows)]
        return found

    async def attachment(self, message_id: int, visitor: str) -> tuple[bytes, dict[str, Any]] | None:
        """A stored photo or document, only for the visitor whose chat it belongs to."""
        async with self._db.read() as session:
            row = (await session.execute(
                select(PlaygroundMessage.chat_id, PlaygroundMessage.attachment, PlaygroundMessage.body)
                .where(PlaygroundMessage.id == message_id))).first()
        if row is None or row[1] is None or split_chat(str(row[0]))[0] != visitor:
            return None
        return bytes(row[1]), dict(row[2])
