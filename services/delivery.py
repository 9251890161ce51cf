"""The one delivery path: every reply, notice, broadcast message and progress edit leaves through here.

Each channel (a messenger today; the playground and other bots' webhook URLs later) is a *lane*: one queue per
destination feeding one channel-wide rate limit.

- A destination that must wait (Telegram ~1 message/s per chat, WhatsApp ~1 per 6 s per recipient with a
  small burst) waits alone: its queue holds its own messages and nobody else's.
- Destinations that may send take turns (round robin), at most one send in flight each (which keeps each
  chat's messages in order; a channel whose order does not matter, another bot's webhook URL, allows a few),
  up to the channel's overall rate.
- Priorities: a reply to someone who just wrote goes before business-initiated notices, which go before
  broadcasts; within a priority, the destination that became ready first goes first.
- 429 / 5xx: the destination (or, when the platform says the whole number is throttled, the channel) backs off;
  a reply is retried a few times, a notice goes back to the durable outbox, which retries it later.
- Permanent failures (blocked bot, unknown chat) are raised to the caller as PermanentDeliveryError.

`Lane` is the scheduling rule, pure (no I/O, time passed in), so it is tested with an injected clock;
`Delivery` runs one lane per channel on the event loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Generic, TypeVar

from services.errors import DeliveryError, RetryLater
from services.messaging import Messenger, OutgoingMessage, SentMessage

log = logging.getLogger(__name__)

Item = TypeVar("Item")


class Priority(IntEnum):
    REPLY = 0  # an answer to someone who just wrote
    NOTICE = 1  # business-initiated, about one person (credit, order update, progress)
    BULK = 2  # broadcasts


@dataclass(frozen=True)
class Limits:
    """A channel's limits: overall messages per second, and per destination one message per `interval_s`
    with up to `burst` back to back. `replies_exempt`: a reply waits only for the overall rate (WhatsApp: the
    person just wrote), though it still uses up the destination's quota."""

    rate_per_s: float
    interval_s: float = 0.0
    burst: int = 1
    replies_exempt: bool = False
    in_flight_per_destination: int = 1  # more than one: that destination's messages may overtake each other


@dataclass
class _Destination(Generic[Item]):
    queue: list[tuple[int, int, Item]] = field(default_factory=list)  # heap of (priority, seq, item)
    tat: float = 0.0  # GCRA theoretical arrival time of its next message
    blocked_until: float = 0.0  # a back-off for this destination alone
    in_flight: int = 0  # one send in flight at a time keeps a chat's messages in order
    busy: bool = False  # in_flight has reached the limit
    version: int = 0  # invalidates its older entries in the lane's heaps


