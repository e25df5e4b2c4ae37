"""Token and provisioning-secret hints hold a hash prefix, never the secret's own characters.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# The same rule as registry.access.token_hint: the first 6 hex digits of the token's SHA-256,
# which devices.token_hash already holds (a migration must not import the live code).
HINT_CHARS = 6


def upgrade() -> None:
    """Replace every stored hint (the secret's first 4 characters) by a prefix of its hash."""
    op.execute(sa.text(f"UPDATE devices SET token_hint = substr(token_hash, 1, {HINT_CHARS})"))
    op.execute(
        sa.text(f"UPDATE provision_profiles SET secret_hint = substr(secret_hash, 1, {HINT_CHARS})")
    )


def downgrade() -> None:
    """Nothing to undo: the old hints held token characters and cannot (and must not) return."""
