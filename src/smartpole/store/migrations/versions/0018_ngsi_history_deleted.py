"""NGSI-LD: the history keeps when an attribute was deleted (``timeproperty=deletedAt``).

Revision ID: 0018
Revises: 0017
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``ngsi_history.deleted``: an instance recording a deletion (at ``observed``)."""
    op.add_column(
        "ngsi_history",
        sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    """Drop the deletions and the column."""
    op.execute("DELETE FROM ngsi_history WHERE deleted")
    with op.batch_alter_table("ngsi_history") as batch:
        batch.drop_column("deleted")
