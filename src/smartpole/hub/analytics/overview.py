"""The operations overview of one tenant: devices online by kind, active alarms by severity,
today's lamp energy and each district's air quality, from what that tenant may see."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from datetime import datetime, tzinfo

from smartpole.hub.alarms.store import Alarms
from smartpole.hub.aqi import level
from smartpole.model.lifecycle import Severity
from smartpole.model.overview import DistrictAir, KindCount, Overview
from smartpole.model.types import DeviceKind
from smartpole.registry.access import Principal
from smartpole.registry.assets import Assets
from smartpole.store.series import TimeSeries

__all__ = ["overview"]

DAY_MS = 86_400_000
Online = Callable[[int, int | None], bool]


def day_start(now: int, zone: tzinfo) -> int:
    """Midnight before ``now`` (ms) in ``zone``, in ms."""
    local = datetime.fromtimestamp(now / 1000, zone)
    return int(local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def overview(
    who: Principal,
    *,
    assets: Assets,
    series: TimeSeries,
    alarms: Alarms,
    is_online: Online,
    zone: tzinfo,
    now: int,
) -> Overview:
    """What ``who`` sees of the city now; "today" starts at midnight in ``zone``."""
    by_kind: dict[str, list[int]] = {}
    for device_id, kind, last_seen in assets.device_presence(who):
        counts = by_kind.setdefault(kind, [0, 0])
        counts[0 if is_online(device_id, last_seen) else 1] += 1
    devices = tuple(
        KindCount(kind.value, *by_kind[kind.value]) for kind in DeviceKind if kind.value in by_kind
    )
    active = alarms.active_by_severity(who)
    midnight = day_start(now, zone)
    return Overview(
        devices=devices,
        alarms=tuple((s, active.get(s, 0)) for s in Severity),
        lamp_energy_kwh=_lamp_energy(
            assets.device_ids(who, kind="lamp"), series, midnight, now, zone
        ),
        day_start=midnight,
        timezone=str(zone),
        air=_air(assets.air_devices(who), series),
    )


def _lamp_energy(lamps: list[int], series: TimeSeries, start: int, now: int, zone: tzinfo) -> float:
    """kWh the lamps' energy meters (cumulative) counted since ``start``, midnight in ``zone``:
    one day bucket of that zone (a UTC day would cut the tenant's day in two)."""
    if not lamps:
        return 0.0
    top = series.aggregate(lamps, ["energy"], start, now + 1, DAY_MS, "max", zone=zone)
    low = series.aggregate(lamps, ["energy"], start, now + 1, DAY_MS, "min", zone=zone)
    total = 0.0
    for device_id, keys in top.items():
        highs = keys.get("energy", [])
        lows = low.get(device_id, {}).get("energy", [])
        if highs and lows:
            total += max(0.0, float(highs[-1][1]) - float(lows[-1][1]))
    return round(total, 3)


def _air(sensors: dict[str, list[int]], series: TimeSeries) -> tuple[DistrictAir, ...]:
    """Each district's mean latest AQI over its sensors that reported one."""
    out: list[DistrictAir] = []
    for district in sorted(sensors):
        latest = series.latest(sensors[district], ["aqi"])
        values = [
            float(v["aqi"][1])
            for v in latest.values()
            if "aqi" in v and isinstance(v["aqi"][1], int | float)
        ]
        if values:
            aqi = round(statistics.fmean(values), 1)
            out.append(DistrictAir(district, aqi, level(aqi), len(values)))
    return tuple(out)
