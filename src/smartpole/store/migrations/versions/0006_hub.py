"""The hub: rules, rule state, alarms, webhooks.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ACTIVE_WHERE = "status IN ('active_unack', 'active_ack')"


def tenant_fk() -> sa.ForeignKey:
    """A fresh foreign key to the owning tenant (a key object belongs to one column)."""
    return sa.ForeignKey("tenants.id", ondelete="CASCADE")


def upgrade() -> None:
    """Add ``alarms``, ``alarm_tenants``, ``alarm_comments``, ``rules``, ``rule_state``,
    ``webhooks`` and ``webhook_deliveries``."""
    op.create_table(
        "alarms",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Integer, tenant_fk(), nullable=False),
        sa.Column("originator_type", sa.String(16), nullable=False),
        sa.Column("originator_id", sa.Integer, nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("pole_id", sa.Integer),
        sa.Column("first_ts", sa.BigInteger, nullable=False),
        sa.Column("last_ts", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("assignee", sa.String(200)),
        sa.Column("acked_ts", sa.BigInteger),
        sa.Column("cleared_ts", sa.BigInteger),
    )
    op.create_index(
        "uq_alarms_active",
        "alarms",
        ["originator_type", "originator_id", "type"],
        unique=True,
        sqlite_where=sa.text(ACTIVE_WHERE),
        postgresql_where=sa.text(ACTIVE_WHERE),
    )
    op.create_index("ix_alarms_status_last", "alarms", ["status", "last_ts"])
    op.create_index("ix_alarms_pole", "alarms", ["pole_id"])
    op.create_table(
        "alarm_tenants",
        sa.Column(
            "alarm_id",
            sa.Integer,
            sa.ForeignKey("alarms.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("tenant_id", sa.Integer, tenant_fk(), primary_key=True),
    )
    op.create_index("ix_alarm_tenants_tenant", "alarm_tenants", ["tenant_id", "alarm_id"])
    op.create_table(
        "alarm_comments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "alarm_id", sa.Integer, sa.ForeignKey("alarms.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("author", sa.String(200), nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_alarm_comments_alarm", "alarm_comments", ["alarm_id", "id"])
    op.create_table(
        "rules",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Integer, tenant_fk(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="1"),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_rules_tenant_name"),
    )
    op.create_table(
        "rule_state",
        sa.Column(
            "rule_id", sa.Integer, sa.ForeignKey("rules.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("device_id", sa.Integer, primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("updated", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "webhooks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Integer, tenant_fk(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("secret", sa.String(200), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default="1"),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_webhooks_tenant_name"),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "webhook_id",
            sa.Integer,
            sa.ForeignKey("webhooks.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("last_code", sa.SmallInteger),
        sa.Column("last_error", sa.String(500)),
        sa.Column("created", sa.BigInteger, nullable=False),
        sa.Column("next_ts", sa.BigInteger, nullable=False),
        sa.Column("done_ts", sa.BigInteger),
    )
    op.create_index("ix_webhook_deliveries_hook", "webhook_deliveries", ["webhook_id", "id"])
    op.create_index(
        "ix_webhook_deliveries_status_next", "webhook_deliveries", ["status", "next_ts"]
    )


def downgrade() -> None:
    """Drop the hub's tables."""
    for name in (
        "webhook_deliveries",
        "webhooks",
        "rule_state",
        "rules",
        "alarm_comments",
        "alarm_tenants",
        "alarms",
    ):
        op.drop_table(name)
