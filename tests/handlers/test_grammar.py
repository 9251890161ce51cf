"""The command grammar: amounts as Indonesians type them, commands on both channels, no input crashes it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.grammar import parse_amount, parse_command
from handlers.i18n import Translator, rupiah


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        ("50000", 50_000), ("50.000", 50_000), ("50,000", 50_000), ("50rb", 50_000), ("50 rb", 50_000),
        ("50k", 50_000), ("50K", 50_000), ("50ribu", 50_000), ("1jt", 1_000_000), ("1,5jt", 1_500_000),
        ("1.5jt", 1_500_000), ("2 juta", 2_000_000), ("Rp50.000", 50_000), ("rp 1.000.000", 1_000_000),
        ("0,5rb", 500), ("1.250.000", 1_250_000),
    ],
)
def test_amounts_people_type_are_understood(text, amount):
    assert parse_amount(text) == amount


@pytest.mark.parametrize(
    "text", ["", "lima puluh", "50.5", "50.00", "1,2345rb", "1.2.3jt", "-5000", "0", "50rb50", "1e5", "５０", "50jtk"]
)
def test_non_amounts_are_refused(text):
    assert parse_amount(text) is None


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        ("/topup 50rb", "topup", "50rb"), ("/topup@TitipBot 50rb", "topup", "50rb"), ("TOPUP 50rb", "topup", "50rb"),
        ("saldo", "saldo", ""), ("/balance", "saldo", ""), ("  Riwayat  ", "riwayat", ""), ("/bahasa en", "bahasa", "en"),
        ("/start join_jpn25", "start", "join_jpn25"), ("BANTUAN", "bantuan", ""),
    ],
)
def test_commands_are_recognised_with_or_without_slash(text, name, args):
    command = parse_command(text)
    assert command is not None and (command.name, command.args, command.known) == (name, args, True)


def test_unknown_words_are_reported_as_unknown():
    command = parse_command("terbang ke bulan")
    assert command is not None and not command.known and command.name == "terbang"


@given(st.text(max_size=200))
def test_no_input_crashes_the_parsers(text):
    parse_command(text)
    amount = parse_amount(text)
    assert amount is None or amount > 0


@given(st.integers(min_value=1, max_value=10**12))
def test_formatted_amounts_round_trip(amount):
    shown = rupiah(amount)
    assert parse_amount(shown) == amount
    assert parse_amount(str(amount)) == amount


@given(st.integers(min_value=1, max_value=10**6))
def test_topup_commands_round_trip(amount):
    command = parse_command(f"/topup {rupiah(amount)}")
    assert command is not None and command.name == "topup" and parse_amount(command.args) == amount


def test_catalogs_have_the_same_keys_and_render_money_the_indonesian_way():
    from handlers.i18n import _catalog

    assert set(_catalog("id")) == set(_catalog("en"))
    assert Translator("id", "telegram")("balance", balance=1_500_000) == "Saldo kamu: Rp1.500.000"
    assert Translator("en", "whatsapp")("help").count("• topup") == 1
