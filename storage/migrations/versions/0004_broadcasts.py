"""Paid broadcasts: the hold, one delivery row per recipient, and what each delivery cost or gave back.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "broadcasts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("trip_id", BigId, sa.ForeignKey("trips.id"), nullable=False),
        sa.Column("owner_id", BigId, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("price", sa.BigInteger, nullable=False),
        sa.Column("recipients", sa.Integer, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("finished_at", When),
        sa.CheckConstraint("status IN ('preview','running','done','cancelled')", name="ck_broadcasts_status"),
        sa.CheckConstraint("price >= 0 AND recipients >= 0", name="ck_broadcasts_amounts"),
    )
    op.create_table(
        "broadcast_deliveries",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("broadcast_id", BigId, sa.ForeignKey("broadcasts.id"), nullable=False),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("outbox_key", sa.String(128), nullable=False, unique=True),
        # pending -> charged (the platform accepted it) | released (it failed); charged -> refunded (failed later)
        sa.Column("settled", sa.String(10), nullable=False),
        sa.UniqueConstraint("broadcast_id", "user_id", name="uq_broadcast_deliveries_recipient"),
        sa.CheckConstraint("settled IN ('pending','charged','released','refunded')", name="ck_deliveries_settled"),
    )
    op.create_index("ix_broadcast_deliveries_settled", "broadcast_deliveries", ["settled"])


def downgrade() -> None:
    op.drop_table("broadcast_deliveries")
    op.drop_table("broadcasts")
