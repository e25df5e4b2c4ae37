"""Tables of webhooks: a tenant's endpoints and their deliveries.

Declared on the store's shared ``metadata`` so that migration 0006 and the tests see one schema.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from smartpole.store.schema import metadata

__all__ = ["webhook_deliveries", "webhooks"]

webhooks = Table(
    "webhooks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("url", String(2000), nullable=False),
    Column("secret", String(200), nullable=False),
    Column("enabled", Boolean, nullable=False, server_default="1"),
    Column("created", BigInteger, nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_webhooks_tenant_name"),
)

# status: pending (to be tried at ``next_ts``), delivered, failed (gave up)
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("webhook_id", Integer, ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("event", String(64), nullable=False),
    Column("body", Text, nullable=False),  # JSON text, exactly the signed bytes
    Column("status", String(16), nullable=False),
    Column("attempts", SmallInteger, nullable=False, server_default="0"),
    Column("last_code", SmallInteger),
    Column("last_error", String(500)),
    Column("created", BigInteger, nullable=False),
    Column("next_ts", BigInteger, nullable=False),
    Column("done_ts", BigInteger),
    Index("ix_webhook_deliveries_hook", "webhook_id", "id"),
    Index("ix_webhook_deliveries_status_next", "status", "next_ts"),
)
