"""Telemetry and attribute keys of up to 255 characters (any UTF-8 key ThingsBoard takes).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# The tables whose ``key`` column names a telemetry key or an attribute, and the widths before
# and after (model.types.MAX_KEY_LENGTH; a migration must not import the live code).
KEY_TABLES = ("attributes", "readings", "latest", "rollups", "quarantine", "retention")
OLD_LENGTH, NEW_LENGTH = 128, 255


def _key_length(length: int) -> None:
    # SQLite does not enforce VARCHAR lengths: nothing to change there. On PostgreSQL, widening
    # a varchar rewrites neither the table nor its indexes, and the partitions of ``readings``
    # follow their parent.
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in KEY_TABLES:
        op.alter_column(table, "key", type_=sa.String(length))


def upgrade() -> None:
    """Widen every key column from 128 to 255 characters."""
    _key_length(NEW_LENGTH)


def downgrade() -> None:
    """Narrow them back; fails (and changes nothing) while a stored key is longer than 128."""
    _key_length(OLD_LENGTH)
