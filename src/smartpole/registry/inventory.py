"""Bulk import and export of the pole inventory, as CSV or GeoJSON.

Import is an idempotent upsert by pole code. Every row is validated first; then either
nothing is written (a row was rejected and ``skip_invalid`` is off) or every valid row is
written in one transaction. Fields are the pole's: ``code``, ``name``, ``lat``, ``lon``,
``height_m``, ``district``, ``road``, ``installed`` (ISO date). A column (CSV) or property
(GeoJSON) left out of the file leaves that field of existing poles as it is; an empty cell
or a ``null`` clears it.

Export writes the same format back, so re-importing an export changes nothing.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from smartpole.errors import Conflict, InvalidInput
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.registry.access import Principal
from smartpole.registry.assets import Assets, PoleFilter, check_pole, parse_date
from smartpole.store.schema import devices, poles

__all__ = ["FIELDS", "ImportReport", "Rejected", "export_poles", "import_poles"]

Format = Literal["csv", "geojson"]
Source = str | bytes | Path

FIELDS = ("code", "name", "lat", "lon", "height_m", "district", "road", "installed")
"""The columns of a CSV inventory, in the order export writes them."""
ALIASES = {"latitude": "lat", "longitude": "lon", "height": "height_m"}
REQUIRED = ("code", "lat", "lon")
TEXT_LIMITS = {"name": 200, "district": 100, "road": 200}
INSERT_DEFAULTS: dict[str, Any] = {
    "name": "",
    "height_m": None,
    "district": "",
    "road": "",
    "installed": None,
}
GEOJSON_PROPERTIES = ("code", "name", "height_m", "district", "road", "installed")
GEOJSON_EXPORT_ONLY = frozenset({"devices"})  # written by export, ignored on import
CHUNK = 5000

_ALL = PoleFilter()


@dataclass(slots=True)
class Rejected:
    """A row left out of an import: its file line (or feature number), code and why."""

    line: int
    code: str | None
    reason: str


@dataclass(slots=True)
class ImportReport:
    """What an import did (or, when ``applied`` is false, did not do)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    applied: bool = False


@dataclass(slots=True)
class _Raw:
    """One row as read from the file: normalised field names, raw values."""

    line: int
    values: dict[str, Any]
    problems: list[str] = field(default_factory=list)
    broken: bool = False  # not a row at all (e.g. not a Feature): report only that


# -- reading -------------------------------------------------------------------------------
def _text(source: Source) -> str:
    data = source.read_bytes() if isinstance(source, Path) else source
    if isinstance(data, bytes):
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise InvalidInput(
                f"the file is not UTF-8 (byte {err.start}): save it as UTF-8 (BOM optional)"
            ) from None
    return data.removeprefix("\ufeff")


def _field_name(name: str) -> str:
    key = name.strip().lower()
    return ALIASES.get(key, key)


def _read_csv(text: str, warnings: list[str]) -> list[_Raw]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header: list[str] | None = None
    columns: dict[int, str] = {}
    rows: list[_Raw] = []
    last = 0  # physical lines read so far: a record starts on the line after
    try:
        for record in reader:
            line, last = last + 1, reader.line_num
            if not any(cell.strip() for cell in record):
                continue  # blank line, or a row of empty cells
            if header is None:
                header = record
                columns = _csv_columns(header, warnings)
                continue
            raw = _Raw(line, {})
            extra = [c for c in record[len(header) :] if c.strip()]
            if extra:
                raw.problems.append(
                    f"{len(record)} values but the header has {len(header)} columns"
                )
            for i, name in columns.items():
                raw.values[name] = record[i] if i < len(record) else ""
            rows.append(raw)
    except csv.Error as err:
        raise InvalidInput(f"malformed CSV near line {reader.line_num}: {err}") from None
    if header is None:
        raise InvalidInput("empty CSV: a header row naming the columns is required")
    return rows


def _csv_columns(header: list[str], warnings: list[str]) -> dict[int, str]:
    columns: dict[int, str] = {}
    seen: dict[str, str] = {}
    ignored: list[str] = []
    for i, title in enumerate(header):
        name = _field_name(title)
        if not name:
            continue
        if name not in FIELDS:
            ignored.append(title.strip())
            continue
        if name in seen:
            raise InvalidInput(
                f"columns {seen[name]!r} and {title.strip()!r} both give {name}",
                column=name,
            )
        seen[name] = title.strip()
        columns[i] = name
    missing = [c for c in REQUIRED if c not in seen]
    if missing:
        raise InvalidInput(
            "the header row lacks the required column(s) " + ", ".join(missing),
            missing=missing,
            header=[h.strip() for h in header],
        )
    if ignored:
        warnings.append("ignored unknown columns: " + ", ".join(ignored))
    return columns


