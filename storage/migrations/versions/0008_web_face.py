"""The web face: a jastiper's public handle (PROFIL <handle>, the page /j/<handle>) and the playground's stored
conversation (replayed when the page reconnects).

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

When = sa.DateTime(timezone=True)
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("handle", sa.String(30)))
    op.create_index("uq_users_handle", "users", ["handle"], unique=True)
    op.create_table(
        "playground_messages",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("chat_id", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("attachment", sa.LargeBinary),
        sa.Column("created_at", When, nullable=False),
        sa.CheckConstraint("direction IN ('in','out')", name="ck_playground_messages_direction"),
    )
    op.create_index("ix_playground_messages_chat", "playground_messages", ["chat_id", "id"])


def downgrade() -> None:
    raise NotImplementedError("migrations only move forward; restore a backup to go back")
