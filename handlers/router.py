"""One entry point for every channel: a neutral incoming message in, neutral replies out."""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from handlers import jastip as jastip_handlers
from handlers import wallet as wallet_handlers
from handlers.context import Services
from handlers.grammar import parse_command
from handlers.i18n import Translator
from services.errors import AllGatewaysFailed, StorageUnavailable, UserInputError
from services.messaging import OutgoingMessage
from services.wallet import UserView

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Incoming:
    """What a channel adapter makes of an update: who, where, and what they typed or tapped."""

    channel: str  # "telegram" | "whatsapp"
    chat_id: str
    user_id: str  # Telegram user id / WhatsApp wa_id
    display_name: str | None
    text: str = ""
    callback_data: str | None = None  # a tapped button
    update_key: str | None = None  # Telegram update_id / WhatsApp wamid: the dedupe key
    alt_id: str | None = None  # WhatsApp business-scoped user id
    photo: bytes | None = None  # an attached image, downloaded by the adapter (≤ its size limit)
    photo_too_large: bool = False
    reply_to: str | None = None  # the platform id of the message this one answers (Telegram reply / WhatsApp quote)


Feature = Callable[[Services, UserView, Translator, str], Awaitable[list[OutgoingMessage]]]

FEATURES: dict[str, Feature] = {
    "topup": wallet_handlers.topup,
    "saldo": wallet_handlers.saldo,
    "riwayat": wallet_handlers.riwayat,
    "cek": wallet_handlers.cek,
    "bahasa": wallet_handlers.bahasa,
    **jastip_handlers.FEATURES,
}


class Conversation:
    def __init__(self, services: Services) -> None:
        self._services = services
        # One person's messages are handled in the order they arrived (JOIN before the PESAN right after
        # it), while different chats run concurrently. Locks vanish with their last user.
        self._chat_locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()

    async def handle(self, message: Incoming) -> list[OutgoingMessage]:
        """The replies to send back to `message.chat_id`; [] for a retried (already handled) update."""
        key = (message.channel, message.chat_id)
        lock = self._chat_locks.get(key)
        if lock is None:
            lock = self._chat_locks[key] = asyncio.Lock()
        async with lock:
            return await self._handle(message)

    async def remember_sent(self, channel: str, chat_id: str, message_id: str | None, ref: str | None) -> None:
        """A reply went out: keep what it was about, so that answering it later means something."""
        if message_id is None or ref is None:
            return
        try:
            await self._services.sent.remember(channel, chat_id, message_id, ref)
        except Exception:  # losing this only loses the reply-to shortcut, never the reply
            log.exception("could not remember %s message %s (%s)", channel, message_id, ref)

    async def _replied_order(self, message: Incoming) -> str | None:
        """The order code of the bot's order message that `message` answers, if it answers one."""
        if message.reply_to is None:
            return None
        ref = await self._services.sent.ref_of(message.channel, message.chat_id, message.reply_to)
        return ref.removeprefix("order:") if ref and ref.startswith("order:") else None

    async def _handle(self, message: Incoming) -> list[OutgoingMessage]:
        try:
            inbound = await self._services.wallet.register_inbound(
                channel=message.channel,
                external_id=message.user_id,
                display_name=message.display_name,
                update_key=message.update_key,
                alt_id=message.alt_id,
            )
        except StorageUnavailable:
            return [OutgoingMessage(Translator("id", message.channel)("storage_down"))]
        if not inbound.first_delivery:
            log.info("%s update %s already handled; ignoring the retry", message.channel, message.update_key)
            return []
        user = inbound.user
        t = Translator(user.language, message.channel)
        try:
            return await self._dispatch(user, t, message)
        except UserInputError as exc:
            return [OutgoingMessage(t(exc.key, **exc.params))]
        except AllGatewaysFailed as exc:
            log.error("top-up for user %s: every gateway failed: %s", user.id, exc)
            return [OutgoingMessage(t("gateways_down"))]
        except StorageUnavailable:
            log.exception("database unavailable while handling %s", message.update_key)
            return [OutgoingMessage(t("storage_down"))]
        except Exception:
            log.exception("handler failed for %s update %s", message.channel, message.update_key)
            return [OutgoingMessage(t("internal_error"))]

    async def _dispatch(self, user: UserView, t: Translator, message: Incoming) -> list[OutgoingMessage]:
        if message.callback_data:
            action, _, value = message.callback_data.partition(":")
            if action == "topup":
                return await wallet_handlers.topup(self._services, user, t, value)
            if action == "lang":
                return await wallet_handlers.bahasa(self._services, user, t, value)
            if action == "bc":
                return await jastip_handlers.broadcast_button(self._services, user, t, value)
            if action == "ann":
                return await jastip_handlers.announce_button(self._services, user, t, value)
            if action == "ord":
                return await jastip_handlers.order_button(self._services, user, t, value)
            return [OutgoingMessage(t("not_a_command"))]
        command = parse_command(message.text)
        if message.photo is not None or message.photo_too_large:
            if command is not None and command.name == "produk":
                if message.photo is None:
                    return [OutgoingMessage(t("proof_too_large", maximum="5 MB"))]
                return await jastip_handlers.produk(self._services, user, t, command.args, message.photo)
            args = command.args if command is not None and command.name == "bayar" else None
            if not args:  # no "BAYAR <order>" caption: a photo answering an order message is its proof
                replied = await self._replied_order(message)
                if replied is None:
                    return [OutgoingMessage(t("proof_usage"))]
                args = replied
            return await jastip_handlers.bayar(self._services, user, t, args, message.photo)
        if command is None:
            return [OutgoingMessage(t("not_a_command"))]
        if command.name == "start" and command.args.lower().startswith("join_"):
            # Deep link t.me/<bot>?start=join_<slug>
            return await jastip_handlers.join(self._services, user, t, command.args[5:])
        if command.name in ("start", "bantuan"):
            help_text = t("help") + "\n\n" + t("help_jastip")
            if command.name == "start":
                return [OutgoingMessage(t("welcome", name=user.display_name or "", help=help_text))]
            return [OutgoingMessage(help_text)]
        feature = FEATURES.get(command.name)
        if feature is None:
            key = "unknown_command" if message.text.strip().startswith("/") else "not_a_command"
            return [OutgoingMessage(t(key, word=command.name[:30]))]
        return await feature(self._services, user, t, command.args)
