"""The hub's in-memory picture of the registry: devices, poles, tags, tenants.

Rules are matched against it for every reading, so it lives in memory; it is reloaded on a
timer and whenever a reading comes from a device it does not know yet.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import orjson
from sqlalchemy import Engine, select

from smartpole.registry.geo import haversine_m
from smartpole.store.schema import attributes, devices, poles, tenants

__all__ = ["DeviceInfo", "Directory", "PoleInfo"]

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
    _grid: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    @classmethod
    def load(cls, engine: Engine) -> Directory:
        """Read the whole registry (a few queries; tens of thousands of rows at most)."""
        d = cls()
        with engine.connect() as conn:
            tag_rows = conn.execute(
                select(attributes.c.device_id, attributes.c.value).where(
                    attributes.c.scope == "server", attributes.c.key == "tags"
                )
            )
            tags: dict[int, frozenset[str]] = {}
            for device_id, value in tag_rows:
                parsed = orjson.loads(value)
                if isinstance(parsed, list):
                    tags[device_id] = frozenset(str(t) for t in parsed)
                elif isinstance(parsed, str):
                    tags[device_id] = frozenset(t.strip() for t in parsed.split(",") if t.strip())
            c = devices.c
            q = select(c.id, c.kind, c.owner_id, c.pole_id, c.last_seen)
            on_pole: dict[int, list[int]] = defaultdict(list)
            by_kind: dict[str, list[int]] = defaultdict(list)
            for device_id, kind, owner, pole_id, last_seen in conn.execute(q):
                d.devices[device_id] = DeviceInfo(
                    device_id, kind, owner, pole_id, tags.get(device_id, frozenset())
                )
                if last_seen is not None:
                    d.last_seen[device_id] = last_seen
                by_kind[kind].append(device_id)
                if pole_id is not None:
                    on_pole[pole_id].append(device_id)
            d.on_pole, d.by_kind = dict(on_pole), dict(by_kind)
            q2 = select(poles.c.id, poles.c.code, poles.c.lat, poles.c.lon, poles.c.district)
            grid: dict[tuple[int, int], list[int]] = defaultdict(list)
            for pid, code, lat, lon, district in conn.execute(q2):
                d.poles[pid] = PoleInfo(pid, code, lat, lon, district)
                d.pole_codes[code] = pid
                grid[_cell(lat, lon)].append(pid)
            d._grid = dict(grid)
            rows = conn.execute(select(tenants.c.id, tenants.c.name, tenants.c.is_operator))
            ops = set()
            for tid, name, is_operator in rows:
                d.tenant_ids[name] = tid
                if is_operator:
                    ops.add(tid)
            d.operators = frozenset(ops)
        return d

    def pole_of(self, device: DeviceInfo) -> PoleInfo | None:
        """The pole the device is on, if any."""
        return None if device.pole_id is None else self.poles.get(device.pole_id)

    def poles_within(self, lat: float, lon: float, radius_m: float) -> list[int]:
        """Poles within ``radius_m`` metres of a point (grid of ~1 km cells, then haversine)."""
        reach_lat = math.ceil(radius_m / _CELL_M)
        cos = max(math.cos(math.radians(lat)), 0.01)
        reach_lon = math.ceil(radius_m / (_CELL_M * cos))
        ci, cj = _cell(lat, lon)
        out = []
        for i in range(ci - reach_lat, ci + reach_lat + 1):
            for j in range(cj - reach_lon, cj + reach_lon + 1):
                for pid in self._grid.get((i, j), ()):
                    p = self.poles[pid]
                    if haversine_m(lat, lon, p.lat, p.lon) <= radius_m:
                        out.append(pid)
        return out


_CELL_M = 1_000.0
_CELL_DEG = _CELL_M / _M_PER_DEG_LAT


def _cell(lat: float, lon: float) -> tuple[int, int]:
    # Longitude cells use the latitude-degree size too: at city latitudes they are narrower
    # than 1 km in metres, which ``poles_within`` accounts for by reaching further.
    return math.floor(lat / _CELL_DEG), math.floor(lon / _CELL_DEG)
