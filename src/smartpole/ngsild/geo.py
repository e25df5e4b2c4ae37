"""GeoProperties and geo-queries (ETSI GS CIM 009, clause 4.10): GeoJSON checked on the way
in, ``georel`` evaluated with shapely on WGS 84 degrees and great-circle metres."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from shapely import Geometry
from shapely.affinity import scale
from shapely.geometry import shape
from shapely.validation import make_valid

from smartpole.model.geo import EARTH_RADIUS_M, haversine_m
from smartpole.ngsild.errors import NgsiLdError


class Instance(Protocol):
    """An attribute instance as far as a geo-query reads it (``entities.Attribute``)."""

    kind: str
    value: Any


__all__ = ["GEOMETRIES", "GeoQuery", "bounds", "geometry_of", "parse_geo_query"]

GEOMETRIES = frozenset(
    {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}
)
RELATIONS = frozenset(
    {"near", "within", "contains", "intersects", "equals", "disjoint", "overlaps"}
)


def _positions(value: Any, depth: int, where: str) -> None:
    """Coordinates nested ``depth`` levels deep, each position [lon, lat(, alt)] in range."""
    if depth == 0:
        if (
            not isinstance(value, list)
            or not 2 <= len(value) <= 3
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        ):
            raise NgsiLdError.bad_data(f"{where}: a position must be [longitude, latitude]")
        lon, lat = value[0], value[1]
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise NgsiLdError.bad_data(f"{where}: [{lon}, {lat}] is outside WGS 84")
        return
    if not isinstance(value, list) or not value:
        raise NgsiLdError.bad_data(f"{where}: coordinates are not nested as the type needs")
    for item in value:
        _positions(item, depth - 1, where)


_DEPTH = {
    "Point": 0,
    "MultiPoint": 1,
    "LineString": 1,
    "MultiLineString": 2,
    "Polygon": 2,
    "MultiPolygon": 3,
}


def _rings(rings: list[Any], where: str) -> None:
    for ring in rings:
        if len(ring) < 4:
            raise NgsiLdError.bad_data(f"{where}: a polygon ring needs at least 4 positions")
        if ring[0] != ring[-1]:
            raise NgsiLdError.bad_data(f"{where}: a polygon ring must close (last = first)")


def geometry_of(value: Any, where: str) -> dict[str, Any]:
    """A GeoJSON geometry, checked (its type, nesting, ranges, closed rings)."""
    if not isinstance(value, dict):
        raise NgsiLdError.bad_data(f"{where}: a GeoProperty's value must be a GeoJSON geometry")
    gtype = value.get("type")
    if not isinstance(gtype, str) or gtype not in GEOMETRIES:
        raise NgsiLdError.bad_data(f"{where}: {gtype!r} is not a GeoJSON geometry type")
    coordinates: Any = value.get("coordinates")
    _positions(coordinates, _DEPTH[gtype], where)
    if gtype == "Polygon":
        _rings(coordinates, where)
    elif gtype == "MultiPolygon":
        for polygon in coordinates:
            _rings(polygon, where)
    elif gtype == "LineString" and len(coordinates) < 2:
        raise NgsiLdError.bad_data(f"{where}: a LineString needs at least 2 positions")
    elif gtype == "MultiLineString" and any(len(line) < 2 for line in coordinates):
        raise NgsiLdError.bad_data(f"{where}: each line needs at least 2 positions")
    # A closed ring that crosses itself is kept as sent (GeoJSON does not forbid it; the
    # conformance suite sends one); it is repaired where it is compared (:func:`shape_of`).
    return {"type": gtype, "coordinates": coordinates}


def shape_of(geometry: dict[str, Any]) -> Geometry:
    """A checked geometry as a shapely one, a self-crossing polygon made valid."""
    geom = shape(geometry)
    return geom if geom.is_valid else make_valid(geom)


def bounds(geometry: dict[str, Any]) -> tuple[float, float, float, float]:
    """(min lon, min lat, max lon, max lat) of a checked geometry."""
    xs: list[float] = []
    ys: list[float] = []

    def walk(value: Any) -> None:
        if value and isinstance(value[0], int | float):
            xs.append(float(value[0]))
            ys.append(float(value[1]))
        else:
            for item in value:
                walk(item)

    walk(geometry["coordinates"])
    return min(xs), min(ys), max(xs), max(ys)


def _metres_to_degrees(metres: float, lat: float) -> tuple[float, float]:
    dlat = math.degrees(metres / EARTH_RADIUS_M)
    dlon = dlat / max(math.cos(math.radians(lat)), 1e-6)
    return dlon, dlat


@dataclass(frozen=True, slots=True)
class GeoQuery:
    """A parsed geo-query: the relation, the reference geometry and the property it reads."""

    relation: str
    geometry: dict[str, Any]
    shape: Geometry
    property: str  # expanded attribute name
    max_distance: float | None = None
    min_distance: float | None = None

    def box(self) -> tuple[float, float, float, float] | None:
        """A bounding box every match's geometry meets (None: no cheap bound)."""
        if self.relation in ("disjoint",) or self.min_distance is not None:
            return None
        minx, miny, maxx, maxy = self.shape.bounds
        if self.relation == "near" and self.max_distance is not None:
            dlon, dlat = _metres_to_degrees(self.max_distance, (miny + maxy) / 2)
            return minx - dlon, miny - dlat, maxx + dlon, maxy + dlat
        return minx, miny, maxx, maxy

    def locates(self, attrs: Mapping[str, Sequence[Instance]]) -> bool:
        """Whether one of an entity's instances (``attrs``, by attribute IRI) of the
        geo-property stands in the relation."""
        instances = attrs.get(self.property, ())
        return any(a.kind == "GeoProperty" and self.matches(a.value) for a in instances)

    def matches(self, geometry: dict[str, Any]) -> bool:
        """Whether an entity's geometry stands in the relation."""
        if self.relation == "near":
            distance = self._distance(geometry)
            if self.max_distance is not None and distance > self.max_distance:
                return False
            return not (self.min_distance is not None and distance < self.min_distance)
        other = shape_of(geometry)
        if self.relation == "within":
            return bool(other.within(self.shape))
        if self.relation == "contains":
            return bool(other.contains(self.shape))
        if self.relation == "intersects":
            return bool(other.intersects(self.shape))
        if self.relation == "equals":
            return bool(other.equals(self.shape))
        if self.relation == "overlaps":
            return bool(other.overlaps(self.shape))
        return bool(other.disjoint(self.shape))

    def _distance(self, geometry: dict[str, Any]) -> float:
        ref = self.geometry
        if geometry["type"] == "Point" and ref["type"] == "Point":
            (lon1, lat1), (lon2, lat2) = geometry["coordinates"][:2], ref["coordinates"][:2]
            return haversine_m(lat1, lon1, lat2, lon2)
        # Other shapes: both projected to metres around the reference (fine at city scale).
        per_degree = math.radians(1.0) * EARTH_RADIUS_M
        xfact = per_degree * math.cos(math.radians(self.shape.centroid.y))
        a = scale(shape_of(geometry), xfact, per_degree, origin=(0, 0))
        b = scale(self.shape, xfact, per_degree, origin=(0, 0))
        return float(a.distance(b))


