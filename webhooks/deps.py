"""What the web routes need, handed over by the composition root as plain services and callables."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from handlers import ShareLinks
from services.clients import Clients
from services.deposits import Deposits
from services.metrics import Metrics
from services.payments.sandbox import SandboxGateway
from services.payouts.sandbox import SandboxPayouts
from services.playground import VisitorCookie
from services.public import PublicPages
from services.ratelimit import RateLimiter
from services.settlement import Settlement
from services.stats import Stats
from services.topups import Topups
from services.withdrawals import Withdrawals


@dataclass
class TelegramHook:
    secret: str
    feed: Callable[[dict[str, Any]], Awaitable[bool]]
    ready: Callable[[], bool]


@dataclass
class WhatsAppHook:
    challenge: Callable[[str | None, str | None], Awaitable[tuple[str, int]]]
    validate: Callable[[bytes, str | None], Awaitable[tuple[str, int] | None]]
    dispatch: Callable[[bytes], None]


@dataclass
class PlaygroundHook:
    """The playground's page side: the channel adapter (bot/playground.py) and the visitor cookie."""

    attach: Callable[[str, Callable[[dict[str, Any]], Awaitable[None]]], None]
    detach: Callable[[str, Callable[[dict[str, Any]], Awaitable[None]]], None]
    receive: Callable[[str, dict[str, Any]], Awaitable[str | None]]
    replay: Callable[[str], Awaitable[list[dict[str, Any]]]]
    attachment: Callable[[int, str], Awaitable[tuple[bytes, dict[str, Any]] | None]]
    cookie: VisitorCookie
    max_photo_bytes: int = 5_000_000


@dataclass
class ApiHook:
    """The deposit API for other bots (webhooks/api.py): present only when api.enabled."""

    clients: Clients
    deposits: Deposits
    limiter: RateLimiter
    version: str = "0.1.0"
    signatures_required: bool = False  # what /health tells a Worker bot
    monotonic: Callable[[], float] = time.monotonic
    wall_clock: Callable[[], float] = time.time


@dataclass
class WebDeps:
    settlement: Settlement
    topups: Topups
    stats: Stats
    metrics: Metrics
    sandbox: SandboxGateway | None = None
    telegram: TelegramHook | None = None
    whatsapp: WhatsAppHook | None = None
    channels: dict[str, str] = field(default_factory=dict)  # channel -> "enabled" / why disabled
    gateways: list[str] = field(default_factory=list)  # in failover order
    max_body_bytes: int = 1_000_000
    public: PublicPages | None = None  # /t/<slug>, /j/<handle>, product photos
    playground: PlaygroundHook | None = None  # None: / answers 404 (production, or switched off)
    public_url: str = "http://127.0.0.1:8080"  # absolute links in preview tags
    withdrawals: Withdrawals | None = None  # POST /payouts/{provider}/notify
    sandbox_payouts: SandboxPayouts | None = None  # /pay/sandbox/payouts/{id} (development only)
    share: ShareLinks | None = None  # the bot's Telegram username and WhatsApp number, for the trip page's buttons
    api: ApiHook | None = None  # None: every API route answers 404 (api.enabled = false)



DEPS = web.AppKey("deps", WebDeps)
