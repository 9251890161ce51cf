"""The composition root: the only place that reads Settings and wires concrete adapters together.

`Runtime` is built without I/O; `lifecycle` (an aiohttp cleanup_ctx) migrates, starts the background
work (write batcher, outbox sender, reconciler, Telegram) and closes everything in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from aiohttp import web

from bot.playground import PlaygroundChannel
from bot.settings import ConfigError, Settings, check_startable, is_loopback, missing_keys, missing_payout_keys
from bot.telegram import SEND_CONNECTIONS, TelegramChannel
from bot.webhook_channel import WebhookChannel
from bot.whatsapp import WhatsAppChannel
from handlers.context import Services, ShareLinks
from handlers.i18n import render_notice
from handlers.progress import BroadcastProgress
from handlers.router import Conversation
from services import forwarding
from services.admin import Admins
from services.broadcasts import Broadcasts
from services.clients import Clients
from services.clock import Clock, SystemClock
from services.delivery import Delivery, Limits
from services.deposits import Deposits
from services.escrow import Escrow
from services.inbound import Inbounds
from services.jobs import Supervisor
from services.kinds import Channel
from services.messaging import OutgoingMessage
from services.metrics import Metrics
from services.orders import Orders
from services.outbox import OutboxSender, Retries, WindowPolicy
from services.payments import PaymentGateway
from services.payments.doku import DokuGateway
from services.payments.duitku import DuitkuGateway
from services.payments.midtrans import MidtransGateway
from services.payments.sandbox import SandboxGateway
from services.payments.xendit import XenditGateway
from services.payouts import PayoutProvider
from services.payouts.duitku import DuitkuPayouts
from services.payouts.midtrans import MidtransPayouts
from services.payouts.sandbox import SandboxPayouts
from services.payouts.xendit import XenditPayouts
from services.playground import PlaygroundHistory, VisitorCookie, is_playground_admin
from services.public import PublicPages
from services.ratelimit import RateLimiter
from services.reconcile import Reconciler
from services.sealing import Sealer
from services.sent_messages import SentMessages
from services.settlement import Settlement
from services.signals import Signals
from services.stats import Stats
from services.sweeps import JastipSweep
from services.topups import AmountRules, Topups
from services.trips import Trips
from services.wallet import Wallet
from services.withdrawals import Withdrawals
from storage.db import Database
from storage.migrate import upgrade
from webhooks.app import create_app
from webhooks.deps import ApiHook, PlaygroundHook, TelegramHook, WebDeps, WhatsAppHook

log = logging.getLogger(__name__)
PAYOUTS_EVERY_S = 1.0  # how often the payouts job looks for requested payouts (one indexed query)
ADMIN_SUMMARY_EVERY_S = 300.0  # how often the summary job looks whether today's summary is due
NONCES_EVERY_S = 300.0  # how often client bots' expired request nonces are forgotten
CHAT_CHANNELS = ("telegram", "whatsapp", "playground")  # what the notice sender claims (not "webhook")
STOP_STAGE_S = 15.0  # the longest one shutdown stage may take (every stage's own waits are shorter)


async def _within(stage: str, step: Awaitable[object]) -> None:
    """One shutdown stage, bounded: a stop that never ends would keep a deploy waiting until it is killed,
    without saying why. What was still running is logged so the cause can be found. (Everything that matters
    is committed before a stage runs: stopping late loses nothing.)"""
    try:
        async with asyncio.timeout(STOP_STAGE_S):
            await step
    except TimeoutError:
        running = sorted({task.get_name() + ": " + repr(task.get_coro())[:160] for task in asyncio.all_tasks()
                          if task is not asyncio.current_task()})
        log.error("shutdown: %s did not stop within %.0f s; going on. Still running: %s", stage, STOP_STAGE_S,
                  "; ".join(running))


def api_secret(settings: Settings) -> str | None:
    """api.secret_key; in development, when it is unset, a key generated once and kept beside the database's
    other local files (production refuses to start without the setting)."""
    if settings.api.secret_key is not None and settings.api.secret_key.get_secret_value().strip():
        return settings.api.secret_key.get_secret_value()
    if settings.server.production:
        return None
    path = Path(settings.jastip.media_dir).parent / "api-secret.key"
    try:
        key = path.read_text().strip()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    log.warning("api.secret_key is unset: development uses a generated one kept in %s", path)
    return key


def build_clients(settings: Settings, db: Database, clock: Clock) -> Clients:
    """Client bots' credentials and requests (the CLI's `clients` commands use this too)."""
    secret = api_secret(settings)
    return Clients(db, clock, Sealer(secret) if secret else None,
                   rotation_grace_hours=settings.api.rotation_grace_hours)


def render_message(channel: str, language: str, template: str, params: dict) -> OutgoingMessage:
    """What an outbox row becomes: a chat notice in its person's language, or a client bot's deposit event."""
    if channel == Channel.WEBHOOK.value:
        return forwarding.as_message(template, params)
    return render_notice(channel, language, template, params)


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
    public_url = settings.server.link_base
    usable: list[PaymentGateway] = []
    off: dict[str, str] = {}
    for name in pay.gateways:
        missing = missing_keys(pay, name)
        if missing:
            off[name] = "set " + " and ".join(missing)
            continue
        if name == "sandbox":
            secret = pay.sandbox.secret.get_secret_value() if pay.sandbox.secret else secrets.token_urlsafe(32)
            usable.append(SandboxGateway(secret=secret, public_url=public_url, http=http))
        elif name == "midtrans":
            usable.append(MidtransGateway(server_key=_secret(pay.midtrans.server_key),
                                          snap_base_url=pay.midtrans.snap_url(), api_base_url=pay.midtrans.api_url(),
                                          http=http, enabled_payments=pay.midtrans.enabled_payments))
        elif name == "duitku":
            d = pay.duitku
            usable.append(DuitkuGateway(merchant_code=d.merchant_code or "", api_key=_secret(d.api_key),
                                        base_url=d.base_url, http=http, payment_method=d.payment_method))
        elif name == "doku":
            k = pay.doku
            usable.append(DokuGateway(client_id=k.client_id or "", secret_key=_secret(k.secret_key),
                                      base_url=k.base_url, http=http))
        elif name == "xendit":
            x = pay.xendit
            usable.append(XenditGateway(secret_key=_secret(x.secret_key), callback_token=_secret(x.callback_token),
                                        base_url=x.base_url, http=http))
    return usable, off


def _build_payouts(settings: Settings, http: httpx.AsyncClient) -> tuple[PayoutProvider | None, str | None]:
    """The configured payout provider, or None and why withdrawals are off."""
    p = settings.payouts
    if p.provider == "none":
        return None, "set payouts.provider (BOT_PAYOUTS__PROVIDER) to enable withdrawals"
    missing = missing_payout_keys(p)
    if missing:
        return None, "set " + " and ".join(missing)
    if p.provider == "sandbox":
        secret = settings.payments.sandbox.secret
        return SandboxPayouts(secret=_secret(secret) or secrets.token_urlsafe(32), public_url=settings.server.link_base,
                              http=http), None
    if p.provider == "xendit":
        return XenditPayouts(secret_key=_secret(p.xendit.secret_key), callback_token=_secret(p.xendit.callback_token),
                             base_url=p.xendit.base_url, http=http), None
    if p.provider == "midtrans":
        m = p.midtrans
        return MidtransPayouts(creator_key=_secret(m.creator_key), approver_key=_secret(m.approver_key) or None,
                               merchant_key=_secret(m.merchant_key), base_url=m.base_url, http=http), None
    d = p.duitku
    return DuitkuPayouts(user_id=d.user_id or 0, email=d.email or "", secret_key=_secret(d.secret_key),
                         base_url=d.base_url, http=http), None


def channel_limits(settings: Settings) -> dict[str, Limits]:
    """Each messenger's pacing, from the settings: Telegram ~30/s overall and 1/s per chat (replies too);
    WhatsApp 80/s per number and ~1 per 6 s per recipient with a burst, replies exempt (the person just wrote)."""
    tg, wa = settings.telegram, settings.whatsapp
    return {
        "telegram": Limits(tg.rate_per_second, tg.per_chat_interval_s, 1),
        "whatsapp": Limits(wa.rate_per_second, wa.per_recipient_interval_s, wa.per_recipient_burst,
                           replies_exempt=True),
    }


def _secret(value) -> str:
    return value.get_secret_value() if value is not None else ""


@dataclass
class Runtime:
    """Everything built from one Settings: what serves (routes, channels) and what runs in the background
    (write batchers, outbox, periodic jobs). `services` is what the conversation uses."""

    settings: Settings
    db: Database
    clock: Clock
    http: httpx.AsyncClient
    signals: Signals
    services: Services
    gateways: list[PaymentGateway]
    settlement: Settlement
    reconciler: Reconciler
    delivery: Delivery
    outbox: OutboxSender
    conversation: Conversation
    progress: BroadcastProgress
    jobs: Supervisor
    stats: Stats
    metrics: Metrics
    telegram: TelegramChannel | None
    whatsapp: WhatsAppChannel | None
    playground: PlaygroundChannel | None
    public: PublicPages | None
    channels: dict[str, str]
    disabled_gateways: dict[str, str]
    payouts_off: str | None = None  # why withdrawals are off (None: on)
    api: ApiHook | None = None  # the deposit API for other bots (None: api.enabled = false)
    forwarder: OutboxSender | None = None  # client bots' deposit events
    webhook: WebhookChannel | None = None
    tasks: list[asyncio.Task] = field(default_factory=list)

    def web_deps(self) -> WebDeps:
        sandbox = next((g for g in self.gateways if isinstance(g, SandboxGateway)), None)
        withdrawals = self.services.withdrawals
        sandbox_payouts = withdrawals.provider if withdrawals and isinstance(withdrawals.provider,
                                                                             SandboxPayouts) else None
        hook = None
        if self.telegram is not None and self.telegram.mode == "webhook":
            hook = TelegramHook(self.telegram.webhook_secret, self.telegram.feed, self.telegram.ready.is_set)
        wa_hook = None
        if self.whatsapp is not None:
            wa_hook = WhatsAppHook(self.whatsapp.challenge, self.whatsapp.validate, self.whatsapp.dispatch)
        play = None
        if self.playground is not None:
            history = self.playground.history
            play = PlaygroundHook(attach=self.playground.attach, detach=self.playground.detach,
                                  receive=self.playground.receive, replay=self.playground.replay,
                                  attachment=history.attachment, cookie=VisitorCookie(self._playground_key()),
                                  max_photo_bytes=self.settings.jastip.max_photo_bytes)
        return WebDeps(
            whatsapp=wa_hook,
            public=self.public,
            playground=play,
            public_url=self.settings.server.link_base,
            share=self.services.share,
            settlement=self.settlement,
            topups=self.services.topups,
            stats=self.stats,
            metrics=self.metrics,
            sandbox=sandbox,
            withdrawals=withdrawals,
            sandbox_payouts=sandbox_payouts,
            telegram=hook,
            channels=self.channels,
            gateways=[g.name for g in self.gateways],
            max_body_bytes=self.settings.server.max_body_bytes,
            api=self.api,
        )

    def _playground_key(self) -> bytes:
        """The key that signs playground cookies, kept beside the media so a restart keeps the visitors."""
        path = Path(self.settings.jastip.media_dir).parent / "playground.key"
        try:
            key = path.read_bytes()
            if len(key) >= 32:
                return key
        except FileNotFoundError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
        return key

    async def lifecycle(self, app: web.Application | None = None) -> AsyncIterator[None]:
        """aiohttp cleanup_ctx: start everything, yield while serving, then close in reverse order."""
        await upgrade(self.db)
        self.settlement.batcher.start()
        self.services.inbound.batcher.start()
        if self.api is not None:
            self.api.deposits.batcher.start()
        self.tasks.append(asyncio.create_task(self.outbox.run(), name="outbox"))
        if self.forwarder is not None:
            self.tasks.append(asyncio.create_task(self.forwarder.run(), name="forwarder"))
        self.jobs.start()
        if self.telegram is not None:
            self.tasks.append(asyncio.create_task(self.telegram.start(), name="telegram-start"))
        self.log_readiness()
        try:
            yield
        finally:
            await self.jobs.stop()
            for task in reversed(self.tasks):
                task.cancel()
            await _within("background tasks", asyncio.gather(*self.tasks, return_exceptions=True))
            self.tasks.clear()
            await self.progress.drain()
            # Nothing new goes out from here; handlers waiting for a send are released first, so that the
            # channels can stop without waiting for replies that will never be sent.
            await _within("deliveries", self.delivery.close())
            await self.conversation.drain()
            for signal in (self.signals.delivery_failed, self.signals.broadcast_recorded):
                await signal.drain()
            if self.telegram is not None:
                await _within("Telegram", self.telegram.stop())
            if self.whatsapp is not None:
                await _within("WhatsApp", self.whatsapp.close())
            if self.playground is not None:
                await _within("playground", self.playground.drain())
            if self.webhook is not None:
                await _within("client webhooks", self.webhook.close())
            await _within("inbound writer", self.services.inbound.batcher.stop())
            if self.api is not None:
                await _within("deposit writer", self.api.deposits.batcher.stop())
            await _within("settlement writer", self.settlement.batcher.stop())
            await self.http.aclose()
            await self.db.close()

    def log_readiness(self) -> None:
        server = self.settings.server
        log.info("environment: %s; payment and share links use %s", server.environment, server.link_base)
        if server.environment == "development" and not is_loopback(urlsplit(server.link_base).hostname or ""):
            log.warning("DEVELOPMENT on a non-loopback URL (%s): the sandbox gateway lets anyone on this network "
                        "mark payments paid; never use this for real users", server.link_base)
        for channel, state in self.channels.items():
            if state == "enabled":
                log.info("channel %s: enabled", channel)
            else:
                log.warning("channel %s: disabled — %s", channel, state)
        log.info("payment gateways (failover order): %s", ", ".join(g.name for g in self.gateways))
        for name, why in self.disabled_gateways.items():
            log.warning("gateway %s: disabled — %s", name, why)
        provider = self.services.withdrawals.provider if self.services.withdrawals else None
        if provider is None:
            log.warning("withdrawals: disabled — %s", self.payouts_off)
        else:
            log.info("withdrawals: through %s", provider.name)
            section = getattr(self.settings.payouts, provider.name, None)
            if section is not None and not section.verified:
                log.warning("withdrawals: the %s adapter rests on assumptions its documentation leaves uncertain "
                            "(see its module docstring); after a real sandbox trial set payouts.%s.verified = true",
                            provider.name, provider.name)
        if self.api is None:
            log.info("deposit API for other bots: disabled — set api.enabled = true (BOT_API__ENABLED) to enable it")
        else:
            log.info("deposit API for other bots: enabled at %s/api/v1 (docs: %s/api/docs)", server.link_base,
                     server.link_base)
        log.info("periodic jobs: %s", ", ".join(self.jobs.jobs))


def build_runtime(settings: Settings, *, clock: Clock | None = None, http: httpx.AsyncClient | None = None) -> Runtime:
    """Wire everything from the settings, without I/O: signals first, then storage and services, then the
    channels that carry the conversation, then the senders and the jobs."""
    check_startable(settings)
    clock = clock or SystemClock()
    http = http or httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0))
    signals = Signals()
    db = Database(settings.database.url)
    gateways, disabled = _build_gateways(settings, http)
    if not gateways:
        raise ConfigError(f"payments.gateways has no usable gateway: {disabled}")
    admins = [("telegram", i) for i in settings.admin.telegram_ids] + [
        ("whatsapp", i) for i in settings.admin.whatsapp_ids
    ]
    settlement = Settlement(db, {g.name: g for g in gateways}, clock, admins=admins,
                            on_notice=signals.notices_queued.fire, ship_by_days=settings.escrow.ship_by_days,
                            settle_hours=settings.escrow.settle_hours,
                            reversible_methods=settings.escrow.reversible_methods)
    w, limits, j = settings.wallet, settings.limits, settings.jastip
    payout_provider, payouts_off = _build_payouts(settings, http)
    p, r = settings.payouts, settings.reconcile
    withdrawals = Withdrawals(
        db, clock, payout_provider, min_amount=p.min_amount, fee=p.fee, approval_above=p.approval_above,
        new_account_hold_hours=p.new_account_hold_hours, admins=admins, check_every_s=r.interval_s,
        unknown_after_hours=r.grace_hours, lease_s=r.lease_s, concurrency=r.concurrency,
        on_notice=signals.notices_queued.fire,
        page_url=payout_provider.page_url if isinstance(payout_provider, SandboxPayouts) else None)
    admin_service = Admins(db, clock, settlement, admins=admins,
                           correction_approval=settings.admin.correction_approval,
                           summary_hour=settings.admin.summary_hour, on_notice=signals.notices_queued.fire,
                           # The playground's Admin persona is an admin (the playground runs only in development).
                           also_admin=is_playground_admin if settings.server.playground else None)
    services = Services(
        inbound=Inbounds(db, clock),
        wallet=Wallet(db, clock),
        topups=Topups(db, gateways, settlement, clock, rules=AmountRules(w.min_topup, w.max_topup, tuple(w.presets)),
                      public_url=settings.server.link_base, expiry_minutes=settings.payments.expiry_minutes,
                      max_pending=limits.max_pending_payments, check_cooldown_s=limits.check_cooldown_s,
                      max_balance_unverified=w.max_balance_unverified),
        trips=Trips(db, clock, media_dir=j.media_dir, max_photo_bytes=j.max_photo_bytes),
        orders=Orders(db, clock, expiry_hours=j.order_expiry_hours, media_dir=j.media_dir,
                      max_photo_bytes=j.max_photo_bytes, proofs_per_day=limits.proofs_per_order,
                      auto_release_days=settings.escrow.auto_release_days),
        broadcasts=Broadcasts(db, clock, price_per_message=settings.broadcast.price_per_message),
        sent=SentMessages(db, clock),
        share=ShareLinks(whatsapp_number=settings.whatsapp.display_number, page_base=settings.server.link_base),
        support_contact=settings.support.contact,
        admin=admin_service,
        public=PublicPages(db, clock),
        escrow=Escrow(db, clock, fee_bps=settings.escrow.fee_bps, extend_days=settings.escrow.extend_days,
                      ship_by_days=settings.escrow.ship_by_days, ship_grace_days=settings.escrow.ship_grace_days,
                      final_payment_days=settings.escrow.final_payment_days, admins=admins,
                      media_dir=j.media_dir, max_photo_bytes=j.max_photo_bytes),
        withdrawals=withdrawals,
    )
    metrics = Metrics()
    delivery = Delivery(on_wait=metrics.observe_wait)
    conversation = Conversation(services, delivery)
    limits_by_channel = channel_limits(settings)
    channels: dict[str, str] = {}
    telegram = None
    tg = settings.telegram
    if tg.token is not None and tg.token.get_secret_value():
        # Without a configured secret (development only: production refuses to start), a fresh random one.
        secret = tg.webhook_secret.get_secret_value() if tg.webhook_secret else secrets.token_urlsafe(32)
        telegram = TelegramChannel(
            token=tg.token.get_secret_value(), api_base_url=tg.api_base_url, mode=tg.mode, webhook_secret=secret,
            public_url=settings.server.link_base, conversation=conversation, share=services.share,
            max_photo_bytes=settings.jastip.max_photo_bytes,
        )
        delivery.add_channel("telegram", telegram, limits_by_channel["telegram"], parallel=SEND_CONNECTIONS)
        channels["telegram"] = "enabled"
    else:
        channels["telegram"] = "set telegram.token (BOT_TELEGRAM__TOKEN) to enable it"
    whatsapp = None
    wa = settings.whatsapp
    windows: dict[str, WindowPolicy] = {}
    if _secret(wa.token) and wa.phone_id:
        if not _secret(wa.app_secret) or not _secret(wa.verify_token):
            raise ConfigError("whatsapp.token is set: whatsapp.app_secret and whatsapp.verify_token are required too")
        whatsapp = WhatsAppChannel(
            phone_id=wa.phone_id, token=_secret(wa.token), app_secret=_secret(wa.app_secret),
            verify_token=_secret(wa.verify_token), api_base_url=wa.api_base_url, conversation=conversation,
            failed_later=signals.delivery_failed, max_photo_bytes=settings.jastip.max_photo_bytes,
        )
        delivery.add_channel("whatsapp", whatsapp, limits_by_channel["whatsapp"])
        windows["whatsapp"] = WindowPolicy(hours=24, templates=dict(wa.templates), language=wa.template_language)
        channels["whatsapp"] = "enabled"
    else:
        channels["whatsapp"] = ("set whatsapp.phone_id, whatsapp.token, whatsapp.app_secret and "
                                "whatsapp.verify_token (BOT_WHATSAPP__*) to enable it")
    playground = None
    if settings.server.playground:
        playground = PlaygroundChannel(history=PlaygroundHistory(db, clock), conversation=conversation,
                                       max_photo_bytes=settings.jastip.max_photo_bytes)
        # Nothing to pace in a browser; the limit only keeps one runaway broadcast from flooding the loop.
        delivery.add_channel("playground", playground, Limits(rate_per_s=500.0))
        channels["playground"] = "enabled"
    else:
        channels["playground"] = "set server.playground = true (development only) to enable it"
    progress = BroadcastProgress(services.broadcasts, services.sent, delivery, signals.broadcast_recorded,
                                 every_s=settings.broadcast.progress_interval_s)
    o = settings.outbox
    outbox = OutboxSender(db, delivery, render_message, clock, signals, poll_interval_s=o.poll_interval_s,
                          max_attempts=o.max_attempts, batch_size=o.batch_size, lease_s=o.lease_s, windows=windows,
                          metrics=metrics, channels=CHAT_CHANNELS)
    api = forwarder = webhook = None
    if settings.api.enabled:
        a = settings.api
        clients = build_clients(settings, db, clock)
        deposits = Deposits(db, gateways, clock, public_url=settings.server.link_base, min_amount=w.min_topup,
                            max_amount=w.max_topup, expiry_minutes=settings.payments.expiry_minutes)
        api = ApiHook(clients, deposits, RateLimiter(a.rate_per_minute))
        # Client bots' servers are one more channel of the one delivery path: each client its own queue, a few
        # POSTs at once each (their order does not matter), retried for days by a sender of their own.
        webhook = WebhookChannel(clients.forward_target, timeout_s=a.forward_timeout_s)
        delivery.add_channel(webhook.channel, webhook, Limits(rate_per_s=5000.0,
                                                              in_flight_per_destination=a.forward_in_flight),
                             parallel=256)
        retries = Retries(max_attempts=None, max_age=timedelta(days=a.forward_days), cap_s=3600.0)
        forwarder = OutboxSender(db, delivery, render_message, clock, signals, poll_interval_s=o.poll_interval_s,
                                 # Each client: a deep queue (16 × what it has in flight) keeps its lane busy while
                                 # claims and records go on; the batch takes 16 such clients stuck at once before
                                 # one more waits for room.
                                 batch_size=max(o.batch_size, 256 * a.forward_in_flight),
                                 per_destination=16 * a.forward_in_flight,
                                 # (a POST in flight keeps its claim: leases of held rows are renewed)
                                 lease_s=o.lease_s, channels=(webhook.channel,),
                                 hears_failures=False, retries=retries, on_give_up=forwarding.give_up_alerts(admins),
                                 ordered=False, record_window_s=0.01, claim_interval_s=0.02)
    reconciler = Reconciler(db, settlement, clock, concurrency=r.concurrency, grace_hours=r.grace_hours,
                            lease_s=r.lease_s)
    jobs = Supervisor()
    sweep = JastipSweep(services.trips, services.orders, services.broadcasts, signals.notices_queued,
                        escrow=services.escrow, proof_retention_days=settings.jastip.proof_retention_days)
    jobs.add("jastip-sweep", settings.jastip.sweep_interval_s, sweep.run)
    if r.enabled:
        jobs.add("reconcile", r.interval_s, reconciler.run_logged)
    if withdrawals.enabled:
        # Sends requested payouts within a second; checks those in flight as their next_check_at comes
        # (reconcile.interval_s after the last word from the provider).
        jobs.add("payouts", PAYOUTS_EVERY_S, withdrawals.run)
    stats = Stats(db, clock)
    # Database figures for /metrics, read on a timer rather than on every scrape.
    jobs.add("metrics", settings.server.metrics_interval_s, partial(metrics.database.refresh, stats))
    jobs.add("ledger-check", settings.server.ledger_check_interval_s, partial(metrics.check_books, db),
             first_after_s=60.0)
    # Cheap when there is nothing to send: one indexed lookup of today's dedupe keys.
    jobs.add("admin-summary", ADMIN_SUMMARY_EVERY_S, admin_service.send_daily_summary, first_after_s=30.0)
    if api is not None:
        jobs.add("api-nonces", NONCES_EVERY_S, api.clients.forget_nonces, first_after_s=60.0)
    return Runtime(
        settings=settings, db=db, clock=clock, http=http, signals=signals, services=services, gateways=gateways,
        settlement=settlement, reconciler=reconciler, delivery=delivery, outbox=outbox, conversation=conversation,
        progress=progress, jobs=jobs, stats=stats, metrics=metrics, telegram=telegram, whatsapp=whatsapp,
        playground=playground, public=services.public, channels=channels, disabled_gateways=disabled,
        payouts_off=payouts_off, api=api, forwarder=forwarder, webhook=webhook,
    )


def build_web_app(runtime: Runtime) -> web.Application:
    app = create_app(runtime.web_deps())
    app.cleanup_ctx.append(runtime.lifecycle)
    return app
