"""outbox claims name their owner

The change itself is outbox_0002 of the shared `outbox` branch; this revision stays so that databases stamped
0002 keep their place in the history.

Revision ID: 0002
Revises: 0001
"""

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = "outbox_0002"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
