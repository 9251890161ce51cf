"""Small query helpers shared by services. They never commit: the calling service owns the transaction."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def insert_or_skip(session: AsyncSession, table: Table, conflict: list[str]):
    """INSERT ... ON CONFLICT (conflict) DO NOTHING, for one row or executemany."""
    module = sqlite if dialect_of(session) == "sqlite" else postgresql
    return module.insert(table).on_conflict_do_nothing(index_elements=conflict)


def insert_ignore(session: AsyncSession, table: Table, values: dict[str, Any], conflict: list[str]):
    """INSERT ... ON CONFLICT (conflict) DO NOTHING RETURNING id: a row comes back only if it was inserted."""
    return insert_or_skip(session, table, conflict).values(**values).returning(table.c.id)
