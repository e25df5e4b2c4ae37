"""Tenants get a time zone: daily buckets of their time series end at their midnight.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``tenants.timezone``: an IANA name, or NULL for the hub's time zone setting."""
    op.add_column("tenants", sa.Column("timezone", sa.String(64)))


def downgrade() -> None:
    """Drop it again."""
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("timezone")
