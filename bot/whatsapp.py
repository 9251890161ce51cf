"""WhatsApp Cloud API via pywa_async, driven by our own aiohttp routes (pywa's `server=None` mode).

Turns inbound messages, button taps and list selections into neutral `Incoming` messages for the shared
conversation, and neutral `OutgoingMessage`s into Graph API calls (the `Messenger` port). Updates are
acknowledged at once and processed in tracked background tasks that are drained at shutdown.

Text messages (with reply buttons, a list or a link button) — nearly every reply — are posted by a thin client
on aiohttp in the exact JSON pywa writes (tests/support/whatsapp.py compares them); templates, images and
documents go through pywa. pywa's httpx session cost more CPU per reply than the reply itself (the same was
measured for Telegram, bot/telegram_request.py); Meta's errors are still pywa's error classes
(`WhatsAppError.from_dict`) and mapped by the one table below.
"""

from __future__ import annotations

import asyncio
import json
import logging
import weakref

import aiohttp
import httpx
from pywa.errors import (
    AuthorizationError,
    IntegrityError,
    MessageUndeliverable,
    RecipientNotInAllowedList,
    ReEngagementMessage,
    ThrottlingError,
    TooManyMessages,
    UnsupportedMessageType,
    WhatsAppError,
)
from pywa_async import WhatsApp
from pywa_async import handlers as wa_handlers
from pywa_async import types as wa_types

from handlers.router import Conversation, Incoming
from services.errors import OutsideWindow, PermanentDeliveryError, RetryLater
from services.messaging import OutgoingMessage, SentMessage
from services.signals import Signal

log = logging.getLogger(__name__)
GRAPH = "https://graph.facebook.com"
SKIP = object()  # an update that needs nothing done (a delivery receipt)


class _Rebase(httpx.AsyncBaseTransport):
    """pywa pins its session to graph.facebook.com; send the same paths to `whatsapp.api_base_url` instead."""

    def __init__(self, base_url: str) -> None:
        self._base = httpx.URL(base_url.rstrip("/"))
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(
            scheme=self._base.scheme, host=self._base.host, port=self._base.port,
            path=self._base.path.rstrip("/") + request.url.path,
        )
        request.headers["Host"] = self._base.netloc.decode()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def _buttons(message: OutgoingMessage):
    """≤ 3 choices become reply buttons, more become a list; a lone link becomes a call-to-action button."""
    flat = [b for row in message.buttons for b in row]
    choices = [b for b in flat if b.data]
    links = [b for b in flat if b.url]
    # A reply button's title is cut at 20 characters, a list row's at 24 (with a 72-character description):
    # a longer label goes into a list whose row carries the whole label as its description.
    if choices and len(choices) <= 3 and all(len(b.label) <= 20 for b in choices):
        return [wa_types.Button(title=b.label, callback_data=b.data) for b in choices]
    if choices:
        rows = [wa_types.SectionRow(title=b.label[:24], callback_data=b.data,
                                    description=b.label[:72] if len(b.label) > 24 else None)
                for b in choices[:10]]
        return wa_types.SectionList(button_title="Pilih", sections=[wa_types.Section(title="Pilihan", rows=rows)])
    if len(links) == 1:
        return wa_types.URLButton(title=links[0].label[:20], url=links[0].url)
    return None


def text_body(chat_id: str, message: OutgoingMessage) -> dict:
    """A text message as the Cloud API takes it (and as pywa writes it): plain, reply buttons, a list, or a
    call-to-action link."""
    text = message.text[:4096]
    base = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": chat_id}
    buttons = _buttons(message)
    if buttons is None:
        return {**base, "type": "text", "text": {"body": text, "preview_url": "://" in text}}
    if isinstance(buttons, wa_types.SectionList):
        action = {"button": buttons.button_title, "sections": [
            {"title": section.title, "rows": [
                {"id": row.callback_data, "title": row.title, **({"description": row.description}
                                                                if row.description else {})}
                for row in section.rows]} for section in buttons.sections]}
        kind = "list"
    elif isinstance(buttons, wa_types.URLButton):
        action = {"name": "cta_url", "parameters": {"display_text": buttons.title, "url": buttons.url}}
        kind = "cta_url"
    else:
        action = {"buttons": [{"type": "reply", "reply": {"id": b.callback_data, "title": b.title}}
                              for b in buttons]}
        kind = "button"
    return {**base, "type": "interactive", "interactive": {"type": kind, "action": action, "body": {"text": text}}}


