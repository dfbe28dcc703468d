"""orders remember when their OrderCreated is next due to be published again

republish_count: how often it was published again; republish_due_at (epoch microseconds, UTC): not before
then. The index on (status, updated_at) finds orders without progress without reading the others.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("republish_count", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("republish_due_at", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_orders_status_updated", ["status", "updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_status_updated")
        batch_op.drop_column("republish_due_at")
        batch_op.drop_column("republish_count")
