"""Translation catalogs (handlers/locales/<lang>.toml) and the formatting of money and time for people."""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Any

from services.messaging import Button, OutgoingMessage

LANGUAGES = ("id", "en")
DEFAULT_LANGUAGE = "id"
# Parameters that are Rupiah amounts, shown as Rp50.000 in every language.
MONEY = {"amount", "balance", "minimum", "maximum", "needed", "price", "total"}
WIB = timezone(timedelta(hours=7), "WIB")  # Asia/Jakarta: no daylight saving
_LOCALES = Path(__file__).with_name("locales")


def rupiah(amount: int) -> str:
    sign = "-" if amount < 0 else ""
    return f"{sign}Rp{abs(amount):,}".replace(",", ".")


def local_time(moment: datetime) -> str:
    return moment.astimezone(WIB).strftime("%d-%m-%Y %H:%M WIB")


def command_prefix(channel: str) -> str:
    """Telegram commands start with '/', WhatsApp users type plain words."""
    return "/" if channel == "telegram" else ""


@cache
def _catalog(language: str) -> dict[str, str]:
    with (_LOCALES / f"{language}.toml").open("rb") as handle:
        return tomllib.load(handle)


class _Lenient(string.Formatter):
    def get_value(self, key, args, kwargs):  # a missing placeholder shows as itself, never crashes a reply
        if isinstance(key, str) and key not in kwargs:
            return "{" + key + "}"
        return super().get_value(key, args, kwargs)


_formatter = _Lenient()


@dataclass(frozen=True)
class Translator:
    language: str
    channel: str

    def __call__(self, key: str, **params: Any) -> str:
        catalog = _catalog(self.language if self.language in LANGUAGES else DEFAULT_LANGUAGE)
        template = catalog.get(key) or _catalog(DEFAULT_LANGUAGE).get(key) or key
        shown = {k: (rupiah(v) if k in MONEY and isinstance(v, int) else v) for k, v in params.items()}
        shown.setdefault("cmd", command_prefix(self.channel))
        return _formatter.format(template, **shown)


# Notices that carry buttons: (label key, callback data with {params}).
NOTICE_BUTTONS = {
    "order_proof_owner": (("btn_confirm", "ord:confirm:{order}"), ("btn_reject", "ord:reject:{order}")),
}


def render_notice(channel: str, language: str, template: str, params: dict[str, Any]) -> OutgoingMessage:
    """Render an outbox notice in the language its user had when it was queued (with its photo and buttons)."""
    t = Translator(language, channel)
    buttons = tuple(Button(t(label), data=data.format(**params)) for label, data in NOTICE_BUTTONS.get(template, ()))
    photo = None
    if params.get("photo"):
        try:
            photo = Path(params["photo"]).read_bytes()
        except OSError:  # the file is gone: the notice still goes out, as text
            photo = None
    return OutgoingMessage(text=t(template, **params), buttons=(buttons,) if buttons else (), photo=photo)
