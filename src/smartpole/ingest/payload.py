"""ThingsBoard payload forms, decoded into readings.

Telemetry accepts ``{"k": v}``, ``{"ts": ms, "values": {...}}`` and arrays of either; attributes
accept a flat ``{"k": v}``. A malformed payload raises :class:`PayloadError` naming where; a
well-formed value that breaks the catalog (wrong type, outside the physical range) is kept apart
as quarantined, never mixed with good data.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from smartpole.errors import PayloadError
from smartpole.model.catalog import check_value, fits
from smartpole.model.types import (
    MAX_TS,
    MIN_TS,
    DeviceKind,
    Quality,
    checked_reading,
    good_key,
    key_errors,
    key_label,
    key_problem,
)
from smartpole.model.writes import Quarantined, WriteBatch

__all__ = ["decode_json", "parse_attributes", "parse_telemetry", "to_batch"]

Triple = tuple[str, int, Any]


def decode_json(body: bytes) -> Any:
    """Parse JSON, raising PayloadError with the line, column and byte position."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise PayloadError(
            f"malformed JSON at line {err.lineno} column {err.colno}: {err.msg}",
            errors=[{"loc": ["body"], "msg": err.msg, "pos": err.pos}],
            line=err.lineno,
            column=err.colno,
            pos=err.pos,
        ) from err


def _values(obj: Any, ts: int, where: str, out: list[Triple], errors: list[dict[str, Any]]) -> None:
    if not isinstance(obj, dict):
        errors.append({"loc": [where], "msg": "values must be a JSON object"})
        return
    for key, value in obj.items():
        problem = None if good_key(key) else key_problem(key)
        if problem is not None:
            label = key_label(key)
            errors.append({"loc": [where, label], "msg": f"key {label} {problem}"})
        elif value is None:
            errors.append({"loc": [where, key], "msg": "null is not a value"})
        elif type(value) is float and not math.isfinite(value):
            errors.append({"loc": [where, key], "msg": "not a finite number"})
        elif type(value) is str and "\x00" in value:
            # PostgreSQL's text cannot hold it: refused on both engines alike
            errors.append({"loc": [where, key], "msg": "text may not hold a NUL character"})
        else:
            out.append((key, ts, value))


def _entry(obj: Any, now: int, where: str, out: list[Triple], errors: list[dict[str, Any]]) -> None:
    if not isinstance(obj, dict):
        errors.append({"loc": [where], "msg": "each entry must be a JSON object"})
        return
    if "ts" in obj and "values" in obj and len(obj) == 2:
        ts = obj["ts"]
        if isinstance(ts, bool) or not isinstance(ts, int):
            errors.append({"loc": [where, "ts"], "msg": "ts must be integer milliseconds"})
            return
        if not MIN_TS <= ts < MAX_TS:
            errors.append(
                {"loc": [where, "ts"], "msg": f"ts {ts} is not milliseconds in 2000-2100"}
            )
            return
        _values(obj["values"], ts, f"{where}.values", out, errors)
    else:
        _values(obj, now, where, out, errors)


def parse_telemetry(data: Any, now: int) -> list[Triple]:
    """Decode a telemetry payload into ``(key, ts, value)``; raise PayloadError if malformed."""
    out = _well_formed(data, now)
    if out is not None:
        return out
    return _parse_checked(data, now)


def _well_formed(data: Any, now: int) -> list[Triple] | None:
    """The triples of a payload without a fault, or None: then :func:`_parse_checked` says
    where the faults are. The common case, in one tight loop without error bookkeeping."""
    out: list[Triple] = []
    append = out.append
    for obj in data if type(data) is list else (data,):
        if type(obj) is not dict:
            return None
        if len(obj) == 2 and "ts" in obj and "values" in obj:
            ts, values = obj["ts"], obj["values"]
            if type(ts) is not int or not MIN_TS <= ts < MAX_TS or type(values) is not dict:
                return None
        else:
            ts, values = now, obj
        for key, value in values.items():
            if value is None or not good_key(key):
                return None
            if type(value) is float and value - value != 0.0:  # inf or nan
                return None
            if type(value) is str and "\x00" in value:
                return None
            append((key, ts, value))
    return out or None


def _parse_checked(data: Any, now: int) -> list[Triple]:
    out: list[Triple] = []
    errors: list[dict[str, Any]] = []
    if isinstance(data, list):
        if not data:
            raise PayloadError(
                "empty telemetry array", errors=[{"loc": ["body"], "msg": "array is empty"}]
            )
        for i, item in enumerate(data):
            _entry(item, now, f"[{i}]", out, errors)
    else:
        _entry(data, now, "body", out, errors)
    if errors:
        first = errors[0]
        raise PayloadError(
            f"{len(errors)} invalid telemetry value(s); nothing was stored"
            f" (first at {'/'.join(map(str, first['loc']))}: {first['msg']})",
            errors=errors[:50],
        )
    if not out:
        raise PayloadError(
            "telemetry holds no values", errors=[{"loc": ["body"], "msg": "no key/value pairs"}]
        )
    return out


def parse_attributes(data: Any) -> dict[str, Any]:
    """Decode a client-attributes payload (a flat JSON object)."""
    if not isinstance(data, dict) or not data:
        raise PayloadError(
            "attributes must be a non-empty JSON object",
            errors=[{"loc": ["body"], "msg": "expected a non-empty object"}],
        )
    errors = key_errors(data, "body")
    if errors:
        raise PayloadError(
            f"{len(errors)} invalid attribute key(s); nothing was stored ({errors[0]['msg']})",
            errors=errors[:50],
        )
    return dict(data)


def to_batch(
    device_id: int,
    kind: DeviceKind,
    triples: list[Triple],
    now: int,
    into: WriteBatch | None = None,
) -> WriteBatch:
    """Check each value against the catalog and split good readings from quarantined ones
    (into a new batch, or appended to ``into``)."""
    if into is None:
        batch = WriteBatch(seen={device_id: now})
    else:
        batch = into
        if now > batch.seen.get(device_id, 0):
            batch.seen[device_id] = now
    good = batch.readings.append
    for key, ts, value in triples:
        # parse_telemetry checked the key, the timestamp and finite numbers
        reading = checked_reading(device_id, key, ts, value)
        if fits(kind, key, value):
            good(reading)
            continue
        quality, reason = check_value(kind, key, value)
        if quality is Quality.GOOD:
            good(reading)
        else:
            batch.quarantined.append(Quarantined(reading, quality, reason))
    return batch
