"""Geometry on WGS 84 degrees, without I/O: great-circle distance, GeoJSON polygons.

Shared by the registry's geo queries and the hub's rule scopes (which the rules' worker
process evaluates without the database)."""

from __future__ import annotations

import math
from typing import Any

from shapely.geometry import shape
from shapely.validation import explain_validity

from smartpole.errors import InvalidInput

__all__ = ["EARTH_RADIUS_M", "haversine_m", "polygon_of"]

EARTH_RADIUS_M = 6_371_008.8
"""Mean earth radius (IUGG), metres."""


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS 84 points (degrees)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def polygon_of(geometry: Any) -> Any:
    """A valid shapely (Multi)Polygon from a GeoJSON geometry dict, or InvalidInput."""
    if not isinstance(geometry, dict):
        raise InvalidInput("geometry must be a GeoJSON object (Polygon or MultiPolygon)")
    gtype = geometry.get("type")
    if gtype not in ("Polygon", "MultiPolygon"):
        raise InvalidInput(
            f"geometry must be a GeoJSON Polygon or MultiPolygon, not {gtype!r}", type=gtype
        )
    if "coordinates" not in geometry:
        raise InvalidInput(f"{gtype} has no 'coordinates'")
    try:
        geom = shape(geometry)
    except Exception as err:  # shapely raises many kinds on malformed coordinates
        raise InvalidInput(f"malformed {gtype} coordinates: {err}") from None
    if geom.geom_type != gtype:
        raise InvalidInput(f"geometry must be a GeoJSON Polygon or MultiPolygon, not {gtype!r}")
    if geom.is_empty:
        raise InvalidInput(f"{gtype} is empty")
    min_x, min_y, max_x, max_y = geom.bounds
    if not (-180 <= min_x <= max_x <= 180 and -90 <= min_y <= max_y <= 90):
        raise InvalidInput(
            f"{gtype} coordinates must be [lon, lat] within [-180, 180] x [-90, 90]",
            bounds=[min_x, min_y, max_x, max_y],
        )
    if not geom.is_valid:
        raise InvalidInput(f"invalid {gtype}: {explain_validity(geom)}")
    return geom