def _read_geojson(text: str, warnings: list[str]) -> list[_Raw]:
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as err:
        raise InvalidInput(f"not valid JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise InvalidInput("a GeoJSON inventory must be a FeatureCollection")
    features = doc.get("features")
    if not isinstance(features, list):
        raise InvalidInput("the FeatureCollection has no 'features' list")
    rows: list[_Raw] = []
    ignored: dict[str, None] = {}
    for n, feature in enumerate(features, start=1):
        raw = _Raw(n, {})
        rows.append(raw)
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            raw.problems.append("not a GeoJSON Feature")
            raw.broken = True
            continue
        props = feature.get("properties") or {}
        if not isinstance(props, dict):
            raw.problems.append("properties must be an object")
            props = {}
        for key, value in props.items():
            name = _field_name(str(key))
            if name in GEOJSON_EXPORT_ONLY:
                continue
            if name not in GEOJSON_PROPERTIES:
                ignored[str(key)] = None
            elif name in raw.values:
                raw.problems.append(f"property {key!r} repeats {name}")
            else:
                raw.values[name] = value
        geometry = feature.get("geometry")
        coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") != "Point":
            raw.problems.append("geometry must be a Point")
        elif not isinstance(coords, list) or len(coords) < 2:
            raw.problems.append("Point coordinates must be [lon, lat]")
        else:
            raw.values["lon"], raw.values["lat"] = coords[0], coords[1]
    if ignored:
        warnings.append("ignored unknown properties: " + ", ".join(ignored))
    return rows


# -- validating ----------------------------------------------------------------------------
def _number(name: str, value: Any) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{name}: {value!r} is not a number")
    try:
        v = float(value)
    except ValueError:
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{name}: {value!r} is not a finite number")
    return v


def _string(name: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{name}: {value!r} is not text")
    text = value if isinstance(value, str) else str(value)
    limit = TEXT_LIMITS[name]
    if len(text) > limit:
        raise ValueError(f"{name}: longer than {limit} characters")
    return text


def _date(value: Any) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"installed: {value!r} is not an ISO date (YYYY-MM-DD)")
    try:
        return parse_date(value)
    except ValueError:
        raise ValueError(f"installed: {value.strip()!r} is not an ISO date (YYYY-MM-DD)") from None


def _validate(raw: _Raw) -> tuple[dict[str, Any], str | None, list[str]]:
    """The row's typed values, its code (if readable) and every problem found."""
    src, problems = raw.values, list(raw.problems)
    out: dict[str, Any] = {}
    if raw.broken:
        return out, None, problems
    code: str | None = None
    value = src.get("code")
    if value is None or (isinstance(value, str) and not value.strip()):
        problems.append("code is required")
    elif isinstance(value, bool) or not isinstance(value, str | int):
        problems.append(f"code: {value!r} is not text")
    else:
        code = str(value).strip()
        out["code"] = code
    for name in ("lat", "lon"):
        if name not in src and raw.problems:
            continue  # the geometry is already reported
        try:
            number = _number(name, src.get(name))
        except ValueError as err:
            problems.append(str(err))
            continue
        if number is None:
            problems.append(f"{name} is required")
        else:
            out[name] = number
    for name, convert in (
        ("height_m", lambda v: _number("height_m", v)),
        ("name", lambda v: _string("name", v)),
        ("district", lambda v: _string("district", v)),
        ("road", lambda v: _string("road", v)),
        ("installed", _date),
    ):
        if name in src:
            try:
                out[name] = convert(src[name])
            except ValueError as err:
                problems.append(str(err))
    try:
        check_pole(out)
    except InvalidInput as err:
        problems.extend(
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('msg', '')}" for e in err.errors
        )
    return out, code, problems


def _check_rows(rows: Sequence[_Raw], report: ImportReport) -> list[dict[str, Any]]:
    valid: list[dict[str, Any]] = []
    first_line: dict[str, int] = {}
    for raw in rows:
        values, code, problems = _validate(raw)
        if code is not None:
            if code in first_line:
                problems.append(f"duplicate code {code!r} (first on line {first_line[code]})")
            else:
                first_line[code] = raw.line
        if problems:
            report.rejected.append(Rejected(raw.line, code, "; ".join(problems)))
        else:
            valid.append(values)
    return valid


