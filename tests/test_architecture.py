"""The dependency rule from docs/architecture.md, checked on the source: layers import only downwards."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHANNEL_LIBS = {"telegram", "pywa", "pywa_async"}


def imports_of(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def test_services_and_storage_never_import_channel_libraries_or_aiohttp():
    for package in ("services", "storage"):
        for module, names in imports_of(package).items():
            assert not names & (CHANNEL_LIBS | {"aiohttp", "bot", "handlers", "webhooks"}), module


def test_handlers_never_import_a_channel_library_or_the_database():
    for module, names in imports_of("handlers").items():
        assert not names & (CHANNEL_LIBS | {"aiohttp", "sqlalchemy", "storage", "bot", "webhooks"}), module


def test_webhooks_reach_the_database_only_through_services():
    for module, names in imports_of("webhooks").items():
        assert not names & {"sqlalchemy", "storage", "bot", "telegram"}, module
