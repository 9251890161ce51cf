"""Signals: one part of the system tells the others that something happened, without knowing who listens.

The composition root creates them first and hands each to the parts that fire or listen, so nothing needs a
reference to something built later (the outbox hears "a notice was queued" from settlement; the broadcast
progress hears "broadcast messages were recorded" from the outbox).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Listener = Callable[..., Awaitable[Any] | None]


class Signal:
    def __init__(self, name: str) -> None:
        self.name = name
        self._listeners: list[Listener] = []
        self._running: set[asyncio.Task[Any]] = set()

    def connect(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def fire(self, *args: Any) -> None:
        """Tell every listener now; an async listener runs as its own task (its failure is only logged)."""
        for listener in self._listeners:
            result = listener(*args)
            if asyncio.iscoroutine(result):
                task = asyncio.create_task(result, name=f"signal-{self.name}")
                self._running.add(task)
                task.add_done_callback(self._done)

    async def fire_and_wait(self, *args: Any) -> None:
        """Tell every listener and wait for the async ones to finish."""
        for listener in self._listeners:
            result = listener(*args)
            if asyncio.iscoroutine(result):
                await result

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("listener of %s failed", self.name, exc_info=task.exception())

    async def drain(self, within_s: float = 5.0) -> None:
        if self._running:
            await asyncio.wait(set(self._running), timeout=within_s)


@dataclass(frozen=True)
class Signals:
    """Everything that one part announces to others."""

    # A notice was written to the outbox: deliver it now rather than at the next poll.
    notices_queued: Signal = field(default_factory=lambda: Signal("notices_queued"))
    # Results of broadcast messages were recorded: settle their charges and show the progress.
    broadcast_recorded: Signal = field(default_factory=lambda: Signal("broadcast_recorded"))
    # A platform reported later that a message it had accepted failed: (channel, provider message id, reason).
    delivery_failed: Signal = field(default_factory=lambda: Signal("delivery_failed"))
