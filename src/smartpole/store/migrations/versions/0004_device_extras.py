"""Device credentials, provisioning, claiming and firmware (device API extras).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``device_credentials``, ``provision_profiles``, ``device_claims``, ``firmware``
    and ``device_firmware``."""
    op.create_table(
        "device_credentials",
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("client_id", sa.String(128), nullable=False, server_default=""),
        sa.Column("username", sa.String(128), nullable=False, server_default=""),
        sa.Column("password_hash", sa.String(200)),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("client_id", "username", name="uq_device_credentials_client_user"),
    )
    op.create_table(
        "provision_profiles",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "tenant_id",
            sa.Integer,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(128), nullable=False, unique=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("secret_hint", sa.String(8), nullable=False),
        sa.Column("create_new", sa.Boolean, nullable=False),
        sa.Column("pre_registered", sa.Boolean, nullable=False),
        sa.Column("pole_id", sa.Integer, sa.ForeignKey("poles.id", ondelete="SET NULL")),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "device_claims",
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("expires", sa.BigInteger, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "firmware",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "tenant_id",
            sa.Integer,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("checksum_algorithm", sa.String(16), nullable=False),
        sa.Column("checksum", sa.String(128), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("tenant_id", "title", "version", name="uq_firmware_title_version"),
    )
    op.create_table(
        "device_firmware",
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "firmware_id",
            sa.Integer,
            sa.ForeignKey("firmware.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("assigned", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    """Drop the five tables."""
    for table in (
        "device_firmware",
        "firmware",
        "device_claims",
        "provision_profiles",
        "device_credentials",
    ):
        op.drop_table(table)
