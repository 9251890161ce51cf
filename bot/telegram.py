"""Telegram via python-telegram-bot, run inside our own event loop and web server.

Turns updates into neutral `Incoming` messages for the conversation, and neutral `OutgoingMessage`s into
Bot API calls through PTB's `Bot` (the `Messenger` port), mapping PTB's errors to ours: RetryAfter → retry
later after that long (this chat), NetworkError/TimedOut → retry later, Forbidden/BadRequest → permanent.
Pacing and retries belong to the one delivery path (services/delivery.py). Webhook mode takes updates from
our aiohttp route; polling mode (local development) uses PTB's updater.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from bot.telegram_request import AiohttpRequest
from handlers.commands import menu_commands
from handlers.context import ShareLinks
from handlers.i18n import Translator
from handlers.router import Conversation, Incoming
from services.errors import DeliveryError, PermanentDeliveryError, RetryLater
from services.messaging import OutgoingMessage, SentMessage

log = logging.getLogger(__name__)

# Sends in flight at once (the delivery path keeps to it): a few connections carry Telegram's 30 messages/s
# with room to spare.
SEND_CONNECTIONS = 16
ALLOWED_UPDATES = ["message", "callback_query"]


def _markup(message: OutgoingMessage) -> InlineKeyboardMarkup | None:
    """Buttons as an inline keyboard."""
    if not message.buttons:
        return None
    return InlineKeyboardMarkup([[InlineKeyboardButton(b.label, url=b.url) if b.url else
                                  InlineKeyboardButton(b.label, callback_data=b.data) for b in row]
                                 for row in message.buttons])


def map_error(exc: TelegramError) -> DeliveryError:
    """PTB's errors in the delivery path's words."""
    if isinstance(exc, RetryAfter):
        wait = exc.retry_after
        seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
        # Mostly one chat's limit (1/s): that chat backs off alone; the overall rate is kept by our pacing.
        return RetryLater(f"telegram 429: retry after {seconds:.0f}s", retry_after=seconds, chat_only=True)
    if isinstance(exc, (Forbidden, BadRequest, InvalidToken)):
        return PermanentDeliveryError(f"telegram refused: {exc}"[:300])
    if isinstance(exc, NetworkError):  # TimedOut is a NetworkError
        return RetryLater(f"telegram unreachable: {type(exc).__name__}")
    return RetryLater(f"telegram error: {exc}"[:300])


class TelegramChannel:
    channel = "telegram"

    def __init__(
        self,
        *,
        token: str,
        api_base_url: str,
        mode: str,
        webhook_secret: str,
        public_url: str,
        conversation: Conversation,
        share: ShareLinks | None = None,
        max_photo_bytes: int = 5_000_000,
    ) -> None:
        self._share = share
        self.mode = mode
        self.webhook_secret = webhook_secret
        self._public_url = public_url.rstrip("/")
        self._conversation = conversation
        self.ready = asyncio.Event()
        self.username: str | None = None  # the bot's @username, known once connected (for t.me links)
        self.max_photo_bytes = max_photo_bytes
        self._connected = False  # the Bot has been initialized (getMe answered): sending is possible
        builder = (
            Application.builder()
            .token(token)
            .base_url(api_base_url.rstrip("/"))
            .base_file_url(api_base_url.rstrip("/").removesuffix("/bot") + "/file/bot")
            # Updates are handled concurrently: one slow gateway call must not stall every chat. The bound is
            # high because a handler waiting for its chat's earlier messages is cheap; the conversation
            # itself bounds the work in progress, after each chat's own queue (handlers/router.py).
            .concurrent_updates(4096)
            .request(AiohttpRequest(connections=SEND_CONNECTIONS))
        )
        if mode == "webhook":
            builder = builder.updater(None)
        else:
            builder = builder.get_updates_request(AiohttpRequest(connections=1, read_timeout=30))
        self.app = builder.build()
        self.app.add_handler(MessageHandler(filters.ALL, self._on_message))
        self.app.add_handler(CallbackQueryHandler(self._on_callback))
        self.app.add_error_handler(self._on_error)

    async def start(self) -> None:
        """Connect (getMe), register commands, set the webhook or start polling; retried until it works."""
        delay = 1.0
        while True:
            try:
                await self.app.initialize()
                break
            except InvalidToken:
                log.error("telegram.token is rejected by the Bot API; Telegram stays disabled")
                return
            except (NetworkError, TelegramError) as exc:
                log.warning("Telegram Bot API unreachable (%s); retrying in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)
        self._connected = True
        self.username = self.app.bot.username
        if self._share is not None:  # t.me/<bot> links in the conversation
            self._share.telegram_username = self.username
        try:
            # The menu from the command registry: Indonesian by default, English for English-language clients.
            for language in ("id", "en"):
                menu = [BotCommand(name, text) for name, text in menu_commands(Translator(language, self.channel))]
                await self.app.bot.set_my_commands(menu, language_code=None if language == "id" else language)
        except TelegramError as exc:
            log.warning("set_my_commands failed: %s", exc)
        await self.app.start()
        if self.mode == "webhook":
            url = f"{self._public_url}/telegram/webhook"
            try:
                await self.app.bot.set_webhook(
                    url=url, secret_token=self.webhook_secret, allowed_updates=ALLOWED_UPDATES
                )
                log.info("Telegram webhook set to %s", url)
            except TelegramError as exc:
                log.error("set_webhook(%s) failed: %s (Telegram needs a public https URL)", url, exc)
        else:
            assert self.app.updater is not None
            await self.app.updater.start_polling(allowed_updates=ALLOWED_UPDATES, drop_pending_updates=False)
            log.info("Telegram long polling started")
        self.ready.set()

    async def stop(self) -> None:
        if not self.ready.is_set():
            return
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        await self.app.stop()
        await self.app.shutdown()

    async def feed(self, data: dict[str, Any]) -> bool:
        """A webhook update: queue it for PTB and return at once (the route answers 200 immediately).
        False when it is not an update PTB can read (acknowledged anyway, so Telegram does not resend it)."""
        try:
            update = Update.de_json(data, self.app.bot)
        except Exception as exc:  # a malformed body from the right sender: nothing to handle
            log.warning("Telegram update %s could not be read (%s: %s); acknowledged and dropped",
                        data.get("update_id"), type(exc).__name__, str(exc)[:200])
            return False
        await self.app.update_queue.put(update)
        return True

    async def send(self, chat_id: str, message: OutgoingMessage) -> SentMessage:
        """Messenger port: one message (or an edit of one we sent) through PTB's Bot."""
        if not self._connected:
            raise RetryLater("telegram not connected yet")
        bot, markup = self.app.bot, _markup(message)
        try:
            if message.edit_of is not None:
                try:
                    await bot.edit_message_text(message.text[:4096], chat_id=chat_id,
                                                message_id=int(message.edit_of), reply_markup=markup)
                except BadRequest as exc:
                    if "not modified" not in str(exc):  # the same text again is not a failure
                        raise
                return SentMessage(provider_message_id=message.edit_of)
            if message.photo is not None:
                sent = await bot.send_photo(chat_id, photo=InputFile(message.photo, filename="photo.jpg"),
                                            caption=message.text[:1024], reply_markup=markup)
            elif message.document is not None:
                sent = await bot.send_document(chat_id, document=InputFile(message.document,
                                                                           filename=message.document_name),
                                               caption=message.text[:1024], reply_markup=markup)
            else:
                sent = await bot.send_message(chat_id, message.text[:4096], reply_markup=markup)
        except TelegramError as exc:
            raise map_error(exc) from exc
        return SentMessage(provider_message_id=str(sent.message_id))

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Any message: handled by the shared conversation; replies go back to the same chat."""
        message = update.effective_message
        user = update.effective_user
        chat = update.effective_chat
        if message is None or user is None or chat is None or user.is_bot:
            return
        photo, too_large = None, False
        if message.photo:
            largest = message.photo[-1]
            if largest.file_size and largest.file_size > self.max_photo_bytes:
                too_large = True
            else:
                try:
                    photo = bytes(await (await largest.get_file()).download_as_bytearray())
                except TelegramError as exc:
                    log.warning("could not download a photo from %s: %s", chat.id, exc)
                too_large = photo is not None and len(photo) > self.max_photo_bytes
                photo = None if too_large else photo
        incoming = Incoming(
            channel=self.channel,
            chat_id=str(chat.id),
            user_id=str(user.id),
            display_name=user.full_name,
            text=message.text or message.caption or "",
            update_key=str(update.update_id),
            photo=photo,
            photo_too_large=too_large,
            reply_to=str(message.reply_to_message.message_id) if message.reply_to_message else None,
            username=user.username,
        )
        await self._conversation.respond(incoming)

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A tapped inline button (preset amount, language): acknowledged, then handled like a command."""
        query = update.callback_query
        if query is None or query.from_user is None:
            return
        try:
            await query.answer()
        except TelegramError as exc:
            log.debug("answerCallbackQuery failed: %s", exc)
        chat_id = str(query.message.chat.id) if query.message else str(query.from_user.id)
        incoming = Incoming(
            channel=self.channel,
            chat_id=chat_id,
            user_id=str(query.from_user.id),
            display_name=query.from_user.full_name,
            callback_data=query.data or "",
            update_key=str(update.update_id),
            username=query.from_user.username,
        )
        await self._conversation.respond(incoming)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("Telegram update failed", exc_info=context.error)
