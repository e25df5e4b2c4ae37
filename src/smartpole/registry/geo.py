"""Geo queries over poles: near a point, within a polygon, inside a bounding box.

Each query narrows the candidates in SQL with a lat/lon bounding box (served by the
``ix_poles_lat_lon`` index) on top of the caller's visibility and filter, and decides the
exact answer in Python: haversine distance for :meth:`Geo.near`, shapely for :meth:`Geo.within`.
Coordinates are WGS 84 degrees; polygons are planar in lon/lat, as GeoJSON (RFC 7946) says,
and must not cross the antimeridian.
"""

from __future__ import annotations

import math
from typing import Any

import shapely
from sqlalchemy import or_

from smartpole.errors import InvalidInput
from smartpole.model.geo import EARTH_RADIUS_M, haversine_m, polygon_of
from smartpole.model.poles import Pole
from smartpole.registry.access import Principal
from smartpole.registry.assets import Assets, PoleFilter, pole_of
from smartpole.store.schema import poles

__all__ = ["MAX_RADIUS_M", "Geo"]

MAX_RADIUS_M = 50_000.0
_ALL = PoleFilter()
# Widen SQL boxes by about a centimetre so rounding never drops a pole the exact test keeps.
_MARGIN_DEG = 1e-7


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidInput(f"{name} must be a number, got {value!r}", errors=[_err(name, value)])
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidInput(
            f"{name} must be a number, got {value!r}", errors=[_err(name, value)]
        ) from None


def _err(name: str, value: Any, msg: str | None = None) -> dict[str, Any]:
    return {"loc": [name], "msg": msg or f"invalid value {value!r}"}


def _lat(name: str, value: Any) -> float:
    v = _number(name, value)
    if not -90 <= v <= 90:  # also rejects NaN
        msg = f"{name} {value!r} outside [-90, 90]"
        raise InvalidInput(msg, errors=[_err(name, value, msg)])
    return v


def _lon(name: str, value: Any) -> float:
    v = _number(name, value)
    if not -180 <= v <= 180:
        msg = f"{name} {value!r} outside [-180, 180]"
        raise InvalidInput(msg, errors=[_err(name, value, msg)])
    return v


def _limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        msg = f"limit must be a positive integer, got {limit!r}"
        raise InvalidInput(msg, errors=[_err("limit", limit, msg)])
    return limit


def _circle_box(
    lat: float, lon: float, radius_m: float
) -> tuple[float, float, list[tuple[float, float]]]:
    """A lat range and lon ranges (split at the antimeridian) holding a whole circle."""
    delta = radius_m / EARTH_RADIUS_M  # angular radius, radians
    dlat = math.degrees(delta) + _MARGIN_DEG
    lat_lo, lat_hi = lat - dlat, lat + dlat
    if lat_lo <= -90 or lat_hi >= 90:  # the circle holds a geographic pole: every longitude
        return max(lat_lo, -90.0), min(lat_hi, 90.0), [(-180.0, 180.0)]
    s = math.sin(delta) / math.cos(math.radians(lat))
    if s >= 1:
        return lat_lo, lat_hi, [(-180.0, 180.0)]
    dlon = math.degrees(math.asin(s)) + _MARGIN_DEG  # exact widest longitude offset
    lo, hi = lon - dlon, lon + dlon
    if lo < -180:
        return lat_lo, lat_hi, [(lo + 360, 180.0), (-180.0, hi)]
    if hi > 180:
        return lat_lo, lat_hi, [(-180.0, hi - 360), (lo, 180.0)]
    return lat_lo, lat_hi, [(lo, hi)]


class Geo:
    """Spatial queries over the poles a principal may see."""

    def __init__(self, assets: Assets) -> None:
        self.assets = assets

    def near(
        self,
        who: Principal,
        lat: float,
        lon: float,
        radius_m: float,
        f: PoleFilter = _ALL,
        limit: int = 1000,
    ) -> list[tuple[Pole, float]]:
        """Visible poles within ``radius_m`` metres of a point, nearest first, each with its
        distance in metres (great-circle, rounded to 0.1 m); ties sort by code.
        """
        lat = _lat("lat", lat)
        lon = _lon("lon", lon)
        r = _number("radius_m", radius_m)
        if not 0 < r <= MAX_RADIUS_M:
            msg = f"radius_m must be in (0, {MAX_RADIUS_M:g}] metres, got {radius_m!r}"
            raise InvalidInput(msg, errors=[_err("radius_m", radius_m, msg)])
        limit = _limit(limit)
        lat_lo, lat_hi, lon_ranges = _circle_box(lat, lon, r)
        q = self.assets.pole_query(who, f).where(
            poles.c.lat.between(lat_lo, lat_hi),
            or_(*(poles.c.lon.between(a, b) for a, b in lon_ranges)),
        )
        hits: list[tuple[float, str, Pole]] = []
        with self.assets.engine.connect() as conn:
            for row in conn.execute(q):
                d = haversine_m(lat, lon, row.lat, row.lon)
                if d <= r:
                    hits.append((d, row.code, pole_of(row)))
        hits.sort(key=lambda h: (h[0], h[1]))
        return [(pole, round(d, 1)) for d, _, pole in hits[:limit]]

    def within(
        self, who: Principal, geometry: dict[str, Any], f: PoleFilter = _ALL, limit: int = 10000
    ) -> list[Pole]:
        """Visible poles inside (or on the edge of) a GeoJSON Polygon or MultiPolygon, by code."""
        geom = polygon_of(geometry)
        limit = _limit(limit)
        min_x, min_y, max_x, max_y = geom.bounds
        q = (
            self.assets.pole_query(who, f)
            .where(poles.c.lat.between(min_y, max_y), poles.c.lon.between(min_x, max_x))
            .order_by(poles.c.code)
        )
        with self.assets.engine.connect() as conn:
            rows = conn.execute(q).all()
        if not rows:
            return []
        shapely.prepare(geom)
        # intersects_xy of a point is "covers": the interior and the boundary.
        inside = shapely.intersects_xy(geom, [r.lon for r in rows], [r.lat for r in rows])
        out: list[Pole] = []
        for row, hit in zip(rows, inside.tolist(), strict=True):
            if hit:
                out.append(pole_of(row))
                if len(out) >= limit:
                    break
        return out

    def bbox(
        self,
        who: Principal,
        min_lon: float,
        min_lat: float,
        max_lon: float,
        max_lat: float,
        f: PoleFilter = _ALL,
        limit: int = 10000,
    ) -> list[Pole]:
        """Visible poles inside a lon/lat box (edges included), by code."""
        min_lon, max_lon = _lon("min_lon", min_lon), _lon("max_lon", max_lon)
        min_lat, max_lat = _lat("min_lat", min_lat), _lat("max_lat", max_lat)
        if min_lon > max_lon or min_lat > max_lat:
            raise InvalidInput(
                "bbox needs min_lon <= max_lon and min_lat <= max_lat",
                bbox=[min_lon, min_lat, max_lon, max_lat],
            )
        limit = _limit(limit)
        q = (
            self.assets.pole_query(who, f)
            .where(poles.c.lat.between(min_lat, max_lat), poles.c.lon.between(min_lon, max_lon))
            .order_by(poles.c.code)
            .limit(limit)
        )
        with self.assets.engine.connect() as conn:
            return [pole_of(r) for r in conn.execute(q)]
