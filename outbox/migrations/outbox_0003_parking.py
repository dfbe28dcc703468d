"""outbox rows record their failures and can be parked

Revision ID: outbox_0003
Revises: outbox_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "outbox_0003"
down_revision = "outbox_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("first_failed_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("failure_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("parked_at", sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f("ix_outbox_parked_at"), ["parked_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_parked_at"))
        batch_op.drop_column("parked_at")
        batch_op.drop_column("failure_reason")
        batch_op.drop_column("first_failed_at")
        batch_op.drop_column("attempts")
