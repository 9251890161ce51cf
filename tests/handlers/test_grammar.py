"""The command grammar: amounts as Indonesians type them, commands on both channels, no input crashes it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.commands import LONGEST_PHRASE, PHRASES
from handlers.grammar import parse_amount, parse_command, parse_whole
from handlers.i18n import Translator, catalog, rupiah


def parse(text: str):
    return parse_command(text, PHRASES, LONGEST_PHRASE)


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
        ("saldo", "saldo", ""), ("/balance", "saldo", ""), ("  Riwayat  ", "riwayat", ""),
        ("/bahasa en", "bahasa", "en"),
        ("/start join_jpn25", "start", "join_jpn25"), ("BANTUAN", "bantuan", ""),
        # phrasings people actually send
        ("saldo?", "saldo", ""), ("cek saldo", "saldo", ""), ("Cek Saldo!", "saldo", ""),
        ("isi saldo 50rb", "topup", "50rb"), ("isi saldo", "topup", ""), ("topup 50 ribu", "topup", "50 ribu"),
        ("top up 100rb", "topup", "100rb"), ("pesanan saya", "pesananku", ""),
        ("BROADCAST jpn25 Halo\nsemua", "broadcast", "jpn25 Halo\nsemua"),
    ],
)
def test_commands_are_recognised_with_or_without_slash(text, name, args):
    command = parse(text)
    assert command is not None and (command.name, command.args, command.known) == (name, args, True)


@pytest.mark.parametrize("text", ["halo", "Hai", "hi", "hallo", "P", "pagi", "siang", "sore", "malam",
                                  "Assalamualaikum", "mulai", "menu", "start", "/start", "selamat pagi",
                                  "halo kak", "Halo!"])
def test_every_greeting_opens_the_welcome(text):
    command = parse(text)
    assert command is not None and command.known and command.name == "start"


@pytest.mark.parametrize("text", ["terima kasih", "Terima kasih!", "makasih", "thanks", "thank you"])
def test_thanks_is_small_talk_never_a_command(text):
    assert parse(text).name == "terimakasih"


@pytest.mark.parametrize("text", ["CS", "min"])
def test_asking_for_a_person_reaches_support(text):
    assert parse(text).name == "support"


def test_admin_is_a_command_of_its_own_whatever_follows_it():
    assert parse("ADMIN KREDIT TT1 alasan").name == "admin"


def test_unknown_words_are_reported_as_unknown():
    command = parse("terbang ke bulan")
    assert command is not None and not command.known and command.name == "terbang"


@pytest.mark.parametrize(("text", "value"), [("12", 12), (" 7 ", 7), ("²", None), ("١٢", None), ("１２", None),
                                             ("-3", None), ("1.5", None), ("9" * 5000, None), ("", None)])
def test_counts_are_plain_ascii_digits_only(text, value):
    assert parse_whole(text) == value


@given(st.text(max_size=200))
def test_no_input_crashes_the_parsers(text):
    parse(text)
    parse_whole(text)
    amount = parse_amount(text)
    assert amount is None or amount > 0


@given(st.integers(min_value=1, max_value=10**12))
def test_formatted_amounts_round_trip(amount):
    shown = rupiah(amount)
    assert parse_amount(shown) == amount
    assert parse_amount(str(amount)) == amount


@given(st.integers(min_value=1, max_value=10**6))
def test_topup_commands_round_trip(amount):
    command = parse(f"/topup {rupiah(amount)}")
    assert command is not None and command.name == "topup" and parse_amount(command.args) == amount


def test_catalogs_have_the_same_keys_and_render_money_the_indonesian_way():
    assert set(catalog("id")) == set(catalog("en"))
    assert Translator("id", "telegram")("balance", balance=1_500_000).startswith("Saldo kamu: Rp1.500.000.")
    assert Translator("en", "whatsapp")("help_topup").count("• topup") == 1
