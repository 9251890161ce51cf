"""The durable outbox: notices are written in the same transaction as the change they announce, and a
background sender delivers them with pacing, retries and leases, so a crash never loses one.

Rows are claimed with a lease (`lease_until`) taken in a write transaction (with FOR UPDATE SKIP LOCKED on
PostgreSQL), so two processes never send the same notice at once and a dead process's claims expire.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.clock import Clock
from services.errors import OutsideWindow, PermanentDeliveryError, RetryLater
from services.messaging import Messenger, OutgoingMessage, TemplateRef
from services.pacing import Pacer
from storage.db import Database
from storage.models import OutboxMessage, User
from storage.queries import insert_ignore

log = logging.getLogger(__name__)

Renderer = Callable[[str, str, str, dict[str, Any]], OutgoingMessage]  # (channel, language, template, params)


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
    values = {
        "channel": channel,
        "chat_id": chat_id,
        "language": language,
        "template": template,
        "params": params,
        "dedupe_key": dedupe_key,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }
    result = await session.execute(insert_ignore(session, OutboxMessage.__table__, values, ["dedupe_key"]))
    return result.scalar_one_or_none() is not None


async def enqueue_many(session: AsyncSession, rows: list[dict[str, Any]], *, now: datetime) -> None:
    """Queue many notices with fresh, unique dedupe keys (a broadcast) in one executemany; a key that
    exists already is a bug and fails the caller's transaction. Each row: channel, chat_id, language,
    template, params, dedupe_key."""
    if rows:
        await session.execute(insert(OutboxMessage.__table__), [
            {**row, "status": "pending", "attempts": 0, "next_attempt_at": now, "created_at": now} for row in rows])


@dataclass(frozen=True)
class WindowPolicy:
    """A channel that accepts free text only within `hours` of the recipient's last message (WhatsApp: 24);
    outside it a notice goes as the approved template named for it, or is recorded as undeliverable."""

    hours: float = 24.0
    templates: dict[str, str] | None = None  # notice template -> approved template name
    language: str = "id"


@dataclass(frozen=True)
class _Claimed:
    id: int
    channel: str
    chat_id: str
    language: str
    template: str
    params: dict[str, Any]
    attempts: int
    last_inbound_at: datetime | None = None


@dataclass(frozen=True)
class _Result:
    id: int
    sent: bool
    provider_message_id: str | None = None
    error: str | None = None
    retry_after: float | None = None
    permanent: bool = False
    backoff_base: float = 2.0


def backoff_seconds(attempts: int, base: float = 2.0) -> float:
    """base^n seconds (2, 4, 8 ...; 4^n for WhatsApp's pair limit) capped at 10 minutes, jittered so that
    retries of many rows do not align."""
    return min(600.0, base ** max(1, attempts)) * random.uniform(0.8, 1.2)


def template_params(params: dict[str, Any]) -> tuple[str, ...]:
    """A notice's values as a template's body parameters, in the notice's own order, money as Rp50.000."""
    shown = []
    for key, value in params.items():
        if isinstance(value, int) and key in ("amount", "balance", "minimum", "maximum", "needed", "price", "total"):
            value = f"Rp{value:,}".replace(",", ".")
        shown.append(str(value))
    return tuple(shown)


class OutboxSender:
    def __init__(
        self,
        db: Database,
        messengers: dict[str, Messenger],
        pacers: dict[str, Pacer],
        render: Renderer,
        clock: Clock,
        *,
        poll_interval_s: float = 1.0,
        max_attempts: int = 12,
        lease_s: float = 60.0,
        batch_size: int = 200,
        parallel_sends: int = 32,
        windows: dict[str, WindowPolicy] | None = None,
        after_round=None,
    ) -> None:
        self._windows = windows or {}
        # Called after results are recorded (e.g. to settle broadcast charges promptly).
        self._after_round = after_round
        self._db = db
        self._messengers = messengers
        self._pacers = pacers
        self._render = render
        self._clock = clock
        self._poll = poll_interval_s
        self._max_attempts = max_attempts
        self._lease = timedelta(seconds=lease_s)
        self._batch = batch_size
        self._parallel = asyncio.Semaphore(parallel_sends)
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        """Deliver until cancelled; a failure of one round is logged and the next round goes on."""
        while True:
            try:
                delivered = await self.deliver_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox round failed; retrying at next poll")
                delivered = 0
            if delivered == 0:
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
                except TimeoutError:
                    pass
                self._wake.clear()

    async def deliver_due(self) -> int:
        """Claim the due notices for the channels we can send on, send them, record the results."""
        if not self._messengers:
            return 0
        claimed = await self._claim()
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._send(row) for row in claimed))
        await self._record(claimed, results)
        if self._after_round is not None:
            await self._after_round()
        return len(claimed)

    async def _claim(self) -> list[_Claimed]:
        now = self._clock.now()
        async with self._db.write() as session:
            rows = (
                await session.execute(
                    select(OutboxMessage, User.last_inbound_at)
                    .outerjoin(User, and_(User.channel == OutboxMessage.channel,
                                          User.external_id == OutboxMessage.chat_id))
                    .where(
                        OutboxMessage.status == "pending",
                        OutboxMessage.next_attempt_at <= now,
                        OutboxMessage.channel.in_(list(self._messengers)),
                        or_(OutboxMessage.lease_until.is_(None), OutboxMessage.lease_until < now),
                    )
                    .order_by(OutboxMessage.id)
                    .limit(self._batch)
                    .with_for_update(skip_locked=True, of=OutboxMessage.__table__)
                )
            ).all()
            if not rows:
                return []
            ids = [r.id for r, _ in rows]
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.id.in_(ids)).values(lease_until=now + self._lease)
            )
            return [_Claimed(r.id, r.channel, r.chat_id, r.language, r.template, r.params, r.attempts, seen)
                    for r, seen in rows]

    async def _send(self, row: _Claimed) -> _Result:
        messenger = self._messengers[row.channel]
        pacer = self._pacers.get(row.channel)
        try:
            message = self._render(row.channel, row.language, row.template, row.params)
        except Exception as exc:  # a broken template must not block the queue
            log.exception("outbox %s: cannot render template %s", row.id, row.template)
            return _Result(row.id, False, error=f"render: {exc}", permanent=True)
        policy = self._windows.get(row.channel)
        if policy is not None and not self._inside_window(row, policy):
            templated = self._as_template(row, message, policy)
            if templated is None:
                return self._undeliverable(row)
            message = templated
        async with self._parallel:
            if pacer is not None:
                await pacer.wait(row.chat_id)
            try:
                try:
                    sent = await messenger.send(row.chat_id, message)
                except OutsideWindow:
                    templated = self._as_template(row, message, policy or WindowPolicy())
                    if templated is None or message.template is not None:
                        return self._undeliverable(row)
                    sent = await messenger.send(row.chat_id, templated)
            except RetryLater as exc:
                if pacer is not None and exc.retry_after:
                    pacer.back_off(exc.retry_after, row.chat_id if exc.chat_only else None)
                log.warning("outbox %s to %s:%s: retry later (%s)", row.id, row.channel, row.chat_id, exc)
                return _Result(row.id, False, error=str(exc), retry_after=exc.retry_after,
                               backoff_base=exc.backoff_base)
            except PermanentDeliveryError as exc:
                log.warning("outbox %s to %s:%s: undeliverable (%s)", row.id, row.channel, row.chat_id, exc)
                return _Result(row.id, False, error=str(exc), permanent=True)
            except Exception as exc:
                log.exception("outbox %s: unexpected send failure", row.id)
                return _Result(row.id, False, error=f"{type(exc).__name__}: {exc}")
        return _Result(row.id, True, provider_message_id=sent.provider_message_id)

    def _inside_window(self, row: _Claimed, policy: WindowPolicy) -> bool:
        if row.last_inbound_at is None:
            return False
        return self._clock.now() - row.last_inbound_at < timedelta(hours=policy.hours)

    def _as_template(self, row: _Claimed, message: OutgoingMessage, policy: WindowPolicy) -> OutgoingMessage | None:
        name = (policy.templates or {}).get(row.template)
        if not name:
            return None
        ref = TemplateRef(name=name, language=policy.language, body_params=template_params(row.params))
        return OutgoingMessage(text=message.text, template=ref)

    def _undeliverable(self, row: _Claimed) -> _Result:
        reason = (f"undeliverable: outside the {row.channel} 24-hour window and no "
                  f"{row.channel}.templates.{row.template} configured")
        log.warning("outbox %s to %s:%s: %s", row.id, row.channel, row.chat_id, reason)
        return _Result(row.id, False, error=reason, permanent=True)

    async def delivery_failed(self, channel: str, provider_message_id: str, reason: str) -> bool:
        """The platform reported later that a message it had accepted failed (WhatsApp status webhook)."""
        async with self._db.write() as session:
            result = await session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.channel == channel, OutboxMessage.provider_message_id == provider_message_id)
                .values(status="failed", last_error=f"reported failed: {reason}"[:500])
            )
        if result.rowcount and self._after_round is not None:
            await self._after_round()
        return result.rowcount > 0

    async def _record(self, claimed: list[_Claimed], results: list[_Result]) -> None:
        """All results of a round in one transaction: one executemany per kind of outcome."""
        attempts = {row.id: row.attempts for row in claimed}
        now = self._clock.now()
        sent, failed, retry = [], [], []
        for result in results:
            tries = attempts[result.id] + 1
            if result.sent:
                sent.append({"row_id": result.id, "tries": tries, "provider": result.provider_message_id})
            elif result.permanent or tries >= self._max_attempts:
                failed.append({"row_id": result.id, "tries": tries, "error": (result.error or "")[:500]})
            else:
                delay = max(result.retry_after or 0.0, backoff_seconds(tries, result.backoff_base))
                retry.append({"row_id": result.id, "tries": tries, "error": (result.error or "")[:500],
                              "due": now + timedelta(seconds=delay)})
        table = OutboxMessage.__table__
        by_id = update(table).where(table.c.id == bindparam("row_id"))
        async with self._db.write() as session:
            if sent:
                await session.execute(by_id.values(status="sent", sent_at=now, attempts=bindparam("tries"),
                                                   provider_message_id=bindparam("provider"), lease_until=None),
                                      sent)
            if failed:
                await session.execute(by_id.values(status="failed", attempts=bindparam("tries"),
                                                   last_error=bindparam("error"), lease_until=None), failed)
            if retry:
                await session.execute(by_id.values(next_attempt_at=bindparam("due"), attempts=bindparam("tries"),
                                                   last_error=bindparam("error"), lease_until=None), retry)
