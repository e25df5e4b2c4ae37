"""Commands to devices (server-side RPC) and their lifecycle.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``commands``."""
    op.create_table(
        "commands",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("request_id", sa.Integer, nullable=False),
        sa.Column("method", sa.String(128), nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("oneway", sa.Boolean, nullable=False),
        sa.Column("persistent", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("timeout", sa.Integer, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("expires", sa.BigInteger, nullable=False),
        sa.Column("sent", sa.BigInteger),
        sa.Column("delivered", sa.BigInteger),
        sa.Column("completed", sa.BigInteger),
        sa.Column("response", sa.Text),
        sa.Column("error", sa.String(500)),
        sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
        sa.UniqueConstraint("device_id", "request_id", name="uq_commands_device_request"),
    )
    op.create_index("ix_commands_device_status", "commands", ["device_id", "status"])
    op.create_index("ix_commands_status_expires", "commands", ["status", "expires"])


def downgrade() -> None:
    """Drop ``commands``."""
    op.drop_table("commands")
