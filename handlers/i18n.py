"""Translation catalogs (handlers/locales/<lang>.toml) and the formatting of money and time for people.

Parameters are shown as people read them: money as Rp50.000 (services/money.py); a parameter named
`<thing>_state` holds an internal status and is shown through the catalog entry `<thing>_status_<value>`
("order_state": "shipped" -> "dikirim"); one named `<x>_key` holds a catalog key and is shown translated.
So no internal word ever reaches a person, whichever call site passes it.
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

from services.messaging import Button, OutgoingMessage
from services.money import rupiah, shown

LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"
WIB = timezone(timedelta(hours=7), "WIB")  # Asia/Jakarta: no daylight saving
ZONES = {"WIB": WIB, "WITA": timezone(timedelta(hours=8), "WITA"), "WIT": timezone(timedelta(hours=9), "WIT")}
_LOCALES = Path(__file__).with_name("locales")

__all__ = ["LANGUAGES", "WIB", "ZONES", "Translator", "local_time", "render_notice", "rupiah"]


def local_time(moment: datetime) -> str:
    """A moment as people in Indonesia read it, always naming its zone: '31-12-2026 20:00 WIB'."""
    return moment.astimezone(WIB).strftime("%d-%m-%Y %H:%M WIB")


def command_prefix(channel: str) -> str:
    """Telegram commands start with '/', WhatsApp (and the playground) users type plain words."""
    return "/" if channel == "telegram" else ""


@cache
def catalog(language: str) -> dict[str, str]:
    with (_LOCALES / f"{language}.toml").open("rb") as handle:
        return tomllib.load(handle)


class _Lenient(string.Formatter):
    """str.format with two additions: a missing placeholder shows as itself (never crashes a reply), and a
    count can carry its noun's plural forms: `{recipients:# recipient|# recipients}` gives "1 recipient",
    "3 recipients" ('#' is the number; the first form is for exactly one, the second for every other count).
    Indonesian nouns do not change with the count, so its catalog rarely needs it; English does."""

    def get_value(self, key, args, kwargs):
        if isinstance(key, str) and key not in kwargs:
            return "{" + key + "}"
        return super().get_value(key, args, kwargs)

    def format_field(self, value: Any, format_spec: str) -> str:
        if "|" in format_spec and "#" in format_spec:
            one, _, other = format_spec.partition("|")
            count = value if isinstance(value, int) else None
            return (one if count == 1 else other).replace("#", str(value))
        return super().format_field(value, format_spec)


_formatter = _Lenient()


@dataclass(frozen=True)
class Translator:
    language: str
    channel: str

    def __call__(self, key: str, **params: Any) -> str:
        own = catalog(self.language if self.language in LANGUAGES else DEFAULT_LANGUAGE)
        template = own.get(key) or catalog(DEFAULT_LANGUAGE).get(key) or key
        values = {name: self._show(name, value) for name, value in params.items()}
        values.setdefault("cmd", command_prefix(self.channel))
        return _formatter.format(template, **values)

    def _show(self, name: str, value: Any) -> Any:
        if name.endswith("_state") and isinstance(value, str):
            return self(f"{name.removesuffix('_state')}_status_{value}")
        if name.endswith("_key") and isinstance(value, str):
            return self(value)
        return shown(name, value)


# Notice parameters that are for the bot, never shown (a template's body gets every other one, in order).
HIDDEN_PARAMS = frozenset({"photo", "approval"})

# Notices that carry buttons: (label key, callback data with {params}).
NOTICE_BUTTONS = {
    "order_proof_owner": (("btn_proof_ok", "ord:ok:{order}"), ("btn_proof_bad", "ord:no:{order}")),
    "order_shipped_escrow": (("btn_received", "ord:recv:{order}"),),
    "order_release_soon": (("btn_received", "ord:recv:{order}"), ("btn_not_arrived", "ord:ext:{order}")),
    "order_final_due": (("btn_pay_wallet", "ord:pay:{order}"), ("btn_pay_link", "ord:link:{order}")),
    "order_final_reminder": (("btn_pay_wallet", "ord:pay:{order}"), ("btn_pay_link", "ord:link:{order}")),
    "admin_payment_held": (("btn_admin_credit", "adm:kredit:{order_id}"), ("btn_admin_refuse", "adm:tolak:{order_id}"),
                           ("btn_admin_check", "adm:cek:{order_id}")),
    "admin_approval_request": (("btn_admin_approve", "adm:setuju:{approval}"),
                               ("btn_admin_reject", "adm:tidak:{approval}")),
}


def render_notice(channel: str, language: str, template: str, params: dict[str, Any]) -> OutgoingMessage:
    """Render an outbox notice in the language its user had when it was queued, with its buttons (the outbox
    attaches a photo the notice names)."""
    t = Translator(language, channel)
    buttons = tuple(Button(t(label), data=data.format(**params)) for label, data in NOTICE_BUTTONS.get(template, ()))
    values = tuple(str(t._show(name, value)) for name, value in params.items() if name not in HIDDEN_PARAMS)
    return OutgoingMessage(text=t(template, **params), buttons=(buttons,) if buttons else (), values=values)
