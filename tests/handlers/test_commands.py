"""The command registry: each command declared once, and everything else (grammar, help, Telegram menu,
buttons) derived from it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from handlers import commands
from handlers.i18n import LANGUAGES, Translator, catalog

ROOT = Path(__file__).resolve().parents[2]


def test_no_word_or_phrase_belongs_to_two_commands():
    seen: dict[str, str] = {}
    for spec in commands.COMMANDS:
        for words in spec.words:
            key = " ".join(words.lower().split())
            assert seen.setdefault(key, spec.name) == spec.name, key
    assert commands.PHRASES == seen


def test_the_telegram_menu_comes_from_the_registry_in_both_languages():
    for language in LANGUAGES:
        menu = commands.menu_commands(Translator(language, "telegram"))
        assert [name for name, _ in menu] == [s.name for s in commands.COMMANDS if s.menu]
        for name, description in menu:
            assert re.fullmatch(r"[a-z0-9_]{1,32}", name) and 3 <= len(description) <= 256


def test_every_command_for_a_role_has_its_help_line_and_every_help_line_is_a_command():
    for spec in commands.COMMANDS:
        if spec.role in (commands.Role.WALLET, commands.Role.BUYER, commands.Role.JASTIPER):
            assert spec.help and spec.help in catalog("id"), spec.name
    keys = {k for k in catalog("id") if k.startswith("help_") and not k.startswith(("help_title_", "help_overview"))}
    assert keys - {"help_proof"} == {s.help for s in commands.COMMANDS if s.help}


def _button_prefixes() -> set[str]:
    prefixes: set[str] = set()
    for package in ("handlers", "services", "bot"):
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.keyword) and node.arg == "data":
                    value = node.value
                    first = value.values[0] if isinstance(value, ast.JoinedStr) and value.values else value
                    if isinstance(first, ast.Constant) and isinstance(first.value, str) and ":" in first.value:
                        prefixes.add(first.value.split(":", 1)[0])
    from handlers.i18n import NOTICE_BUTTONS

    prefixes |= {data.split(":", 1)[0] for buttons in NOTICE_BUTTONS.values() for _, data in buttons}
    return prefixes


def test_every_button_the_bot_sends_has_a_handler():
    prefixes = _button_prefixes()
    assert {"topup", "bc", "ord", "help", "cmd"} <= prefixes
    assert prefixes <= set(commands.BUTTON_HANDLERS)


@pytest.mark.parametrize("spec", [s for s in commands.COMMANDS if s.help], ids=lambda s: s.name)
def test_a_commands_first_word_finds_it(spec):
    from handlers.grammar import parse_command

    command = parse_command(spec.words[0].upper() + " x", commands.PHRASES, commands.LONGEST_PHRASE)
    assert command.name == spec.name


def test_button_labels_never_equal_a_typed_command():
    for language in LANGUAGES:
        for key, text in catalog(language).items():
            if key.startswith("btn_"):
                assert " ".join(text.lower().split()) not in commands.PHRASES, (language, key, text)


def test_each_test_run_has_a_postgres_database_of_its_own(pg_run_url):
    if pg_run_url is None:
        pytest.skip("PostgreSQL is unreachable")
    name = pg_run_url.rsplit("/", 1)[-1]
    assert name.startswith("titip_test_") and name != "test"
