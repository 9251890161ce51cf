"""The translation catalogs against the code that uses them: every call site passes every placeholder its
message needs (a raw "{title}" never reaches a person), both languages have the same messages, and every
internal state has words in both.

Call sites are found in the source (ast): `t("key", ...)`, `UserInputError("key", ...)` and its subclasses,
`notify_user(session, user, "key", {...})`, the settlement's `notify("key", ...)`, and keys built with
f-strings (matched against every catalog key they can produce).
"""

from __future__ import annotations

import ast
import re
import string
from dataclasses import dataclass
from pathlib import Path

import pytest

from handlers.i18n import LANGUAGES, catalog

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("handlers", "services", "webhooks", "bot")
ERRORS = {"UserInputError", "AmountError"}
ALWAYS = {"cmd"}  # filled in by the translator itself


STATES = {
    "order": ("pending", "proof_submitted", "confirmed", "rejected", "shipped", "cancelled", "expired", "received",
              "refunded", "disputed", "dp_paid", "forfeited"),
    "payment": ("created", "pending", "paid", "failed", "expired", "held", "reversed", "refunded"),
    "broadcast": ("preview", "running", "done", "cancelled"),
    "trip": ("open", "closed"),
    "participant": ("joined", "stopped"),
}



@dataclass(frozen=True)
class CallSite:
    where: str
    pattern: re.Pattern[str]
    passed: frozenset[str] | None  # None: a ** spread, the names cannot be known here


def _known_parts() -> str:
    """What the variable part of an f-string key can be: a state, an action, a role, a command or a kind of
    thing (so f"order_{to}" is checked against order_confirmed, order_shipped ..., not every order_ message)."""
    from handlers.commands import COMMANDS

    parts = {state for states in STATES.values() for state in states} | set(STATES)
    parts |= {"confirm", "reject", "ship", "wallet", "buyer", "jastiper"} | {spec.name for spec in COMMANDS}
    return "(?:" + "|".join(sorted(parts, key=len, reverse=True)) + ")"


