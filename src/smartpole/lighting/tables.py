"""Tables of lighting: a tenant's document as rows by name, its overrides and energy settings.

Declared on the store's shared ``metadata`` so that migration 0016 and the tests see one schema.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from smartpole.store.schema import metadata

__all__ = ["lighting_items", "lighting_overrides", "lighting_settings"]

# One program, group, holiday calendar or calendar entry of a tenant's lighting document, kept
# as its body in the document's shape (``documents.lighting_body``), in the order written.
lighting_items = Table(
    "lighting_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("part", String(16), nullable=False),  # programs, groups, holidays, calendar
    Column("name", String(128), nullable=False),
    Column("position", Integer, nullable=False),
    Column("body", Text, nullable=False),  # JSON text
    Column("updated", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "part", "name", name="uq_lighting_items_tenant_part_name"),
)

lighting_overrides = Table(
    "lighting_overrides",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("group_name", String(128), nullable=False),  # "" for a hold of listed lamps
    Column("lamps", Text, nullable=True),  # JSON list of lamp names (a rule's hold), or NULL
    Column("level", Float, nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("until_ms", BigInteger, nullable=False),
    Column("reason", String(500), nullable=False, server_default=""),
    Column("by_whom", String(200), nullable=False, server_default=""),
    Column("created", BigInteger, nullable=False),
    Index("ix_lighting_overrides_tenant_until", "tenant_id", "until_ms"),
)

lighting_settings = Table(
    "lighting_settings",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("tariff", Text, nullable=False),  # JSON text: Tariff.parse's document
    Column("grid_kg_per_kwh", Float, nullable=False),
    Column("grid_source", String(500), nullable=False),
    Column("updated", BigInteger, nullable=False),
)