def parse_geo_query(
    georel: str | None,
    geometry: str | None,
    coordinates: Any,
    geoproperty: str,
) -> GeoQuery | None:
    """A geo-query from its parameters (``coordinates`` a JSON text or an already parsed
    value); None when none is given; BadRequestData when only some are."""
    if georel is None and geometry is None and coordinates is None:
        return None
    if georel is None or geometry is None or coordinates is None:
        raise NgsiLdError.bad_data("a geo-query needs georel, geometry and coordinates together")
    if not isinstance(georel, str) or not isinstance(geometry, str):
        raise NgsiLdError.bad_data("georel and geometry must be strings")
    parts = [p.strip() for p in georel.split(";")]
    relation = parts[0]
    if relation not in RELATIONS:
        raise NgsiLdError.bad_data(f"georel {relation!r} is not one of {sorted(RELATIONS)}")
    max_distance = min_distance = None
    for part in parts[1:]:
        name, _, number = part.partition("==")
        try:
            distance = float(number)
        except ValueError:
            raise NgsiLdError.bad_data(f"georel: {part!r} is not a distance") from None
        if name == "maxDistance":
            max_distance = distance
        elif name == "minDistance":
            min_distance = distance
        else:
            raise NgsiLdError.bad_data(f"georel: unknown modifier {name!r}")
        if distance < 0 or not math.isfinite(distance):
            raise NgsiLdError.bad_data(f"georel: {part!r} is not a distance")
    if relation == "near" and max_distance is None and min_distance is None:
        raise NgsiLdError.bad_data("georel=near needs maxDistance or minDistance")
    if isinstance(coordinates, str):
        try:
            coordinates = orjson.loads(coordinates)
        except orjson.JSONDecodeError:
            raise NgsiLdError.bad_data("coordinates are not a JSON array") from None
    ref = geometry_of({"type": geometry, "coordinates": coordinates}, "geometry")
    return GeoQuery(relation, ref, shape_of(ref), geoproperty, max_distance, min_distance)