def map_error(exc: WhatsAppError) -> Exception:
    """Meta error codes to our delivery errors (pywa has no retry and no rate limiting of its own)."""
    if isinstance(exc, ReEngagementMessage):  # 131047: outside the 24-hour window
        return OutsideWindow(str(exc.message))
    if isinstance(exc, TooManyMessages):  # 131056: pair rate limit: back off 4^n s for this recipient
        return RetryLater(f"whatsapp pair limit: {exc.message}", chat_only=True, backoff_base=4.0)
    if isinstance(exc, ThrottlingError):  # 130429 and friends: slow the whole number down
        return RetryLater(f"whatsapp throttled ({exc.code}): {exc.message}", retry_after=5.0)
    if isinstance(exc, (MessageUndeliverable, RecipientNotInAllowedList, UnsupportedMessageType,
                        AuthorizationError, IntegrityError)):
        return PermanentDeliveryError(f"whatsapp refused ({exc.code}): {exc.message}")
    return RetryLater(f"whatsapp error ({exc.code}): {exc.message}")


class WhatsAppChannel:
    channel = "whatsapp"

    def __init__(
        self,
        *,
        phone_id: str,
        token: str,
        app_secret: str,
        verify_token: str,
        api_base_url: str,
        conversation: Conversation,
        failed_later: Signal | None = None,
        concurrent_updates: int = 64,
        max_photo_bytes: int = 5_000_000,
    ) -> None:
        self.max_photo_bytes = max_photo_bytes
        transport = _Rebase(api_base_url) if api_base_url.rstrip("/") != GRAPH else httpx.AsyncHTTPTransport()
        self._http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(15.0, connect=5.0))
        self._conversation = conversation
        self._failed_later = failed_later
        self._tasks: set[asyncio.Task] = set()
        # At most this many updates are processed at once (like PTB's concurrent_updates). A sender's updates
        # first queue on that sender's own lock, so one person's flood holds one slot, not all of them.
        self._concurrency = asyncio.Semaphore(concurrent_updates)
        self._sender_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._phone_id = str(phone_id)
        self.client = WhatsApp(
            phone_id=phone_id, token=token, session=self._http, server=None, app_secret=app_secret,
            verify_token=verify_token, filter_updates=True, validate_updates=True,
            # Duplicates are recognised in our database (wamid), which survives restarts.
            skip_duplicate_updates=False,
        )
        # The thin text client: the same host, API version and token as pywa's session.
        version = self._http.base_url.path.rstrip("/") if self._http.base_url else ""
        root = api_base_url.rstrip("/") if api_base_url.rstrip("/") != GRAPH else GRAPH
        self._messages_url = f"{root}{version}/{phone_id}/messages"
        self._auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._session: aiohttp.ClientSession | None = None
        self.client.add_handlers(
            wa_handlers.MessageHandler(self._on_message),
            wa_handlers.CallbackButtonHandler(self._on_button),
            wa_handlers.CallbackSelectionHandler(self._on_button),
            wa_handlers.MessageStatusHandler(self._on_status),
        )

    # --- webhook side -------------------------------------------------------------------------------

    async def challenge(self, verify_token: str | None, challenge: str | None) -> tuple[str, int]:
        text, status = await self.client.webhook_challenge_handler(vt=verify_token, ch=challenge)
        return text or "", status

    async def validate(self, raw_body: bytes, signature: str | None) -> tuple[str, int] | None:
        try:
            return await self.client.webhook_update_validator(update=raw_body, hmac_header=signature)
        except (UnicodeError, ValueError, TypeError):  # a hostile header is just a bad signature
            return "invalid signature", 401

    def dispatch(self, raw_body: bytes) -> None:
        """Process a verified update in the background; the route has already answered 200."""
        task = asyncio.create_task(self._handle(raw_body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _sender_of(raw_body: bytes) -> str:
        """Who an update is from (or about), read cheaply before pywa parses it; "" when unclear."""
        try:
            value = json.loads(raw_body)["entry"][0]["changes"][0]["value"]
            if value.get("messages"):
                return str(value["messages"][0].get("from", ""))
            if value.get("statuses"):
                return str(value["statuses"][0].get("recipient_id", ""))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):
            pass
        return ""

    async def _handle(self, raw_body: bytes) -> None:
        sender = self._sender_of(raw_body)
        lock = self._sender_locks.get(sender)
        if lock is None:
            lock = self._sender_locks[sender] = asyncio.Lock()
        async with lock, self._concurrency:
            try:
                lean = self._lean(raw_body)
                if lean is SKIP:
                    return
                if lean is not None:
                    await self._conversation.respond(lean)
                    return
                await self.client.webhook_update_handler(raw_body)
            except Exception:
                log.exception("WhatsApp update failed")

    def _lean(self, raw_body: bytes) -> Incoming | object | None:
        """The common updates read straight from the (already verified) JSON: a text message, a reply-button or
        list tap, a delivery receipt that is not a failure (SKIP). None: anything else (media, a failed status,
        several messages, another number's) goes through pywa's parsing and handlers."""
        try:
            data = json.loads(raw_body)
            (entry,) = data["entry"]
            (change,) = entry["changes"]
            value = change["value"]
            if change.get("field") != "messages" or value["metadata"]["phone_number_id"] != self._phone_id:
                return None
            if "statuses" in value and "messages" not in value:
                statuses = value["statuses"]
                return SKIP if all(st.get("status") != "failed" for st in statuses) else None
            (message,) = value["messages"]
            (contact,) = value["contacts"]
            kind = message["type"]
            bsuid = contact.get("user_id")
            chat_id = contact.get("wa_id") or message.get("from") or bsuid
            name = (contact.get("profile") or {}).get("name")
            quoted = (message.get("context") or {}).get("id")
            if kind == "text":
                return Incoming(channel=self.channel, chat_id=chat_id, user_id=chat_id, display_name=name,
                                text=message["text"]["body"], update_key=message["id"], alt_id=bsuid,
                                reply_to=quoted)
            if kind == "interactive":
                reply = message["interactive"].get("button_reply") or message["interactive"].get("list_reply")
                if reply is None:
                    return None
                return Incoming(channel=self.channel, chat_id=chat_id, user_id=chat_id, display_name=name,
                                callback_data=str(reply["id"]), update_key=message["id"], alt_id=bsuid)
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            pass
        return None

    async def drain(self) -> None:
        """Let in-flight updates finish (shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=10)

    async def close(self) -> None:
        await self.drain()
        await self._http.aclose()  # pywa has no close(); the client is ours
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def _send_text(self, chat_id: str, message: OutgoingMessage) -> SentMessage:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64),
                timeout=aiohttp.ClientTimeout(total=15.0, connect=5.0))
        try:
            async with self._session.post(self._messages_url, data=json.dumps(text_body(chat_id, message)),
                                          headers=self._auth) as response:
                status, raw = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryLater(f"whatsapp unreachable: {type(exc).__name__}") from exc
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        if status == 200 and isinstance(answer, dict) and answer.get("messages"):
            return SentMessage(provider_message_id=str(answer["messages"][0].get("id")))
        error = answer.get("error") if isinstance(answer, dict) else None
        if isinstance(error, dict) and "code" in error and "message" in error:
            raise map_error(WhatsAppError.from_dict(error))
        raise RetryLater(f"whatsapp answered HTTP {status}")

    # --- updates ------------------------------------------------------------------------------------

    @staticmethod
    def _sender(update) -> tuple[str, str | None, str | None]:
        user = update.from_user
        return (user.wa_id or user.bsuid), user.bsuid, getattr(user, "name", None)

    async def _on_message(self, client: WhatsApp, message: wa_types.Message) -> None:
        """A text (or captioned media) message: handled by the shared conversation."""
        chat_id, bsuid, name = self._sender(message)
        text = message.text or getattr(message, "caption", None) or ""
        photo, too_large = None, False
        if message.image is not None:
            try:
                photo = await message.image.get_bytes()
            except (WhatsAppError, httpx.HTTPError) as exc:
                log.warning("could not download an image from %s: %s", chat_id, exc)
            too_large = photo is not None and len(photo) > self.max_photo_bytes
            photo = None if too_large else photo
        quoted = message.reply_to_message.id if message.reply_to_message else None
        incoming = Incoming(channel=self.channel, chat_id=chat_id, user_id=chat_id, display_name=name,
                            text=text, update_key=message.id, alt_id=bsuid, photo=photo, photo_too_large=too_large,
                            reply_to=quoted)
        await self._conversation.respond(incoming)

    async def _on_button(self, client: WhatsApp, callback) -> None:
        """A tapped reply button or list row: handled like a command."""
        chat_id, bsuid, name = self._sender(callback)
        data = callback.data if isinstance(callback.data, str) else str(callback.data)
        incoming = Incoming(channel=self.channel, chat_id=chat_id, user_id=chat_id, display_name=name,
                            callback_data=data, update_key=callback.id, alt_id=bsuid)
        await self._conversation.respond(incoming)

    async def _on_status(self, client: WhatsApp, status: wa_types.MessageStatus) -> None:
        """Meta reports a message it had accepted as failed: the outbox row is marked failed."""
        if str(getattr(status.status, "value", status.status)).lower() != "failed":
            return
        reason = f"{status.error.code}: {status.error.message}" if status.error else "failed"
        log.warning("WhatsApp message %s failed after sending: %s", status.id, reason)
        if self._failed_later is not None:
            # Listeners run as their own tasks: matching the report to its notice may wait for the send to be
            # recorded, and this person's next message must not wait for that.
            self._failed_later.fire(self.channel, status.id, reason)

    # --- sending ------------------------------------------------------------------------------------

    async def send(self, chat_id: str, message: OutgoingMessage) -> SentMessage:
        """Messenger port: text with buttons/list, photo, document or template."""
        try:
            if message.template is not None:
                params = [{"type": "body", "parameters": [{"type": "text", "text": p}
                                                          for p in message.template.body_params]}]
                sent = await self.client.send_template(
                    to=chat_id, name=message.template.name,
                    language=wa_types.templates.TemplateLanguage(message.template.language), params=params,
                )
            elif message.photo is not None:
                # An image with up to three reply buttons is one interactive message (a proof with its
                # "Bukti sah" / "Bukti tidak sah" buttons); a list cannot carry an image.
                buttons = _buttons(message)
                sent = await self.client.send_image(
                    to=chat_id, image=message.photo, caption=message.text[:1024],
                    mime_type="image/png" if message.photo.startswith(b"\x89PNG") else "image/jpeg",
                    buttons=buttons if not isinstance(buttons, wa_types.SectionList) else None)
            elif message.document is not None:
                sent = await self.client.send_document(to=chat_id, document=message.document,
                                                       filename=message.document_name, caption=message.text[:1024])
            else:
                # A link in plain text (a trip page, a profile) shows as a rich preview from the page's tags.
                return await self._send_text(chat_id, message)
        except WhatsAppError as exc:
            raise map_error(exc) from exc
        except httpx.HTTPError as exc:
            raise RetryLater(f"whatsapp unreachable: {type(exc).__name__}") from exc
        return SentMessage(provider_message_id=getattr(sent, "id", None))
