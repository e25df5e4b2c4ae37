"""A series' last reading before each of many instants: one index seek per device and instant.

Cumulative counters (a lamp's ``energy``) need their value at bucket boundaries; the hourly
rollups hold no first or last value, and scanning them for a year of 10,000 lamps reads
87.6 million rows. The readings' primary key ``(device_id, key, ts)`` answers "the last
reading before t" with one seek, so 10,000 lamps x 13 month boundaries cost 130,000 seeks in
one statement on either engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import text

from smartpole.store.database import Database

__all__ = ["Mark", "lowest", "values_before"]

Mark = tuple[int, float] | None  # the last (ts, value) before an instant, None if none
# PostgreSQL partitions readings by month: a first seek within this window touches at most two
# partitions; only instants with nothing in it pay for a seek further back.
NEAR_MS = 32 * 86_400_000
HOUR_MS = 3_600_000

# one scalar subquery per (device, instant) is one seek; json_array carries ts and value out of it
_SQLITE = """
SELECT d.value, m.key, (
    SELECT json_array(s.ts, s.num) FROM readings AS s
    WHERE s.device_id = d.value AND s.key = :k AND s.ts < m.value AND s.ts >= :floor
    AND s.vtype <= 1 ORDER BY s.ts DESC LIMIT 1)
FROM json_each(:ids) AS d CROSS JOIN json_each(:marks) AS m
"""

# one statement per instant, its bounds written in (integers): the planner then keeps the one or
# two monthly partitions they touch (with bound parameters every seek walked all of them)
_POSTGRES = """
SELECT d, r.ts, r.num FROM unnest(CAST(:ids AS integer[])) AS d CROSS JOIN LATERAL (
    SELECT s.ts, s.num FROM readings AS s
    WHERE s.device_id = d AND s.key = :k AND s.ts < {before:d} AND s.ts >= {since:d}
    AND s.vtype <= 1 ORDER BY s.ts DESC LIMIT 1) AS r
"""

_POSTGRES_ONE = """
SELECT ts, num FROM readings WHERE device_id = :d AND key = :k AND ts < :b AND ts >= :floor
AND vtype <= 1 ORDER BY ts DESC LIMIT 1
"""


def values_before(
    db: Database, device_ids: Sequence[int], key: str, marks: Sequence[int], floor: int
) -> dict[int, list[Mark]]:
    """Per device, the last numeric reading ``(ts, value)`` of ``key`` before each instant of
    ``marks`` and not before ``floor`` (None where there is none); devices with no reading
    before any instant are left out."""
    if not device_ids or not marks:
        return {}
    out: dict[int, list[Mark]] = {}
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            ids, at = orjson.dumps(list(device_ids)).decode(), orjson.dumps(list(marks)).decode()
            params = {"ids": ids, "marks": at, "k": key, "floor": floor}
            for device, i, hit in conn.execute(text(_SQLITE), params).all():
                if hit is not None:
                    ts, num = orjson.loads(hit)
                    out.setdefault(device, [None] * len(marks))[i] = (int(ts), float(num))
            return out
        params = {"ids": list(device_ids), "k": key}
        for i, b in enumerate(marks):
            sql = _POSTGRES.format(before=int(b), since=int(max(floor, b - NEAR_MS)))
            for device, ts, num in conn.execute(text(sql), params):
                out.setdefault(device, [None] * len(marks))[i] = (int(ts), float(num))
        _far(conn, out, device_ids, key, marks, floor)
    return out


_LOWEST_SQLITE = """
SELECT p.key, (
    SELECT MIN(r.min) FROM rollups AS r WHERE r.device_id = p.value ->> 0 AND r.key = :k
    AND r.hour >= p.value ->> 1 AND r.hour < p.value ->> 2)
FROM json_each(:spans) AS p
"""

_LOWEST_POSTGRES = """
SELECT s.i, (
    SELECT MIN(r.min) FROM rollups AS r WHERE r.device_id = s.d AND r.key = :k
    AND r.hour >= s.a AND r.hour < s.b)
FROM unnest(CAST(:d AS integer[]), CAST(:a AS bigint[]), CAST(:b AS bigint[]))
    WITH ORDINALITY AS s(d, a, b, i)
"""


def lowest(db: Database, key: str, spans: Sequence[tuple[int, int, int]]) -> list[float | None]:
    """The lowest value of ``key`` in the hourly rollups of each ``(device, start, end)``: the
    hours that overlap ``[start, end)``, so a low just outside may count (None: no rollup)."""
    if not spans:
        return []
    hours = [(d, a - a % HOUR_MS, b) for d, a, b in spans]
    out: list[float | None] = [None] * len(spans)
    rows: Sequence[Sequence[Any]]
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            params: dict[str, Any] = {"k": key, "spans": orjson.dumps(hours).decode()}
            rows = conn.execute(text(_LOWEST_SQLITE), params).all()
        else:
            d, a, b = (list(c) for c in zip(*hours, strict=True))
            rows = conn.execute(text(_LOWEST_POSTGRES), {"k": key, "d": d, "a": a, "b": b}).all()
            rows = [(i - 1, low) for i, low in rows]  # WITH ORDINALITY counts from 1
    for i, low in rows:
        out[int(i)] = None if low is None else float(low)
    return out


def _far(
    conn: Any,
    out: dict[int, list[Mark]],
    device_ids: Sequence[int],
    key: str,
    marks: Sequence[int],
    floor: int,
) -> None:
    """Fill the instants whose last reading is older than ``NEAR_MS`` (a long gap): the one
    before such an instant is that of the instant before it when they are close (nothing came
    in between), else one more seek."""
    one = text(_POSTGRES_ONE)
    for device in device_ids:
        found = out.get(device) or [None] * len(marks)
        for i, b in enumerate(marks):
            if found[i] is not None or b - NEAR_MS <= floor:
                continue
            if i and b - marks[i - 1] <= NEAR_MS:
                found[i] = found[i - 1]
                continue
            hit = conn.execute(one, {"d": device, "k": key, "b": b - NEAR_MS, "floor": floor})
            row = hit.first()
            if row is not None:
                found[i] = (int(row[0]), float(row[1]))
        if any(m is not None for m in found):
            out[device] = found
