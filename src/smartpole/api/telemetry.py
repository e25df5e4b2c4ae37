"""REST endpoints of the time series: latest values, history, aggregates, retention."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from smartpole.api.deps import AssetsDep, Caller, SeriesDep, SettingsDep, TenantsDep
from smartpole.api.keys import KeyList, OneKey, asked_keys, checked_key
from smartpole.api.schemas import MS_MAX, Id, Millis, Point, RetentionIn
from smartpole.errors import InvalidInput
from smartpole.model.clock import now_ms
from smartpole.model.types import Role
from smartpole.store.series import Aggregation

router = APIRouter(prefix="/api")
DAY_MS = 86_400_000
Start = Annotated[Millis | None, Query(description="ms since epoch, inclusive; default end - 24 h")]
End = Annotated[Millis | None, Query(description="ms since epoch, exclusive; default now")]
Agg = Annotated[Literal["none", "avg", "min", "max", "sum", "count"], Query()]
Interval = Annotated[
    int,
    Query(
        ge=1000,
        le=MS_MAX,
        description="bucket width in ms. Buckets sit on the clock: under a day, at multiples of"
        " the interval since 1970-01-01 UTC (hours start on the hour); whole days (86400000) at"
        " midnight in the caller's tenant time zone; several days counted from Monday"
        " 1970-01-05. 422 for a day or more that is not whole days, or over 100,000 buckets.",
    ),
]


def _window(start: int | None, end: int | None) -> tuple[int, int]:
    end = now_ms() if end is None else end
    start = end - DAY_MS if start is None else start
    if end <= start:
        raise InvalidInput("end must be after start", start=start, end=end)
    return start, end


def _points(values: dict[str, tuple[int, Any]]) -> dict[str, Point]:
    return {k: Point(ts=ts, value=v) for k, (ts, v) in values.items()}


@router.get("/devices/{device_id}/latest", tags=["telemetry"], summary="Latest values")
def device_latest(
    assets: AssetsDep,
    series: SeriesDep,
    who: Caller,
    device_id: Id,
    keys: KeyList = None,
    key: OneKey = None,
) -> dict[str, Point]:
    """The newest value of each key (or of the keys asked for)."""
    ks = asked_keys(keys, key) or None
    assets.get_device(who, device_id)
    return _points(series.latest([device_id], ks).get(device_id, {}))


@router.get("/devices/{device_id}/timeseries", tags=["telemetry"], summary="Time series")
def device_timeseries(
    assets: AssetsDep,
    series: SeriesDep,
    tenants: TenantsDep,
    who: Caller,
    device_id: Id,
    keys: KeyList = None,
    key: OneKey = None,
    start: Start = None,
    end: End = None,
    agg: Agg = "none",
    interval: Interval = 3_600_000,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> dict[str, list[Point]]:
    """Readings in ``[start, end)``: raw (``agg=none``) or aggregated into buckets.

    Buckets are aligned to the clock, whatever ``start`` is (see ``interval``); each point's
    ``ts`` is its bucket's start, so the first and last buckets may count only the part of
    them inside the window. Whole hours are served from hourly rollups when the buckets'
    boundaries are on whole hours.
    """
    ks = asked_keys(keys, key, required=True)
    assets.get_device(who, device_id)
    s, e = _window(start, end)
    if agg == "none":
        raw = series.history(device_id, ks, s, e, limit)
        return {k: [Point(ts=t, value=v) for t, v in pts] for k, pts in raw.items()}
    zone = tenants.zone(who.tenant_id)
    out = series.aggregate([device_id], ks, s, e, interval, agg, zone=zone).get(device_id, {})
    return {k: [Point(ts=t, value=v) for t, v in out.get(k, [])] for k in ks}


@router.get("/devices/{device_id}/quarantine", tags=["telemetry"], summary="Kept-apart values")
def device_quarantine(
    assets: AssetsDep,
    series: SeriesDep,
    who: Caller,
    device_id: Id,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> dict[str, Any]:
    """Values that broke the catalog (wrong type, out of range), newest first, with reasons."""
    assets.get_device(who, device_id)
    items = series.quarantined(device_id, limit)
    total = series.quarantine_counts([device_id]).get(device_id, 0)
    return {"total": total, "items": items}


@router.get("/telemetry/latest", tags=["telemetry"], summary="Latest values of many devices")
def fleet_latest(
    assets: AssetsDep,
    series: SeriesDep,
    who: Caller,
    keys: KeyList = None,
    key: OneKey = None,
    kind: str | None = None,
    owner: str | None = None,
    district: str | None = None,
    pole_id: Id | None = None,
) -> dict[int, dict[str, Point]]:
    """Latest values of every visible device matching the filters, by device id."""
    ks = asked_keys(keys, key) or None
    ids = assets.device_ids(who, kind=kind, owner=owner, district=district, pole_id=pole_id)
    return {d: _points(v) for d, v in series.latest(ids, ks).items()}


@router.get("/telemetry/aggregate", tags=["telemetry"], summary="Aggregate over devices")
def fleet_aggregate(
    assets: AssetsDep,
    series: SeriesDep,
    tenants: TenantsDep,
    who: Caller,
    keys: KeyList = None,
    key: OneKey = None,
    agg: Agg = "avg",
    interval: Interval = 3_600_000,
    start: Start = None,
    end: End = None,
    kind: str | None = None,
    owner: str | None = None,
    district: str | None = None,
    pole_id: Id | None = None,
    group: Literal["fleet", "device"] = "fleet",
) -> dict[str, Any]:
    """Buckets over every visible matching device: one series (``fleet``) or one per device,
    aligned to the clock as in the device time series (see ``interval``)."""
    if agg == "none":
        raise InvalidInput("choose an aggregation: avg, min, max, sum or count")
    ks = asked_keys(keys, key, required=True)
    s, e = _window(start, end)
    ids = assets.device_ids(who, kind=kind, owner=owner, district=district, pole_id=pole_id)
    a: Aggregation = agg
    zone = tenants.zone(who.tenant_id)
    out = series.aggregate(ids, ks, s, e, interval, a, per_device=group == "device", zone=zone)
    points = {
        str(d): {k: [Point(ts=t, value=v) for t, v in pts] for k, pts in by_key.items()}
        for d, by_key in out.items()
    }
    if group == "fleet":
        return {"devices": len(ids), "series": points.get("0", {k: [] for k in ks})}
    return {"devices": len(ids), "series": points}


@router.get("/telemetry/retention", tags=["telemetry"], summary="Retention rules")
def get_retention(series: SeriesDep, settings: SettingsDep, who: Caller) -> dict[str, Any]:
    """Per-key retention in days, and the default (0 = keep forever)."""
    return {"default_days": settings.retention_days, "keys": series.retention_rules()}


@router.put("/telemetry/retention/{key:path}", tags=["telemetry"], summary="Set a key's retention")
def set_retention(
    series: SeriesDep, settings: SettingsDep, who: Caller, key: str, body: RetentionIn
) -> dict[str, Any]:
    """Keep readings of ``key`` for ``days`` (city operator admin); null returns to default.
    The key is percent-encoded in the path (``room%20temp``, ``%E6%B8%A9%E5%BA%A6``); it may
    hold ``/``."""
    who.require_city(Role.ADMIN)
    series.set_retention(checked_key(key), body.days)
    return {"default_days": settings.retention_days, "keys": series.retention_rules()}
