"""Deferred derived state: marks of committed batches whose latest/rollups are not yet written.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``derived_pending``."""
    op.create_table(
        "derived_pending",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("min_ts", sa.BigInteger, nullable=False),
        sa.Column("max_ts", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_derived_pending_node", "derived_pending", ["node", "id"])


def downgrade() -> None:
    """Drop ``derived_pending``."""
    op.drop_table("derived_pending")
