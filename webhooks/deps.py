"""What the web routes need, handed over by the composition root as plain services and callables."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from services.metrics import Metrics
from services.payments.sandbox import SandboxGateway
from services.settlement import Settlement
from services.stats import Stats
from services.topups import Topups


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



DEPS = web.AppKey("deps", WebDeps)
