"""Withdrawals: payout accounts (REKENING), payouts (TARIK) and each attempt at the provider; and the `provider`
account kind becomes derived, like `gateway`: a completed payout moves hold -> provider, which takes a
debit-normal account below zero by design (it mirrors the gateway account, whose top-ups are gateway -> wallet),
and one shared row per provider must never serialise payouts. A reversal (provider -> earnings) is guarded by the
payout's conditional state move, not by that account's balance.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STATUSES = ("awaiting_approval", "requested", "sending", "processing", "waiting_funds", "completed", "failed",
            "rejected", "cancelled", "unknown", "reversed")


CREDIT_NORMAL = {"wallet", "earnings", "escrow", "hold", "client", "revenue", "suspense"}


def _balances_follow_transfers(derived: set[str]) -> None:
    """Migration 0007's trigger, with this revision's set of derived kinds."""
    credit_normal = ",".join(f"'{k}'" for k in sorted(CREDIT_NORMAL))
    kinds = ",".join(f"'{k}'" for k in sorted(derived))
    debit_side = (f"UPDATE accounts SET balance = balance + CASE WHEN kind IN ({credit_normal}) "
                  f"THEN -NEW.amount ELSE NEW.amount END WHERE id = NEW.debit_id AND kind NOT IN ({kinds});")
    credit_side = (f"UPDATE accounts SET balance = balance + CASE WHEN kind IN ({credit_normal}) "
                   f"THEN NEW.amount ELSE -NEW.amount END WHERE id = NEW.credit_id AND kind NOT IN ({kinds});")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER transfers_move_balances")
        op.execute(f"CREATE TRIGGER transfers_move_balances AFTER INSERT ON transfers BEGIN "
                   f"{debit_side} {credit_side} END")
    else:
        op.execute(f"CREATE OR REPLACE FUNCTION transfers_move_balances() RETURNS trigger AS $$ BEGIN "
                   f"{debit_side} {credit_side} RETURN NEW; END; $$ LANGUAGE plpgsql")


def upgrade() -> None:
    _balances_follow_transfers({"gateway", "revenue", "fees", "adjustment", "provider"})
    op.create_table(
        "payout_accounts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("bank", sa.String(16), nullable=False),
        sa.Column("number", sa.String(34), nullable=False),
        sa.Column("holder_name", sa.String(100), nullable=False),
        sa.Column("checked_name", sa.String(100)),
        sa.Column("confirmed_at", When),
        sa.Column("usable_from", When),
        sa.Column("replaced_at", When),
        sa.Column("created_at", When, nullable=False),
    )
    op.create_index("ix_payout_accounts_user", "payout_accounts", ["user_id", "confirmed_at"])
    op.create_table(
        "payouts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("user_id", Id, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("request_key", sa.String(32), nullable=False),
        sa.Column("account_id", Id, sa.ForeignKey("payout_accounts.id"), nullable=False),
        sa.Column("bank", sa.String(16), nullable=False),
        sa.Column("number", sa.String(34), nullable=False),
        sa.Column("holder_name", sa.String(100), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("provider_ref", sa.String(64)),
        sa.Column("failure", sa.String(200)),
        sa.Column("decided_by", Id, sa.ForeignKey("users.id")),
        sa.Column("next_check_at", When),
        sa.Column("lease_until", When),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("completed_at", When),
        sa.UniqueConstraint("user_id", "request_key", name="uq_payouts_request"),
        sa.CheckConstraint("amount > 0 AND fee >= 0", name="ck_payouts_amounts"),
        sa.CheckConstraint("status IN (" + ",".join(f"'{s}'" for s in STATUSES) + ")", name="ck_payouts_status"),
    )
    op.create_index("ix_payouts_status_check", "payouts", ["status", "next_check_at"])
    op.create_index("ix_payouts_user", "payouts", ["user_id", "created_at"])
    op.create_table(
        "payout_attempts",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("payout_id", Id, sa.ForeignKey("payouts.id"), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("provider_ref", sa.String(64)),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(200)),
        sa.Column("context", sa.JSON),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.UniqueConstraint("payout_id", "number", name="uq_payout_attempts_number"),
    )
    op.create_index("ix_payout_attempts_ref", "payout_attempts", ["provider", "provider_ref"])


def downgrade() -> None:
    _balances_follow_transfers({"gateway", "revenue", "fees", "adjustment"})
    op.drop_table("payout_attempts")
    op.drop_table("payouts")
    op.drop_table("payout_accounts")
