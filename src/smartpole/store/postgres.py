"""The PostgreSQL engine's write path: COPY into a staging table, one transaction per batch.

Readings are partitioned by month of ``ts``. Partitions are created ahead of need: this and next
month's when a node starts, and the month after a batch's newest month when a batch first
reaches it, under an advisory lock so that nodes starting or crossing a month boundary together
do not race (and a partition someone else created counts as done).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg

from smartpole.model.clock import now_ms
from smartpole.model.writes import WriteBatch
from smartpole.store.database import Database
from smartpole.store.derived import Journal
from smartpole.store.series import SeriesStore
from smartpole.store.values import quarantine_rows

log = logging.getLogger(__name__)

__all__ = ["PostgresSeries", "month_bounds"]

STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS stage (device_id integer, key text, ts bigint,"
    " vtype smallint, num double precision, txt text, seq integer) ON COMMIT DELETE ROWS"
)
# Of duplicates inside one batch the first wins: ``seq`` is the row's place in the batch.
INSERT_STAGED = """
INSERT INTO readings (device_id, key, ts, vtype, num, txt)
SELECT DISTINCT ON (device_id, key, ts) device_id, key, ts, vtype, num, txt FROM stage
ORDER BY device_id, key, ts, seq
ON CONFLICT DO NOTHING
RETURNING device_id, key, ts, vtype, num, txt
"""
# Binary COPY: no text formatting of numbers here, no parsing in the server.
READING_TYPES = ["int4", "text", "int8", "int2", "float8", "text"]
MARK = (
    "INSERT INTO derived_pending (node, min_ts, max_ts, journal) VALUES (%s, %s, %s, %s)"
    " RETURNING id"
)
# The journals of the marks the caller knows stay in the server: it holds their partials.
TAKE_MARKS = (
    "DELETE FROM derived_pending WHERE node = %s"
    " RETURNING id, min_ts, CASE WHEN id = ANY(%s) THEN NULL ELSE journal END"
)
# Any constant will do, as long as it is only ever used for this: the key of the lock that
# serialises partition DDL across nodes.
PARTITION_LOCK = 0x5350_0001
UPSERT_LATEST = """
INSERT INTO latest AS l (device_id, key, ts, vtype, num, txt)
SELECT * FROM unnest(%s::int[], %s::text[], %s::bigint[], %s::smallint[], %s::float8[],
                     %s::text[])
ON CONFLICT (device_id, key) DO UPDATE SET ts = excluded.ts, vtype = excluded.vtype,
    num = excluded.num, txt = excluded.txt WHERE excluded.ts > l.ts
"""
ADD_ROLLUPS = """
INSERT INTO rollups AS r (device_id, key, hour, cnt, sum, min, max)
SELECT * FROM unnest(%s::int[], %s::text[], %s::bigint[], %s::bigint[], %s::float8[],
                     %s::float8[], %s::float8[])
ON CONFLICT (device_id, key, hour) DO UPDATE SET cnt = r.cnt + excluded.cnt,
    sum = r.sum + excluded.sum, min = least(r.min, excluded.min),
    max = greatest(r.max, excluded.max)
"""
RECOVER_LATEST = """
INSERT INTO latest AS l (device_id, key, ts, vtype, num, txt)
SELECT DISTINCT ON (device_id, key) device_id, key, ts, vtype, num, txt FROM readings
WHERE ts >= %s ORDER BY device_id, key, ts DESC
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


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as column arrays, for ``unnest``."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[]] * width


