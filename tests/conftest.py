"""Shared fixtures: every database test runs on SQLite and on PostgreSQL (127.0.0.1:5432).

Each test run creates a PostgreSQL database of its own (`titip_test_<pid>_<random>`, on the server named by
TITIP_TEST_PG_URL, default postgres@127.0.0.1:5432) and drops it at the end, so two runs on one machine never
touch each other's tables. PostgreSQL tests skip with a reason when no server answers, unless
TITIP_REQUIRE_POSTGRES=1 (CI), where an unreachable server is a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import text

from storage.db import Database
from storage.migrate import upgrade

# Hypothesis: CI runs a fixed, derandomized set of examples (repeatable, and `make test` stays well under its
# time budget); on a laptop each run explores new examples.
settings.register_profile("ci", max_examples=60, derandomize=True, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

# The server to use; the run's own database is created on it (the URL's database is only where we connect
# to create and drop ours).
PG_SERVER_URL = os.environ.get("TITIP_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
_pg_state: dict[str, object] = {}


def _postgres_reachable() -> bool:
    if "ok" not in _pg_state:
        try:
            with socket.create_connection(("127.0.0.1", 5432), timeout=1):
                _pg_state["ok"] = True
        except OSError:
            _pg_state["ok"] = False
    return bool(_pg_state["ok"])


async def _admin(statement: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(PG_SERVER_URL)
    conn = await asyncpg.connect(host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username,
                                 password=url.password, database=url.database or "postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_run_url() -> Iterator[str | None]:
    """This run's own PostgreSQL database (created now, dropped at the end); None when unreachable."""
    if not _postgres_reachable():
        yield None
        return
    from sqlalchemy.engine import make_url

    name = f"titip_test_{os.getpid()}_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_SERVER_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'titip.db'}"
    if not _postgres_reachable():
        if os.environ.get("TITIP_REQUIRE_POSTGRES") == "1":
            pytest.fail("TITIP_REQUIRE_POSTGRES=1 but PostgreSQL at 127.0.0.1:5432 is unreachable")
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is unreachable; start it to run the PostgreSQL variant")
    return request.getfixturevalue("pg_run_url")


async def reset_postgres(url: str) -> None:
    """An empty schema in this run's database. Connections an earlier test left behind (a server it killed, a
    transaction a task never finished) are ended first: one idle in a transaction would hold locks that make
    DROP SCHEMA wait for ever (seen once as a 300 s timeout), and no earlier test's connection is needed now."""
    db = Database(url)
    try:
        async with db.engine.begin() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            await conn.execute(text("SET LOCAL lock_timeout = '30s'"))  # a clear error rather than a hang
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await db.close()


@pytest.fixture
async def empty_db_url(db_url) -> str:
    """A database URL with no schema at all (for the migrations' own tests)."""
    if not db_url.startswith("sqlite"):
        await reset_postgres(db_url)
    return db_url


@pytest.fixture
async def fresh_db_url(empty_db_url) -> AsyncIterator[str]:
    """A database URL with an empty, migrated schema; after the test, the books must hold (`ledger check`):
    every scenario of the suite leaves a ledger whose invariants are intact."""
    from services import books

    db_url = empty_db_url
    db = Database(db_url)
    try:
        await upgrade(db)
    finally:
        await db.close()
    yield db_url
    db = Database(db_url)
    try:
        problems = await books.check(db)
    finally:
        await db.close()
    if problems:
        pytest.fail(f"the books do not hold after this test: {problems[:5]}")


@pytest.fixture
async def db(fresh_db_url) -> AsyncIterator[Database]:
    database = Database(fresh_db_url)
    yield database
    await database.close()


@pytest.fixture
async def midtrans():
    """A fake Midtrans (Snap + status API) on loopback."""
    from tests.support.midtrans import FakeMidtrans

    async with FakeMidtrans() as fake:
        yield fake


@pytest.fixture
async def graph():
    """A fake WhatsApp Graph API on loopback."""
    from tests.support.whatsapp import FakeGraphAPI

    async with FakeGraphAPI() as fake:
        yield fake


@pytest.fixture
async def bot():
    """A fake Telegram Bot API on loopback."""
    from tests.support.telegram import FakeBotAPI

    async with FakeBotAPI() as fake:
        yield fake


@pytest.fixture
async def proxied_postgres(db_url):
    """An empty PostgreSQL reached through a TCP proxy the test can cut (an outage) and restore:
    (proxy, database URL through it). The SQLite variant skips: an unreachable server means nothing there."""
    if db_url.startswith("sqlite"):
        pytest.skip("an unreachable server is a PostgreSQL condition; SQLite is a local file")
    from tests.support.servers import TcpProxy

    await reset_postgres(db_url)
    async with TcpProxy(5432) as proxy:
        yield proxy, db_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
