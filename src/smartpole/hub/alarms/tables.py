"""Tables of alarms: the alarms, who sees them, their comments.

Declared on the store's shared ``metadata`` so that migrations 0006 and 0010 and the tests see
one schema.
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
    text,
)

from smartpole.store.schema import metadata

__all__ = ["ACTIVE_WHERE", "alarm_comments", "alarm_tenants", "alarms"]

# The one place that says which statuses are "active": the partial unique index and the
# upsert's conflict target must use the very same predicate.
ACTIVE_WHERE = "status IN ('active_unack', 'active_ack')"

alarms = Table(
    "alarms",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("originator_type", String(16), nullable=False),
    Column("originator_id", Integer, nullable=False),
    Column("type", String(128), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("details", Text, nullable=False),  # JSON text
    Column("pole_id", Integer),  # the pole the originator is on, for propagation to the pole
    Column("first_ts", BigInteger, nullable=False),
    Column("last_ts", BigInteger, nullable=False),
    Column("count", Integer, nullable=False),
    Column("assignee", String(200)),
    Column("acked_ts", BigInteger),
    Column("cleared_ts", BigInteger),
    # The alarm this one is grouped under (a device's offline alarm under its pole's): one
    # problem shows as one root alarm, its children listed with it. Migration 0010.
    Column("root_id", Integer),
    # A latching alarm is not cleared by its rule until someone acknowledged it; the rule's
    # clear waits in ``released_ts`` and takes effect with the acknowledgement.
    Column("latch", Boolean, nullable=False, server_default="0"),
    Column("released_ts", BigInteger),
    Index(
        "uq_alarms_active",
        "originator_type",
        "originator_id",
        "type",
        unique=True,
        sqlite_where=text(ACTIVE_WHERE),
        postgresql_where=text(ACTIVE_WHERE),
    ),
    Index("ix_alarms_status_last", "status", "last_ts"),
    Index("ix_alarms_pole", "pole_id"),
    Index("ix_alarms_root", "root_id"),
)

# Every tenant an alarm is propagated to (always including the owner of its originator).
alarm_tenants = Table(
    "alarm_tenants",
    metadata,
    Column("alarm_id", Integer, ForeignKey("alarms.id", ondelete="CASCADE"), primary_key=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_alarm_tenants_tenant", "tenant_id", "alarm_id"),
)

alarm_comments = Table(
    "alarm_comments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alarm_id", Integer, ForeignKey("alarms.id", ondelete="CASCADE"), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("author", String(200), nullable=False),
    Column("text", Text, nullable=False),
    Index("ix_alarm_comments_alarm", "alarm_id", "id"),
)