class PostgresSeries(SeriesStore):
    """Time series in PostgreSQL: monthly partitions, COPY for bulk writes."""

    def __init__(self, db: Database, default_retention_days: int = 0, **kwargs: Any) -> None:
        super().__init__(db, default_retention_days, **kwargs)
        self._partitions: set[str] = set()

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self.db.engine.raw_connection()
        return self._conn.driver_connection

    def _prepare(self) -> None:
        now = now_ms()
        self._ensure_partitions(now, now)

    def _ensure_partitions(self, first: int, last: int) -> None:
        """Create the monthly partitions from ``first`` to the month after ``last`` (ms).

        Only months new to this writer cost a round trip; the DDL runs in its own transaction,
        after ``pg_advisory_xact_lock``, so that two nodes never run it at once (two concurrent
        ``CREATE TABLE IF NOT EXISTS ... PARTITION OF`` can both miss the other's table and
        the second fails). A partition that exists already, however made, is done.
        """
        missing = []
        _, _, ahead = month_bounds(last)
        ts = first
        while ts <= ahead:
            name, lo, hi = month_bounds(ts)
            if name not in self._partitions:
                missing.append((name, lo, hi))
            ts = hi
        if not missing:
            return
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (PARTITION_LOCK,))
            for name, lo, hi in missing:
                cur.execute("SAVEPOINT partition")
                try:
                    cur.execute(
                        f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF readings"
                        f" FOR VALUES FROM ({lo}) TO ({hi})"
                    )
                except psycopg.errors.DuplicateTable:
                    # made by a writer that does not take the lock (an operator, an old node)
                    cur.execute("ROLLBACK TO SAVEPOINT partition")
                else:
                    cur.execute("RELEASE SAVEPOINT partition")
        self._partitions.update(name for name, _, _ in missing)

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                yield cur
            conn.commit()
        except BaseException:
            try:
                conn.rollback()
            except psycopg.Error:
                pass  # the connection is gone: discarded below
            if conn.broken or conn.closed:
                # a restart, a cut network, a terminated backend: never reuse this connection
                self._discard()
            self._partitions.clear()
            raise

    def _insert(self, cur: Any, rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]] | None:
        """COPY straight into the readings; a duplicate falls back to staging + ON CONFLICT.

        A duplicate inside the batch or against stored readings breaks the primary key, so the
        direct COPY fails and is rolled back to its savepoint: no need to look for them first.
        Returns None when every row was new, else the rows that were: only those may count in
        the rollups (another node may hold uncounted readings of the same hours, so recounting
        from the table could count those twice).
        """
        cur.execute("SAVEPOINT direct")
        try:
            with cur.copy(
                "COPY readings (device_id, key, ts, vtype, num, txt) FROM STDIN (FORMAT BINARY)"
            ) as c:
                c.set_types(READING_TYPES)
                for row in rows:
                    c.write_row(row)
        except psycopg.errors.UniqueViolation:
            cur.execute("ROLLBACK TO SAVEPOINT direct")
        else:
            cur.execute("RELEASE SAVEPOINT direct")
            return None
        cur.execute(STAGE)
        with cur.copy(
            "COPY stage (device_id, key, ts, vtype, num, txt, seq) FROM STDIN (FORMAT BINARY)"
        ) as c:
            c.set_types([*READING_TYPES, "int4"])
            for seq, row in enumerate(rows):
                c.write_row((*row, seq))
        cur.execute(INSERT_STAGED)
        return [tuple(r) for r in cur.fetchall()]

    def _commit_readings(
        self, rows: list[tuple[Any, ...]], batch: WriteBatch
    ) -> tuple[int, Journal | None]:
        inserted, journal = 0, None
        if rows:
            stamps = [r[2] for r in rows]
            self._ensure_partitions(min(stamps), max(stamps))
        with self._transaction() as cur:
            if rows:
                fresh = self._insert(cur, rows)
                new = rows if fresh is None else fresh
                inserted = len(new)
                if new:
                    journal = self._journal(new)
                    cur.execute(MARK, (self.node, journal.min_ts, journal.max_ts, journal.blob))
                    journal.mark = cur.fetchone()[0]
            if batch.quarantined:
                cur.executemany(QUARANTINE, quarantine_rows(batch))
            if batch.seen:
                cur.execute(TOUCH, (list(batch.seen), list(batch.seen.values())))
        return inserted, journal

    def _take_marks(
        self, cur: Any, node: str, known: list[int]
    ) -> list[tuple[int, int, bytes | None]]:
        cur.execute(TAKE_MARKS, (node, known))
        return [(mark, min_ts, blob) for mark, min_ts, blob in cur.fetchall()]

    def _apply_derived(
        self,
        cur: Any,
        latest: list[tuple[Any, ...]],
        rollups: list[tuple[Any, ...]],
        since: int | None,
    ) -> None:
        if latest:
            cur.execute(UPSERT_LATEST, _columns(latest, 6))
        if rollups:
            cur.execute(ADD_ROLLUPS, _columns(rollups, 7))
        if since is not None:
            cur.execute(RECOVER_LATEST, (since,))
