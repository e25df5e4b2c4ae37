"""NGSI-LD: entities created through the NGSI-LD API, their types and history.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the entities, their types and history, subscriptions and their notifications."""
    op.create_table(
        "ngsi_entities",
        sa.Column(
            "tenant_id",
            sa.Integer,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("entity_id", sa.String(256), primary_key=True),
        sa.Column("types", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=True),
        sa.Column("attrs", sa.Text, nullable=False),
        sa.Column("min_lon", sa.Float, nullable=True),
        sa.Column("min_lat", sa.Float, nullable=True),
        sa.Column("max_lon", sa.Float, nullable=True),
        sa.Column("max_lat", sa.Float, nullable=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("modified", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ngsi_entities_tenant_lon", "ngsi_entities", ["tenant_id", "min_lon"])
    op.create_table(
        "ngsi_entity_types",
        sa.Column("tenant_id", sa.Integer, primary_key=True),
        sa.Column("type", sa.String(512), primary_key=True),
        sa.Column("entity_id", sa.String(256), primary_key=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "entity_id"],
            ["ngsi_entities.tenant_id", "ngsi_entities.entity_id"],
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "ngsi_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("entity_id", sa.String(256), nullable=False),
        sa.Column("attr", sa.String(512), nullable=False),
        sa.Column("observed", sa.BigInteger, nullable=False),
        sa.Column("shown", sa.Text, nullable=True),
        sa.Column("body", sa.Text, nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id", "entity_id"],
            ["ngsi_entities.tenant_id", "ngsi_entities.entity_id"],
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_ngsi_history_entity_attr_observed",
        "ngsi_history",
        ["tenant_id", "entity_id", "attr", "observed"],
    )

    op.create_table(
        "ngsi_subscriptions",
        sa.Column(
            "tenant_id",
            sa.Integer,
            sa.ForeignKey("tenants.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("id", sa.String(256), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("context", sa.Text, nullable=True),
        sa.Column("times_sent", sa.Integer, nullable=False, server_default="0"),
        sa.Column("times_failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_notification", sa.BigInteger, nullable=True),
        sa.Column("last_success", sa.BigInteger, nullable=True),
        sa.Column("last_failure", sa.BigInteger, nullable=True),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("modified", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "ngsi_notifications",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Integer, nullable=False),
        sa.Column("subscription_id", sa.String(256), nullable=False),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "subscription_id"],
            ["ngsi_subscriptions.tenant_id", "ngsi_subscriptions.id"],
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_ngsi_notifications_node_subscription",
        "ngsi_notifications",
        ["node", "tenant_id", "subscription_id", "id"],
    )


def downgrade() -> None:
    """Drop ``ngsi_entity_types`` and ``ngsi_entities``."""
    op.drop_table("ngsi_notifications")
    op.drop_table("ngsi_subscriptions")
    op.drop_table("ngsi_history")
    op.drop_table("ngsi_entity_types")
    op.drop_table("ngsi_entities")
