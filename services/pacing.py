"""Pacing for a messenger's limits: an overall rate, and per chat a rate with a small burst, shared by all
senders of one process.

The per-chat limit is GCRA (a token bucket in virtual time): one message per `per_chat_interval_s`, with up to
`per_chat_burst` sent back to back borrowing from later quota (WhatsApp allows short bursts to one user;
Telegram's 1 msg/s per chat is burst 1).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Pacer:
    """Reserves send slots so that neither the overall rate nor any chat's rate is exceeded."""

    def __init__(
        self,
        rate_per_s: float,
        per_chat_interval_s: float,
        monotonic: Callable[[], float] = time.monotonic,
        per_chat_burst: int = 1,
    ) -> None:
        self._spacing = 1.0 / rate_per_s if rate_per_s > 0 else 0.0
        self._per_chat = per_chat_interval_s
        self._tolerance = max(0, per_chat_burst - 1) * per_chat_interval_s
        self._now = monotonic
        self._next_global = 0.0
        self._tat: dict[str, float] = {}  # per chat: theoretical arrival time of the next message

    def reserve(self, chat_id: str, per_chat: bool = True) -> float:
        """Book the earliest allowed slot for `chat_id`; returns the seconds to wait before sending.

        `per_chat=False` (a direct reply to someone who just wrote) waits only for the overall rate, but
        still uses up the chat's quota.
        """
        now = self._now()
        tat = self._tat.get(chat_id, 0.0)
        earliest = tat - self._tolerance if per_chat else 0.0
        slot = max(now, self._next_global, earliest)
        self._next_global = slot + self._spacing
        self._tat[chat_id] = max(tat, slot) + self._per_chat
        if len(self._tat) > 10_000:
            self._tat = {k: v for k, v in self._tat.items() if v > now}
        return slot - now

    async def wait(self, chat_id: str, per_chat: bool = True) -> None:
        delay = self.reserve(chat_id, per_chat)
        if delay > 0:
            await asyncio.sleep(delay)

    def back_off(self, seconds: float, chat_id: str | None = None) -> None:
        """The platform said slow down: nobody (or this chat) sends again for `seconds`."""
        until = self._now() + seconds
        if chat_id is None:
            self._next_global = max(self._next_global, until)
        else:
            self._tat[chat_id] = max(self._tat.get(chat_id, 0.0), until + self._tolerance)
