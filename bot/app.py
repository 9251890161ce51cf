"""The composition root: the only place that reads Settings and wires concrete adapters together.

`Runtime` is built without I/O; `lifecycle` (an aiohttp cleanup_ctx) migrates, starts the background
work (write batcher, outbox sender, reconciler, Telegram) and closes everything in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from aiohttp import web

from bot.settings import ConfigError, Settings, check_startable
from bot.telegram import TelegramChannel
from bot.whatsapp import WhatsAppChannel
from handlers.context import Services, ShareLinks
from handlers.i18n import render_notice
from handlers.progress import BroadcastProgress
from handlers.router import Conversation
from services.clock import Clock, SystemClock
from services.messaging import Messenger
from services.broadcasts import Broadcasts
from services.orders import Orders
from services.outbox import OutboxSender, WindowPolicy
from services.pacing import Pacer
from services.payments import PaymentGateway
from services.payments.doku import DokuGateway
from services.payments.duitku import DuitkuGateway
from services.payments.midtrans import MidtransGateway
from services.payments.sandbox import SandboxGateway
from services.payments.xendit import XenditGateway
from services.reconcile import Reconciler
from services.sent_messages import SentMessages
from services.settlement import Settlement
from services.stats import Stats
from services.topups import AmountRules, Topups
from services.trips import Trips
from services.wallet import Wallet
from storage.db import Database
from storage.migrate import upgrade
from webhooks.app import create_app
from webhooks.deps import TelegramHook, WebDeps, WhatsAppHook

log = logging.getLogger(__name__)


def secret_values(settings: Settings) -> list[str]:
    """Every configured secret, for the log redaction filter."""
    values: list[str] = []

    def walk(model: object) -> None:
        for name in getattr(type(model), "model_fields", {}):
            value = getattr(model, name)
            if hasattr(value, "get_secret_value"):
                values.append(value.get_secret_value())
            elif hasattr(type(value), "model_fields"):
                walk(value)

    walk(settings)
    return [v for v in values if v]


def _build_gateways(settings: Settings, http: httpx.AsyncClient) -> tuple[list[PaymentGateway], dict[str, str]]:
    """The usable gateways in failover order, and why each unusable one is off."""
    pay = settings.payments
    usable: list[PaymentGateway] = []
    off: dict[str, str] = {}
    for name in pay.gateways:
        if name == "sandbox":
            secret = pay.sandbox.secret.get_secret_value() if pay.sandbox.secret else secrets.token_urlsafe(32)
            usable.append(SandboxGateway(secret=secret, public_url=settings.server.public_url, http=http))
        elif name == "midtrans":
            if not _secret(pay.midtrans.server_key):
                off[name] = "set payments.midtrans.server_key (BOT_PAYMENTS__MIDTRANS__SERVER_KEY)"
                continue
            usable.append(
                MidtransGateway(
                    server_key=_secret(pay.midtrans.server_key),
                    snap_base_url=pay.midtrans.snap_url(),
                    api_base_url=pay.midtrans.api_url(),
                    http=http,
                    enabled_payments=pay.midtrans.enabled_payments,
                )
            )
        elif name == "duitku":
            d = pay.duitku
            if not d.merchant_code or not _secret(d.api_key):
                off[name] = "set payments.duitku.merchant_code and payments.duitku.api_key"
                continue
            usable.append(DuitkuGateway(merchant_code=d.merchant_code, api_key=_secret(d.api_key),
                                        base_url=d.base_url, http=http, payment_method=d.payment_method))
        elif name == "doku":
            k = pay.doku
            if not k.client_id or not _secret(k.secret_key):
                off[name] = "set payments.doku.client_id and payments.doku.secret_key"
                continue
            usable.append(DokuGateway(client_id=k.client_id, secret_key=_secret(k.secret_key),
                                      base_url=k.base_url, http=http))
        elif name == "xendit":
            x = pay.xendit
            if not _secret(x.secret_key) or not _secret(x.callback_token):
                off[name] = "set payments.xendit.secret_key and payments.xendit.callback_token"
                continue
            usable.append(XenditGateway(secret_key=_secret(x.secret_key), callback_token=_secret(x.callback_token),
                                        base_url=x.base_url, http=http))
    return usable, off


def _secret(value) -> str:
    return value.get_secret_value() if value is not None else ""


@dataclass
class Runtime:
    settings: Settings
    db: Database
    clock: Clock
    http: httpx.AsyncClient
    gateways: list[PaymentGateway]
    settlement: Settlement
    wallet: Wallet
    topups: Topups
    reconciler: Reconciler
    outbox: OutboxSender
    conversation: Conversation
    trips: Trips
    orders: Orders
    broadcasts: Broadcasts
    progress: BroadcastProgress
    stats: Stats
    telegram: TelegramChannel | None
    whatsapp: WhatsAppChannel | None
    channels: dict[str, str]
    disabled_gateways: dict[str, str]
    tasks: list[asyncio.Task] = field(default_factory=list)

    def web_deps(self) -> WebDeps:
        sandbox = next((g for g in self.gateways if isinstance(g, SandboxGateway)), None)
        hook = None
        if self.telegram is not None and self.telegram.mode == "webhook":
            hook = TelegramHook(self.telegram.webhook_secret, self.telegram.feed, self.telegram.ready.is_set)
        wa_hook = None
        if self.whatsapp is not None:
            wa_hook = WhatsAppHook(self.whatsapp.challenge, self.whatsapp.validate, self.whatsapp.dispatch)
        return WebDeps(
            whatsapp=wa_hook,
            settlement=self.settlement,
            topups=self.topups,
            stats=self.stats,
            sandbox=sandbox,
            telegram=hook,
            channels=self.channels,
            gateways=[g.name for g in self.gateways],
            max_body_bytes=self.settings.server.max_body_bytes,
        )

    async def lifecycle(self, app: web.Application | None = None) -> AsyncIterator[None]:
        """aiohttp cleanup_ctx: start everything, yield while serving, then close in reverse order."""
        await upgrade(self.db)
        self.settlement.batcher.start()
        self.wallet.inbound.start()
        self.tasks.append(asyncio.create_task(self.outbox.run(), name="outbox"))
        if self.settings.reconcile.enabled:
            self.tasks.append(
                asyncio.create_task(self.reconciler.run_forever(self.settings.reconcile.interval_s), name="reconcile")
            )
        self.tasks.append(asyncio.create_task(self.sweep_forever(), name="jastip-sweep"))
        if self.telegram is not None:
            self.tasks.append(asyncio.create_task(self.telegram.start(), name="telegram-start"))
        self.log_readiness()
        try:
            yield
        finally:
            for task in reversed(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            self.tasks.clear()
            await self.progress.drain()
            if self.telegram is not None:
                await self.telegram.stop()
            if self.whatsapp is not None:
                await self.whatsapp.close()
            await self.wallet.inbound.stop()
            await self.settlement.batcher.stop()
            await self.http.aclose()
            await self.db.close()

    async def sweep(self) -> None:
        """Close trips past their deadline and expire unpaid orders; their notices go out at once."""
        closed = await self.trips.close_due()
        expired = await self.orders.expire_due()
        settled = await self.broadcasts.settle()
        if closed or expired or settled:
            log.info("jastip sweep: %d trips closed, %d orders expired", closed, expired)
            self.outbox.wake()

    async def sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("jastip sweep failed; retrying next interval")
            await asyncio.sleep(self.settings.jastip.sweep_interval_s)

    def log_readiness(self) -> None:
        for channel, state in self.channels.items():
            if state == "enabled":
                log.info("channel %s: enabled", channel)
            else:
                log.warning("channel %s: disabled — %s", channel, state)
        log.info("payment gateways (failover order): %s", ", ".join(g.name for g in self.gateways))
        for name, why in self.disabled_gateways.items():
            log.warning("gateway %s: disabled — %s", name, why)


def build_runtime(settings: Settings, *, clock: Clock | None = None, http: httpx.AsyncClient | None = None) -> Runtime:
    check_startable(settings)
    clock = clock or SystemClock()
    http = http or httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0))
    db = Database(settings.database.url)
    gateways, disabled = _build_gateways(settings, http)
    if not gateways:
        raise ConfigError(f"payments.gateways has no usable gateway: {disabled}")
    admins = [("telegram", i) for i in settings.admin.telegram_ids] + [
        ("whatsapp", i) for i in settings.admin.whatsapp_ids
    ]
    messengers: dict[str, Messenger] = {}
    pacers: dict[str, Pacer] = {}
    outbox_ref: list[OutboxSender] = []
    settlement = Settlement(
        db, {g.name: g for g in gateways}, clock, admins=admins,
        on_notice=lambda: outbox_ref[0].wake() if outbox_ref else None,
    )
    wallet = Wallet(db, clock)
    w = settings.wallet
    topups = Topups(
        db, gateways, settlement, clock,
        rules=AmountRules(w.min_topup, w.max_topup, tuple(w.presets)),
        public_url=settings.server.public_url,
        expiry_minutes=settings.payments.expiry_minutes,
    )
    j = settings.jastip
    trips = Trips(db, clock, media_dir=j.media_dir, max_photo_bytes=j.max_photo_bytes)
    orders = Orders(db, clock, expiry_hours=j.order_expiry_hours, media_dir=j.media_dir,
                    max_photo_bytes=j.max_photo_bytes)
    telegram_ref: list[TelegramChannel] = []
    share = ShareLinks(
        telegram_username=lambda: telegram_ref[0].username if telegram_ref else None,
        whatsapp_number=settings.whatsapp.display_number,
    )
    broadcasts = Broadcasts(db, clock, price_per_message=settings.broadcast.price_per_message)
    sent = SentMessages(db, clock)
    conversation = Conversation(Services(wallet=wallet, topups=topups, trips=trips, orders=orders,
                                         broadcasts=broadcasts, sent=sent, share=share))
    channels: dict[str, str] = {}
    telegram = None
    tg = settings.telegram
    if tg.token is not None and tg.token.get_secret_value():
        pacers["telegram"] = Pacer(tg.rate_per_second, tg.per_chat_interval_s)
        # Without a configured secret (development only: production refuses to start), a fresh random one.
        secret = tg.webhook_secret.get_secret_value() if tg.webhook_secret else secrets.token_urlsafe(32)
        telegram = TelegramChannel(
            token=tg.token.get_secret_value(), api_base_url=tg.api_base_url, mode=tg.mode, webhook_secret=secret,
            public_url=settings.server.public_url, conversation=conversation, pacer=pacers["telegram"],
            max_photo_bytes=settings.jastip.max_photo_bytes,
        )
        messengers["telegram"] = telegram
        telegram_ref.append(telegram)
        channels["telegram"] = "enabled"
    else:
        channels["telegram"] = "set telegram.token (BOT_TELEGRAM__TOKEN) to enable it"
    whatsapp = None
    wa = settings.whatsapp
    windows: dict[str, WindowPolicy] = {}
    if _secret(wa.token) and wa.phone_id:
        if not _secret(wa.app_secret) or not _secret(wa.verify_token):
            raise ConfigError("whatsapp.token is set: whatsapp.app_secret and whatsapp.verify_token are required too")
        pacers["whatsapp"] = Pacer(wa.rate_per_second, wa.per_recipient_interval_s,
                                   per_chat_burst=wa.per_recipient_burst)
        whatsapp = WhatsAppChannel(
            phone_id=wa.phone_id, token=_secret(wa.token), app_secret=_secret(wa.app_secret),
            verify_token=_secret(wa.verify_token), api_base_url=wa.api_base_url, conversation=conversation,
            pacer=pacers["whatsapp"],
            on_status_failed=lambda channel, wamid, reason: outbox_ref[0].delivery_failed(channel, wamid, reason),
            max_photo_bytes=settings.jastip.max_photo_bytes,
        )
        messengers["whatsapp"] = whatsapp
        windows["whatsapp"] = WindowPolicy(hours=24, templates=dict(wa.templates), language=wa.template_language)
        channels["whatsapp"] = "enabled"
    else:
        channels["whatsapp"] = ("set whatsapp.phone_id, whatsapp.token, whatsapp.app_secret and "
                                "whatsapp.verify_token (BOT_WHATSAPP__*) to enable it")
    progress = BroadcastProgress(broadcasts, sent, messengers, pacers,
                                 every_s=settings.broadcast.progress_interval_s)
    outbox = OutboxSender(
        db, messengers, pacers, render_notice, clock,
        poll_interval_s=settings.outbox.poll_interval_s, max_attempts=settings.outbox.max_attempts,
        batch_size=settings.outbox.batch_size, lease_s=settings.outbox.lease_s,
        windows=windows, after_round=progress.after_round,
    )
    outbox_ref.append(outbox)
    r = settings.reconcile
    reconciler = Reconciler(db, settlement, clock, concurrency=r.concurrency, grace_hours=r.grace_hours,
                            lease_s=r.lease_s)
    return Runtime(
        settings=settings, db=db, clock=clock, http=http, gateways=gateways,
        settlement=settlement, wallet=wallet, topups=topups, reconciler=reconciler, outbox=outbox,
        conversation=conversation, trips=trips, orders=orders, broadcasts=broadcasts,
        progress=progress, stats=Stats(db), telegram=telegram, whatsapp=whatsapp, channels=channels,
        disabled_gateways=disabled,
    )


def build_web_app(runtime: Runtime) -> web.Application:
    app = create_app(runtime.web_deps())
    app.cleanup_ctx.append(runtime.lifecycle)
    return app
