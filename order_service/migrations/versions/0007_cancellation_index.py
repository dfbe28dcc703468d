"""orders with a cancellation are found by an index of their own

The stale-order query also looks for orders whose cancellation is still undecided, whatever their status.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_orders_cancel_requested", "orders", ["cancel_requested_at"])


def downgrade() -> None:
    op.drop_index("ix_orders_cancel_requested", table_name="orders")
