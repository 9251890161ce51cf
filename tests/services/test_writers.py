"""One function posts transfers (services/ledger.py) and one module queues outbox rows (services/outbox.py):
no other production module names those tables in a write."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("bot", "handlers", "services", "storage", "webhooks")


def writers(table: str) -> set[str]:
    """Modules that write `table` through its model: Model.__table__ in an insert/update, or Model(...) added."""
    pattern = re.compile(rf"(insert|update|delete)\(\s*{table}\b|{table}\.__table__\.(insert|update|delete)|"
                         rf"insert_(or_skip|ignore)\(\s*session,\s*{table}\.__table__|session\.add\(\s*{table}\(")
    found = set()
    for package in PRODUCTION:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue  # migrations carry old data over; they are not the running system
            if pattern.search(path.read_text()):
                found.add(str(path.relative_to(ROOT)))
    return found


def test_only_the_ledger_writes_transfers():
    assert writers("Transfer") == {"services/ledger.py"}


def test_only_the_outbox_module_writes_outbox_rows():
    assert writers("OutboxMessage") == {"services/outbox.py"}
