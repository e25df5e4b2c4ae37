"""How readings are stored: a value as its ``(vtype, num, txt)`` columns, readings and
quarantined values as table rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from smartpole.model.clock import now_ms
from smartpole.model.types import Reading, Value
from smartpole.model.writes import WriteBatch

__all__ = ["decode_value", "encode_value", "quarantine_rows", "reading_rows"]


def encode_value(value: Value) -> tuple[int, float | None, str | None]:
    """Turn a value into its stored ``(vtype, num, txt)`` columns."""
    if isinstance(value, bool):
        return 1, 1.0 if value else 0.0, None
    if isinstance(value, int | float):
        return 0, float(value), None
    if isinstance(value, str):
        return 2, None, value
    return 3, None, orjson.dumps(value).decode()


def decode_value(vtype: int, num: float | None, txt: str | None) -> Value:
    """Inverse of :func:`encode_value`; whole numbers come back as ``int``."""
    if vtype == 0:
        assert num is not None
        return int(num) if num.is_integer() and abs(num) < 2**53 else num
    if vtype == 1:
        return bool(num)
    if vtype == 2:
        return txt or ""
    return orjson.loads(txt or "null")  # type: ignore[no-any-return]


def reading_rows(readings: Iterable[Reading]) -> list[tuple[Any, ...]]:
    """Readings as the rows of the ``readings`` table: device_id, key, ts, vtype, num, txt."""
    # the common case (a JSON number) inline; encode_value for the rest
    return [
        (r.device_id, r.key, r.ts, 0, float(v), None)
        if (type(v := r.value) is int or type(v) is float)
        else (r.device_id, r.key, r.ts, *encode_value(v))
        for r in readings
    ]


def quarantine_rows(batch: WriteBatch) -> list[tuple[Any, ...]]:
    """A batch's quarantined values as rows of the ``quarantine`` table, received now."""
    received = now_ms()
    return [
        (
            q.reading.device_id,
            q.reading.key,
            q.reading.ts,
            orjson.dumps(q.reading.value).decode(),
            int(q.quality),
            q.reason[:300],
            received,
        )
        for q in batch.quarantined
    ]
