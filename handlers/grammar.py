"""The command grammar shared by Telegram (`/topup 50rb`) and WhatsApp (`TOPUP 50rb`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# Every spelling a user may type, Indonesian first, mapped to one command name.
ALIASES = {
    "start": "start",
    "mulai": "start",
    "topup": "topup",
    "isi": "topup",
    "isisaldo": "topup",
    "deposit": "topup",
    "saldo": "saldo",
    "balance": "saldo",
    "riwayat": "riwayat",
    "history": "riwayat",
    "mutasi": "riwayat",
    "cek": "cek",
    "check": "cek",
    "bahasa": "bahasa",
    "language": "bahasa",
    "lang": "bahasa",
    "bantuan": "bantuan",
    "help": "bantuan",
    "menu": "bantuan",
    # jastip: jastiper
    "trip": "trip",
    "tutup": "tutup",
    "buka": "buka",
    "deadline": "deadline",
    "produk": "produk",
    "ubah": "ubah",
    "hapus": "hapus",
    "peserta": "peserta",
    "pesanan": "pesanan",
    "konfirmasi": "konfirmasi",
    "tolak": "tolak",
    "kirim": "kirim",
    "broadcast": "broadcast",
    "rekap": "rekap",
    "recap": "rekap",
    "siaran": "broadcast",
    # jastip: participant
    "join": "join",
    "gabung": "join",
    "info": "info",
    "stop": "stop",
    "berhenti": "stop",
    "pesan": "pesan",
    "order": "pesan",
    "pesananku": "pesananku",
    "batal": "batal",
    "bayar": "bayar",
}

_MULTIPLIERS = {"rb": 1_000, "ribu": 1_000, "k": 1_000, "jt": 1_000_000, "juta": 1_000_000}
_AMOUNT = re.compile(r"^(?:rp\.?)?(?P<number>\d[\d.,]*)(?P<unit>rb|ribu|k|jt|juta)?$", re.ASCII)
_GROUPED = re.compile(r"^\d{1,3}(?:([.,])\d{3})(?:\1\d{3})*$", re.ASCII)


@dataclass(frozen=True)
class Command:
    name: str  # canonical name from ALIASES, or the unknown word as typed (lower-case)
    args: str
    known: bool


def parse_command(text: str) -> Command | None:
    """'/topup@TitipBot 50rb' or 'TOPUP 50rb' -> Command('topup', '50rb'); None for empty text."""
    stripped = text.strip()
    if not stripped:
        return None
    head, _, rest = stripped.partition(" ")
    if "\n" in head:
        head, _, more = head.partition("\n")
        rest = f"{more} {rest}".strip()
    word = head.lstrip("/").split("@", 1)[0].lower()
    name = ALIASES.get(word)
    return Command(name or word, rest.strip(), name is not None)


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
