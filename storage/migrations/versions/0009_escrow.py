"""Jastip orders paid through Titip (otomatis trips): an order keeps its trip's payment mode, when it was paid and
shipped, when its escrow is released by itself; two final states (received, refunded); a gateway payment may be
for a jastip order; and a closed escrow account refuses any later transfer into it (a trigger, whoever inserts
it).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)
STATUSES = ("pending", "proof_submitted", "confirmed", "rejected", "shipped", "cancelled", "expired", "received",
            "refunded", "disputed", "dp_paid", "forfeited")


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(sa.Column("payment_mode", sa.String(8), nullable=False, server_default="manual"))
        batch.add_column(sa.Column("paid_at", When))
        batch.add_column(sa.Column("shipped_at", When))
        batch.add_column(sa.Column("release_at", When))
        batch.add_column(sa.Column("closed_at", When))
        batch.add_column(sa.Column("complaint", sa.Text))
        batch.add_column(sa.Column("complained_at", When))
        batch.add_column(sa.Column("extended_at", When))
        batch.add_column(sa.Column("ship_by_at", When))
        batch.add_column(sa.Column("dp_amount", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("dp_policy", sa.String(8)))
        batch.add_column(sa.Column("final_due_at", When))
        batch.add_column(sa.Column("settles_at", When))
        batch.create_check_constraint("ck_orders_dp", "dp_amount >= 0 AND dp_amount < total")
        batch.drop_constraint("ck_orders_status", type_="check")
        batch.create_check_constraint("ck_orders_status", "status IN (" + ",".join(f"'{s}'" for s in STATUSES) + ")")
        batch.create_check_constraint("ck_orders_payment_mode", "payment_mode IN ('manual','otomatis')")
        batch.create_index("ix_orders_status_release", ["status", "release_at"])
    with op.batch_alter_table("trips") as batch:
        # DP <slug> <persen> [kembali|hangus]: a down payment due at order time, the rest after TIBA.
        batch.add_column(sa.Column("dp_percent", sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("dp_policy", sa.String(8), nullable=False, server_default="kembali"))
        batch.add_column(sa.Column("arrived_at", When))
        batch.create_check_constraint("ck_trips_dp", "dp_percent >= 0 AND dp_percent < 100 "
                                                     "AND dp_policy IN ('kembali','hangus')")
    with op.batch_alter_table("payments") as batch:
        # A gateway payment for a jastip order (purpose "order"): its money goes through the buyer's wallet into
        # this order's escrow, if the order still waits for exactly that money when it is paid.
        batch.add_column(sa.Column("jastip_order_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite")))
        batch.create_foreign_key("fk_payments_jastip_order", "orders", ["jastip_order_id"], ["id"])
        batch.create_index("ix_payments_jastip_order", ["jastip_order_id"])
    message = "a closed escrow takes no more transfers"
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE TRIGGER transfers_closed_escrow BEFORE INSERT ON transfers "
                   "WHEN (SELECT status FROM accounts WHERE id = NEW.credit_id) = 'closed' "
                   f"BEGIN SELECT RAISE(ABORT, '{message}'); END")
    else:
        op.execute("CREATE FUNCTION transfers_closed_escrow() RETURNS trigger AS $$ BEGIN "
                   "IF (SELECT status FROM accounts WHERE id = NEW.credit_id) = 'closed' THEN "
                   f"RAISE EXCEPTION '{message}' USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END; $$ "
                   "LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER transfers_closed_escrow BEFORE INSERT ON transfers "
                   "FOR EACH ROW EXECUTE FUNCTION transfers_closed_escrow()")


def downgrade() -> None:
    raise NotImplementedError("migrations only move forward")
