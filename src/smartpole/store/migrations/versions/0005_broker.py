"""Broker credentials (external MQTT broker mode): the Mosquitto hash of each device's token.

Existing devices get none (only the SHA-256 of their token is known): the broker file
generator lists them as skipped until their token is rotated.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``broker_credentials``."""
    op.create_table(
        "broker_credentials",
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("hash", sa.String(200), nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    """Drop ``broker_credentials``."""
    op.drop_table("broker_credentials")
