"""Alarm grouping under a root alarm, and latching alarms.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``alarms.root_id``, ``alarms.latch`` and ``alarms.released_ts``."""
    # No foreign key on root_id (as on pole_id): SQLite cannot add one to an existing table,
    # and a purged root only leaves its children ungrouped.
    op.add_column("alarms", sa.Column("root_id", sa.Integer))
    op.add_column("alarms", sa.Column("latch", sa.Boolean, nullable=False, server_default="0"))
    op.add_column("alarms", sa.Column("released_ts", sa.BigInteger))
    op.create_index("ix_alarms_root", "alarms", ["root_id"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_alarms_root", table_name="alarms")
    with op.batch_alter_table("alarms") as batch:
        batch.drop_column("released_ts")
        batch.drop_column("latch")
        batch.drop_column("root_id")
