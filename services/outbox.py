"""The durable outbox: notices are written in the same transaction as the change they announce, and a
background sender hands them to the one delivery path (services/delivery.py), so a crash never loses one.

Claiming is fair and exclusive. A round claims due rows with a lease (`lease_until`, FOR UPDATE SKIP LOCKED on
PostgreSQL) so two processes never send the same notice at once and a dead process's claims expire; it takes
at most a few rows per destination and skips every destination that already has a claimed row in flight
(here or in another process), so one person's pile of notices never fills a round and their order is kept.
Notices are claimed before broadcast messages, and broadcasts may fill at most half of what is in flight, so
a credit notice never waits behind a broadcast. Results are recorded as they arrive, a few at a time, and
the sender keeps claiming while earlier rows still wait for their destination's turn.

A sender claims the channels it is given: chat notices have one sender, client bots' webhook events another
(services/forwarding.py), with its own retry policy (`Retries`: for days rather than a dozen tries), so neither
ever waits for the other's rows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import media
from services.clock import Clock
from services.delivery import Delivery, Priority, backoff_seconds
from services.errors import OutsideWindow, PermanentDeliveryError, RetryLater
from services.messaging import OutgoingMessage, TemplateRef
from services.metrics import Metrics
from services.signals import Signals
from storage.db import Database
from storage.models import OutboxMessage, User
from storage.queries import insert_ignore, insert_or_skip, rows_changed

log = logging.getLogger(__name__)

Renderer = Callable[[str, str, str, dict[str, Any]], OutgoingMessage]  # (channel, language, template, params)
BROADCAST_TEMPLATE = "broadcast_message"


def notice_row(*, channel: str, chat_id: str, language: str, template: str, params: dict[str, Any], now: datetime,
               dedupe_key: str | None = None, priority: Priority = Priority.NOTICE) -> dict[str, Any]:
    """One outbox row: the only place the shape of a queued notice is written down."""
    return {"channel": channel, "chat_id": chat_id, "language": language, "template": template, "params": params,
            "priority": int(priority), "dedupe_key": dedupe_key, "status": "pending", "attempts": 0,
            "next_attempt_at": now, "created_at": now}


async def enqueue(
    session: AsyncSession,
    *,
    channel: str,
    chat_id: str,
    language: str,
    template: str,
    params: dict[str, Any],
    now: datetime,
    dedupe_key: str | None = None,
) -> bool:
    """Queue a notice in the caller's transaction; False when `dedupe_key` was already queued."""
    values = notice_row(channel=channel, chat_id=chat_id, language=language, template=template, params=params,
                        now=now, dedupe_key=dedupe_key)
    result = await session.execute(insert_ignore(session, OutboxMessage.__table__, values, ["dedupe_key"]))
    return result.scalar_one_or_none() is not None


