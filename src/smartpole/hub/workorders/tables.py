"""Tables of work orders, their history and the maintenance teams they are assigned to.

Declared on the store's one ``metadata`` so both engines and the migrations see them.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from smartpole.store.schema import metadata

__all__ = ["teams", "work_order_history", "work_orders"]

# A maintenance team of a tenant: what a work order is assigned to.
teams = Table(
    "teams",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(64), nullable=False),
    Column("title", String(200), nullable=False, server_default=""),
    Column("contact", String(200), nullable=False, server_default=""),
    Column("created", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_teams_tenant_name"),
)

# ``alarm_id`` has no foreign key on purpose: alarms are history that may be purged, a work
# order is a record that outlives them. ``overdue_since`` is set when the periodic check raised
# the order's ``work_order_overdue`` alarm, so it is raised once per overdue spell.
work_orders = Table(
    "work_orders",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("alarm_id", Integer),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="SET NULL")),
    Column("pole_id", Integer, ForeignKey("poles.id", ondelete="SET NULL")),
    Column("title", String(200), nullable=False),
    Column("description", Text, nullable=False, server_default=""),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("team_id", Integer, ForeignKey("teams.id", ondelete="SET NULL")),
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    Column("deadline", BigInteger, nullable=False),
    Column("resolved", BigInteger),
    Column("closed", BigInteger),
    Column("resolve_suggested", Boolean, nullable=False, server_default="0"),
    Column("overdue_since", BigInteger),
    Index("ix_work_orders_tenant_status", "tenant_id", "status"),
    Index("ix_work_orders_status_deadline", "status", "deadline"),
    Index("ix_work_orders_alarm", "alarm_id"),
    Index("ix_work_orders_team", "team_id"),
)

# One row per change of a work order: who, when, from which status to which, and why.
work_order_history = Table(
    "work_order_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "work_order_id",
        Integer,
        ForeignKey("work_orders.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("ts", BigInteger, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(32), nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16)),
    Column("comment", Text, nullable=False, server_default=""),
    Column("details", Text, nullable=False, server_default="{}"),  # JSON text
    Index("ix_work_order_history_order", "work_order_id", "id"),
)
