"""Work orders, maintenance teams and the hub's model snapshots.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``teams``, ``work_orders``, ``work_order_history`` and ``hub_snapshots``."""
    op.create_table(
        "teams",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "tenant_id",
            sa.Integer,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False, server_default=""),
        sa.Column("contact", sa.String(200), nullable=False, server_default=""),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_teams_tenant_name"),
    )
    op.create_table(
        "work_orders",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "tenant_id",
            sa.Integer,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("alarm_id", sa.Integer),
        sa.Column("device_id", sa.Integer, sa.ForeignKey("devices.id", ondelete="SET NULL")),
        sa.Column("pole_id", sa.Integer, sa.ForeignKey("poles.id", ondelete="SET NULL")),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("team_id", sa.Integer, sa.ForeignKey("teams.id", ondelete="SET NULL")),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.Column("deadline", sa.BigInteger, nullable=False),
        sa.Column("resolved", sa.BigInteger),
        sa.Column("closed", sa.BigInteger),
        sa.Column("resolve_suggested", sa.Boolean, nullable=False, server_default="0"),
        sa.Column("overdue_since", sa.BigInteger),
    )
    op.create_index("ix_work_orders_tenant_status", "work_orders", ["tenant_id", "status"])
    op.create_index("ix_work_orders_status_deadline", "work_orders", ["status", "deadline"])
    op.create_index("ix_work_orders_alarm", "work_orders", ["alarm_id"])
    op.create_index("ix_work_orders_team", "work_orders", ["team_id"])
    op.create_table(
        "work_order_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "work_order_id",
            sa.Integer,
            sa.ForeignKey("work_orders.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16)),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("ix_work_order_history_order", "work_order_history", ["work_order_id", "id"])
    op.create_table(
        "hub_snapshots",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    """Drop the tables of work orders and snapshots."""
    op.drop_table("hub_snapshots")
    op.drop_table("work_order_history")
    op.drop_table("work_orders")
    op.drop_table("teams")
