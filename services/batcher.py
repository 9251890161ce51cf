"""Group concurrent writes into one commit.

SQLite has one writer and every durable commit costs an fsync; each SQL statement through aiosqlite also
costs a thread hop. Items submitted together (e.g. gateway callbacks arriving at once) are handed to one
`apply_batch(session, items)` call inside one transaction, which can then use a few set-based statements
for the whole batch; only after the commit does each caller get its result (and the gateway its 200).

If a batch fails for any reason, its items are redone one per transaction, so that only an offending item
fails (with its own StorageDataError / DataConflict / UserInputError) and the others are written; only when
the database cannot be reached does a caller get StorageUnavailable. Throughput comes from batching commits,
not from skipping them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import StorageUnavailable
from storage.db import Database

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")
ApplyBatch = Callable[[AsyncSession, Sequence[Item]], Awaitable[list[Result]]]

# PostgreSQL may abort a whole batch on a deadlock or serialization failure with another writer: redo it.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}


class RetryBatch(Exception):
    """The batch met something that changes how it must be applied (its apply function learned what): roll it
    back and run it again."""


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, RetryBatch):
        return True
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    return code in _RETRYABLE_SQLSTATES or "deadlock" in str(exc).lower()


class WriteBatcher(Generic[Item, Result]):
    def __init__(
        self, db: Database, apply_batch: ApplyBatch[Item, Result], *, max_batch: int = 128, writers: int | None = None
    ) -> None:
        self._db = db
        self._apply = apply_batch
        self._max_batch = max_batch
        # One writer per process: SQLite has one anyway; on PostgreSQL, concurrent batches of one process lock
        # the same accounts (people pay again and again) and mostly wait for each other — measured through HTTP
        # (bench/callbacks.py, 500 payers): 1 writer 1,981 credits/s, 2: 1,944, 3: 1,668, 6: 1,456. Several
        # processes still write in parallel.
        self._writers = writers or 1
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Any]]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._loop(), name=f"write-batcher-{i}") for i in range(self._writers)]

    async def stop(self) -> None:
        """Finish what is queued, then stop the writers."""
        # (Only while a writer is alive: one that died cannot drain the queue, and waiting for it would never end.)
        while not self._queue.empty() and any(not task.done() for task in self._tasks):  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def submit(self, item: Item) -> Result:
        """Apply `item` inside a batched transaction; returns after its commit."""
        if not self._tasks:  # not started (CLI tools): a transaction of its own
            return (await self._transaction([item]))[0]
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _transaction(self, items: Sequence[Item]) -> list[Result]:
        """One transaction for `items`; a deadlock or serialization failure is retried, twice."""
        for attempt in range(3):
            try:
                # A batch is a few set-based statements: inline on SQLite (no wait for the loop between them).
                async with self._db.write(inline=True) as session:
                    return await self._apply(session, items)
            except Exception as exc:
                if not _retryable(exc):
                    raise
                if attempt == 2:
                    raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc
                log.warning("write batch aborted (%s); retrying", type(exc).__name__)
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

    async def _commit(self, batch: list[tuple[Item, asyncio.Future[Any]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._transaction(items)
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            # Whatever failed the batch may belong to one item (a value too long, a constraint): redo each
            # alone so that only that item fails. If the database is down, each fails fast on its own.
            log.warning("write batch of %d failed (%s: %s); redoing item by item", len(batch),
                        type(exc).__name__, str(exc)[:200])
            for item, future in batch:
                try:
                    (result,) = await self._transaction([item])
                except Exception as item_exc:
                    if not future.done():
                        future.set_exception(item_exc)
                else:
                    if not future.done():
                        future.set_result(result)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():  # the caller may have gone away; the write stands
                future.set_result(result)
