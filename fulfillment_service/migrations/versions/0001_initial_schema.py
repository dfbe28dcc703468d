"""initial schema

The outbox table this revision used to create comes from the shared `outbox` branch (outbox_0001).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = "outbox_0001"  # the outbox table, from the shared outbox branch


def upgrade() -> None:
    op.create_table(
        "fulfillments",
        sa.Column("order_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tracking_number", sa.String(length=200), nullable=True),
        sa.Column("carrier", sa.String(length=200), nullable=True),
        sa.Column("estimated_delivery", sa.BigInteger(), nullable=True),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.Float(), nullable=True),
        sa.Column("deliver_at", sa.Float(), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("order_timestamp", sa.BigInteger(), nullable=True),
        sa.Column("picked_up_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("order_id"),
    )
    with op.batch_alter_table("fulfillments", schema=None) as batch_op:
        batch_op.create_index("ix_fulfillments_deliver", ["deliver_at"], unique=False)
        batch_op.create_index("ix_fulfillments_due", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fulfillments", schema=None) as batch_op:
        batch_op.drop_index("ix_fulfillments_due")
        batch_op.drop_index("ix_fulfillments_deliver")

    op.drop_table("fulfillments")
