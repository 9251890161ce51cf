"""Pacing for a messenger's limits: an overall rate and a minimum interval per chat, shared by all senders."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Pacer:
    """Reserves send slots so that neither the overall rate nor any chat's interval is exceeded."""

    def __init__(
        self,
        rate_per_s: float,
        per_chat_interval_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._spacing = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self._per_chat = per_chat_interval_s
        self._now = monotonic
        self._next_global = 0.0
        self._next_chat: dict[str, float] = {}

    def reserve(self, chat_id: str, per_chat: bool = True) -> float:
        """Book the earliest allowed slot for `chat_id`; returns the seconds to wait before sending.

        `per_chat=False` (a direct reply to someone who just wrote) keeps only the overall rate.
        """
        now = self._now()
        slot = max(now, self._next_global, self._next_chat.get(chat_id, 0.0) if per_chat else 0.0)
        self._next_global = slot + self._spacing
        self._next_chat[chat_id] = max(self._next_chat.get(chat_id, 0.0), slot + self._per_chat)
        if len(self._next_chat) > 10_000:
            self._next_chat = {k: v for k, v in self._next_chat.items() if v > now}
        return slot - now

    async def wait(self, chat_id: str, per_chat: bool = True) -> None:
        delay = self.reserve(chat_id, per_chat)
        if delay > 0:
            await asyncio.sleep(delay)

    def back_off(self, seconds: float, chat_id: str | None = None) -> None:
        """The platform said 429: nobody (or this chat) sends again for `seconds`."""
        until = self._now() + seconds
        if chat_id is None:
            self._next_global = max(self._next_global, until)
        else:
            self._next_chat[chat_id] = max(self._next_chat.get(chat_id, 0.0), until)