def _key_pattern(node: ast.expr) -> re.Pattern[str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.compile(re.escape(node.value) + r"\Z")
    if isinstance(node, ast.JoinedStr):
        known = _known_parts()
        parts = [re.escape(v.value) if isinstance(v, ast.Constant) else known for v in node.values]
        return re.compile("".join(parts) + r"\Z")
    return None


def _passed(keywords: list[ast.keyword], extra: set[str] | None = None) -> frozenset[str] | None:
    if any(k.arg is None for k in keywords):
        return None
    return frozenset({k.arg for k in keywords if k.arg} | (extra or set()))


def _dict_keys(node: ast.expr) -> set[str] | None:
    if not isinstance(node, ast.Dict) or any(k is None for k in node.keys):
        return None
    return {k.value for k in node.keys if isinstance(k, ast.Constant)}


def call_sites() -> list[CallSite]:
    found: list[CallSite] = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                translator_call = (name == "t" or (isinstance(func, ast.Call)
                                                   and getattr(func.func, "id", "") == "Translator")
                                   )
                if translator_call or name in ERRORS:
                    pattern = _key_pattern(node.args[0])
                    if pattern is not None:
                        found.append(CallSite(where, pattern, _passed(node.keywords)))
                elif name == "notify_user" and len(node.args) >= 4:
                    pattern, keys = _key_pattern(node.args[2]), _dict_keys(node.args[3])
                    if pattern is not None:
                        found.append(CallSite(where, pattern, frozenset(keys) if keys is not None else None))
                elif name == "notify" and isinstance(func, ast.Name):  # settlement: order_id is always added
                    pattern = _key_pattern(node.args[0])
                    if pattern is not None:
                        found.append(CallSite(where, pattern, _passed(node.keywords, {"order_id"})))
    return found


def placeholders(template: str) -> set[str]:
    return {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(template) if field}


SITES = call_sites()


def test_the_scan_finds_the_call_sites():
    assert len(SITES) > 150  # a broken scan would silently check nothing


@pytest.mark.parametrize("site", SITES, ids=lambda s: s.where)
def test_every_call_site_passes_every_placeholder_of_its_message(site):
    keys = [key for key in catalog("id") if site.pattern.match(key)]
    assert keys, f"{site.where}: no catalog message matches {site.pattern.pattern}"
    if site.passed is None:
        return
    for language in LANGUAGES:
        for key in keys:
            missing = placeholders(catalog(language)[key]) - site.passed - ALWAYS
            assert not missing, f"{site.where}: {language}.{key} needs {sorted(missing)}"


def test_both_languages_have_the_same_messages_with_the_same_placeholders():
    indonesian, english = catalog("id"), catalog("en")
    assert set(indonesian) == set(english)
    for key in indonesian:
        assert placeholders(indonesian[key]) == placeholders(english[key]), key


def test_notice_buttons_and_templates_name_real_messages():
    from handlers.i18n import NOTICE_BUTTONS

    for template, buttons in NOTICE_BUTTONS.items():
        assert template in catalog("id")
        assert all(label in catalog("id") for label, _ in buttons)


@pytest.mark.parametrize("thing", sorted(STATES))
def test_every_internal_state_has_words_in_both_languages(thing):
    for state in STATES[thing]:
        assert catalog("en").get(f"{thing}_status_{state}"), (thing, state)
        indonesian = catalog("id").get(f"{thing}_status_{state}")
        assert indonesian and state not in indonesian.split(), (thing, state)  # never the internal word


def test_the_states_listed_here_are_the_ones_the_database_allows():
    from storage.models import Order

    check = next(c for c in Order.__table__.constraints if getattr(c, "name", "") == "ck_orders_status")
    assert set(re.findall(r"'([a-z_]+)'", str(check.sqltext))) == set(STATES["order"])


def notice_templates() -> set[str]:
    """Every message that can go out as a notice (through the outbox), found at its call sites."""
    found: set[str] = {"broadcast_message"}
    for package in ("services",):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                # notice_row(..., template="x", ...): a notice queued by name
                for keyword in node.keywords:
                    if keyword.arg == "template" and isinstance(keyword.value, ast.Constant):
                        found.add(keyword.value.value)
                if not node.args:
                    continue
                func = node.func
                name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
                direct = name in ("notify", "Notice") and isinstance(func, ast.Name)
                index = 2 if name == "notify_user" else 0 if direct else None
                if index is None or len(node.args) <= index:
                    continue
                arg = node.args[index]
                candidates = [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]
                for candidate in candidates:
                    pattern = _key_pattern(candidate)
                    if pattern is not None:
                        found |= {key for key in catalog("id") if pattern.match(key)}
    return found


def test_every_notice_has_a_whatsapp_template_key_documented_for_use_outside_24_hours():
    config = (ROOT / "config.toml").read_text()
    templates = notice_templates()
    assert {"payment_credited", "order_new_owner", "order_expired_owner", "order_proof_rejected"} <= templates
    for template in sorted(templates):
        assert re.search(rf"^# {template} = \"[a-z_]+\"", config, re.MULTILINE), template


@pytest.mark.parametrize(("count", "english"), [(1, "1 recipient × Rp500"), (2, "2 recipients × Rp500"),
                                                (0, "0 recipients × Rp500")])
def test_counted_nouns_take_their_plural_in_english_and_stay_as_they_are_in_indonesian(count, english):
    from handlers.i18n import Translator

    values = {"slug": "jpn25", "recipients": count, "price": 500, "total": 500 * count, "balance": 0, "text": "x"}
    assert english in Translator("en", "telegram")("broadcast_preview", **values)
    assert f"{count} penerima × Rp500" in Translator("id", "telegram")("broadcast_preview", **values)
    detail = Translator("en", "telegram")("trip_detail", title="T", slug="s", deadline="d", trip_state="open",
                                          participants=1, orders=2)
    assert "1 participant · 2 orders" in detail