class Lane(Generic[Item]):
    """Per-destination queues feeding a channel-wide rate limit. Time is passed in (seconds, monotonic)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._spacing = 1.0 / limits.rate_per_s if limits.rate_per_s > 0 else 0.0
        self._tolerance = max(0, limits.burst - 1) * limits.interval_s
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._destinations: dict[str, _Destination[Item]] = {}
        self._ready: list[tuple[int, int, int, str]] = []  # (priority, turn, version, destination)
        self._timed: list[tuple[float, int, str]] = []  # (eligible at, version, destination)
        self._seq = itertools.count()
        self._turns = itertools.count()
        self._versions = itertools.count(1)  # never reused, so a forgotten destination's old entries stay stale

    def __len__(self) -> int:
        return sum(len(d.queue) for d in self._destinations.values())

    def push(self, destination: str, priority: int, item: Item, now: float, *, seq: int | None = None) -> None:
        """Queue `item` for `destination`; `seq` (from an earlier push) puts a retried item back in its place."""
        if len(self._destinations) > 10_000:
            self._forget_idle(now)
        state = self._destinations.setdefault(destination, _Destination())
        heapq.heappush(state.queue, (priority, next(self._seq) if seq is None else seq, item))
        if not state.busy:
            self._schedule(destination, state, now)

    def take(self, now: float) -> tuple[str, int, int, Item] | None:
        """The next (destination, priority, seq, item) allowed to go at `now`, or None; it uses up the slot."""
        if now < max(self._next_slot, self._paused_until):
            return None
        while self._timed and self._timed[0][0] <= now:
            _, version, name = heapq.heappop(self._timed)
            state = self._destinations.get(name)
            if state is not None and state.version == version and not state.busy:
                self._schedule(name, state, now)
        while self._ready:
            _, _, version, name = heapq.heappop(self._ready)
            state = self._destinations.get(name)
            if state is None or state.version != version or state.busy or not state.queue:
                continue
            priority, seq, item = heapq.heappop(state.queue)
            state.in_flight += 1
            state.busy = state.in_flight >= self.limits.in_flight_per_destination
            state.version = next(self._versions)
            state.tat = max(state.tat, now) + self.limits.interval_s
            if not state.busy and state.queue:
                self._schedule(name, state, now)
            # A runner that woke a little late keeps the schedule (the next slot stays one spacing after the
            # last one) instead of letting every late wake-up stretch it; after a pause it starts from now.
            base = self._next_slot if now - self._next_slot < self._spacing else now
            self._next_slot = base + self._spacing
            return name, priority, seq, item
        return None

    def next_at(self) -> float | None:
        """When `take` may next return something (None: nothing is waiting that is not already in flight)."""
        candidates = []
        if self._ready:
            candidates.append(0.0)
        if self._timed:
            candidates.append(self._timed[0][0])
        if not candidates:
            return None
        return max(min(candidates), self._next_slot, self._paused_until)

    def finished(self, destination: str, now: float) -> None:
        """The send taken for `destination` is over (whatever its outcome)."""
        state = self._destinations.get(destination)
        if state is None:
            return
        was_busy = state.busy
        state.in_flight = max(0, state.in_flight - 1)
        state.busy = state.in_flight >= self.limits.in_flight_per_destination
        if state.queue:
            if was_busy:  # (when it was not, its next item is scheduled already)
                self._schedule(destination, state, now)
        elif not state.in_flight and state.tat <= now and state.blocked_until <= now:
            del self._destinations[destination]  # nothing to remember about it any more

    def back_off(self, seconds: float, now: float, destination: str | None = None) -> None:
        """The platform said slow down: this destination (or, with None, the whole channel) waits `seconds`."""
        until = now + seconds
        if destination is None:
            self._paused_until = max(self._paused_until, until)
            return
        state = self._destinations.setdefault(destination, _Destination())
        state.blocked_until = max(state.blocked_until, until)
        if not state.busy and state.queue:
            self._schedule(destination, state, now)

    def _forget_idle(self, now: float) -> None:
        self._destinations = {name: state for name, state in self._destinations.items()
                              if state.in_flight or state.queue or state.tat > now or state.blocked_until > now}

    def _eligible_at(self, state: _Destination[Item]) -> float:
        head_priority = state.queue[0][0]
        if head_priority == Priority.REPLY and self.limits.replies_exempt:
            return state.blocked_until
        return max(state.blocked_until, state.tat - self._tolerance)

    def _schedule(self, name: str, state: _Destination[Item], now: float) -> None:
        state.version = next(self._versions)
        at = self._eligible_at(state)
        if at <= now:
            heapq.heappush(self._ready, (state.queue[0][0], next(self._turns), state.version, name))
        else:
            heapq.heappush(self._timed, (at, state.version, name))


def backoff_seconds(attempt: int, base: float = 2.0, *, cap: float = 600.0) -> float:
    """base^n seconds (2, 4, 8 ...; 4^n for WhatsApp's pair limit) capped at `cap` (10 minutes), jittered so
    that retries of many messages do not align."""
    return min(cap, base ** min(max(1, attempt), 64)) * random.uniform(0.8, 1.2)


@dataclass
class _Job:
    message: OutgoingMessage
    future: asyncio.Future[Any]
    attempts_left: int
    attempt: int = 0


class _Runner:
    """One channel's lane on the event loop: takes what may go, sends it, feeds outcomes back."""

    def __init__(self, channel: str, messenger: Messenger, limits: Limits, monotonic: Callable[[], float],
                 parallel: int) -> None:
        self.channel = channel
        self.messenger = messenger
        self.lane: Lane[_Job] = Lane(limits)
        self._now = monotonic
        self._parallel = parallel
        self._in_flight = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[Any] | None = None
        self._sends: set[asyncio.Task[Any]] = set()
        self.on_wait: Callable[[str, int, float], None] | None = None  # (channel, priority, seconds queued)

    def submit(self, destination: str, message: OutgoingMessage, priority: Priority,
               attempts: int) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        future.queued_at = self._now()  # type: ignore[attr-defined]
        self.lane.push(destination, priority, _Job(message, future, attempts), self._now())
        self._ensure_running()
        self._wake.set()
        return future

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"delivery-{self.channel}")

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self._now()
            taken = self.lane.take(now) if self._in_flight < self._parallel else None
            if taken is not None:
                destination, priority, seq, job = taken
                self._in_flight += 1
                task = asyncio.create_task(self._send(destination, priority, seq, job))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)
                continue
            at = self.lane.next_at() if self._in_flight < self._parallel else None
            timeout = None if at is None else max(0.0, at - now)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=timeout)
            except TimeoutError:
                pass

    async def _send(self, destination: str, priority: int, seq: int, job: _Job) -> None:
        job.attempt += 1
        try:
            queued_at = getattr(job.future, "queued_at", None)
            if queued_at is not None and job.attempt == 1 and self.on_wait is not None:
                self.on_wait(self.channel, priority, self._now() - queued_at)
            sent = await self.messenger.send(destination, job.message)
        except RetryLater as exc:
            now = self._now()
            delay = exc.retry_after or backoff_seconds(job.attempt, exc.backoff_base)
            if exc.retry_after or exc.chat_only:
                self.lane.back_off(delay, now, destination if exc.chat_only else None)
            if job.attempts_left > 1 and not job.future.done():
                job.attempts_left -= 1
                log.warning("%s to %s: %s; retrying in %.1fs", self.channel, destination, exc, delay)
                self.lane.back_off(delay, now, destination)
                self.lane.push(destination, priority, job, now, seq=seq)
            elif not job.future.done():
                job.future.set_exception(exc)
        except DeliveryError as exc:
            if not job.future.done():
                job.future.set_exception(exc)
        except Exception as exc:  # an adapter bug must not kill the lane; the caller decides
            log.exception("%s to %s: unexpected send failure", self.channel, destination)
            if not job.future.done():
                job.future.set_exception(RetryLater(f"{type(exc).__name__}: {exc}"))
        else:
            if not job.future.done():
                job.future.set_result(sent)
        finally:
            self._in_flight -= 1
            self.lane.finished(destination, self._now())
            self._wake.set()

    def drain_queued(self) -> list[_Job]:
        """Take every queued (not yet sent) job out of the lane."""
        jobs = [job for state in self.lane._destinations.values() for _, _, job in state.queue]
        for state in self.lane._destinations.values():
            state.queue.clear()
        return jobs

    async def close(self) -> None:
        """Stop taking work; what was queued fails as RetryLater (a notice stays in the outbox, a reply's
        caller gives up), what is being sent gets a few seconds to finish."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for job in self.drain_queued():
            if not job.future.done():
                job.future.set_exception(RetryLater("shutting down"))
        if self._sends:
            await asyncio.wait(set(self._sends), timeout=5)


class Delivery:
    """`deliver(channel, destination, message)` for every kind of outgoing message."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic, parallel_per_channel: int = 64,
                 on_wait: Callable[[str, int, float], None] | None = None) -> None:
        self._now = monotonic
        self._parallel = parallel_per_channel
        self._on_wait = on_wait  # told how long each message waited for its turn (metrics)
        self._runners: dict[str, _Runner] = {}

    def add_channel(self, channel: str, messenger: Messenger, limits: Limits, *, parallel: int | None = None) -> None:
        """`parallel`: sends in flight at once on this channel (its client's connection pool size)."""
        runner = _Runner(channel, messenger, limits, self._now, parallel or self._parallel)
        runner.on_wait = self._on_wait
        self._runners[channel] = runner

    @property
    def channels(self) -> list[str]:
        return list(self._runners)

    def can_send(self, channel: str) -> bool:
        return channel in self._runners

    async def deliver(self, channel: str, destination: str, message: OutgoingMessage, *,
                      priority: Priority = Priority.NOTICE, attempts: int = 1) -> SentMessage:
        """Send one message when its turn comes; raises RetryLater (after `attempts` tries) or
        PermanentDeliveryError / OutsideWindow. A KeyError for a channel that is not configured."""
        sent: SentMessage = await self._runners[channel].submit(destination, message, priority, attempts)
        return sent

    def submit_all(self, channel: str, destination: str, messages: list[OutgoingMessage], *,
                   priority: Priority, attempts: int) -> list[asyncio.Future[Any]]:
        """Queue several messages to one destination at once, so they go in this order (nothing of another
        caller's to the same destination comes between them)."""
        runner = self._runners[channel]
        return [runner.submit(destination, message, priority, attempts) for message in messages]

    def queued(self) -> dict[str, int]:
        return {name: len(runner.lane) for name, runner in self._runners.items()}

    async def close(self) -> None:
        for runner in self._runners.values():
            await runner.close()


def send_in_order(delivery: Delivery, channel: str, destination: str, replies: list[OutgoingMessage], *,
                  priority: Priority = Priority.REPLY, attempts: int = 3,
                  on_sent: Callable[[OutgoingMessage, SentMessage], Any] | None = None) -> asyncio.Task[Any]:
    """Queue replies to one person together (so they arrive in order) right now, and follow them in a
    background task: the caller (an update handler) is free at once, so a chat that must wait for its own
    pacing never holds a handler slot that someone else's message needs. A reply that cannot be delivered is
    logged and the rest still go."""
    futures = delivery.submit_all(channel, destination, replies, priority=priority, attempts=attempts)

    async def follow() -> None:
        for reply, future in zip(replies, futures, strict=True):
            try:
                sent = await future
            except DeliveryError as exc:
                log.warning("reply to %s:%s not delivered: %s", channel, destination, exc)
                continue
            if on_sent is not None:
                result = on_sent(reply, sent)
                if asyncio.iscoroutine(result):
                    await result

    return asyncio.create_task(follow(), name=f"replies-{channel}-{destination}")