# -- writing -------------------------------------------------------------------------------
def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _apply(
    conn: Connection,
    rows: Sequence[dict[str, Any]],
    report: ImportReport,
    progress: Callable[[int, int], None] | None,
) -> None:
    created = now_ms()
    cols = [poles.c.id, *(poles.c[name] for name in FIELDS)]
    done = 0
    for chunk in _chunks(rows, CHUNK):
        codes = [r["code"] for r in chunk]
        existing = {
            r.code: r._mapping for r in conn.execute(select(*cols).where(poles.c.code.in_(codes)))
        }
        inserts: list[dict[str, Any]] = []
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in chunk:
            old = existing.get(row["code"])
            if old is None:
                inserts.append({**INSERT_DEFAULTS, **row, "created": created})
                continue
            given = tuple(k for k in FIELDS if k != "code" and k in row)
            if all(row[k] == old[k] for k in given):
                report.unchanged += 1
                continue
            report.updated += 1
            params = {f"b_{k}": row[k] for k in given}
            params["b_id"] = old["id"]
            updates.setdefault(given, []).append(params)
        if inserts:
            conn.execute(insert(poles), inserts)
            report.created += len(inserts)
        for given, params_list in updates.items():
            stmt = (
                update(poles)
                .where(poles.c.id == bindparam("b_id"))
                .values({k: bindparam(f"b_{k}") for k in given})
            )
            conn.execute(stmt, params_list)
        done += len(chunk)
        if progress is not None:
            progress(done, len(rows))


def import_poles(
    assets: Assets,
    who: Principal,
    rows_source: Source,
    fmt: Format,
    *,
    skip_invalid: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportReport:
    """Upsert the poles of a CSV or GeoJSON inventory by code (city operator only).

    ``rows_source`` is the file's text or bytes (UTF-8, BOM optional) or a path to it.
    Rejected rows carry their line: the file line for CSV (the header is line 1), the
    feature number (from 1) for GeoJSON. Unless ``skip_invalid``, any rejected row means
    nothing is written and ``applied`` is false. Otherwise all valid rows are written in
    one transaction; ``progress(done, total)`` is called after each batch of rows.
    A malformed file as a whole (no header, missing required columns, not a
    FeatureCollection) raises InvalidInput.
    """
    who.require_city(Role.OPERATOR)
    if fmt not in ("csv", "geojson"):
        raise InvalidInput(f"unknown inventory format {fmt!r}: use csv or geojson", fmt=fmt)
    report = ImportReport()
    text = _text(rows_source)
    raw = _read_csv(text, report.warnings) if fmt == "csv" else _read_geojson(text, report.warnings)
    valid = _check_rows(raw, report)
    if report.rejected and not skip_invalid:
        return report
    if report.rejected:
        report.warnings.append(f"skipped {len(report.rejected)} rejected row(s)")
    try:
        with assets.engine.begin() as conn:
            _apply(conn, valid, report, progress)
    except IntegrityError as err:
        raise Conflict(
            "poles changed while importing (a code was taken concurrently); nothing was "
            "imported, try again"
        ) from err
    report.applied = True
    return report


# -- export --------------------------------------------------------------------------------
def _device_kinds(
    conn: Connection, assets: Assets, who: Principal, f: PoleFilter
) -> dict[int, list[str]]:
    """Sorted visible device kinds per pole id, for the poles the export lists."""
    listed = assets.pole_query(who, f).with_only_columns(poles.c.id).subquery()
    q = (
        select(devices.c.pole_id, devices.c.kind)
        .join(listed, listed.c.id == devices.c.pole_id)
        .group_by(devices.c.pole_id, devices.c.kind)
    )
    if not who.is_operator:
        q = q.where(devices.c.owner_id == who.tenant_id)
    kinds: dict[int, list[str]] = {}
    for pole_id, kind in conn.execute(q):
        kinds.setdefault(pole_id, []).append(kind)
    for values in kinds.values():
        values.sort()
    return kinds


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_poles(assets: Assets, who: Principal, fmt: Format, f: PoleFilter = _ALL) -> str:
    """The visible poles matching ``f`` as CSV or a GeoJSON FeatureCollection, by code.

    The GeoJSON properties also list ``devices``: the kinds of the devices on each pole
    that the caller may see. Either output imports back unchanged.
    """
    if fmt not in ("csv", "geojson"):
        raise InvalidInput(f"unknown inventory format {fmt!r}: use csv or geojson", fmt=fmt)
    q = assets.pole_query(who, f).order_by(poles.c.code)
    with assets.engine.connect() as conn:
        rows = conn.execute(q).all()
        kinds = _device_kinds(conn, assets, who, f) if fmt == "geojson" else {}
    if fmt == "csv":
        buf = io.StringIO(newline="")
        writer = csv.writer(buf, lineterminator="\r\n")
        writer.writerow(FIELDS)
        for r in rows:
            installed = _iso(r.installed) or ""
            writer.writerow(
                [r.code, r.name, r.lat, r.lon, r.height_m, r.district, r.road, installed]
            )
        return buf.getvalue()
    features = [
        {
            "type": "Feature",
            "geometry": {"type": "Point", "coordinates": [r.lon, r.lat]},
            "properties": {
                "code": r.code,
                "name": r.name,
                "height_m": r.height_m,
                "district": r.district,
                "road": r.road,
                "installed": _iso(r.installed),
                "devices": kinds.get(r.id, []),
            },
        }
        for r in rows
    ]
    return orjson.dumps({"type": "FeatureCollection", "features": features}).decode()
