"""Jastip: trips, products, participants and orders; stock can never go below zero.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "trips",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("slug", sa.String(10), nullable=False, unique=True),  # stored lower-case
        sa.Column("title", sa.String(120), nullable=False),
        sa.Column("owner_id", BigId, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("deadline_at", When, nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("closed_at", When),
        sa.CheckConstraint("status IN ('open','closed')", name="ck_trips_status"),
    )
    op.create_index("ix_trips_status_deadline", "trips", ["status", "deadline_at"])
    op.create_table(
        "products",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("trip_id", BigId, sa.ForeignKey("trips.id"), nullable=False, index=True),
        sa.Column("code", sa.String(16), nullable=False),  # stored upper-case
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("price", sa.BigInteger, nullable=False),
        sa.Column("stock", sa.Integer, nullable=False),
        sa.Column("photo_path", sa.Text),
        sa.Column("deleted_at", When),
        sa.Column("created_at", When, nullable=False),
        sa.UniqueConstraint("trip_id", "code", name="uq_products_trip_code"),
        sa.CheckConstraint("price > 0", name="ck_products_price_positive"),
        sa.CheckConstraint("stock >= 0", name="ck_products_stock_nonnegative"),
    )
    op.create_table(
        "participants",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("trip_id", BigId, sa.ForeignKey("trips.id"), nullable=False),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("joined_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.UniqueConstraint("trip_id", "user_id", name="uq_participants_trip_user"),
        sa.CheckConstraint("status IN ('joined','stopped')", name="ck_participants_status"),
    )
    op.create_table(
        "orders",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("trip_id", BigId, sa.ForeignKey("trips.id"), nullable=False, index=True),
        sa.Column("product_id", BigId, sa.ForeignKey("products.id"), nullable=False),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("quantity", sa.Integer, nullable=False),
        sa.Column("unit_price", sa.BigInteger, nullable=False),
        sa.Column("total", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
        sa.Column("expires_at", When, nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_orders_quantity_positive"),
        sa.CheckConstraint("total = quantity * unit_price", name="ck_orders_total"),
        sa.CheckConstraint(
            "status IN ('pending','proof_submitted','confirmed','rejected','shipped','cancelled','expired')",
            name="ck_orders_status",
        ),
    )
    op.create_index("ix_orders_status_expires", "orders", ["status", "expires_at"])


def downgrade() -> None:
    for table in ("orders", "participants", "products", "trips"):
        op.drop_table(table)
