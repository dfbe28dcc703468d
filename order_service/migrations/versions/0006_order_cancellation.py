"""orders remember a cancellation a client asked for

cancel_requested_at (epoch microseconds, UTC): when it was asked for (NULL: never); cancel_reason: the client's
reason; cancel_refused: why the Fulfillment Service refused it (the order had shipped), once it did.

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
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancel_requested_at", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("cancel_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("cancel_refused", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("cancel_refused")
        batch_op.drop_column("cancel_reason")
        batch_op.drop_column("cancel_requested_at")
