"""What every feature handler gets: the services it may call, in plain values."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.admin import Admins
from services.broadcasts import Broadcasts
from services.escrow import Escrow
from services.inbound import Inbounds
from services.orders import Orders
from services.public import PublicPages
from services.sent_messages import SentMessages
from services.topups import Topups
from services.trips import Trips
from services.wallet import Wallet
from services.withdrawals import Withdrawals


@dataclass
class ShareLinks:
    """Where participants join from: the WhatsApp number, and the Telegram bot's @username, which the Telegram
    channel fills in once it has connected (getMe)."""

    whatsapp_number: str | None = None
    telegram_username: str | None = None
    page_base: str | None = None  # public_url: trip pages are <page_base>/t/<slug>, profiles /j/<handle>


@dataclass(frozen=True)
class Services:
    inbound: Inbounds
    wallet: Wallet
    topups: Topups
    trips: Trips
    orders: Orders
    broadcasts: Broadcasts
    sent: SentMessages
    share: ShareLinks = field(default_factory=ShareLinks)
    support_contact: str | None = None  # shown to people who ask for "admin" / "cs"
    admin: Admins | None = None  # ADMIN ... for the configured admins
    public: PublicPages | None = None  # PROFIL: the handle of a jastiper's public page
    escrow: Escrow | None = None  # order money on otomatis trips
    withdrawals: Withdrawals | None = None  # REKENING, TARIK; off when payouts.provider = "none"
