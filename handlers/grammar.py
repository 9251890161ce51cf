"""The command grammar shared by Telegram (`/topup 50rb`) and WhatsApp (`TOPUP 50rb`): commands found by the
words and phrases the registry declares (handlers/commands.py), amounts and counts as people type them.

Numbers are ASCII digits only: '²', '５' or Arabic-Indic digits are not numbers here (Python's isdigit() says
they are), so they get a clear reply instead of a crash or a silent surprise."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

_MULTIPLIERS = {"rb": 1_000, "ribu": 1_000, "k": 1_000, "jt": 1_000_000, "juta": 1_000_000}
_AMOUNT = re.compile(r"^(?:rp\.?)?(?P<number>\d[\d.,]*)(?P<unit>rb|ribu|k|jt|juta)?$", re.ASCII)
_GROUPED = re.compile(r"^\d{1,3}(?:([.,])\d{3})(?:\1\d{3})*$", re.ASCII)


_WHOLE = re.compile(r"^[0-9]{1,12}$", re.ASCII)
# Punctuation people put after a word ("saldo?", "halo!", "makasih.") that is not part of the command.
_TRAILING = "?!.,:;~"


@dataclass(frozen=True)
class Command:
    name: str  # the registry's name, or the unknown first word as typed (lower-case)
    args: str
    known: bool


def _words_end(text: str, count: int) -> int:
    """Where the first `count` whitespace-separated words of `text` end."""
    match = re.match(rf"\s*(?:\S+\s+){{{count - 1}}}\S+", text)
    return match.end() if match else len(text)


def parse_command(text: str, phrases: dict[str, str], longest: int = 3) -> Command | None:
    """'/topup@TitipBot 50rb', 'TOPUP 50rb' or 'isi saldo 50rb' -> Command('topup', '50rb'); None for empty
    text. `phrases` maps each declared word or phrase (lower-case, single spaces) to its command."""
    stripped = text.strip()
    if not stripped:
        return None
    words = stripped.split()
    first = words[0]
    if first.startswith("/"):
        first = first[1:].split("@", 1)[0]
    lowered = [first.lower(), *(w.lower() for w in words[1:longest])]
    for count in range(min(longest, len(lowered)), 0, -1):
        phrase = " ".join(lowered[:count]).strip(_TRAILING)
        name = phrases.get(phrase)
        if name is not None:
            return Command(name, stripped[_words_end(stripped, count):].strip(), True)
    return Command(lowered[0].strip(_TRAILING)[:30], stripped[_words_end(stripped, 1):].strip(), False)


def parse_whole(text: str) -> int | None:
    """'12' -> 12; anything but plain ASCII digits (a sign, '²', '１２', '12.5') -> None."""
    text = text.strip()
    return int(text) if _WHOLE.match(text) else None


def parse_amount(text: str) -> int | None:
    """Rupiah as people type it: 50000, 50.000, 50rb, 50k, 1jt, 1,5jt, Rp 50.000 -> int; None if not an amount."""
    compact = re.sub(r"\s+", "", text.lower())
    match = _AMOUNT.match(compact)
    if not match:
        return None
    number, unit = match.group("number"), match.group("unit")
    if unit:
        # With a unit, one '.' or ',' is a decimal point: 1,5jt = 1.500.000.
        if number.count(".") + number.count(",") > 1:
            return None
        try:
            value = Decimal(number.replace(",", ".")) * _MULTIPLIERS[unit]
        except InvalidOperation:
            return None
    elif "." in number or "," in number:
        # Without a unit, separators group thousands: 50.000 or 1,000,000 (never decimals of a Rupiah).
        if not _GROUPED.match(number):
            return None
        value = Decimal(re.sub(r"[.,]", "", number))
    else:
        value = Decimal(number)
    if value != value.to_integral_value() or value <= 0:
        return None
    return int(value)
