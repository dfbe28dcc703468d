"""dead-letter spool

The table is dead_letter_spool_0001 of the shared `dead_letter_spool` branch; this revision makes the service
depend on it.

Revision ID: 0003
Revises: 0002
"""

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = "dead_letter_spool_0001"


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
