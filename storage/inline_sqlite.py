"""SQLite for write transactions, executed on the event loop's own thread.

aiosqlite runs every statement on a thread of its own and hands each result back through the event loop: a
write batch of ten statements waits ten times for the loop to get round to it, behind every HTTP request the
loop is parsing meanwhile (profiled: ~45 ms of a ~60 ms settlement batch under a callback storm was such
waiting; the statements themselves took ~7 ms). SQLite statements on a local file are microseconds to a few
milliseconds, so for writes — short by design, and serialised on SQLite's one write lock anyway — running them
inline costs the loop less than the waiting does. Reads keep aiosqlite (a report may scan for seconds).

This is a connection with aiosqlite's face (what SQLAlchemy's aiosqlite adapter calls), whose coroutines
never suspend: SQLAlchemy's `await_` of them returns at once. A write transaction cannot wait here for
another process's lock: `busy_timeout` is 0 for these connections, and storage/db.py runs the transaction on
the threaded engine instead when the lock is taken.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any


class _Immediately:
    """aiosqlite's request queue, as SQLAlchemy's adapter uses it (to set isolation_level): done at once."""

    def put_nowait(self, item: tuple[Any, Any]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:  # handed to the awaiting caller
            future.set_exception(exc)


class InlineCursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        self._cursor.execute(sql, () if parameters is None else parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Sequence[Any]]) -> InlineCursor:
        self._cursor.executemany(sql, parameters)
        return self

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def close(self) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value


class InlineConnection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        self._connection = connection  # SQLAlchemy's adapter checks that this is set before commit / rollback
        self._tx = _Immediately()

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._conn.cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        self._conn.close()

    def stop(self) -> None:
        self._conn.close()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._conn.create_function(*args, **kw)

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level


def creator(path: str) -> Any:
    """`async_creator` for create_async_engine: a connection to `path` that never waits for a lock."""

    async def connect() -> InlineConnection:
        connection = sqlite3.connect(path, timeout=0, check_same_thread=False)
        return InlineConnection(connection)

    return connect
