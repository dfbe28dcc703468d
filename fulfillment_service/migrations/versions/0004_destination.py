"""fulfillments keep the destination of their order

destination: JSON text, the camelCase ShippingAddress of the order's OrderCreated (recipientName, addressLines,
city, postalCode, country), which every provider call of the order is made with; NULL for an order without one,
among them every fulfillment stored before this revision.

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
    with op.batch_alter_table("fulfillments", schema=None) as batch_op:
        batch_op.add_column(sa.Column("destination", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fulfillments", schema=None) as batch_op:
        batch_op.drop_column("destination")
