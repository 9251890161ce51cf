"""SQLAlchemy 2 models. The migrations in `storage/migrations` create exactly these tables.

Money is BIGINT Rupiah. The guarantees that matter live in the schema: unique keys for idempotency,
CHECK constraints for non-negative balances, triggers that make the ledger append-only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.kinds import (
    AccountKind,
    BroadcastStatus,
    OrderStatus,
    PaymentPurpose,
    PaymentStatus,
    PayoutStatus,
    sql_in,
)

# SQLite only auto-increments INTEGER PRIMARY KEY; BIGINT elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use an aware UTC one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    # Every model here is a plain table (no joined inheritance): say so, so that Core statements on
    # `Model.__table__` type-check.
    __table__: ClassVar[Table]


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_users_channel_external"),
                      Index("uq_users_handle", "handle", unique=True))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    # WhatsApp's business-scoped user id (pywa 4 replies to it); null on Telegram.
    alt_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    display_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    username: Mapped[str | None] = mapped_column(String(64), nullable=True)  # Telegram @username, for contact
    language: Mapped[str] = mapped_column(String(8), default="id")
    # An admin checked who this is (ADMIN VERIFIKASI): may withdraw earnings, no cap on the wallet.
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # A jastiper's public handle (PROFIL <handle>): their page is /j/<handle>.
    handle: Mapped[str | None] = mapped_column(String(30), nullable=True)
    last_inbound_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerEntry(Base):
    """The single-entry ledger before double-entry (kept read-only; migration 0007 carried it into transfers)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="ck_ledger_amount_nonzero"),
        CheckConstraint("balance_after >= 0", name="ck_ledger_balance_after_nonnegative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # signed: credit > 0, debit < 0
    balance_after: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    # One entry per business event, e.g. "topup:17", "reversal:17": a retried credit cannot land twice.
    reference: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Account(Base):
    """One account of the double-entry ledger. `balance` is kept for accounts that must never go negative and
    are touched per person (wallet, earnings, escrow, hold, client, suspense, receivable), in the
    account's normal sign; the database refuses a negative one. Derived accounts (gateway, revenue, fees,
    adjustment) keep 0 here: their balance is the sum of their transfers."""

    __tablename__ = "accounts"
    __table_args__ = (
        UniqueConstraint("kind", "key", name="uq_accounts_kind_key"),
        CheckConstraint("balance >= 0", name="ck_accounts_balance_nonnegative"),
        CheckConstraint(f"kind IN ({sql_in(AccountKind)})", name="ck_accounts_kind"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64))  # whose: a user id, a gateway name, a broadcast id, "" for one
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True, index=True)
    balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    status: Mapped[str | None] = mapped_column(String(12), nullable=True)  # holds: pending | posted | voided | expired
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Transfer(Base):
    """Money moving from one account (debited) to another (credited): positive, once per reference, forever."""

    __tablename__ = "transfers"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_transfers_amount_positive"),
        CheckConstraint("debit_id <> credit_id", name="ck_transfers_two_accounts"),
        Index("ix_transfers_debit", "debit_id", "id"),
        Index("ix_transfers_credit", "credit_id", "id"),
        Index("ix_transfers_created", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(160), unique=True)
    debit_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    credit_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))  # what for: topup, repay, reversal, refund, held, hold, charge ...
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount > 0", name="ck_payments_amount_positive"),
        CheckConstraint(f"status IN ({sql_in(PaymentStatus)})", name="ck_payments_status_known"),
        CheckConstraint(f"purpose IN ({sql_in(PaymentPurpose)})", name="ck_payments_purpose"),
        CheckConstraint("refunded_amount >= 0", name="ck_payments_refunded_nonnegative"),
        Index("ix_payments_status_created", "status", "created_at"),
        Index("ix_payments_jastip_order", "jastip_order_id"),
        Index("ix_payments_deposit", "deposit_id"),
        # A deposit belongs to a client bot, never to a Titip user; everything else belongs to a user.
        CheckConstraint("(purpose = 'deposit' AND user_id IS NULL AND deposit_id IS NOT NULL) OR "
                        "(purpose <> 'deposit' AND user_id IS NOT NULL AND deposit_id IS NULL)",
                        name="ck_payments_owner"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(50), unique=True)
    # The payer; None for a deposit (purpose "deposit"): its money is owed to a client bot, see `deposit_id`.
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True, nullable=True)
    deposit_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("deposits.id", name="fk_payments_deposit"), nullable=True)
    gateway: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    # created -> pending -> paid | failed | expired; paid -> reversed | refunded; held = amount mismatch.
    status: Mapped[str] = mapped_column(String(16))
    gateway_ref: Mapped[str | None] = mapped_column(String(128), nullable=True)
    payment_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    qr_string: Mapped[str | None] = mapped_column(Text, nullable=True)
    flag_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    purpose: Mapped[str] = mapped_column(String(8), default="topup", server_default="topup")
    # Where the money goes when it is paid (the payer's wallet for a top-up; later an escrow or a client).
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), nullable=True)
    paid_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # what the gateway reported
    # purpose "order": the jastip order this pays (its escrow is funded from the wallet when it is paid).
    jastip_order_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("orders.id", name="fk_payments_jastip_order"), nullable=True)
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    method: Mapped[str | None] = mapped_column(String(32), nullable=True)  # the gateway's payment method
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    credited_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The reconciler's claim: a process checks a payment only while it holds an unexpired lease.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class GatewayEvent(Base):
    __tablename__ = "gateway_events"
    __table_args__ = (UniqueConstraint("gateway", "event_key", name="uq_gateway_events_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    gateway: Mapped[str] = mapped_column(String(16))
    event_key: Mapped[str] = mapped_column(String(200))
    order_id: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(16))  # callback | reconcile | check
    outcome: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class InboundUpdate(Base):
    __tablename__ = "inbound_updates"
    __table_args__ = (UniqueConstraint("channel", "update_key", name="uq_inbound_updates_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    update_key: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class PlaygroundMessage(Base):
    """The playground's conversation, both ways, replayed when the page reconnects (development only)."""

    __tablename__ = "playground_messages"
    __table_args__ = (
        CheckConstraint("direction IN ('in','out')", name="ck_playground_messages_direction"),
        Index("ix_playground_messages_chat", "chat_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(3))  # in: the visitor typed it; out: the bot sent it
    body: Mapped[dict[str, Any]] = mapped_column(JSON)  # text, buttons, what is attached
    attachment: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # a photo or a document
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OutboxMessage(Base):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_provider_message", "channel", "provider_message_id"),
        Index("ix_outbox_destination", "channel", "chat_id", "status", "lease_until"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8))
    template: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")  # 1 notice, 2 broadcast
    # One notice per business event ("credited:17"): writing it twice is a no-op.
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    provider_message_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # The HTTP status of the last attempt, where the destination answers with one (a client bot's server).
    last_status: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Trip(Base):
    __tablename__ = "trips"
    __table_args__ = (
        CheckConstraint("status IN ('open','closed')", name="ck_trips_status"),
        CheckConstraint("payment_mode IN ('manual','otomatis')", name="ck_trips_payment_mode"),
        CheckConstraint("dp_percent >= 0 AND dp_percent < 100 AND dp_policy IN ('kembali','hangus')",
                        name="ck_trips_dp"),
        Index("ix_trips_status_deadline", "status", "deadline_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(String(10), unique=True)
    title: Mapped[str] = mapped_column(String(120))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    deadline_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(8))  # open | closed
    # manual: buyers transfer as the instructions say and send a proof photo (otomatis: paid through Titip).
    payment_mode: Mapped[str] = mapped_column(String(8), default="manual", server_default="manual")
    payment_instructions: Mapped[str | None] = mapped_column(Text, nullable=True)
    # otomatis: a down payment of dp_percent % at order time, the rest after TIBA; a rest never paid refunds the
    # DP (kembali) or releases it to the jastiper (hangus). Copied onto each order when it is placed.
    dp_percent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    dp_policy: Mapped[str] = mapped_column(String(8), default="kembali", server_default="kembali")
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # TIBA
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (
        UniqueConstraint("trip_id", "code", name="uq_products_trip_code"),
        CheckConstraint("price > 0", name="ck_products_price_positive"),
        CheckConstraint("stock >= 0", name="ck_products_stock_nonnegative"),
        CheckConstraint("price <= 100000000", name="ck_products_price_bounded"),
        CheckConstraint("stock <= 1000000", name="ck_products_stock_bounded"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trip_id: Mapped[int] = mapped_column(ForeignKey("trips.id"), index=True)
    code: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(120))
    price: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int] = mapped_column(Integer)
    photo_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Participant(Base):
    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("trip_id", "user_id", name="uq_participants_trip_user"),
                      CheckConstraint("status IN ('joined','stopped')", name="ck_participants_status"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trip_id: Mapped[int] = mapped_column(ForeignKey("trips.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(8))  # joined | stopped
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="ck_orders_quantity_positive"),
        CheckConstraint("quantity <= 1000", name="ck_orders_quantity_bounded"),
        CheckConstraint("total = quantity * unit_price", name="ck_orders_total"),
        CheckConstraint(f"status IN ({sql_in(OrderStatus)})", name="ck_orders_status"),
        CheckConstraint("payment_mode IN ('manual','otomatis')", name="ck_orders_payment_mode"),
        CheckConstraint("dp_amount >= 0 AND dp_amount < total", name="ck_orders_dp"),
        Index("ix_orders_status_expires", "status", "expires_at"),
        Index("ix_orders_status_release", "status", "release_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trip_id: Mapped[int] = mapped_column(ForeignKey("trips.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[int] = mapped_column(BigInteger)
    total: Mapped[int] = mapped_column(BigInteger)
    # pending -> proof_submitted -> confirmed | rejected -> shipped; pending -> cancelled | expired
    status: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The latest payment proof (a new one replaces it) and how many were sent on `proof_day` (WIB date).
    proof_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    proof_day: Mapped[str | None] = mapped_column(String(10), nullable=True)
    proofs_today: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The trip's mode when the order was placed (changing the trip's affects new orders only). otomatis: paid
    # into the order's escrow; released to the jastiper on receipt or at `release_at`, or refunded.
    payment_mode: Mapped[str] = mapped_column(String(8), default="manual", server_default="manual")
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    release_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # escrow released/refunded
    complaint: Mapped[str | None] = mapped_column(Text, nullable=True)  # KOMPLAIN: why the buyer froze the escrow
    complained_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    extended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # BELUMSAMPAI (once)
    # otomatis, paid: KIRIM is due by then (the trip's deadline + escrow.ship_by_days; ADMIN PERPANJANG moves it)
    ship_by_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    dp_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")  # 0: paid in one go
    dp_policy: Mapped[str | None] = mapped_column(String(8), nullable=True)  # kembali | hangus, from the trip
    final_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # the rest, after TIBA
    # Paid with a method that can still be reversed (a card): never released before this.
    settles_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Broadcast(Base):
    __tablename__ = "broadcasts"
    __table_args__ = (
        CheckConstraint(f"status IN ({sql_in(BroadcastStatus)})", name="ck_broadcasts_status"),
        CheckConstraint("price >= 0 AND recipients >= 0", name="ck_broadcasts_amounts"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    trip_id: Mapped[int] = mapped_column(ForeignKey("trips.id"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    text: Mapped[str] = mapped_column(Text)
    price: Mapped[int] = mapped_column(BigInteger)
    recipients: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(12))  # preview | running | done | cancelled
    # A preview is bound to what was shown: its recipients (a hash of their ids) and an expiry.
    audience: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class BroadcastDelivery(Base):
    __tablename__ = "broadcast_deliveries"
    __table_args__ = (UniqueConstraint("broadcast_id", "user_id", name="uq_broadcast_deliveries_recipient"),
                      CheckConstraint("settled IN ('pending','charged','released','refunded')",
                                      name="ck_deliveries_settled"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    outbox_key: Mapped[str] = mapped_column(String(128), unique=True)
    settled: Mapped[str] = mapped_column(String(10), index=True)  # pending | charged | released | refunded


class AdminAction(Base):
    """Every admin action, who, when and why: the audit trail."""

    __tablename__ = "admin_actions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    admin_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(128))
    amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class Approval(Base):
    """An admin action that needs a second admin (a large correction): requested, then approved or rejected."""

    __tablename__ = "approvals"
    __table_args__ = (
        CheckConstraint("status IN ('draft','pending','approved','rejected','expired')", name="ck_approvals_status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    requested_by: Mapped[int] = mapped_column(ForeignKey("users.id"))
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    status: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MessageRef(Base):
    """A message the bot sent, by platform id, and what it was about ("order:P12", "broadcast:7")."""

    __tablename__ = "sent_messages"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PayoutAccount(Base):
    """A bank or e-wallet account a jastiper withdraws to (REKENING). A registration is a draft until its owner
    confirms it (after seeing the holder name the provider returned); the confirmed one replaces the previous,
    and no payout goes to it before `usable_from` (a hijacked chat account must not empty earnings at once)."""

    __tablename__ = "payout_accounts"
    __table_args__ = (Index("ix_payout_accounts_user", "user_id", "confirmed_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    bank: Mapped[str] = mapped_column(String(16))  # our name for it (services/payouts/banks.py): bca, dana, ...
    number: Mapped[str] = mapped_column(String(34))  # digits; e-wallets as 62...
    holder_name: Mapped[str] = mapped_column(String(100))
    checked_name: Mapped[str | None] = mapped_column(String(100), nullable=True)  # what the provider returned
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    usable_from: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    replaced_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Payout(Base):
    """A withdrawal of earned money (TARIK): amount + fee held on the ledger (`hold` account `payout:<id>`) from
    the moment it is requested until it completed (hold posted) or definitely did not (hold voided)."""

    __tablename__ = "payouts"
    __table_args__ = (
        UniqueConstraint("user_id", "request_key", name="uq_payouts_request"),
        CheckConstraint("amount > 0 AND fee >= 0", name="ck_payouts_amounts"),
        CheckConstraint(f"status IN ({sql_in(PayoutStatus)})", name="ck_payouts_status"),
        Index("ix_payouts_status_check", "status", "next_check_at"),
        Index("ix_payouts_user", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    request_key: Mapped[str] = mapped_column(String(32))  # the confirm button's: a double tap asks once
    account_id: Mapped[int] = mapped_column(ForeignKey("payout_accounts.id"))
    # A copy of where it goes, as it was when requested: a later REKENING never redirects money in flight.
    bank: Mapped[str] = mapped_column(String(16))
    number: Mapped[str] = mapped_column(String(34))
    holder_name: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)  # what reaches the account
    fee: Mapped[int] = mapped_column(BigInteger, default=0)  # ours (payouts.fee), on top of the amount
    provider: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20))
    attempt: Mapped[int] = mapped_column(Integer, default=0)  # the current attempt's number (0: none yet)
    # The current attempt's id at the provider.
    provider_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure: Mapped[str | None] = mapped_column(String(200), nullable=True)  # the provider's code / an admin's reason
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    next_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PayoutAttempt(Base):
    """One call to the provider for one payout. Its number is part of the idempotency key the provider sees, so
    an attempt whose outcome is unknown is retried with the same key and a new one starts only after the
    previous one definitely failed."""

    __tablename__ = "payout_attempts"
    __table_args__ = (
        UniqueConstraint("payout_id", "number", name="uq_payout_attempts_number"),
        Index("ix_payout_attempts_ref", "provider", "provider_ref"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    payout_id: Mapped[int] = mapped_column(ForeignKey("payouts.id"))
    number: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(16))
    provider_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))  # sending | accepted | completed | failed | no_funds | unknown
    # What the provider returned before the money call that a retry of this attempt must reuse (Duitku's
    # inquiry: custRefNumber, accountName), so that the retry is the same transfer, not a new one.
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    detail: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Client(Base):
    """Another bot that uses Titip as its payment backend (`python -m bot clients add`): it creates deposits for
    its own users over the API and is told, through its callback URL, when each is paid."""

    __tablename__ = "clients"
    __table_args__ = (
        CheckConstraint("min_amount IS NULL OR min_amount > 0", name="ck_clients_min_amount"),
        CheckConstraint("max_amount IS NULL OR max_amount > 0", name="ck_clients_max_amount"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    callback_url: Mapped[str] = mapped_column(Text)
    # Speaks the top-up Worker's wire format (/deposit/*); its API key is also the Worker's shared secret.
    worker: Mapped[bool] = mapped_column(Boolean)
    require_signature: Mapped[bool] = mapped_column(Boolean)
    origins: Mapped[list[str]] = mapped_column(JSON)  # browser origins allowed by CORS
    min_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    gateways: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # None: every configured gateway
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ClientKey(Base):
    """One generation of a client's credentials: the API key (hashed; sealed instead for a Worker client, whose
    key also signs what is forwarded to it) and its signing and webhook secrets (sealed with api.secret_key).
    Rotation adds a generation and gives the previous one an `expires_at` (api.rotation_grace_hours)."""

    __tablename__ = "client_keys"
    __table_args__ = (
        CheckConstraint("(key_hash IS NULL) <> (key_sealed IS NULL)", name="ck_client_keys_one_form"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)  # the key's public part: how it is looked up
    key_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)  # SHA-256 of the whole key, hex
    key_sealed: Mapped[str | None] = mapped_column(Text, nullable=True)
    signing_secret_sealed: Mapped[str] = mapped_column(Text)
    webhook_secret_sealed: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)  # None: current
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Deposit(Base):
    """A client bot's deposit for one of its users, idempotent on the client's `deposit_id`. Each attempt at a
    gateway is a payment (purpose "deposit") pointing here; the newest one is the deposit's."""

    __tablename__ = "deposits"
    __table_args__ = (
        UniqueConstraint("client_id", "deposit_id", name="uq_deposits_client_deposit"),
        CheckConstraint("amount > 0", name="ck_deposits_amount_positive"),
        CheckConstraint("format IN ('api','worker')", name="ck_deposits_format"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    deposit_id: Mapped[str] = mapped_column(String(64))
    user_ref: Mapped[str] = mapped_column(String(128))  # the client's own user, opaque to us
    amount: Mapped[int] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(String(255), nullable=True)
    customer: Mapped[dict[str, Any]] = mapped_column(JSON)  # email, phone: passed on to the gateway
    format: Mapped[str] = mapped_column(String(8))  # api: Standard Webhooks; worker: the Worker's callback
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiNonce(Base):
    """A nonce a client's signed request used: refused again for 10 minutes, in every process."""

    __tablename__ = "api_nonces"
    __table_args__ = (UniqueConstraint("client_id", "nonce", name="uq_api_nonces_client_nonce"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id"))
    nonce: Mapped[str] = mapped_column(String(64))
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
