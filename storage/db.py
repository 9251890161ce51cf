"""Engine and session set-up for SQLite (WAL, embedded default) and PostgreSQL (asyncpg).

`Database.read()` opens a read transaction; `Database.write()` a write transaction. On SQLite a write starts
with BEGIN IMMEDIATE (so a transaction never has to upgrade its lock and fail with SQLITE_BUSY half-way) and
writers inside one process queue on an asyncio lock instead of in SQLite's sleeping busy handler. On a SQLite
file, `write(inline=True)` (the write batchers: a few set-based statements each) runs its statements on the
event loop's thread (storage/inline_sqlite.py: no wait for the loop between statements); when another process
holds the write lock, that transaction runs on aiosqlite's thread instead, which waits for the lock without
stopping the loop. Other writes (a claim that ranks every due row, a sweep) stay on aiosqlite's thread, where
a long statement does not hold up the loop.
Database exceptions raised inside either block (or by its commit) leave it as the error tree's
StorageUnavailable / StorageDataError / DataConflict (storage/errors.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from storage import inline_sqlite
from storage.errors import mapped

_WRITE_OPTION = "titip_write"


def _sqlite_file(url: str) -> Path | None:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _install_sqlite_hooks(engine: AsyncEngine, *, busy_timeout_ms: int = 30_000) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:  # pragma: no cover - exercised by every test
        # Take transaction control away from the sqlite3 module so that BEGIN / SAVEPOINT are ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit survives power loss, so a 200 to a gateway means the credit is durable.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


class Database:
    """Owns the engine; hands out read and write transactions as AsyncSessions."""

    def __init__(self, url: str, *, echo: bool = False, pool_size: int = 10) -> None:
        self.url = url
        self._inline_engine: AsyncEngine | None = None
        self.dialect = make_url(url).get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        if self.is_sqlite:
            path = _sqlite_file(url)
            if path is not None and path.parent != Path(""):
                path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
            _install_sqlite_hooks(self.engine)
            if path is not None:
                self._inline_engine = create_async_engine(url, echo=echo,
                                                          async_creator=inline_sqlite.creator(str(path)))
                _install_sqlite_hooks(self._inline_engine, busy_timeout_ms=0)
        else:
            self.engine = create_async_engine(
                url, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )
        self._read = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write = async_sessionmaker(
            self.engine.execution_options(**{_WRITE_OPTION: True}), expire_on_commit=False
        )
        self._inline_write = (async_sessionmaker(self._inline_engine.execution_options(**{_WRITE_OPTION: True}),
                                                 expire_on_commit=False)
                              if self._inline_engine is not None else None)
        # SQLite has one writer: queue in-process writers here rather than in the busy handler's sleeps.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        with mapped():
            async with self._read() as session, session.begin():
                yield session

    @asynccontextmanager
    async def write(self, *, inline: bool = False) -> AsyncIterator[AsyncSession]:
        """A write transaction, committed when the block exits normally, rolled back otherwise. `inline`: its
        statements are short (SQLite: they run on the loop's thread)."""
        with mapped():
            if self._write_lock is None:
                async with self._write() as session, session.begin():
                    yield session
                return
            async with self._write_lock:
                if inline and self._inline_write is not None:
                    session = self._inline_write()
                    try:
                        await session.connection()  # BEGIN IMMEDIATE now: if the lock is taken, fail before the body
                    except Exception as exc:
                        await session.close()
                        if not _busy(exc):
                            raise
                    else:
                        async with session, _committing(session):
                            yield session
                        return
                async with self._write() as session, session.begin():
                    yield session

    async def close(self) -> None:
        if self._inline_engine is not None:
            await self._inline_engine.dispose()
        await self.engine.dispose()


def _busy(error: BaseException) -> bool:
    """SQLITE_BUSY: another process holds the write lock."""
    return "database is locked" in str(error) or "database is busy" in str(error)


@asynccontextmanager
async def _committing(session: AsyncSession) -> AsyncIterator[None]:
    """Commit the session's open transaction when the block ends normally, roll it back otherwise."""
    try:
        yield
    except BaseException:
        await session.rollback()
        raise
    await session.commit()
