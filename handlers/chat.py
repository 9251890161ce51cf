"""Talking with the bot itself: greetings and the welcome, help per role, thanks, asking for support, and what
to say when a message is not understood — always with a next step, and with buttons where the channel has them."""

from __future__ import annotations

from handlers.context import Services
from handlers.i18n import Translator
from services.messaging import Button, OutgoingMessage
from services.wallet import UserView

# /bantuan <section>: the words people use for each part of the help (values are registry roles).
SECTIONS = {
    "dompet": "wallet", "saldo": "wallet", "wallet": "wallet",
    "pembeli": "buyer", "peserta": "buyer", "buyer": "buyer",
    "jastiper": "jastiper", "penjual": "jastiper", "seller": "jastiper",
}


def _registry():
    # The registry lists this module's handlers, so it is imported when first needed, not at import time.
    from handlers import commands

    return commands


def help_buttons(t: Translator) -> tuple[tuple[Button, ...], ...]:
    """One button per part of the help (labels never equal a typed command)."""
    return ((Button(t("btn_help_wallet"), data="help:wallet"), Button(t("btn_help_buyer"), data="help:buyer"),
             Button(t("btn_help_jastiper"), data="help:jastiper")),)


def welcome(t: Translator, user: UserView) -> OutgoingMessage:
    key = "welcome" if user.display_name else "welcome_anonymous"
    buttons = ((Button(t("btn_topup"), data="cmd:topup"), Button(t("btn_balance"), data="cmd:saldo"),
                Button(t("btn_help"), data="help:overview")),)
    return OutgoingMessage(t(key, name=user.display_name or ""), buttons=buttons)


async def start(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """A greeting or /start → the welcome with buttons; the deep link start=join_<slug> joins that trip."""
    if args.lower().startswith("join_"):
        from handlers import trips  # a deep link is a JOIN

        return await trips.join(services, user, t, args[5:])
    if args.lower().startswith("order_"):
        from handlers import orders  # a product's deep link on the trip page is a PESAN

        rest = args[6:]
        # Slugs and codes may both hold "_": the split is where a real trip's slug ends.
        for at in [i for i, c in enumerate(rest) if c == "_"]:
            if await services.trips.find(rest[:at]) is not None:
                return await orders.pesan(services, user, t, f"{rest[:at]} {rest[at + 1:]}")
    return [welcome(t, user)]


def section(t: Translator, role: str) -> OutgoingMessage:
    lines = [t(f"help_title_{role}"), *_registry().help_lines(t, role)]
    if role == "buyer":
        lines.append(t("help_proof"))
    return OutgoingMessage("\n".join(lines), buttons=help_buttons(t))


async def bantuan(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """/bantuan → what Titip does and one button per role; /bantuan jastiper (or a tapped button) → that part."""
    role = SECTIONS.get(args.strip().lower())
    if role is not None:
        return [section(t, role)]
    return [OutgoingMessage(t("help_overview"), buttons=help_buttons(t))]


async def thanks(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """"terima kasih" / "makasih" / "thanks" → a friendly answer, never a command."""
    return [OutgoingMessage(t("thanks_reply"))]


async def support(services: Services, user: UserView, t: Translator, args: str) -> list[OutgoingMessage]:
    """"admin" / "cs" / "min" → how to reach a person."""
    if services.support_contact:
        return [OutgoingMessage(t("support_contact", contact=services.support_contact), buttons=help_buttons(t))]
    return [OutgoingMessage(t("support_none"), buttons=help_buttons(t))]


async def command_button(services: Services, user: UserView, t: Translator, value: str) -> list[OutgoingMessage]:
    """A button that runs a command with no arguments (the welcome's "Isi saldo", "Cek saldo")."""
    spec = _registry().BY_NAME.get(value)
    if spec is None:
        return not_understood(t, "")
    return await spec.handler(services, user, t, "")


def not_understood(t: Translator, word: str, *, slash: bool = False) -> list[OutgoingMessage]:
    """The reply to anything that is not a command: what to do instead, with the help buttons."""
    key = "unknown_command" if slash else "not_a_command"
    return [OutgoingMessage(t(key, word=word), buttons=help_buttons(t))]
