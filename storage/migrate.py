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
    async with db.engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        raw = (await conn.get_raw_connection()).driver_connection if sqlite else None
        if raw is not None:
            # SQLite changes a column by rebuilding its table (DROP, then rename the copy): with foreign keys
            # enforced, dropping a table that others reference fails once it has rows. The pragma only works
            # outside a transaction; the foreign-key check below proves nothing was left dangling.
            await raw.execute("PRAGMA foreign_keys=OFF")
        try:
            async with conn.begin():
                if conn.dialect.name == "postgresql":
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
                await conn.run_sync(lambda sync_conn: command.upgrade(_config(sync_conn), revision))
                if sqlite:
                    dangling = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                    if dangling:
                        raise RuntimeError(f"migration left rows pointing nowhere: {dangling[:5]}")
        finally:
            if raw is not None:
                await raw.execute("PRAGMA foreign_keys=ON")
