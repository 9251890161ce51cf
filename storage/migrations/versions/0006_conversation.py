"""Round-3 conversation fixes: Telegram @usernames (how a jastiper reaches a buyer), a trip's payment mode and
transfer instructions, one proof per order (replaced, limited per day), broadcast previews bound to their
audience, and bounds on prices, stock and quantities that both databases enforce alike.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("username", sa.String(64)))
    with op.batch_alter_table("trips") as batch:
        batch.add_column(sa.Column("payment_mode", sa.String(8), nullable=False, server_default="manual"))
        batch.add_column(sa.Column("payment_instructions", sa.Text))
        batch.create_check_constraint("ck_trips_payment_mode", "payment_mode IN ('manual','otomatis')")
    with op.batch_alter_table("products") as batch:
        batch.create_check_constraint("ck_products_price_bounded", "price <= 100000000")
        batch.create_check_constraint("ck_products_stock_bounded", "stock <= 1000000")
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("proof_path", sa.Text))
        batch.add_column(sa.Column("proof_day", sa.String(10)))
        batch.add_column(sa.Column("proofs_today", sa.Integer, nullable=False, server_default="0"))
        batch.create_check_constraint("ck_orders_quantity_bounded", "quantity <= 1000")
    # Fair delivery: notices before broadcasts, and a destination with a message in flight is skipped.
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("priority", sa.SmallInteger, nullable=False, server_default="1"))
    op.create_index("ix_outbox_destination", "outbox", ["channel", "chat_id", "status"])
    with op.batch_alter_table("broadcasts") as batch:
        batch.add_column(sa.Column("audience", sa.String(64)))
        batch.add_column(sa.Column("expires_at", When))


def downgrade() -> None:
    raise NotImplementedError("migrations only move forward; restore a backup to go back")
