"""A running broadcast's progress, shown to the jastiper as the "broadcast started" message edited in
place (Telegram). WhatsApp cannot edit messages: there the jastiper gets the start message and the receipt.

Progress is a courtesy, not a promise: edits are throttled, paced like every other send, and a failed
edit is only logged. The money side (charges, releases, the receipt) lives in services/broadcasts.py.
"""

from __future__ import annotations

import asyncio
import logging
import time

from handlers.i18n import Translator
from services.broadcasts import Broadcasts, Progress
from services.delivery import Delivery, Priority
from services.messaging import OutgoingMessage
from services.sent_messages import SentMessages
from services.signals import Signal

log = logging.getLogger(__name__)


class BroadcastProgress:
    def __init__(self, broadcasts: Broadcasts, sent: SentMessages, delivery: Delivery, recorded: Signal, *,
                 editable: frozenset[str] = frozenset({"telegram"}), every_s: float = 2.0) -> None:
        recorded.connect(self.after_round)  # broadcast messages' results were recorded
        self._broadcasts = broadcasts
        self._sent = sent
        self._delivery = delivery
        self._editable = editable
        self._every = every_s
        self._last_edit: dict[int, float] = {}
        self._editing: dict[int, asyncio.Task] = {}

    async def after_round(self) -> None:
        """Settle what the outbox just sent, then refresh the progress of the broadcasts that moved."""
        moved = await self._broadcasts.settle()
        now = time.monotonic()
        for progress in await self._broadcasts.progress(moved):
            previous = self._editing.get(progress.id)
            if not progress.done and (previous is not None
                                      or now - self._last_edit.get(progress.id, 0.0) < self._every):
                continue  # throttled; an edit in flight shows nearly the same numbers anyway
            self._last_edit[progress.id] = now
            # The final numbers always go out, after any edit still in flight.
            task = asyncio.create_task(self._edit(progress, after=previous))
            self._editing[progress.id] = task
            task.add_done_callback(lambda done, key=progress.id: self._forget(key, done))
            if progress.done:
                self._last_edit.pop(progress.id, None)

    def _forget(self, broadcast_id: int, task: asyncio.Task) -> None:
        if self._editing.get(broadcast_id) is task:
            del self._editing[broadcast_id]

    async def drain(self) -> None:
        if self._editing:
            await asyncio.wait(set(self._editing.values()), timeout=5)

    async def _edit(self, progress: Progress, after: asyncio.Task | None = None) -> None:
        if after is not None:
            await asyncio.wait([after])
        where = await self._sent.message_of(f"broadcast:{progress.id}")
        # A small broadcast can finish before its start message is out: wait a little for the final edit.
        for _ in range(10 if progress.done else 0):
            if where is not None:
                break
            await asyncio.sleep(0.5)
            where = await self._sent.message_of(f"broadcast:{progress.id}")
        if where is None or where[0] not in self._editable or not self._delivery.can_send(where[0]):
            return  # not on an editable channel, or the start message is not out yet
        channel, chat_id, message_id = where
        t = Translator(progress.language, channel)
        key = "broadcast_progress_done" if progress.done else "broadcast_progress"
        text = t(key, id=progress.id, done=progress.sent + progress.failed, recipients=progress.recipients,
                 sent=progress.sent, failed=progress.failed)
        try:
            await self._delivery.deliver(channel, chat_id, OutgoingMessage(text, edit_of=message_id),
                                         priority=Priority.NOTICE)
        except Exception as exc:  # cosmetic: the receipt still tells the truth
            log.warning("broadcast %s: progress edit failed: %s", progress.id, exc)
