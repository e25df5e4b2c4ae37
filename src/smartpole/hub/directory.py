"""The hub's in-memory picture of the registry: devices, poles, tags, tenants.

Rules are matched against it for every reading, so it lives in memory; it is reloaded on a
timer and whenever a reading comes from a device it does not know yet
(``hub/directory_load.py`` reads it from the store; this module imports no SQL, so that the
rules' worker process does without it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from smartpole.model.geo import haversine_m

__all__ = ["DeviceInfo", "Directory", "PoleInfo", "grid_cell"]

_M_PER_DEG_LAT = 111_195.0


@dataclass(frozen=True, slots=True)
class PoleInfo:
    """Where a pole stands."""

    id: int
    code: str
    lat: float
    lon: float
    district: str


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What rules look at of a device."""

    id: int
    kind: str
    owner_id: int
    pole_id: int | None
    tags: frozenset[str] = frozenset()


@dataclass(slots=True)
class Directory:
    """Devices by id and by pole, poles by id and on a coarse grid, tenants by name."""

    devices: dict[int, DeviceInfo] = field(default_factory=dict)
    poles: dict[int, PoleInfo] = field(default_factory=dict)
    on_pole: dict[int, list[int]] = field(default_factory=dict)
    by_kind: dict[str, list[int]] = field(default_factory=dict)
    tenant_ids: dict[str, int] = field(default_factory=dict)
    operators: frozenset[int] = frozenset()
    pole_codes: dict[str, int] = field(default_factory=dict)
    # when each device was last heard from, by any node (the store's record, as of the load)
    last_seen: dict[int, int] = field(default_factory=dict)
    grid: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    def pole_of(self, device: DeviceInfo) -> PoleInfo | None:
        """The pole the device is on, if any."""
        return None if device.pole_id is None else self.poles.get(device.pole_id)

    def poles_within(self, lat: float, lon: float, radius_m: float) -> list[int]:
        """Poles within ``radius_m`` metres of a point (grid of ~1 km cells, then haversine)."""
        reach_lat = math.ceil(radius_m / _CELL_M)
        cos = max(math.cos(math.radians(lat)), 0.01)
        reach_lon = math.ceil(radius_m / (_CELL_M * cos))
        ci, cj = grid_cell(lat, lon)
        out = []
        for i in range(ci - reach_lat, ci + reach_lat + 1):
            for j in range(cj - reach_lon, cj + reach_lon + 1):
                for pid in self.grid.get((i, j), ()):
                    p = self.poles[pid]
                    if haversine_m(lat, lon, p.lat, p.lon) <= radius_m:
                        out.append(pid)
        return out


_CELL_M = 1_000.0
_CELL_DEG = _CELL_M / _M_PER_DEG_LAT


def grid_cell(lat: float, lon: float) -> tuple[int, int]:
    # Longitude cells use the latitude-degree size too: at city latitudes they are narrower
    # than 1 km in metres, which ``poles_within`` accounts for by reaching further.
    return math.floor(lat / _CELL_DEG), math.floor(lon / _CELL_DEG)
