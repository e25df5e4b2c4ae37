"""Consents between tenants that share a pole: gateway bindings and mount grants.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def _audit() -> list[sa.Column[object]]:
    return [
        sa.Column("granted_by", sa.Integer, nullable=False),
        sa.Column("granted_by_name", sa.String(64), nullable=False),
        sa.Column("granted_key", sa.Integer),
        sa.Column("granted", sa.BigInteger, nullable=False),
        sa.Column("revoked_by", sa.Integer),
        sa.Column("revoked_by_name", sa.String(64)),
        sa.Column("revoked_key", sa.Integer),
        sa.Column("revoked", sa.BigInteger),
    ]


def upgrade() -> None:
    """Add ``gateway_bindings`` and ``mount_grants``."""
    op.create_table(
        "gateway_bindings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "gateway_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            nullable=False,
        ),
        *_audit(),
    )
    op.create_index(
        "uq_gateway_bindings_active",
        "gateway_bindings",
        ["device_id", "gateway_id"],
        unique=True,
        sqlite_where=sa.text("revoked IS NULL"),
        postgresql_where=sa.text("revoked IS NULL"),
    )
    op.create_index("ix_gateway_bindings_gateway", "gateway_bindings", ["gateway_id"])
    op.create_table(
        "mount_grants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "pole_id", sa.Integer, sa.ForeignKey("poles.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "tenant_id",
            sa.Integer,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        *_audit(),
    )
    op.create_index(
        "uq_mount_grants_active",
        "mount_grants",
        ["pole_id", "tenant_id"],
        unique=True,
        sqlite_where=sa.text("revoked IS NULL"),
        postgresql_where=sa.text("revoked IS NULL"),
    )
    op.create_index("ix_mount_grants_tenant", "mount_grants", ["tenant_id"])


def downgrade() -> None:
    """Drop ``mount_grants`` and ``gateway_bindings``."""
    op.drop_table("mount_grants")
    op.drop_table("gateway_bindings")
