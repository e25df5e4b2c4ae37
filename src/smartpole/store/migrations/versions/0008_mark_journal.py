"""Marks journal their batch's hourly partials; rollups are never recounted from readings.

Marks left by a node that crashed before the upgrade carry no journal: they are settled here
the way the old recovery did (rollups of the hours they touch recounted, latest state
recomputed), which is exact because no node runs during ``smartpole db upgrade``. The table is
then made anew: with ``journal``, and on SQLite with ``AUTOINCREMENT`` so that a deleted mark's
id is never handed out again (a writer tells its marks from adopted ones by id).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

HOUR_MS = 3_600_000
RECOUNT = sa.text(
    "INSERT INTO rollups (device_id, key, hour, cnt, sum, min, max)"
    " SELECT device_id, key, (ts / 3600000) * 3600000, COUNT(*), SUM(num), MIN(num), MAX(num)"
    " FROM readings WHERE ts >= :lo AND ts < :hi AND vtype <= 1"
    " GROUP BY device_id, key, (ts / 3600000) * 3600000"
)
NEWEST = sa.text(
    "INSERT INTO latest (device_id, key, ts, vtype, num, txt)"
    " SELECT r.device_id, r.key, r.ts, r.vtype, r.num, r.txt FROM readings r WHERE r.ts >= :lo"
    " AND NOT EXISTS (SELECT 1 FROM readings n WHERE n.device_id = r.device_id"
    " AND n.key = r.key AND n.ts > r.ts)"
    " ON CONFLICT (device_id, key) DO UPDATE SET ts = excluded.ts, vtype = excluded.vtype,"
    " num = excluded.num, txt = excluded.txt WHERE excluded.ts > latest.ts"
)


def _settle_legacy_marks() -> None:
    """Recount what marks without a journal stand for, then drop them."""
    conn = op.get_bind()
    marks = conn.execute(sa.text("SELECT min_ts, max_ts FROM derived_pending")).all()
    for lo, hi in marks:
        lo, hi = lo - lo % HOUR_MS, hi - hi % HOUR_MS + HOUR_MS
        conn.execute(
            sa.text("DELETE FROM rollups WHERE hour >= :lo AND hour < :hi"), {"lo": lo, "hi": hi}
        )
        conn.execute(RECOUNT, {"lo": lo, "hi": hi})
    if marks:
        conn.execute(NEWEST, {"lo": min(lo for lo, _ in marks)})


def _create(with_journal: bool) -> None:
    columns: list[sa.schema.SchemaItem] = [
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("node", sa.String(64), nullable=False),
        sa.Column("min_ts", sa.BigInteger, nullable=False),
        sa.Column("max_ts", sa.BigInteger, nullable=False),
    ]
    if with_journal:
        columns.append(sa.Column("journal", sa.LargeBinary, nullable=False))
    op.create_table("derived_pending", *columns, sqlite_autoincrement=with_journal)
    op.create_index("ix_derived_pending_node", "derived_pending", ["node", "id"])


def upgrade() -> None:
    """Settle journal-less marks; recreate ``derived_pending`` with ``journal``."""
    _settle_legacy_marks()
    op.drop_table("derived_pending")
    _create(with_journal=True)


def downgrade() -> None:
    """Back to marks without journals (pending marks are recounted by the old recovery)."""
    conn = op.get_bind()
    marks = conn.execute(sa.text("SELECT node, min_ts, max_ts FROM derived_pending")).all()
    op.drop_table("derived_pending")
    _create(with_journal=False)
    for node, lo, hi in marks:
        conn.execute(
            sa.text("INSERT INTO derived_pending (node, min_ts, max_ts) VALUES (:n, :lo, :hi)"),
            {"n": node, "lo": lo, "hi": hi},
        )
