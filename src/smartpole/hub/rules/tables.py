"""Tables of rules: their bodies, and what each remembers per device.

Declared on the store's shared ``metadata`` so that migration 0006 and the tests see one schema.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from smartpole.store.schema import metadata

__all__ = ["rule_state", "rules"]

rules = Table(
    "rules",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default="1"),
    Column("body", Text, nullable=False),  # JSON text: scope, condition, actions
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_rules_tenant_name"),
)

# What a rule remembers per device between batches (since when a condition holds, last
# values, whether it fired), so that durations and rates survive a restart.
rule_state = Table(
    "rule_state",
    metadata,
    Column("rule_id", Integer, ForeignKey("rules.id", ondelete="CASCADE"), primary_key=True),
    Column("device_id", Integer, primary_key=True),
    Column("state", Text, nullable=False),  # JSON text
    Column("updated", BigInteger, nullable=False),
)
