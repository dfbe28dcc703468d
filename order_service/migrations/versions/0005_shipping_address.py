"""orders keep the shipping address they were placed with

shipping_address: JSON text, the contract's camelCase ShippingAddress (recipientName, addressLines, city,
postalCode, country); NULL for the orders placed without one, among them every order stored before this revision.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("shipping_address", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("shipping_address")
