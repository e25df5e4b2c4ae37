"""The PostgreSQL engine's write path: COPY into a staging table, one transaction per batch.

Readings are partitioned by month of ``ts``; a partition is created the first time a batch
needs it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from smartpole.store.database import Database
from smartpole.store.series import SeriesStore, WriteBatch, WriteResult

__all__ = ["PostgresSeries", "month_bounds"]

STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS stage (device_id integer, key text, ts bigint,"
    " vtype smallint, num double precision, txt text, seq integer) ON COMMIT DELETE ROWS"
)
# Only rows that were really inserted feed the rollups, so duplicates never count twice.
# ``seq`` is the row's place in the batch: of duplicates inside one batch, the first one wins.
MERGE = """
WITH ins AS (
    INSERT INTO readings (device_id, key, ts, vtype, num, txt)
    SELECT DISTINCT ON (device_id, key, ts) device_id, key, ts, vtype, num, txt FROM stage
    ORDER BY device_id, key, ts, seq
    ON CONFLICT DO NOTHING
    RETURNING device_id, key, ts, vtype, num
), roll AS (
    INSERT INTO rollups AS r (device_id, key, hour, cnt, sum, min, max)
    SELECT device_id, key, ts - ts % 3600000, count(*), sum(num), min(num), max(num)
    FROM ins WHERE vtype <= 1 GROUP BY 1, 2, 3
    ON CONFLICT (device_id, key, hour) DO UPDATE SET cnt = r.cnt + excluded.cnt,
        sum = r.sum + excluded.sum, min = least(r.min, excluded.min),
        max = greatest(r.max, excluded.max)
)
SELECT count(*) FROM ins
"""
LATEST = """
INSERT INTO latest AS l (device_id, key, ts, vtype, num, txt)
SELECT DISTINCT ON (device_id, key) device_id, key, ts, vtype, num, txt FROM stage
ORDER BY device_id, key, ts DESC, seq
ON CONFLICT (device_id, key) DO UPDATE SET ts = excluded.ts, vtype = excluded.vtype,
    num = excluded.num, txt = excluded.txt WHERE excluded.ts > l.ts
"""
TOUCH = (
    "UPDATE devices SET last_seen = v.t FROM unnest(%s::int[], %s::bigint[]) AS v(d, t)"
    " WHERE devices.id = v.d AND (devices.last_seen IS NULL OR devices.last_seen < v.t)"
)
QUARANTINE = (
    "INSERT INTO quarantine (device_id, key, ts, value, quality, reason, received)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s)"
)


def month_bounds(ts: int) -> tuple[str, int, int]:
    """Partition name and ``[lo, hi)`` in ms of the calendar month (UTC) holding ``ts``."""
    d = datetime.fromtimestamp(ts / 1000, UTC)
    lo = datetime(d.year, d.month, 1, tzinfo=UTC)
    hi = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
    return (
        f"readings_{d.year:04d}{d.month:02d}",
        int(lo.timestamp() * 1000),
        int(hi.timestamp() * 1000),
    )


class PostgresSeries(SeriesStore):
    """Time series in PostgreSQL: monthly partitions, COPY for bulk writes."""

    def __init__(self, db: Database, default_retention_days: int = 0) -> None:
        super().__init__(db, default_retention_days)
        self._conn: Any = None
        self._partitions: set[str] = set()

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self.db.engine.raw_connection()
        return self._conn.driver_connection

    def _ensure_partitions(self, cur: Any, batch: WriteBatch) -> None:
        months = {r.ts - r.ts % 86_400_000 for r in batch.readings}
        for day in months:
            name, lo, hi = month_bounds(day)
            if name in self._partitions:
                continue
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF readings"
                f" FOR VALUES FROM ({lo}) TO ({hi})"
            )
            self._partitions.add(name)

    def _write(self, batch: WriteBatch) -> WriteResult:
        conn = self._connection()
        rows = self._rows(batch.readings)
        inserted = 0
        try:
            with conn.cursor() as cur:
                if rows:
                    self._ensure_partitions(cur, batch)
                    conn.commit()  # partition DDL in its own transaction, before the batch
                    cur.execute(STAGE)
                    with cur.copy(
                        "COPY stage (device_id, key, ts, vtype, num, txt, seq) FROM STDIN"
                    ) as copy:
                        for seq, row in enumerate(rows):
                            copy.write_row((*row, seq))
                    cur.execute(MERGE)
                    inserted = cur.fetchone()[0]
                    cur.execute(LATEST)
                if batch.quarantined:
                    cur.executemany(QUARANTINE, self._quarantine_rows(batch))
                if batch.seen:
                    cur.execute(TOUCH, (list(batch.seen), list(batch.seen.values())))
            conn.commit()
        except BaseException:
            conn.rollback()
            self._partitions.clear()
            raise
        return WriteResult(inserted, len(rows) - inserted, len(batch.quarantined))

    def close(self) -> None:
        """Return the writer's connection to the pool."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
