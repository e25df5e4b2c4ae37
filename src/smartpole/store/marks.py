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

__all__ = ["Mark", "values_before"]

Mark = tuple[int, float] | None  # the last (ts, value) before an instant, None if none
# PostgreSQL partitions readings by month: a first seek within this window touches at most two
# partitions; only instants with nothing in it pay for the unbounded seek.
NEAR_MS = 32 * 86_400_000

_SQLITE = """
SELECT d.value, m.key, r.ts, r.num
FROM json_each(:ids) AS d CROSS JOIN json_each(:marks) AS m
JOIN readings AS r ON r.device_id = d.value AND r.key = :k AND r.ts = (
    SELECT s.ts FROM readings AS s
    WHERE s.device_id = d.value AND s.key = :k AND s.ts < m.value AND s.ts >= :floor
    AND s.vtype <= 1 ORDER BY s.ts DESC LIMIT 1)
"""

_POSTGRES = """
SELECT d, i, r.ts, r.num
FROM unnest(CAST(:ids AS integer[])) AS d
CROSS JOIN unnest(CAST(:marks AS bigint[])) WITH ORDINALITY AS m(b, i)
CROSS JOIN LATERAL (
    SELECT s.ts, s.num FROM readings AS s
    WHERE s.device_id = d AND s.key = :k AND s.ts < m.b AND s.ts >= GREATEST(:floor, m.b - :near)
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
    rows: Sequence[Sequence[Any]]
    with db.engine.connect() as conn:
        if db.dialect == "sqlite":
            rows = conn.execute(
                text(_SQLITE),
                {
                    "ids": orjson.dumps(list(device_ids)).decode(),
                    "marks": orjson.dumps(list(marks)).decode(),
                    "k": key,
                    "floor": floor,
                },
            ).all()
        else:
            rows = conn.execute(
                text(_POSTGRES),
                {
                    "ids": list(device_ids),
                    "marks": list(marks),
                    "k": key,
                    "floor": floor,
                    "near": NEAR_MS,
                },
            ).all()
            # json_each's key and ORDINALITY differ by one: make both 0-based
            rows = [(d, i - 1, ts, num) for d, i, ts, num in rows]
        for device, i, ts, num in rows:
            out.setdefault(int(device), [None] * len(marks))[int(i)] = (int(ts), float(num))
        if db.dialect != "sqlite":
            _far(conn, out, device_ids, key, marks, floor)
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
