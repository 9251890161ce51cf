"""The one Settings object: `config.toml` (or --config / BOT_CONFIG), overridden by BOT_* environment variables.

Only the composition root (`bot/app.py`, `bot/__main__.py`) reads it; everything else gets plain values.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

DEFAULT_CONFIG = Path("config.toml")
KNOWN_GATEWAYS = ("sandbox", "midtrans", "duitku", "doku", "xendit")


class ConfigError(Exception):
    """The configuration cannot run: the message names the setting to fix."""


def normal_url(value: str) -> str:
    """' HTTPS://Bot.Example.ID/ ' -> 'https://bot.example.id': scheme and host lower-case, no spaces, no
    trailing slash; anything that is not an http(s) URL with a host is refused here, once."""
    text = value.strip()
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"server.public_url must be an http:// or https:// URL with a host, not {value!r}")
    host = parts.hostname.lower()
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return f"{scheme}://{netloc}{parts.path.rstrip('/')}"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: only this machine can reach such a URL."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServerSettings(BaseModel):
    host: str = "0.0.0.0"
    port: int = 8080
    # Builds callback / return / sandbox links; unset: derived from host and port (0.0.0.0 -> 127.0.0.1).
    public_url: str | None = None
    # The one rule: development = a loopback public_url, or an explicit "development" with a plain-http
    # URL (LAN testing, never https). Everything else is production. Only development runs the sandbox
    # gateway, sandbox payouts and the playground.
    environment: Literal["development", "production"] | None = None
    playground: bool | None = None  # default: on in development
    max_body_bytes: int = 1_000_000
    metrics_interval_s: float = Field(15.0, gt=0)  # how often /metrics' database figures are read
    ledger_check_interval_s: float = Field(600.0, gt=0)  # how often the ledger's invariants are checked

    @field_validator("public_url")
    @classmethod
    def _normal(cls, value: str | None) -> str | None:
        return normal_url(value) if value is not None and value.strip() else None

    @model_validator(mode="after")
    def _derive(self) -> "ServerSettings":
        if self.public_url is None:
            host = self.host.strip() or "127.0.0.1"
            if host in ("0.0.0.0", "::", "[::]"):
                host = "127.0.0.1"
            self.public_url = normal_url(f"http://{f'[{host}]' if ':' in host else host}:{self.port}")
        host = urlsplit(self.public_url).hostname or ""
        https = self.public_url.startswith("https://")
        if self.environment == "development" and https and not is_loopback(host):
            raise ValueError("server.environment = \"development\" needs an http public_url; an https URL is "
                             "production (remove the setting or use an http://127.0.0.1 URL)")
        if self.environment is None:
            self.environment = "development" if is_loopback(host) else "production"
        if self.playground is None:
            self.playground = self.environment == "development"
        return self

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def link_base(self) -> str:
        """Where payment, callback and share links point."""
        assert self.public_url is not None
        return self.public_url


class DatabaseSettings(BaseModel):
    url: str = "sqlite+aiosqlite:///data/titip.db"


class TelegramSettings(BaseModel):
    token: SecretStr | None = None
    mode: Literal["webhook", "polling"] = "webhook"
    webhook_secret: SecretStr | None = None
    api_base_url: str = "https://api.telegram.org/bot"
    # Telegram's limits: about 30 messages/s overall and 1 message/s to one chat. Pacing exactly at 30/s
    # meets a strict sliding window with no margin (measured: 10 × 429 in 300 sends, 81 % of the allowed rate).
    rate_per_second: float = 29.0
    per_chat_interval_s: float = 1.0


class WhatsAppSettings(BaseModel):
    phone_id: str | None = None
    token: SecretStr | None = None
    app_secret: SecretStr | None = None
    verify_token: SecretStr | None = None
    api_base_url: str = "https://graph.facebook.com"
    # Outside the 24-hour window a notice goes as the approved template named here, e.g.
    # payment_credited = "saldo_masuk"; a notice without one is recorded as undeliverable.
    display_number: str | None = None  # the business number, for wa.me join links (e.g. 6281100000000)
    templates: dict[str, str] = Field(default_factory=dict)
    template_language: str = "id"
    # 80 messages/s per business number by default; about one message per 6 s to the same user.
    rate_per_second: float = 80.0
    per_recipient_interval_s: float = 6.0
    per_recipient_burst: int = 3


class WalletSettings(BaseModel):
    min_topup: int = 10_000
    max_topup: int = 10_000_000
    presets: list[int] = Field(default_factory=lambda: [50_000, 100_000, 250_000, 500_000, 1_000_000])
    # An unverified person's wallet may not grow beyond this (checked when a top-up is requested).
    max_balance_unverified: int = Field(2_000_000, gt=0)

    @model_validator(mode="after")
    def _sane(self) -> "WalletSettings":
        if not 0 < self.min_topup <= self.max_topup:
            raise ValueError("wallet.min_topup must be positive and not above wallet.max_topup")
        return self


class SandboxSettings(BaseModel):
    # Signs the sandbox's callbacks to ourselves; a random one per process when unset (development only).
    secret: SecretStr | None = None


class MidtransSettings(BaseModel):
    server_key: SecretStr | None = None
    client_key: str | None = None
    merchant_id: str | None = None
    production: bool = False
    snap_base_url: str | None = None
    api_base_url: str | None = None
    enabled_payments: list[str] = Field(
        default_factory=lambda: ["gopay", "shopeepay", "bank_transfer", "credit_card", "other_qris"]
    )

    def snap_url(self) -> str:
        if self.snap_base_url:
            return self.snap_base_url.rstrip("/")
        return "https://app.midtrans.com" if self.production else "https://app.sandbox.midtrans.com"

    def api_url(self) -> str:
        if self.api_base_url:
            return self.api_base_url.rstrip("/")
        return "https://api.midtrans.com" if self.production else "https://api.sandbox.midtrans.com"


class DuitkuSettings(BaseModel):
    merchant_code: str | None = None
    api_key: SecretStr | None = None
    base_url: str = "https://sandbox.duitku.com"
    payment_method: str = "SP"  # SP = QRIS (ShopeePay); VC = card, BC = BCA VA, ...


class DokuSettings(BaseModel):
    client_id: str | None = None
    secret_key: SecretStr | None = None
    base_url: str = "https://api-sandbox.doku.com"


class XenditSettings(BaseModel):
    secret_key: SecretStr | None = None
    callback_token: SecretStr | None = None
    base_url: str = "https://api.xendit.co"


class PaymentsSettings(BaseModel):
    gateways: list[str] = Field(default_factory=lambda: ["sandbox"])
    # How long a payment link stays payable.
    expiry_minutes: int = 60
    sandbox: SandboxSettings = Field(default_factory=SandboxSettings)
    midtrans: MidtransSettings = Field(default_factory=MidtransSettings)
    duitku: DuitkuSettings = Field(default_factory=DuitkuSettings)
    doku: DokuSettings = Field(default_factory=DokuSettings)
    xendit: XenditSettings = Field(default_factory=XenditSettings)

    @field_validator("gateways")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [g for g in value if g not in KNOWN_GATEWAYS]
        if unknown:
            raise ValueError(f"payments.gateways: unknown gateway(s) {unknown}; known: {list(KNOWN_GATEWAYS)}")
        if not value:
            raise ValueError("payments.gateways must name at least one gateway")
        return value


class BroadcastSettings(BaseModel):
    price_per_message: int = Field(500, ge=0)
    # How often the jastiper's progress message is edited while a broadcast runs (Telegram).
    progress_interval_s: float = Field(2.0, ge=0)


class JastipSettings(BaseModel):
    order_expiry_hours: float = 24.0
    # How often deadlines and unpaid orders are checked.
    sweep_interval_s: float = 30.0
    media_dir: str = "data/media"  # payment proofs, shared by both channels
    max_photo_bytes: int = 5_000_000
    proof_retention_days: float = Field(180.0, gt=0)  # payment proofs are deleted this long after their order moved


class EscrowSettings(BaseModel):
    """Order money on otomatis trips (services/escrow.py)."""

    fee_bps: int = Field(0, ge=0, le=10_000)  # the platform's fee on a released escrow, in basis points
    auto_release_days: float = Field(7.0, gt=0)  # after KIRIM, the escrow goes to the jastiper by itself
    extend_days: float = Field(7.0, gt=0)  # BELUMSAMPAI moves the auto-release this much later, once
    ship_by_days: float = Field(30.0, gt=0)  # a paid order must be shipped by the trip's deadline + this
    ship_grace_days: float = Field(7.0, ge=0)  # after the overdue notice, this long before it is refunded
    final_payment_days: float = Field(3.0, gt=0)  # after TIBA, the rest of a DP order is due within this
    # An order paid with a method that can still be reversed (a chargeback) is released no earlier than this
    # long after the payment. Methods as the gateways name them, compared in lower case.
    settle_hours: float = Field(24.0, ge=0)
    reversible_methods: list[str] = Field(default_factory=lambda: ["credit_card", "card", "vc"])


class XenditPayoutSettings(BaseModel):
    secret_key: SecretStr | None = None
    callback_token: SecretStr | None = None
    base_url: str = "https://api.xendit.co"
    verified: bool = False  # set after a real sandbox trial; until then a warning at every start


class MidtransPayoutSettings(BaseModel):
    creator_key: SecretStr | None = None
    approver_key: SecretStr | None = None  # unset: payouts wait at Midtrans until approved on its dashboard
    merchant_key: SecretStr | None = None  # signs Midtrans' payout notifications (Iris-Signature)
    base_url: str = "https://app.sandbox.midtrans.com/iris/api/v1"
    verified: bool = False


class DuitkuPayoutSettings(BaseModel):
    user_id: int | None = None
    email: str | None = None
    secret_key: SecretStr | None = None
    base_url: str = "https://sandbox.duitku.com"
    verified: bool = False


class PayoutsSettings(BaseModel):
    """Withdrawals of earned money (services/withdrawals.py). "none" switches them off."""

    provider: Literal["none", "sandbox", "xendit", "midtrans", "duitku"] = "none"
    min_amount: int = Field(50_000, gt=0)
    fee: int = Field(0, ge=0)  # ours, on top of the amount withdrawn
    approval_above: int = Field(5_000_000, gt=0)  # per user per WIB day: more waits for an admin
    new_account_hold_hours: float = Field(24.0, ge=0)  # a new or changed account is not paid out to before this
    xendit: XenditPayoutSettings = Field(default_factory=XenditPayoutSettings)
    midtrans: MidtransPayoutSettings = Field(default_factory=MidtransPayoutSettings)
    duitku: DuitkuPayoutSettings = Field(default_factory=DuitkuPayoutSettings)


class ApiSettings(BaseModel):
    """Titip as the payment backend of other bots (services/deposits.py; clients: `python -m bot clients`)."""

    enabled: bool = False  # false: every /api/v1, /api/docs, /deposit/* and /health route answers 404
    # Seals client bots' signing and webhook secrets (and Worker clients' keys) at rest. Required in production;
    # in development, when unset, one is generated once and kept in data/api-secret.key.
    secret_key: SecretStr | None = None
    rate_per_minute: int = Field(120, ge=1)  # requests per client per process
    rotation_grace_hours: float = Field(24.0, ge=0)  # `clients rotate`: the old credentials stay valid this long
    forward_timeout_s: float = Field(15.0, gt=0)  # one POST to a client's callback URL
    forward_days: float = Field(3.0, gt=0)  # a forward is retried (backoff up to an hour) this long, then admins
    forward_in_flight: int = Field(16, ge=1)  # POSTs at once to one client's server


class ReconcileSettings(BaseModel):
    enabled: bool = True
    interval_s: float = 300.0
    concurrency: int = 8
    grace_hours: float = 24.0
    # A payment being checked is leased to one process; a dead process's lease lapses after this long.
    lease_s: float = Field(120.0, gt=0)


class OutboxSettings(BaseModel):
    poll_interval_s: float = 1.0
    max_attempts: int = 12
    batch_size: int = Field(200, ge=1)  # notices claimed (leased) per round
    # Claimed notices belong to one process for this long; if it dies, another sends them after it lapses.
    lease_s: float = Field(60.0, gt=0)


class LimitsSettings(BaseModel):
    max_pending_payments: int = Field(3, ge=1)  # unfinished top-ups per user
    check_cooldown_s: float = Field(30.0, ge=0)  # /cek asks a gateway about one payment at most this often
    proofs_per_order: int = Field(3, ge=1)  # payment proofs per order per WIB day


class SupportSettings(BaseModel):
    contact: str | None = None  # shown to people who ask for "admin" / "cs", e.g. "WhatsApp 0811-0000-0000"


class AdminSettings(BaseModel):
    telegram_ids: list[str] = Field(default_factory=list)
    whatsapp_ids: list[str] = Field(default_factory=list)
    summary_hour: int = Field(8, ge=0, le=23)  # WIB: the daily summary goes out from this hour on
    correction_approval: int = Field(1_000_000, gt=0)  # a larger wallet credit needs a second admin

    @field_validator("telegram_ids", "whatsapp_ids", mode="before")
    @classmethod
    def _as_strings(cls, value: object) -> object:
        if isinstance(value, list):
            return [str(v) for v in value]
        return value


class LogSettings(BaseModel):
    level: str = "INFO"
    json_format: bool = Field(default=False, alias="json")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BOT_", env_nested_delimiter="__", extra="ignore", toml_file=DEFAULT_CONFIG
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    whatsapp: WhatsAppSettings = Field(default_factory=WhatsAppSettings)
    wallet: WalletSettings = Field(default_factory=WalletSettings)
    payments: PaymentsSettings = Field(default_factory=PaymentsSettings)
    broadcast: BroadcastSettings = Field(default_factory=BroadcastSettings)
    jastip: JastipSettings = Field(default_factory=JastipSettings)
    escrow: EscrowSettings = Field(default_factory=EscrowSettings)
    payouts: PayoutsSettings = Field(default_factory=PayoutsSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    support: SupportSettings = Field(default_factory=SupportSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then BOT_* environment, then the TOML file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(config_path: str | Path | None = None, **overrides: object) -> Settings:
    """Settings from `config_path`, else env BOT_CONFIG, else ./config.toml (a missing default file is fine)."""
    explicit = config_path or os.environ.get("BOT_CONFIG")
    path = Path(explicit) if explicit else DEFAULT_CONFIG
    if explicit and not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    bound = type("Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": path}})
    try:
        return bound(**overrides)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ConfigError(str(exc)) from exc


def _missing(value: SecretStr | str | None) -> bool:
    if value is None:
        return True
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    return not raw.strip()


# Each gateway's settings that must be set for it to verify callbacks (the one table: app.py uses it too).
GATEWAY_KEYS: dict[str, tuple[str, ...]] = {
    "sandbox": (),
    "midtrans": ("server_key",),
    "duitku": ("merchant_code", "api_key"),
    "doku": ("client_id", "secret_key"),
    "xendit": ("secret_key", "callback_token"),
}


def missing_keys(payments: PaymentsSettings, gateway: str) -> list[str]:
    """The `payments.<gateway>.<key>` settings still unset for `gateway`."""
    section = getattr(payments, gateway, None)
    return [f"payments.{gateway}.{key}" for key in GATEWAY_KEYS[gateway] if _missing(getattr(section, key, None))]


# Hosts that move real money (protocols.md); sandbox hosts and local fakes are not live.
LIVE_HOSTS = {"doku": {"api.doku.com"}, "duitku": {"passport.duitku.com"}}


def _host(url: str) -> str:
    return (urlsplit(url.strip()).hostname or "").lower()


# Each payout provider's settings that must be set for it to send and to verify callbacks.
PAYOUT_KEYS: dict[str, tuple[str, ...]] = {
    "none": (), "sandbox": (),
    "xendit": ("secret_key", "callback_token"),
    "midtrans": ("creator_key", "merchant_key"),
    "duitku": ("user_id", "email", "secret_key"),
}


def missing_payout_keys(payouts: PayoutsSettings) -> list[str]:
    """The `payouts.<provider>.<key>` settings still unset for the configured provider."""
    section = getattr(payouts, payouts.provider, None)
    missing = []
    for key in PAYOUT_KEYS[payouts.provider]:
        value = getattr(section, key, None)
        if value is None or (not isinstance(value, int) and _missing(value)):
            missing.append(f"payouts.{payouts.provider}.{key}")
    return missing


def live_credentials(payments: PaymentsSettings) -> list[str]:
    """Configured credentials that move real money (whether or not their gateway is listed)."""
    live = []
    if payments.midtrans.production and not _missing(payments.midtrans.server_key):
        live.append("payments.midtrans (production = true)")
    key = payments.xendit.secret_key.get_secret_value() if payments.xendit.secret_key else ""
    if key.startswith("xnd_production_"):
        live.append("payments.xendit.secret_key (a xnd_production_ key)")
    if not _missing(payments.doku.secret_key) and _host(payments.doku.base_url) in LIVE_HOSTS["doku"]:
        live.append(f"payments.doku (base_url {payments.doku.base_url})")
    if not _missing(payments.duitku.api_key) and _host(payments.duitku.base_url) in LIVE_HOSTS["duitku"]:
        live.append(f"payments.duitku (base_url {payments.duitku.base_url})")
    return live


# Payout hosts that move real money (protocols-more.md): the providers' sandboxes and local fakes are not live.
LIVE_PAYOUT_HOSTS = {"midtrans": {"app.midtrans.com"}, "duitku": {"passport.duitku.com"}}


def live_payouts(payouts: PayoutsSettings) -> list[str]:
    """The configured payout provider, when its credentials move real money (as live_credentials for gateways:
    a xnd_production_ key, Midtrans' or Duitku's production host)."""
    name = payouts.provider
    if name in ("none", "sandbox"):
        return []
    if name == "xendit":
        key = payouts.xendit.secret_key.get_secret_value() if payouts.xendit.secret_key else ""
        live = key.startswith("xnd_production_")
    else:
        live = _host(getattr(payouts, name).base_url) in LIVE_PAYOUT_HOSTS[name]
    return [f"the {name} payout provider with live credentials (payouts.{name})"] if live else []


def startup_problems(settings: Settings) -> list[str]:
    """Every reason this configuration must not start, one line each (empty: it may start)."""
    problems: list[str] = []
    pay = settings.payments
    sandboxes = ["the sandbox gateway (payments.gateways)"] if "sandbox" in pay.gateways else []
    if settings.payouts.provider == "sandbox":
        sandboxes.append("the sandbox payout provider (payouts.provider)")
    live_money = live_credentials(pay) + live_payouts(settings.payouts)
    for live in live_money:
        for sandbox in sandboxes:
            problems.append(f"{live} next to {sandbox}: real money and a test gateway that lets anyone mark "
                            f"a payment paid must never run together; remove one of them")
    if not settings.server.production:
        return problems
    where = f"server.public_url {settings.server.public_url} is production"
    if "sandbox" in pay.gateways:
        problems.append(f"{where}: remove 'sandbox' from payments.gateways (it lets anyone mark a payment paid)")
    if settings.payouts.provider == "sandbox":
        problems.append(f"{where}: set payouts.provider to a real provider or \"none\" (the sandbox payout "
                        f"provider lets anyone mark a withdrawal sent)")
    if settings.server.playground:
        problems.append(f"{where}: the playground runs only in development; remove server.playground")
    if settings.api.enabled and _missing(settings.api.secret_key):
        problems.append("api.secret_key (BOT_API__SECRET_KEY, 32+ random characters) is required when api.enabled: "
                        "it seals client bots' secrets at rest")
    tg = settings.telegram
    if not _missing(tg.token) and tg.mode == "webhook" and _missing(tg.webhook_secret):
        problems.append("telegram.webhook_secret (BOT_TELEGRAM__WEBHOOK_SECRET) is required for webhook mode")
    wa = settings.whatsapp
    if not _missing(wa.token):
        if _missing(wa.app_secret):
            problems.append("whatsapp.app_secret (BOT_WHATSAPP__APP_SECRET) is required to verify Meta's signatures")
        if _missing(wa.verify_token):
            problems.append("whatsapp.verify_token (BOT_WHATSAPP__VERIFY_TOKEN) is required for the webhook challenge")
    for name in missing_payout_keys(settings.payouts):
        env = "BOT_" + name.upper().replace(".", "__")
        problems.append(f"{name} ({env}) is required for {settings.payouts.provider} payouts")
    for gateway in pay.gateways:
        for name in missing_keys(pay, gateway):
            env = "BOT_" + name.upper().replace(".", "__")
            problems.append(f"{name} ({env}) is required to verify {gateway} callbacks")
    return problems


def check_startable(settings: Settings) -> None:
    """Refuse to start a configuration that could accept forged webhooks or mix test and real money."""
    problems = startup_problems(settings)
    if problems:
        raise ConfigError("refusing to start:\n  - " + "\n  - ".join(problems))
