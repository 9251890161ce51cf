"""Group concurrent writes into one commit.

SQLite has one writer and every durable commit costs an fsync; each SQL statement through aiosqlite also
costs a thread hop. Items submitted together (e.g. gateway callbacks arriving at once) are handed to one
`apply_batch(session, items)` call inside one transaction, which can then use a few set-based statements
for the whole batch; only after the commit does each caller get its result (and the gateway its 200).

If a batch fails for a reason tied to its contents (a constraint), its items are redone one per
transaction so that only the offending item fails. If the database is unreachable, every caller gets
StorageUnavailable. Throughput comes from batching commits, not from skipping them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import StorageUnavailable, TitipError
from storage.db import Database

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
ApplyBatch = Callable[[AsyncSession, Sequence[Item]], Awaitable[list[Result]]]

# PostgreSQL may abort a whole batch on a deadlock or serialization failure with another writer: redo it.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}
# Errors that belong to an item's data, not to the database's availability.
_ITEM_ERRORS = (IntegrityError, TitipError, ValueError, LookupError)


def _retryable(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in _RETRYABLE_SQLSTATES or "deadlock" in str(exc).lower()


class WriteBatcher(Generic[Item, Result]):
    def __init__(
        self, db: Database, apply_batch: ApplyBatch, *, max_batch: int = 128, writers: int | None = None
    ) -> None:
        self._db = db
        self._apply = apply_batch
        self._max_batch = max_batch
        # One writer on SQLite (it has one anyway); a few on PostgreSQL, which commits in parallel.
        self._writers = writers or (1 if db.is_sqlite else 3)
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future]] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._loop(), name=f"write-batcher-{i}") for i in range(self._writers)]

    async def stop(self) -> None:
        """Finish what is queued, then stop the writers."""
        while not self._queue.empty() and self._tasks:
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def submit(self, item: Item) -> Result:
        """Apply `item` inside a batched transaction; returns after its commit."""
        if not self._tasks:  # not started (CLI tools): a transaction of its own
            return (await self._transaction([item]))[0]
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _transaction(self, items: Sequence[Item]) -> list[Result]:
        for attempt in range(3):
            try:
                async with self._db.write() as session:
                    return await self._apply(session, items)
            except _ITEM_ERRORS:
                raise
            except Exception as exc:
                if _retryable(exc) and attempt < 2:
                    log.warning("write batch aborted (%s); retrying", type(exc).__name__)
                    continue
                raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc
        raise AssertionError("unreachable")

    async def _loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
            try:
                await self._commit(batch)
            except asyncio.CancelledError:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(StorageUnavailable("shutting down"))
                raise
            except Exception as exc:  # never let the writer die
                log.exception("write batch failed unexpectedly")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(StorageUnavailable(str(exc)))

    async def _commit(self, batch: list[tuple[Item, asyncio.Future]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._transaction(items)
        except StorageUnavailable as exc:
            log.error("write batch of %d failed: %s", len(batch), exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except _ITEM_ERRORS as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            log.exception("write batch of %d refused by a constraint; redoing item by item", len(batch))
            for item, future in batch:
                try:
                    (result,) = await self._transaction([item])
                except Exception as exc:
                    if not future.done():
                        future.set_exception(exc)
                else:
                    if not future.done():
                        future.set_result(result)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # the caller may have gone away; the write stands
                future.set_result(result)
