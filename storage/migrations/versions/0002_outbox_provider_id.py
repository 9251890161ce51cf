"""Find an outbox row by the platform's message id (WhatsApp status webhooks report failures by wamid).

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_outbox_provider_message", "outbox", ["channel", "provider_message_id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_provider_message", table_name="outbox")
