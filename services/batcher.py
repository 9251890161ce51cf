"""Group concurrent small write transactions into one commit.

SQLite has one writer and every durable commit costs an fsync: a few hundred per second. Callbacks that
arrive together are applied by one writer task in one transaction, each in its own SAVEPOINT so that one
item's failure rolls back only that item, then committed once; only after the commit does each caller get
its result (and the gateway its 200). Throughput comes from batching commits, not from skipping them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from services.errors import StorageUnavailable, TitipError
from storage.db import Database

log = logging.getLogger(__name__)

T = TypeVar("T")
Work = Callable[[AsyncSession], Awaitable[Any]]

# PostgreSQL may abort a whole batch on a deadlock or serialization failure with another writer: redo it.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}


def _retryable(exc: BaseException) -> bool:
    code = getattr(getattr(exc, "orig", None), "sqlstate", None) or getattr(getattr(exc, "orig", None), "pgcode", None)
    return code in _RETRYABLE_SQLSTATES or "deadlock" in str(exc).lower()


class WriteBatcher:
    def __init__(self, db: Database, *, max_batch: int = 64, writers: int | None = None) -> None:
        self._db = db
        self._max_batch = max_batch
        # One writer on SQLite (it has one anyway); a few on PostgreSQL, which takes writes in parallel.
        self._writers = writers or (1 if db.is_sqlite else 4)
        self._queue: asyncio.Queue[tuple[Work, asyncio.Future]] = asyncio.Queue()
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

    async def run(self, work: Callable[[AsyncSession], Awaitable[T]]) -> T:
        """Run `work(session)` inside a batched transaction; returns after its commit."""
        if not self._tasks:
            # Not started (CLI tools, some tests): a transaction of its own.
            return await self._run_alone(work)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        await self._queue.put((work, future))
        return await future

    async def _run_alone(self, work: Work) -> Any:
        try:
            async with self._db.write() as session:
                return await work(session)
        except (OperationalError, OSError, ConnectionError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        except DBAPIError as exc:
            if isinstance(exc, IntegrityError):
                raise
            raise StorageUnavailable(str(exc)) from exc

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

    async def _commit(self, batch: list[tuple[Work, asyncio.Future]]) -> None:
        for attempt in range(3):
            results: list[tuple[asyncio.Future, bool, Any]] = []
            try:
                async with self._db.write() as session:
                    for work, future in batch:
                        try:
                            async with session.begin_nested():
                                results.append((future, True, await work(session)))
                        except (IntegrityError, TitipError, ValueError, LookupError) as exc:
                            # This item only: its savepoint is rolled back, the others go on.
                            log.exception("batched write failed for one item")
                            results.append((future, False, exc))
            except Exception as exc:  # the batch as a whole: connection lost, commit failed, deadlock
                if _retryable(exc) and attempt < 2:
                    log.warning("write batch aborted (%s); retrying", exc.__class__.__name__)
                    continue
                log.error("write batch of %d failed: %s", len(batch), exc)
                error = StorageUnavailable(f"{type(exc).__name__}: {exc}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                return
            for future, ok, value in results:
                if future.done():  # the caller went away (client disconnected); the write stands
                    continue
                if ok:
                    future.set_result(value)
                else:
                    future.set_exception(value)
            return
