"""The digital base: tenants, API keys, poles, devices, attributes, readings, rollups.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the 0.1.0 schema."""
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("is_operator", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "tenant_id",
            sa.Integer,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("revoked", sa.BigInteger),
    )
    op.create_table(
        "poles",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("code", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("height_m", sa.Float),
        sa.Column("district", sa.String(100), nullable=False, server_default=""),
        sa.Column("road", sa.String(200), nullable=False, server_default=""),
        sa.Column("installed", sa.Date),
        sa.Column("created", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_poles_lat_lon", "poles", ["lat", "lon"])
    op.create_index("ix_poles_district_road", "poles", ["district", "road"])
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("model", sa.String(200), nullable=False, server_default=""),
        sa.Column("owner_id", sa.Integer, sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("pole_id", sa.Integer, sa.ForeignKey("poles.id", ondelete="SET NULL")),
        sa.Column("port", sa.SmallInteger),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("token_hint", sa.String(8), nullable=False),
        sa.Column("last_seen", sa.BigInteger),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("pole_id", "port", name="uq_devices_pole_port"),
    )
    op.create_index("ix_devices_pole", "devices", ["pole_id"])
    op.create_index("ix_devices_owner_kind", "devices", ["owner_id", "kind"])
    op.create_table(
        "attributes",
        sa.Column(
            "device_id",
            sa.Integer,
            sa.ForeignKey("devices.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("scope", sa.String(8), primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "readings",
        sa.Column("device_id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("ts", sa.BigInteger, primary_key=True),
        sa.Column("vtype", sa.SmallInteger, nullable=False),
        sa.Column("num", sa.Float),
        sa.Column("txt", sa.Text),
        sqlite_with_rowid=False,
        postgresql_partition_by="RANGE (ts)",
    )
    op.create_table(
        "latest",
        sa.Column("device_id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("vtype", sa.SmallInteger, nullable=False),
        sa.Column("num", sa.Float),
        sa.Column("txt", sa.Text),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "rollups",
        sa.Column("device_id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("hour", sa.BigInteger, primary_key=True),
        sa.Column("cnt", sa.BigInteger, nullable=False),
        sa.Column("sum", sa.Float, nullable=False),
        sa.Column("min", sa.Float, nullable=False),
        sa.Column("max", sa.Float, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("device_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("quality", sa.SmallInteger, nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("received", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_quarantine_device_ts", "quarantine", ["device_id", "ts"])
    op.create_table(
        "retention",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("days", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    """Drop everything 0001 created."""
    for name in (
        "retention",
        "quarantine",
        "rollups",
        "latest",
        "readings",
        "attributes",
        "devices",
        "poles",
        "api_keys",
        "tenants",
    ):
        op.drop_table(name)
