"""The one table of banks and e-wallets people withdraw to: the names they type, and each provider's code.

Codes: Xendit payout channel codes (banks confirmed in its docs and SDK; e-wallet codes are UNCERTAIN in
protocols-more.md §1 and should be checked against GET /payouts_channels before going live), Midtrans Iris
beneficiary_bank codes (§2; OVO's is UNCERTAIN), Duitku bank codes (§3, the BI codes; e-wallet codes UNCERTAIN).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Bank:
    name: str  # ours, lower case
    label: str  # what a person reads
    ewallet: bool
    xendit: str
    midtrans: str
    duitku: str
    aliases: tuple[str, ...] = ()


BANKS: tuple[Bank, ...] = (
    Bank("bca", "BCA", False, "ID_BCA", "bca", "014"),
    Bank("bri", "BRI", False, "ID_BRI", "bri", "002"),
    Bank("bni", "BNI", False, "ID_BNI", "bni", "009"),
    Bank("mandiri", "Mandiri", False, "ID_MANDIRI", "mandiri", "008"),
    Bank("bsi", "BSI", False, "ID_BSI", "bsm", "451", ("syariah", "bank syariah indonesia")),
    Bank("cimb", "CIMB Niaga", False, "ID_CIMB", "cimb", "022", ("cimb niaga",)),
    Bank("permata", "Permata", False, "ID_PERMATA", "permata", "013"),
    Bank("btn", "BTN", False, "ID_BTN", "btn", "200"),
    Bank("seabank", "SeaBank", False, "ID_SEABANK", "bke", "535", ("sea bank",)),
    Bank("jago", "Bank Jago", False, "ID_JAGO", "artos", "542", ("bank jago",)),
    Bank("dana", "DANA", True, "ID_DANA", "dana", "1012"),
    Bank("ovo", "OVO", True, "ID_OVO", "ovo", "1010"),
    Bank("gopay", "GoPay", True, "ID_GOPAY", "gopay", "1013", ("go-pay", "gojek")),
    Bank("shopeepay", "ShopeePay", True, "ID_SHOPEEPAY", "shopeepay", "1014", ("shopee pay", "spay")),
)
BY_WORD: dict[str, Bank] = {w: b for b in BANKS for w in (b.name, *b.aliases)}


def find_bank(word: str) -> Bank | None:
    return BY_WORD.get(" ".join(word.lower().replace(".", " ").split()))


def normal_number(bank: Bank, raw: str) -> str | None:
    """Digits only; e-wallet phone numbers as 62… (08… and +62… accepted). None when it cannot be a number."""
    digits = re.sub(r"[\s.\-]", "", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    if not digits.isdigit():
        return None
    if bank.ewallet:
        if digits.startswith("0"):
            digits = "62" + digits[1:]
        if not digits.startswith("62") or not 10 <= len(digits) <= 15:
            return None
        return digits
    return digits if 5 <= len(digits) <= 20 else None


def masked(number: str) -> str:
    """****1234: how an account number appears to people and in logs."""
    return "****" + number[-4:]
