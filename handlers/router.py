"""One entry point for every channel: a neutral incoming message in, neutral replies out through the one
delivery path. Commands and buttons are found in the registry (handlers/commands.py)."""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass

from handlers import commands as registry
from handlers import orders, trips
from handlers.chat import not_understood
from handlers.context import Services
from handlers.grammar import parse_command
from handlers.i18n import Translator
from services.delivery import Delivery, Priority, send_in_order
from services.errors import AllGatewaysFailed, StorageDataError, StorageUnavailable, UserInputError
from services.messaging import OutgoingMessage, SentMessage
from services.text import clean_name
from services.wallet import UserView

log = logging.getLogger(__name__)
NAME_LENGTH, USERNAME_LENGTH = 128, 64


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
    username: str | None = None  # Telegram @username (how a jastiper can reach this person)


class Conversation:
    def __init__(self, services: Services, delivery: Delivery | None = None, *, concurrency: int = 64) -> None:
        self._services = services
        self._delivery = delivery
        # At most this many messages are handled at once (database connections are few). A chat's messages
        # queue on that chat's lock *before* taking a slot, so one person's flood holds one slot, not all.
        self._slots = asyncio.Semaphore(concurrency)
        # One person's messages are handled in the order they arrived (JOIN before the PESAN right after
        # it), while different chats run concurrently. Locks vanish with their last user.
        self._chat_locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()
        self._sending: set[asyncio.Task] = set()

    async def respond(self, message: Incoming) -> None:
        """Handle `message` and queue the replies back to its chat, in order, on the delivery path; returns
        once they are queued (the update handler is free while they wait for their turn)."""
        key = (message.channel, message.chat_id)
        lock = self._chat_locks.get(key)
        if lock is None:
            lock = self._chat_locks[key] = asyncio.Lock()
        async with lock:
            async with self._slots:
                replies = await self._handle(message)
            if not replies or self._delivery is None:
                return

            async def remember(reply: OutgoingMessage, sent: SentMessage) -> None:
                await self.remember_sent(message.channel, message.chat_id, sent.provider_message_id, reply.ref)

            # Queued under the chat's lock, so the replies to consecutive messages keep their order.
            task = send_in_order(self._delivery, message.channel, message.chat_id, replies,
                                 priority=Priority.REPLY, on_sent=remember)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def drain(self, within_s: float = 5.0) -> None:
        """Wait a little for replies still being sent (shutdown)."""
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=within_s)

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
            inbound = await self._services.inbound.register(
                channel=message.channel,
                external_id=message.user_id,
                display_name=clean_name(message.display_name, NAME_LENGTH) or None,
                update_key=message.update_key,
                alt_id=message.alt_id,
                username=clean_name(message.username, USERNAME_LENGTH) or None,
            )
        except StorageUnavailable:
            return [OutgoingMessage(Translator("id", message.channel)("storage_down"))]
        except StorageDataError:
            log.warning("%s update %s refused by the database", message.channel, message.update_key, exc_info=True)
            return [OutgoingMessage(Translator("id", message.channel)("data_refused"))]
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
        except StorageDataError:
            log.warning("database refused the data of %s update %s", message.channel, message.update_key,
                        exc_info=True)
            return [OutgoingMessage(t("data_refused"))]
        except Exception:
            log.exception("handler failed for %s update %s", message.channel, message.update_key)
            return [OutgoingMessage(t("internal_error"))]

    async def _dispatch(self, user: UserView, t: Translator, message: Incoming) -> list[OutgoingMessage]:
        if message.callback_data:
            prefix, _, value = message.callback_data.partition(":")
            button = registry.BUTTON_HANDLERS.get(prefix)
            if button is None:
                return not_understood(t, "")
            return await button(self._services, user, t, value)
        command = parse_command(message.text, registry.PHRASES, registry.LONGEST_PHRASE)
        if message.photo is not None or message.photo_too_large:
            return await self._photo(user, t, message, command)
        if command is None:
            return not_understood(t, "")
        spec = registry.BY_NAME.get(command.name) if command.known else None
        if spec is None:
            return not_understood(t, clean_name(command.name, 30), slash=message.text.strip().startswith("/"))
        return await spec.handler(self._services, user, t, command.args)

    async def _photo(self, user: UserView, t: Translator, message: Incoming, command) -> list[OutgoingMessage]:
        """A photo is a product's picture (caption PRODUK ...), a complaint's evidence (caption KOMPLAIN ...) or a
        payment proof (caption BAYAR <pesanan>, or a reply to the order message)."""
        if command is not None and command.name == "produk":
            if message.photo is None:
                return [OutgoingMessage(t("proof_too_large", maximum="5 MB"))]
            return await trips.produk(self._services, user, t, command.args, message.photo)
        if command is not None and command.name == "komplain":
            if message.photo is None:
                return [OutgoingMessage(t("proof_too_large", maximum="5 MB"))]
            return await orders.komplain(self._services, user, t, command.args, message.photo)
        args = command.args if command is not None and command.name == "bayar" else None
        if not args:  # no "BAYAR <order>" caption: a photo answering an order message is its proof
            replied = await self._replied_order(message)
            if replied is None:
                return [OutgoingMessage(t("usage_bayar"))]
            args = replied
        return await orders.bayar(self._services, user, t, args, message.photo)
