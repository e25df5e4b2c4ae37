"""The embedded engine's write path: one sqlite3 connection, one transaction per batch."""

from __future__ import annotations

import sqlite3
from typing import Any

from smartpole.store.database import Database
from smartpole.store.series import SeriesStore, WriteBatch, WriteResult

__all__ = ["SqliteSeries"]

INSERT_READING = (
    "INSERT OR IGNORE INTO readings (device_id, key, ts, vtype, num, txt) VALUES (?,?,?,?,?,?)"
)
UPSERT_LATEST = (
    "INSERT INTO latest (device_id, key, ts, vtype, num, txt) VALUES (?,?,?,?,?,?)"
    " ON CONFLICT (device_id, key) DO UPDATE SET ts = excluded.ts, vtype = excluded.vtype,"
    " num = excluded.num, txt = excluded.txt WHERE excluded.ts > latest.ts"
)
ADD_ROLLUP = (
    "INSERT INTO rollups (device_id, key, hour, cnt, sum, min, max) VALUES (?,?,?,?,?,?,?)"
    " ON CONFLICT (device_id, key, hour) DO UPDATE SET cnt = cnt + excluded.cnt,"
    " sum = sum + excluded.sum, min = MIN(min, excluded.min), max = MAX(max, excluded.max)"
)
# Used only when a batch held duplicates: recount the hour from the readings themselves.
RECOUNT_ROLLUP = (
    "INSERT OR REPLACE INTO rollups (device_id, key, hour, cnt, sum, min, max)"
    " SELECT device_id, key, ?, COUNT(*), SUM(num), MIN(num), MAX(num) FROM readings"
    " WHERE device_id = ? AND key = ? AND ts >= ? AND ts < ? + 3600000 AND vtype <= 1"
    " GROUP BY device_id, key"
)
TOUCH_DEVICE = (
    "UPDATE devices SET last_seen = ? WHERE id = ? AND (last_seen IS NULL OR last_seen < ?)"
)
INSERT_QUARANTINE = (
    "INSERT INTO quarantine (device_id, key, ts, value, quality, reason, received)"
    " VALUES (?,?,?,?,?,?,?)"
)


class SqliteSeries(SeriesStore):
    """Time series in the embedded SQLite file (WAL, readings clustered by device, key, ts)."""

    def __init__(self, db: Database, default_retention_days: int = 0) -> None:
        super().__init__(db, default_retention_days)
        self._conn: Any = None

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raw = self.db.engine.raw_connection()
            self._conn = raw
        return self._conn.driver_connection  # type: ignore[no-any-return]

    def _write(self, batch: WriteBatch) -> WriteResult:
        conn = self._connection()
        rows = self._rows(batch.readings)
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
            inserted = 0
            if rows:
                cur.executemany(INSERT_READING, rows)
                inserted = cur.rowcount
                rollups = self._rollup_rows(rows)
                if inserted == len(rows):
                    cur.executemany(ADD_ROLLUP, rollups)
                else:
                    cur.executemany(RECOUNT_ROLLUP, [(h, d, k, h, h) for d, k, h, *_ in rollups])
                cur.executemany(UPSERT_LATEST, self._latest_rows(rows))
            if batch.quarantined:
                cur.executemany(INSERT_QUARANTINE, self._quarantine_rows(batch))
            if batch.seen:
                cur.executemany(TOUCH_DEVICE, [(t, d, t) for d, t in batch.seen.items()])
            cur.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.rollback()
            raise
        finally:
            cur.close()
        return WriteResult(inserted, len(rows) - inserted, len(batch.quarantined))

    def close(self) -> None:
        """Return the writer's connection to the pool."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
