"""Initial schema: users with balances, append-only ledger, payments, gateway events, inbound dedupe, outbox.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("alt_id", sa.String(64)),
        sa.Column("display_name", sa.String(128)),
        sa.Column("language", sa.String(8), nullable=False, server_default="id"),
        sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_inbound_at", When),
        sa.Column("created_at", When, nullable=False),
        sa.UniqueConstraint("channel", "external_id", name="uq_users_channel_external"),
        sa.CheckConstraint("balance >= 0", name="ck_users_balance_nonnegative"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("balance_after", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("reference", sa.String(128), nullable=False, unique=True),
        sa.Column("created_at", When, nullable=False),
        sa.CheckConstraint("amount <> 0", name="ck_ledger_amount_nonzero"),
        sa.CheckConstraint("balance_after >= 0", name="ck_ledger_balance_after_nonnegative"),
    )
    op.create_table(
        "payments",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(50), nullable=False, unique=True),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("gateway", sa.String(16), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("gateway_ref", sa.String(128)),
        sa.Column("payment_url", sa.Text),
        sa.Column("qr_string", sa.Text),
        sa.Column("flag_reason", sa.Text),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("expires_at", When),
        sa.Column("paid_at", When),
        sa.Column("credited_at", When),
        sa.Column("lease_until", When),
        sa.Column("checked_at", When),
        sa.CheckConstraint("amount > 0", name="ck_payments_amount_positive"),
        sa.CheckConstraint(
            "status IN ('created','pending','paid','failed','expired','held','reversed','refunded')",
            name="ck_payments_status_known",
        ),
    )
    op.create_index("ix_payments_status_created", "payments", ["status", "created_at"])
    op.create_table(
        "gateway_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("gateway", sa.String(16), nullable=False),
        sa.Column("event_key", sa.String(200), nullable=False),
        sa.Column("order_id", sa.String(100), nullable=False, index=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("received_at", When, nullable=False),
        sa.UniqueConstraint("gateway", "event_key", name="uq_gateway_events_key"),
    )
    op.create_table(
        "inbound_updates",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("update_key", sa.String(128), nullable=False),
        sa.Column("received_at", When, nullable=False, index=True),
        sa.UniqueConstraint("channel", "update_key", name="uq_inbound_updates_key"),
    )
    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("chat_id", sa.String(64), nullable=False),
        sa.Column("language", sa.String(8), nullable=False),
        sa.Column("template", sa.String(64), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("dedupe_key", sa.String(128), unique=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", When, nullable=False),
        sa.Column("lease_until", When),
        sa.Column("last_error", sa.Text),
        sa.Column("provider_message_id", sa.String(128)),
        sa.Column("created_at", When, nullable=False),
        sa.Column("sent_at", When),
    )
    op.create_index("ix_outbox_due", "outbox", ["status", "next_attempt_at"])

    # The ledger is append-only: corrections are new entries, never edits.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger_entries "
            "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END"
        )
        op.execute(
            "CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger_entries "
            "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END"
        )
    else:
        op.execute(
            "CREATE FUNCTION ledger_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'ledger_entries is append-only'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER ledger_append_only BEFORE UPDATE OR DELETE ON ledger_entries "
            "FOR EACH ROW EXECUTE FUNCTION ledger_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS ledger_no_update")
        op.execute("DROP TRIGGER IF EXISTS ledger_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS ledger_append_only ON ledger_entries")
        op.execute("DROP FUNCTION IF EXISTS ledger_append_only()")
    for table in ("outbox", "inbound_updates", "gateway_events", "payments", "ledger_entries", "users"):
        op.drop_table(table)
