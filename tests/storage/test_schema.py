"""The SQLAlchemy models and the migrations describe the same schema, on SQLite and on PostgreSQL: Alembic's
compare_metadata finds nothing to generate, and every CHECK constraint (which autogenerate does not compare) is
in both, with the same condition."""

from __future__ import annotations

import re

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, inspect

from storage.db import Database
from storage.migrate import upgrade
from storage.models import Base


def _normal(condition: str) -> str:
    """A CHECK's condition without the spelling each database adds (casts, quotes, brackets, ANY(ARRAY))."""
    text = condition.lower()
    # The cast's type by name: a greedy "[a-z ]+" would also eat the "and user_id" that follows "::text".
    text = re.sub(r"::(character varying|text|integer|bigint|smallint|boolean)(\[\])?", "", text)
    text = re.sub(r"= any \(array\[(.*?)\]\)", r"in (\1)", text)
    text = re.sub(r"[\s()\"]", "", text)
    return text


def _model_checks() -> dict[tuple[str, str], str]:
    found = {}
    for table in Base.metadata.sorted_tables:
        for constraint in table.constraints:
            if isinstance(constraint, CheckConstraint) and constraint.name:
                found[(table.name, str(constraint.name))] = _normal(str(constraint.sqltext))
    return found


async def test_the_models_and_the_migrations_describe_the_same_schema(fresh_db_url):
    db = Database(fresh_db_url)
    try:
        await upgrade(db)
        async with db.engine.connect() as conn:
            def compare(sync_conn):
                context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
                diff = compare_metadata(context, Base.metadata)
                inspector = inspect(sync_conn)
                checks = {}
                for table in inspector.get_table_names():
                    for check in inspector.get_check_constraints(table):
                        if check.get("name"):
                            checks[(table, check["name"])] = _normal(check["sqltext"])
                return diff, checks

            diff, migrated = await conn.run_sync(compare)
    finally:
        await db.close()
    assert diff == [], diff
    models = _model_checks()
    assert models, "the models declare CHECK constraints"
    assert set(models) == set(migrated), (set(models) ^ set(migrated))
    for key, condition in models.items():
        assert migrated[key] == condition, (key, migrated[key], condition)
