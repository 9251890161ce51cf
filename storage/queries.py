"""Small query helpers shared by services. They never commit: the calling service owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, and_, false, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.dml import ReturningInsert
from sqlalchemy.sql.elements import ColumnElement


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def insert_or_skip(session: AsyncSession, table: Table, conflict: list[str]) -> SqliteInsert | PgInsert:
    """INSERT ... ON CONFLICT (conflict) DO NOTHING, for one row or executemany."""
    if dialect_of(session) == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict)
    return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict)


def insert_ignore(session: AsyncSession, table: Table, values: dict[str, Any],
                  conflict: list[str]) -> ReturningInsert[tuple[int]]:
    """INSERT ... ON CONFLICT (conflict) DO NOTHING RETURNING id: a row comes back only if it was inserted."""
    return insert_or_skip(session, table, conflict).values(**values).returning(table.c.id)


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched (the conditional updates' "did I win")."""
    # Always a CursorResult for DML; cast rather than test, so that anything else fails loudly, never as "0 rows".
    return int(cast(CursorResult[Any], result).rowcount)


def pairs_in(first: Any, second: Any, pairs: Iterable[tuple[Any, Any]]) -> ColumnElement[bool]:
    """`(first, second) IN (pairs)` written as one `first = a AND second IN (...)` per distinct `a`: SQLite scans
    the whole table for a row-value IN list, but searches a (first, second) index for each of these."""
    grouped: dict[Any, list[Any]] = {}
    for a, b in pairs:
        grouped.setdefault(a, []).append(b)
    if not grouped:
        return false()
    return or_(*(and_(first == a, second.in_(bs)) for a, bs in grouped.items()))