async def queue_notices(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    """Queue notices built by notice_row() in the caller's transaction; a dedupe key queued before is skipped
    (a retried callback, a second admin's tap)."""
    if rows:
        await session.execute(insert_or_skip(session, OutboxMessage.__table__, ["dedupe_key"]), rows)


async def enqueue_many(session: AsyncSession, rows: list[dict[str, Any]], *, now: datetime,
                       priority: Priority = Priority.BULK) -> None:
    """Queue many messages with fresh, unique dedupe keys (a broadcast) in one executemany; a key that
    exists already is a bug and fails the caller's transaction. Each row: channel, chat_id, language,
    template, params, dedupe_key."""
    if rows:
        await session.execute(insert(OutboxMessage.__table__), [
            notice_row(**row, now=now, priority=priority) for row in rows])


async def send_again(session: AsyncSession, channel: str, dedupe_keys: Sequence[str], now: datetime) -> int:
    """Queue these messages again from now (delivered or given up; their retries start over); how many."""
    result = await session.execute(
        update(OutboxMessage).where(OutboxMessage.channel == channel, OutboxMessage.dedupe_key.in_(list(dedupe_keys)))
        .values(status="pending", attempts=0, next_attempt_at=now, lease_until=None, created_at=now, last_error=None))
    return rows_changed(result)


@dataclass(frozen=True)
class WindowPolicy:
    """A channel that accepts free text only within `hours` of the recipient's last message (WhatsApp: 24);
    outside it a notice goes as the approved template named for it, or is recorded as undeliverable."""

    hours: float = 24.0
    templates: dict[str, str] | None = None  # notice template -> approved template name
    language: str = "id"


@dataclass(frozen=True)
class Retries:
    """When a failed send is tried again, and when it is given up: after `max_attempts` tries, or (with
    `max_age`) once it has waited that long since it was queued. Backoff doubles (the error may say otherwise)
    up to `cap_s`."""

    max_attempts: int | None = 12
    max_age: timedelta | None = None
    cap_s: float = 600.0

    def gives_up(self, tries: int, age: timedelta) -> bool:
        if self.max_age is not None:
            return age >= self.max_age
        return self.max_attempts is not None and tries >= self.max_attempts


@dataclass(frozen=True)
class _Claimed:
    id: int
    channel: str
    chat_id: str
    language: str
    template: str
    params: dict[str, Any]
    attempts: int
    priority: int
    created_at: datetime
    last_inbound_at: datetime | None = None


@dataclass(frozen=True)
class _Result:
    row: _Claimed
    sent: bool
    provider_message_id: str | None = None
    error: str | None = None
    retry_after: float | None = None
    permanent: bool = False
    backoff_base: float = 2.0
    status: int | None = None  # the destination's HTTP status, where it answers with one


# Rows to queue (admins' notices) when a message is given up: (the row, why, now) -> outbox rows.
GiveUpAlert = Callable[[_Claimed, str, datetime], list[dict[str, Any]]]


class OutboxSender:
    def __init__(
        self,
        db: Database,
        delivery: Delivery,
        render: Renderer,
        clock: Clock,
        signals: Signals,
        *,
        poll_interval_s: float = 1.0,
        max_attempts: int = 12,
        lease_s: float = 60.0,
        batch_size: int = 200,
        per_destination: int = 3,
        windows: dict[str, WindowPolicy] | None = None,
        metrics: Metrics | None = None,
        channels: Sequence[str] | None = None,
        retries: Retries | None = None,
        on_give_up: GiveUpAlert | None = None,
        hears_failures: bool = True,
        ordered: bool = True,
        record_window_s: float = 0.0,
        claim_interval_s: float = 0.05,
    ) -> None:
        self._metrics = metrics
        self._only = list(channels) if channels is not None else None  # None: every channel of `delivery`
        self._retries = retries or Retries(max_attempts=max_attempts)
        self._on_give_up = on_give_up
        self._db = db
        self._delivery = delivery
        self._render = render
        self._clock = clock
        self._poll = poll_interval_s
        self._lease = timedelta(seconds=lease_s)
        self._batch = batch_size
        self._per_destination = per_destination
        # ordered: a destination with a row in flight anywhere gets no more until it is done (a chat's notices
        # keep their order). Otherwise (client bots' webhooks, whose order does not matter) up to
        # per_destination rows of each are in flight here at once, claimed as earlier ones finish.
        self._ordered = ordered
        # Results are recorded in one transaction per window (each durable commit is an fsync on SQLite).
        self._record_window = record_window_s
        self._claim_interval = claim_interval_s
        self._windows = windows or {}
        # Told after broadcast messages' results are recorded (their charges are settled promptly).
        self._broadcast_recorded = signals.broadcast_recorded
        self._wake = asyncio.Event()
        signals.notices_queued.connect(self.wake)
        if hears_failures:  # a platform that reports a failure after accepting a message is one of ours
            signals.delivery_failed.connect(self.delivery_failed)
        self._held: dict[int, _Claimed] = {}  # claimed by this process and not yet recorded
        self._results: asyncio.Queue[_Result] = asyncio.Queue()

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    # --- the continuous sender ----------------------------------------------------------------------

    async def run(self) -> None:
        """Claim, deliver and record until cancelled; a failed claim is logged and retried at the next poll."""
        helpers = [asyncio.create_task(self._record_forever(), name="outbox-record"),
                   asyncio.create_task(self._renew_leases_forever(), name="outbox-leases")]
        sends: set[asyncio.Task[Any]] = set()
        loop = asyncio.get_running_loop()
        last = 0.0
        try:
            while True:
                # A claim reads every due row: woken by each committed batch of a callback storm, it would run
                # dozens of times a second; a few are enough (a notice waits at most this much longer).
                pause = last + self._claim_interval - loop.time()
                if pause > 0:
                    await asyncio.sleep(pause)
                self._wake.clear()
                last = loop.time()
                try:
                    claimed = await self._claim_room()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("outbox claim failed; retrying at next poll")
                    claimed = []
                for row in claimed:
                    task = asyncio.create_task(self._deliver_and_report(row))
                    sends.add(task)
                    task.add_done_callback(sends.discard)
                if claimed:
                    continue
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
                except TimeoutError:
                    pass
        finally:
            for task in [*helpers, *sends]:
                task.cancel()
            await asyncio.gather(*helpers, *sends, return_exceptions=True)

    async def _claim_room(self) -> list[_Claimed]:
        room = self._batch - len(self._held)
        if room <= 0:
            return []
        bulk_in_flight = sum(1 for row in self._held.values() if row.priority >= Priority.BULK)
        claimed = await self._claim(room, notices=True)
        room -= len(claimed)
        bulk_room = min(room, max(1, self._batch // 2) - bulk_in_flight)
        if bulk_room > 0:
            claimed += await self._claim(bulk_room, notices=False)
        return claimed

    async def _deliver_and_report(self, row: _Claimed) -> None:
        self._results.put_nowait(await self._deliver(row))

    async def _record_forever(self) -> None:
        while True:
            batch = [await self._results.get()]
            if self._record_window:
                await asyncio.sleep(self._record_window)
            while len(batch) < 500:
                try:
                    batch.append(self._results.get_nowait())
                except asyncio.QueueEmpty:
                    break
            delay = 0.5
            while True:
                try:
                    await self._record(batch)
                    break
                except asyncio.CancelledError:
                    raise
                except Exception:  # keep the results: sending them again would duplicate notices
                    log.exception("outbox: recording %d results failed; retrying", len(batch))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
            self._wake.set()  # room for more

    async def _renew_leases_forever(self) -> None:
        """Rows waiting for their destination's turn keep their claim (a lease lapses only if we die)."""
        every = max(0.05, self._lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(every)
            ids = list(self._held)
            if not ids:
                continue
            try:
                until = self._clock.now() + self._lease
                async with self._db.write() as session:
                    for start in range(0, len(ids), 500):
                        await session.execute(update(OutboxMessage).where(
                            OutboxMessage.id.in_(ids[start:start + 500]), OutboxMessage.status == "pending")
                            .values(lease_until=until))
            except Exception as exc:
                log.warning("outbox: could not renew %d leases: %s", len(ids), exc)

    @property
    def channels(self) -> list[str]:
        """The channels this sender claims: the ones it was given that its delivery path can send on."""
        mine = self._delivery.channels
        return mine if self._only is None else [c for c in mine if c in self._only]

    # --- one round, for tools and tests --------------------------------------------------------------

    async def deliver_due(self) -> int:
        """One round: claim what is due (up to the batch size), deliver it, record the results."""
        if not self.channels:
            return 0
        claimed = await self._claim(self._batch, notices=True)
        claimed += await self._claim(self._batch - len(claimed), notices=False)
        if not claimed:
            return 0
        await self._record(list(await asyncio.gather(*(self._deliver(row) for row in claimed))))
        return len(claimed)

    # --- claiming, delivering, recording -----------------------------------------------------------

    async def _claim(self, limit: int, *, notices: bool) -> list[_Claimed]:
        channels = self.channels
        if limit <= 0 or not channels:
            return []
        now = self._clock.now()
        o = OutboxMessage.__table__
        busy = o.alias("busy")
        in_flight_there = exists(select(literal(1)).select_from(busy).where(
            busy.c.channel == o.c.channel, busy.c.chat_id == o.c.chat_id, busy.c.status == "pending",
            busy.c.lease_until >= now))
        priority = o.c.priority <= Priority.NOTICE if notices else o.c.priority > Priority.NOTICE
        due = [o.c.status == "pending", o.c.next_attempt_at <= now, o.c.channel.in_(channels), priority,
               or_(o.c.lease_until.is_(None), o.c.lease_until < now)]
        if self._ordered:
            due.append(~in_flight_there)
        if self._held:
            due.append(o.c.id.not_in(list(self._held)))
        ranked = (select(o.c.id, o.c.priority,
                         func.row_number().over(partition_by=(o.c.channel, o.c.chat_id),
                                                order_by=(o.c.priority, o.c.id)).label("turn"))
                  .where(*due).subquery())
        chosen = (select(ranked.c.id).where(ranked.c.turn <= self._per_destination)
                  .order_by(ranked.c.priority, ranked.c.id).limit(limit))
        candidates = (select(OutboxMessage, User.last_inbound_at)
                      .outerjoin(User, and_(User.channel == OutboxMessage.channel,
                                            User.external_id == OutboxMessage.chat_id))
                      # The row conditions again, in the locking statement itself: PostgreSQL re-checks these (not
                      # the subquery's) on a row another process claimed and committed meanwhile, so it is skipped.
                      .where(OutboxMessage.id.in_(chosen), OutboxMessage.status == "pending",
                             or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now))
                      .order_by(OutboxMessage.priority, OutboxMessage.id))
        if self._db.is_sqlite:
            # Ranking every due row takes tens of milliseconds under a backlog: on SQLite it is read outside the
            # one write lock (settlement batches would queue behind it), then the lease is taken only where the
            # row is still unclaimed; what the UPDATE returns is what this round owns.
            async with self._db.read() as session:
                rows = (await session.execute(candidates)).all()
            if not self._ordered:
                rows = self._within_room(rows)
            if not rows:
                return []
            table = OutboxMessage.__table__
            async with self._db.write() as session:
                won = set((await session.execute(
                    update(table).where(table.c.id.in_([r.id for r, _ in rows]), table.c.status == "pending",
                                        or_(table.c.lease_until.is_(None), table.c.lease_until < now))
                    .values(lease_until=now + self._lease).returning(table.c.id))).scalars())
            rows = [row for row in rows if row[0].id in won]
        else:
            async with self._db.write() as session:
                rows = (await session.execute(
                    candidates.with_for_update(skip_locked=True, of=OutboxMessage.__table__))).all()
                if not self._ordered:
                    rows = self._within_room(rows)
                if not rows:
                    return []
                await session.execute(update(OutboxMessage).where(OutboxMessage.id.in_([r.id for r, _ in rows]))
                                      .values(lease_until=now + self._lease))
        claimed = [_Claimed(r.id, r.channel, r.chat_id, r.language, r.template, r.params, r.attempts,
                            r.priority, r.created_at, seen) for r, seen in rows]
        for row in claimed:
            self._held[row.id] = row
        return claimed

    def _within_room(self, rows: Sequence[Any]) -> list[Any]:
        """Unordered destinations: no more than per_destination rows of each in flight here at once."""
        held: dict[tuple[str, str], int] = {}
        for row in self._held.values():
            held[(row.channel, row.chat_id)] = held.get((row.channel, row.chat_id), 0) + 1
        kept = []
        for row in rows:
            where = (row[0].channel, row[0].chat_id)
            if held.get(where, 0) < self._per_destination:
                held[where] = held.get(where, 0) + 1
                kept.append(row)
        return kept

    async def _deliver(self, row: _Claimed) -> _Result:
        try:
            message = self._render(row.channel, row.language, row.template, row.params)
        except Exception as exc:  # a broken template must not block the queue
            log.exception("outbox %s: cannot render template %s", row.id, row.template)
            return _Result(row, False, error=f"render: {exc}", permanent=True)
        if row.params.get("photo"):
            # A notice that names a kept image (a payment proof) carries it; if a newer proof replaced the
            # file meanwhile, the notice still goes out, as text.
            photo = await asyncio.to_thread(media.read, row.params["photo"])
            if photo is not None:
                message = replace(message, photo=photo)
        policy = self._windows.get(row.channel)
        if policy is not None and not self._inside_window(row, policy):
            templated = self._as_template(row, message, policy)
            if templated is None:
                return self._undeliverable(row)
            message = templated
        priority = Priority(min(max(row.priority, Priority.NOTICE), Priority.BULK))
        try:
            try:
                sent = await self._delivery.deliver(row.channel, row.chat_id, message, priority=priority)
            except OutsideWindow:
                templated = self._as_template(row, message, policy or WindowPolicy())
                if templated is None or message.template is not None:
                    return self._undeliverable(row)
                sent = await self._delivery.deliver(row.channel, row.chat_id, templated, priority=priority)
        except RetryLater as exc:
            log.warning("outbox %s to %s:%s: retry later (%s)", row.id, row.channel, row.chat_id, exc)
            return _Result(row, False, error=str(exc), retry_after=exc.retry_after, backoff_base=exc.backoff_base,
                           status=exc.status)
        except PermanentDeliveryError as exc:
            log.warning("outbox %s to %s:%s: undeliverable (%s)", row.id, row.channel, row.chat_id, exc)
            return _Result(row, False, error=str(exc), permanent=True)
        except Exception as exc:
            log.exception("outbox %s: unexpected send failure", row.id)
            return _Result(row, False, error=f"{type(exc).__name__}: {exc}")
        return _Result(row, True, provider_message_id=sent.provider_message_id, status=sent.status)

    def _inside_window(self, row: _Claimed, policy: WindowPolicy) -> bool:
        if row.last_inbound_at is None:
            return False
        return self._clock.now() - row.last_inbound_at < timedelta(hours=policy.hours)

    def _as_template(self, row: _Claimed, message: OutgoingMessage, policy: WindowPolicy) -> OutgoingMessage | None:
        name = (policy.templates or {}).get(row.template)
        if not name:
            return None
        ref = TemplateRef(name=name, language=policy.language, body_params=message.values)
        return OutgoingMessage(text=message.text, template=ref)

    def _undeliverable(self, row: _Claimed) -> _Result:
        reason = (f"undeliverable: outside the {row.channel} 24-hour window and no "
                  f"{row.channel}.templates.{row.template} configured")
        log.warning("outbox %s to %s:%s: %s", row.id, row.channel, row.chat_id, reason)
        return _Result(row, False, error=reason, permanent=True)

    async def delivery_failed(self, channel: str, provider_message_id: str, reason: str, *,
                              attempts: int = 20, every_s: float = 0.25) -> bool:
        """The platform reported later that a message it had accepted failed (WhatsApp status webhook). The
        report can overtake the recording of the send (Meta answers in milliseconds; results are recorded a
        few at a time, possibly by another process), so an unknown message id is looked for again, briefly."""
        for attempt in range(attempts):
            async with self._db.write() as session:
                result = await session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.channel == channel,
                           OutboxMessage.provider_message_id == provider_message_id)
                    .values(status="failed", last_error=f"reported failed: {reason}"[:500])
                    .returning(OutboxMessage.priority)
                )
                priorities = list(result.scalars())
            if priorities:
                if any(p >= Priority.BULK for p in priorities):
                    await self._broadcast_recorded.fire_and_wait()
                return True
            if attempt < attempts - 1:
                await asyncio.sleep(every_s)
        return False

    def _measure(self, now: datetime, sent: list[Any], failed: list[Any], retry: list[Any],
                 results: list[_Result]) -> None:
        metrics = self._metrics
        assert metrics is not None
        for result in results:
            if result.sent and result.row.template == "payment_credited":
                metrics.callback_to_notice.observe(max(0.0, (now - result.row.created_at).total_seconds()))
        for outcome, rows in (("sent", sent), ("failed", failed), ("retry", retry)):
            by_channel: dict[str, int] = {}
            ids = {row["row_id"] for row in rows}
            for result in results:
                if result.row.id in ids:
                    by_channel[result.row.channel] = by_channel.get(result.row.channel, 0) + 1
            for channel, count in by_channel.items():
                metrics.notices.labels(channel, outcome).inc(count)

    async def _record(self, results: list[_Result]) -> None:
        """Results in one transaction: one executemany per kind of outcome."""
        now = self._clock.now()
        sent, failed, retry = [], [], []
        alerts: list[dict[str, Any]] = []
        for result in results:
            tries = result.row.attempts + 1
            common = {"row_id": result.row.id, "tries": tries, "code": result.status}
            if result.sent:
                sent.append({**common, "provider": result.provider_message_id})
            elif result.permanent or self._retries.gives_up(tries, now - result.row.created_at):
                failed.append({**common, "error": (result.error or "")[:500]})
                if self._on_give_up is not None:
                    alerts += self._on_give_up(result.row, result.error or "", now)
            else:
                delay = max(result.retry_after or 0.0, backoff_seconds(tries, result.backoff_base,
                                                                       cap=self._retries.cap_s))
                retry.append({**common, "error": (result.error or "")[:500], "due": now + timedelta(seconds=delay)})
        table = OutboxMessage.__table__
        by_id = update(table).where(table.c.id == bindparam("row_id"))
        async with self._db.write() as session:
            if sent:
                await session.execute(by_id.values(status="sent", sent_at=now, attempts=bindparam("tries"),
                                                   provider_message_id=bindparam("provider"), lease_until=None,
                                                   last_status=bindparam("code")), sent)
            if failed:
                await session.execute(by_id.values(status="failed", attempts=bindparam("tries"),
                                                   last_error=bindparam("error"), lease_until=None,
                                                   last_status=bindparam("code")), failed)
            if retry:
                await session.execute(by_id.values(next_attempt_at=bindparam("due"), attempts=bindparam("tries"),
                                                   last_error=bindparam("error"), lease_until=None,
                                                   last_status=bindparam("code")), retry)
            if alerts:
                await queue_notices(session, alerts)
        for result in results:
            self._held.pop(result.row.id, None)
        if self._metrics is not None:
            self._measure(now, sent, failed, retry, results)
        if any(r.row.priority >= Priority.BULK for r in results):
            await self._broadcast_recorded.fire_and_wait()
