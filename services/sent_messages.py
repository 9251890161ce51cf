"""What the bot's own messages were about, by platform message id.

A participant who answers the order message with a photo (Telegram reply / WhatsApp quoted message)
means "this is the proof for that order"; the platforms only tell us which message was quoted, so the
order is looked up here. The same record lets a broadcast's progress message be edited in place.
"""

from __future__ import annotations

from sqlalchemy import select

from services.clock import Clock
from storage.db import Database
from storage.models import MessageRef
from storage.queries import insert_or_skip


class SentMessages:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def remember(self, channel: str, chat_id: str, message_id: str, ref: str) -> None:
        async with self._db.write() as session:
            await session.execute(insert_or_skip(session, MessageRef.__table__, ["channel", "chat_id", "message_id"])
                                  .values(channel=channel, chat_id=chat_id, message_id=message_id, ref=ref,
                                          created_at=self._clock.now()))

    async def ref_of(self, channel: str, chat_id: str, message_id: str) -> str | None:
        async with self._db.read() as session:
            return await session.scalar(select(MessageRef.ref).where(
                MessageRef.channel == channel, MessageRef.chat_id == chat_id, MessageRef.message_id == message_id))

    async def message_of(self, ref: str) -> tuple[str, str, str] | None:
        """(channel, chat_id, message_id) of the latest message sent about `ref`."""
        async with self._db.read() as session:
            row = (await session.execute(
                select(MessageRef.channel, MessageRef.chat_id, MessageRef.message_id)
                .where(MessageRef.ref == ref).order_by(MessageRef.created_at.desc()).limit(1))).first()
            return (str(row[0]), str(row[1]), str(row[2])) if row else None
