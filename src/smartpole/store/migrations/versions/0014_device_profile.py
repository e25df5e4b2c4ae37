"""A device's profile: the ThingsBoard device type a gateway created it with.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``devices.profile`` (nullable text: the type name as the gateway sent it)."""
    op.add_column("devices", sa.Column("profile", sa.String(200)))


def downgrade() -> None:
    """Drop ``devices.profile``."""
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("profile")
