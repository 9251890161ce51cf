"""Neutral outgoing messages and the `Messenger` port each channel adapter implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from services.kinds import DepositFormat


@dataclass(frozen=True)
class Button:
    label: str
    data: str | None = None  # a callback the bot receives back (Telegram callback_data, WhatsApp reply id)
    url: str | None = None  # or a link to open


@dataclass(frozen=True)
class TemplateRef:
    """An approved message template, for recipients outside the messenger's customer-service window."""

    name: str
    language: str
    body_params: tuple[str, ...] = ()


@dataclass(frozen=True)
class WebhookEvent:
    """A machine-readable event for another bot's server (the webhook channel): sent as `body` under `id`."""

    id: str
    type: str
    body: str  # compact JSON, fixed when the event was queued: every retry sends the same bytes
    format: DepositFormat


@dataclass(frozen=True)
class OutgoingMessage:
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    photo: bytes | None = None  # sent as a photo with `text` as its caption
    document: bytes | None = None
    document_name: str = "file.bin"
    template: TemplateRef | None = None  # send this template instead of free text
    edit_of: str | None = None  # replace the text of this earlier message (channels that can edit: Telegram)
    ref: str | None = None  # what this message is about ("order:P12"), remembered with its message id
    # A notice's values as shown to people (money as Rp50.000, statuses translated), in the notice's order:
    # the body parameters when it has to go as an approved template (WhatsApp outside 24 hours).
    values: tuple[str, ...] = ()
    event: WebhookEvent | None = None  # the webhook channel's payload (text is unused there)


@dataclass(frozen=True)
class SentMessage:
    provider_message_id: str | None = None
    status: int | None = None  # the HTTP status the destination answered, where it answers with one


class Messenger(Protocol):
    channel: str

    async def send(self, chat_id: str, message: OutgoingMessage) -> SentMessage:
        """Deliver one message; raise RetryLater (429/5xx/network) or PermanentDeliveryError."""
