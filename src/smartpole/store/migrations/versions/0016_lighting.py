"""Lighting: a tenant's programs, groups, holidays and calendar entries, overrides, settings.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def tenant_fk() -> sa.ForeignKey:
    """A fresh foreign key to the owning tenant (a key object belongs to one column)."""
    return sa.ForeignKey("tenants.id", ondelete="CASCADE")


def upgrade() -> None:
    """Add ``lighting_items``, ``lighting_overrides`` and ``lighting_settings``."""
    op.create_table(
        "lighting_items",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Integer, tenant_fk(), nullable=False),
        sa.Column("part", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("tenant_id", "part", "name", name="uq_lighting_items_tenant_part_name"),
    )
    op.create_table(
        "lighting_overrides",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Integer, tenant_fk(), nullable=False),
        sa.Column("group_name", sa.String(128), nullable=False),
        sa.Column("lamps", sa.Text, nullable=True),
        sa.Column("level", sa.Float, nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("until_ms", sa.BigInteger, nullable=False),
        sa.Column("reason", sa.String(500), nullable=False, server_default=""),
        sa.Column("by_whom", sa.String(200), nullable=False, server_default=""),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "ix_lighting_overrides_tenant_until", "lighting_overrides", ["tenant_id", "until_ms"]
    )
    op.create_table(
        "lighting_settings",
        sa.Column("tenant_id", sa.Integer, tenant_fk(), primary_key=True),
        sa.Column("tariff", sa.Text, nullable=False),
        sa.Column("grid_kg_per_kwh", sa.Float, nullable=False),
        sa.Column("grid_source", sa.String(500), nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("lighting_settings")
    op.drop_table("lighting_overrides")
    op.drop_table("lighting_items")
