"""What every feature handler gets: the services it may call, in plain values."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from services.broadcasts import Broadcasts
from services.orders import Orders
from services.sent_messages import SentMessages
from services.topups import Topups
from services.trips import Trips
from services.wallet import Wallet


@dataclass(frozen=True)
class ShareLinks:
    """Where participants join from: the Telegram bot's username (known once connected) and the WhatsApp number."""

    telegram_username: Callable[[], str | None] = lambda: None
    whatsapp_number: str | None = None


@dataclass(frozen=True)
class Services:
    wallet: Wallet
    topups: Topups
    trips: Trips
    orders: Orders
    broadcasts: Broadcasts
    sent: SentMessages
    share: ShareLinks = field(default_factory=ShareLinks)
    support_contact: str | None = None  # shown to people who ask for "admin" / "cs"
