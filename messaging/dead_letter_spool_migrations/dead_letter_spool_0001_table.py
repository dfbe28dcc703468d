"""dead-letter spool table

The first revision of the shared `dead_letter_spool` branch (the table of messaging.dead_letter_spool). Services
depend on it from their own migrations (`depends_on`).

Revision ID: dead_letter_spool_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "dead_letter_spool_0001"
down_revision = None
branch_labels = ("dead_letter_spool",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dead_letter_spool",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("dead_letter_topic", sa.String(length=255), nullable=False),
        sa.Column("source_topic", sa.String(length=255), nullable=False),
        sa.Column("source_partition", sa.Integer(), nullable=False),
        sa.Column("source_offset", sa.BigInteger(), nullable=False),
        sa.Column("record_key", sa.LargeBinary(), nullable=True),
        sa.Column("record_value", sa.LargeBinary(), nullable=True),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("spooled_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_topic", "source_partition", "source_offset", name="uq_dead_letter_spool_source"),
    )


def downgrade() -> None:
    op.drop_table("dead_letter_spool")
