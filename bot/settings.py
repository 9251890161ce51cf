"""The one Settings object: `config.toml` (or --config / BOT_CONFIG), overridden by BOT_* environment variables.

Only the composition root (`bot/app.py`, `bot/__main__.py`) reads it; everything else gets plain values.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

DEFAULT_CONFIG = Path("config.toml")
KNOWN_GATEWAYS = ("sandbox", "midtrans", "duitku", "doku", "xendit")


class ConfigError(Exception):
    """The configuration cannot run: the message names the setting to fix."""


class ServerSettings(BaseModel):
    host: str = "0.0.0.0"
    port: int = 8080
    # Builds callback / return / sandbox links. https means production: secrets become mandatory.
    public_url: str = "http://127.0.0.1:8080"
    max_body_bytes: int = 1_000_000

    @property
    def production(self) -> bool:
        return self.public_url.startswith("https://")


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


class AdminSettings(BaseModel):
    telegram_ids: list[str] = Field(default_factory=list)
    whatsapp_ids: list[str] = Field(default_factory=list)

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
    reconcile: ReconcileSettings = Field(default_factory=ReconcileSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
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


def production_problems(settings: Settings) -> list[str]:
    """Every missing secret that makes a production (https public_url) configuration unsafe to start."""
    if not settings.server.production:
        return []
    problems: list[str] = []
    tg = settings.telegram
    if not _missing(tg.token) and tg.mode == "webhook" and _missing(tg.webhook_secret):
        problems.append("telegram.webhook_secret (BOT_TELEGRAM__WEBHOOK_SECRET) is required for webhook mode")
    wa = settings.whatsapp
    if not _missing(wa.token):
        if _missing(wa.app_secret):
            problems.append("whatsapp.app_secret (BOT_WHATSAPP__APP_SECRET) is required to verify Meta's signatures")
        if _missing(wa.verify_token):
            problems.append("whatsapp.verify_token (BOT_WHATSAPP__VERIFY_TOKEN) is required for the webhook challenge")
    pay = settings.payments
    required = {
        "sandbox": [],
        "midtrans": [("server_key", pay.midtrans.server_key)],
        "duitku": [("merchant_code", pay.duitku.merchant_code), ("api_key", pay.duitku.api_key)],
        "doku": [("client_id", pay.doku.client_id), ("secret_key", pay.doku.secret_key)],
        "xendit": [("secret_key", pay.xendit.secret_key), ("callback_token", pay.xendit.callback_token)],
    }
    for gateway in pay.gateways:
        if gateway == "sandbox":
            problems.append(
                "payments.gateways contains 'sandbox' with an https server.public_url: the sandbox lets anyone "
                "mark a payment paid; remove it in production"
            )
        for name, value in required[gateway]:
            if _missing(value):
                env = f"BOT_PAYMENTS__{gateway.upper()}__{name.upper()}"
                problems.append(f"payments.{gateway}.{name} ({env}) is required to verify {gateway} callbacks")
    return problems


def check_startable(settings: Settings) -> None:
    """Refuse to start a production configuration that could accept forged webhooks."""
    problems = production_problems(settings)
    if problems:
        raise ConfigError("refusing to start in production mode:\n  - " + "\n  - ".join(problems))
