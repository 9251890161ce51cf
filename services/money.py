"""Rupiah as people read it, in one place: notices, replies, templates, pages and spreadsheets."""

from __future__ import annotations

# Parameters of notices and replies that are Rupiah amounts, shown as Rp50.000 in every language and in
# WhatsApp template parameters.
MONEY_PARAMS = frozenset({"amount", "balance", "minimum", "maximum", "needed", "price", "total", "refund",
                          "charged", "released", "paid", "unpaid", "room", "repaid", "taken", "owed", "after",
                          "expected", "held_amount", "topup_amount", "revenue", "receivable_amount",
                          "correction_amount", "limit", "short", "fee", "earned", "in_escrow", "refunded", "dp",
                          "rest", "due"})
# Signed changes, shown with their sign either way: +Rp25.000 / -Rp10.000.
SIGNED_PARAMS = frozenset({"change"})


def rupiah(amount: int) -> str:
    """50000 -> 'Rp50.000'; negative amounts keep their sign in front."""
    sign = "-" if amount < 0 else ""
    return f"{sign}Rp{abs(amount):,}".replace(",", ".")


def shown(key: str, value: object) -> object:
    """A parameter as a person sees it: money formatted, everything else unchanged."""
    if key in MONEY_PARAMS and isinstance(value, int) and not isinstance(value, bool):
        return rupiah(value)
    if key in SIGNED_PARAMS and isinstance(value, int) and not isinstance(value, bool):
        return ("+" if value > 0 else "") + rupiah(value)
    return value
