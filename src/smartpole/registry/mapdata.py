"""The registry as the city map reads it: every visible pole as columns, in two queries.

At 100,000 poles a listing of pole objects (or GeoJSON features) is what makes a map slow; the
map needs a few numbers per pole. :func:`map_poles` reads the visible poles and the visible
devices on them (kind and owner) and builds the columns of :class:`~smartpole.model.map.MapPoles`
without a Python object per pole. Outlines (districts as their poles' hull, roads as lines
through their poles) are drawn from the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import shapely
from sqlalchemy import ColumnElement, Engine, and_, exists, select, true

from smartpole.model.map import KINDS, MapPoles
from smartpole.model.types import DeviceKind
from smartpole.registry.access import Principal
from smartpole.store.schema import devices, poles, tenants

__all__ = ["Outline", "Road", "devices_of_kind", "map_poles", "outlines"]

MICRO = 1_000_000  # the map's coordinates are integers of 1e-6 degrees
HULL_PAD_DEG = 0.0003  # about 30 m around a district of one or two poles (no area otherwise)
_BIT = {kind: 1 << i for i, kind in enumerate(KINDS)}


def _visible_poles(who: Principal) -> ColumnElement[bool]:
    if who.is_operator:
        return true()
    return exists().where(
        and_(devices.c.pole_id == poles.c.id, devices.c.owner_id == who.tenant_id)
    )


def _visible_devices(who: Principal) -> ColumnElement[bool]:
    mounted = devices.c.pole_id.is_not(None)
    return mounted if who.is_operator else and_(mounted, devices.c.owner_id == who.tenant_id)


def map_poles(engine: Engine, who: Principal) -> MapPoles:
    """The poles ``who`` may see, by id, as columns; kinds and owners of the devices it sees."""
    pole_q = (
        select(poles.c.id, poles.c.code, poles.c.lon, poles.c.lat, poles.c.district, poles.c.road)
        .where(_visible_poles(who))
        .order_by(poles.c.id)
    )
    device_q = select(devices.c.pole_id, devices.c.kind, devices.c.owner_id).where(
        _visible_devices(who)
    )
    out = MapPoles()
    with engine.connect() as conn:
        names = dict(conn.execute(select(tenants.c.id, tenants.c.name)).all())
        kinds: dict[int, int] = {}
        owned: dict[int, set[int]] = {}
        bit = _BIT
        for pole_id, kind, owner_id in conn.execute(device_q):
            kinds[pole_id] = kinds.get(pole_id, 0) | bit.get(kind, 0)
            owned.setdefault(pole_id, set()).add(owner_id)
        rows = conn.execute(pole_q).all()
    district_ix: dict[str, int] = {}
    road_ix: dict[str, int] = {}
    owner_ix: dict[int, int] = {}
    set_ix: dict[frozenset[int], int] = {}
    for pole_id, code, lon, lat, district, road in rows:
        out.id.append(pole_id)
        out.code.append(code)
        out.lon.append(round(lon * MICRO))
        out.lat.append(round(lat * MICRO))
        out.district.append(district_ix.setdefault(district, len(district_ix)))
        out.road.append(road_ix.setdefault(road, len(road_ix)))
        out.kinds.append(kinds.get(pole_id, 0))
        holders = frozenset(owned.get(pole_id, ()))
        at = set_ix.get(holders)
        if at is None:
            at = set_ix[holders] = len(set_ix)
            out.owner_sets.append(
                sorted(owner_ix.setdefault(t, len(owner_ix)) for t in sorted(holders))
            )
        out.owner.append(at)
    out.districts.extend(district_ix)
    out.roads.extend(road_ix)
    out.owners.extend(names[t] for t in owner_ix)
    return out


def devices_of_kind(engine: Engine, who: Principal, kind: DeviceKind) -> list[tuple[int, int]]:
    """``(device id, pole id)`` of the visible devices of one kind mounted on a pole."""
    q = select(devices.c.id, devices.c.pole_id).where(
        _visible_devices(who),
        devices.c.kind == kind.value,
    )
    with engine.connect() as conn:
        return [(d, p) for d, p in conn.execute(q)]


@dataclass(frozen=True, slots=True)
class Outline:
    """A district's outline: a closed ring of ``[lon, lat]``."""

    name: str
    outline: list[list[float]]


@dataclass(frozen=True, slots=True)
class Road:
    """A road of a district drawn through its poles, in order along it."""

    name: str
    district: str
    line: list[list[float]]


def outlines(engine: Engine, who: Principal) -> tuple[list[Outline], list[Road]]:
    """District outlines (the hull of their visible poles) and roads (lines through them)."""
    q = select(poles.c.district, poles.c.road, poles.c.lon, poles.c.lat).where(_visible_poles(who))
    by_district: dict[str, list[tuple[float, float]]] = {}
    by_road: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with engine.connect() as conn:
        for district, road, lon, lat in conn.execute(q):
            by_district.setdefault(district, []).append((lon, lat))
            if road:
                by_road.setdefault((district, road), []).append((lon, lat))
    districts = [
        Outline(name, _hull(points)) for name, points in sorted(by_district.items()) if name
    ]
    roads = [
        Road(road, district, [[x, y] for x, y in _along(points)])
        for (district, road), points in sorted(by_road.items())
        if len(points) >= 2
    ]
    return districts, roads


def _hull(points: Sequence[tuple[float, float]]) -> list[list[float]]:
    """The convex hull's ring; a few poles in a row get a thin pad so the ring has an area."""
    hull = shapely.MultiPoint(points).convex_hull
    if not isinstance(hull, shapely.Polygon):
        hull = hull.buffer(HULL_PAD_DEG, quad_segs=2)
    return [[round(x, 6), round(y, 6)] for x, y in hull.exterior.coords]


def _along(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points ordered along their main axis (a road's poles stand along it)."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    syy = sum((p[1] - my) ** 2 for p in points)
    sxy = sum((p[0] - mx) * (p[1] - my) for p in points)
    angle = 0.5 * math.atan2(2 * sxy, sxx - syy)
    c, s = math.cos(angle), math.sin(angle)
    ordered = sorted(set(points), key=lambda p: (p[0] - mx) * c + (p[1] - my) * s)
    return [(round(x, 6), round(y, 6)) for x, y in ordered]
