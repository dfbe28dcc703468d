"""fulfillments remember a cancellation and whether a provider call is under way

call_started_at (epoch seconds): a provider call for the order started then and its outcome is not recorded
yet (NULL: none); cancel_requested_at (epoch seconds): an OrderCancelled was processed then; cancel_refused:
why it was refused (the order had shipped).

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fulfillments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("call_started_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("cancel_requested_at", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("cancel_refused", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fulfillments", schema=None) as batch_op:
        batch_op.drop_column("cancel_refused")
        batch_op.drop_column("cancel_requested_at")
        batch_op.drop_column("call_started_at")
