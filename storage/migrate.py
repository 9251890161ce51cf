"""Apply the Alembic migrations to a database, from the CLI or at start-up (inside a running loop)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from storage.db import Database

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    # env.py runs on this connection instead of opening its own engine.
    config.attributes["connection"] = connection
    return config


# Several processes starting at once on one PostgreSQL would race to create the same tables; this
# transaction-scoped advisory lock makes them migrate one after the other (the later ones find nothing to do).
_MIGRATION_LOCK = 7_420_261_122


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to `revision`; safe to call on every start, from several processes at once."""
    async with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        await conn.run_sync(lambda sync_conn: command.upgrade(_config(sync_conn), revision))
