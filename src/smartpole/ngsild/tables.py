"""Tables of NGSI-LD: the entities other systems create through the API, and their history.

Declared on the store's shared ``metadata`` so that migrations 0017-0018 and the tests see one
schema. smartpole's own poles and devices are not copied here: they are read from the registry
and the store as they are.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    false,
)

from smartpole.store.schema import metadata

__all__ = [
    "ngsi_entities",
    "ngsi_entity_types",
    "ngsi_history",
    "ngsi_notifications",
    "ngsi_subscriptions",
]

ngsi_entities = Table(
    "ngsi_entities",
    metadata,
    Column(
        "tenant_id",
        Integer,
        ForeignKey("tenants.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("entity_id", String(256), primary_key=True),
    Column("types", Text, nullable=False),  # JSON list of every type's IRI
    Column("scopes", Text, nullable=True),  # JSON list of scope paths
    Column("attrs", Text, nullable=False),  # JSON: attribute IRI -> instances (entities.py)
    # The bounding box of the ``location`` GeoProperty, for geo-queries (None: no location).
    Column("min_lon", Float, nullable=True),
    Column("min_lat", Float, nullable=True),
    Column("max_lon", Float, nullable=True),
    Column("max_lat", Float, nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("modified", BigInteger, nullable=False),
    Index("ix_ngsi_entities_tenant_lon", "tenant_id", "min_lon"),
)

# Every type of every entity (an entity may have several): what a query by type reads.
ngsi_entity_types = Table(
    "ngsi_entity_types",
    metadata,
    Column("tenant_id", Integer, primary_key=True),
    Column("type", String(512), primary_key=True),
    Column("entity_id", String(256), primary_key=True),
    ForeignKeyConstraint(
        ["tenant_id", "entity_id"],
        ["ngsi_entities.tenant_id", "ngsi_entities.entity_id"],
        ondelete="CASCADE",
    ),
)

# Every instance an attribute ever had (the temporal API): one row per change, by the time it
# was observed (observedAt, else when it was written).
ngsi_history = Table(
    "ngsi_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # the instanceId
    Column("tenant_id", Integer, nullable=False),
    Column("entity_id", String(256), nullable=False),
    Column("attr", String(512), nullable=False),  # the attribute's IRI
    Column("observed", BigInteger, nullable=False),
    # JSON: the instance as the temporal API shows it (temporal.instance_json); with
    # sub-attributes (whose names depend on the caller's @context), None, and ``body`` holds it
    # whole (entities.Attribute.to_json)
    Column("shown", Text, nullable=True),
    Column("body", Text, nullable=True),
    # an instance recording the attribute's deletion (NGSI-LD Null, ``deletedAt`` the time in
    # ``observed``), read only with ``timeproperty=deletedAt``
    Column("deleted", Boolean, nullable=False, server_default=false()),
    ForeignKeyConstraint(
        ["tenant_id", "entity_id"],
        ["ngsi_entities.tenant_id", "ngsi_entities.entity_id"],
        ondelete="CASCADE",
    ),
    Index("ix_ngsi_history_entity_attr_observed", "tenant_id", "entity_id", "attr", "observed"),
)

# Subscriptions: what they ask for (``body``, names expanded) with the @context they were made
# with, and the truth about their notifications.
ngsi_subscriptions = Table(
    "ngsi_subscriptions",
    metadata,
    Column("tenant_id", Integer, ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True),
    Column("id", String(256), primary_key=True),
    Column("body", Text, nullable=False),  # JSON (subscriptions.Subscription.to_json)
    Column("context", Text, nullable=True),  # JSON: the @context it was made with (None: core)
    Column("times_sent", Integer, nullable=False, server_default="0"),
    Column("times_failed", Integer, nullable=False, server_default="0"),
    Column("last_notification", BigInteger, nullable=True),
    Column("last_success", BigInteger, nullable=True),
    Column("last_failure", BigInteger, nullable=True),
    Column("created", BigInteger, nullable=False),
    Column("modified", BigInteger, nullable=False),
)

# Notifications waiting to be delivered (an outbox): one row per matching change, the entity as
# the subscription shows it; deleted once its receiver answered 2xx.
ngsi_notifications = Table(
    "ngsi_notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant_id", Integer, nullable=False),
    Column("subscription_id", String(256), nullable=False),
    Column("node", String(64), nullable=False),  # the node that matched it delivers it
    Column("body", Text, nullable=False),  # JSON: the entity as the notification carries it
    Column("created", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    ForeignKeyConstraint(
        ["tenant_id", "subscription_id"],
        ["ngsi_subscriptions.tenant_id", "ngsi_subscriptions.id"],
        ondelete="CASCADE",
    ),
    Index("ix_ngsi_notifications_node_subscription", "node", "tenant_id", "subscription_id", "id"),
)
