"""The playground: a third channel adapter, for the chat page in the browser (development only).

Like the Telegram and WhatsApp adapters, it only translates: what the visitor types, taps or uploads becomes a
neutral `Incoming` for the shared conversation; neutral replies and notices (through the one delivery path and
the outbox, like every channel) are stored and pushed to the visitor's open pages. The web route
(webhooks/playground.py) owns the WebSockets and hands this adapter a callable per open page.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from handlers.router import Conversation, Incoming
from services.errors import PermanentDeliveryError
from services.messaging import OutgoingMessage, SentMessage
from services.playground import BY_KEY, PlaygroundHistory, StoredMessage, chat_id, outgoing_body, split_chat

log = logging.getLogger(__name__)
Push = Callable[[dict[str, Any]], Awaitable[None]]
MAX_TEXT = 4096


def message_json(message: StoredMessage) -> dict[str, Any]:
    """A stored message as the page receives it."""
    persona = split_chat(message.chat_id)[1]
    data: dict[str, Any] = {"type": "message", "id": message.id, "persona": persona, "direction": message.direction,
                            "at": message.created_at.isoformat(), **message.body}
    if message.has_attachment:
        data["file"] = f"/playground/files/{message.id}"
    return data


class PlaygroundChannel:
    channel = "playground"

    def __init__(self, *, history: PlaygroundHistory, conversation: Conversation,
                 max_photo_bytes: int = 5_000_000) -> None:
        self.history = history
        self._conversation = conversation
        self.max_photo_bytes = max_photo_bytes
        self._pages: dict[str, set[Push]] = {}  # visitor -> its open pages
        self._tasks: set[asyncio.Task] = set()

    # --- pages ----------------------------------------------------------------------------------------

    def attach(self, visitor: str, push: Push) -> None:
        self._pages.setdefault(visitor, set()).add(push)

    def detach(self, visitor: str, push: Push) -> None:
        pages = self._pages.get(visitor)
        if pages is not None:
            pages.discard(push)
            if not pages:
                del self._pages[visitor]

    async def _push(self, visitor: str, data: dict[str, Any]) -> None:
        for push in list(self._pages.get(visitor, ())):
            try:
                await push(data)
            except Exception:  # a page that went away; it replays the history when it comes back
                log.debug("playground page of %s is gone", visitor, exc_info=True)
                self.detach(visitor, push)

    async def replay(self, visitor: str) -> list[dict[str, Any]]:
        chats = [chat_id(visitor, key) for key in BY_KEY]
        stored = await self.history.recent(chats)
        return [message_json(m) for chat in chats for m in stored[chat]]

    # --- inbound --------------------------------------------------------------------------------------

    async def receive(self, visitor: str, data: dict[str, Any]) -> str | None:
        """One thing the visitor did on the page; the catalog key of why it was refused, or None."""
        persona = BY_KEY.get(str(data.get("persona", "")))
        if persona is None:
            return "pg_unknown_persona"
        chat = chat_id(visitor, persona.key)
        client_id = str(data.get("client_id") or secrets.token_urlsafe(12))[:40]
        text = str(data.get("text") or "")[:MAX_TEXT]
        button = data.get("button")
        photo: bytes | None = data.get("photo") if isinstance(data.get("photo"), bytes) else None
        too_large = photo is not None and len(photo) > self.max_photo_bytes
        if button is not None:
            label = str(data.get("label") or "")[:64]
            body: dict[str, Any] = {"text": label, "tap": True}
        else:
            if not text.strip() and photo is None:
                return "pg_empty"
            body = {"text": text}
            if photo is not None:
                body["photo"] = True
        stored = await self.history.add(chat, "in", body, photo if photo is not None and not too_large else None)
        await self._push(visitor, message_json(stored))
        incoming = Incoming(
            channel=self.channel, chat_id=chat, user_id=chat, display_name=persona.name,
            text="" if button is not None else text,
            callback_data=str(button)[:64] if button is not None else None,
            # The page's own id for what was sent: a resend after a reconnect is recognised as the same update.
            update_key=f"{chat}:{client_id}", photo=None if too_large else photo, photo_too_large=too_large,
        )
        task = asyncio.create_task(self._conversation.respond(incoming))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return None

    async def drain(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)

    # --- sending (the Messenger port) ------------------------------------------------------------------

    async def send(self, chat: str, message: OutgoingMessage) -> SentMessage:
        visitor, persona = split_chat(chat)
        if persona not in BY_KEY:
            raise PermanentDeliveryError(f"no playground persona {persona!r}")
        body = outgoing_body(message)
        if message.template is not None:  # never outside a window here; show the notice's text
            body["text"] = message.text
        stored = await self.history.add(chat, "out", body, message.photo or message.document)
        await self._push(visitor, message_json(stored))
        return SentMessage(provider_message_id=str(stored.id))
