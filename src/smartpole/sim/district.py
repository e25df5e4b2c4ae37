"""A realistic district of smart poles: roads, poles every 25-40 m, a mix of devices.

Deterministic for a seed. The default is Futian, Shenzhen (around 22.54 N, 114.05 E): its main
roads first, then, when more poles are asked for than they carry (about 1,300), a generated grid
of streets over the district's bounding box. Any bounding box (a street grid) or GeoJSON road file
(LineStrings) can be given instead.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from smartpole.model.types import DeviceKind

__all__ = [
    "FUTIAN_BBOX",
    "FUTIAN_ROADS",
    "MIX",
    "TENANTS",
    "BBox",
    "PlannedDevice",
    "PlannedPole",
    "Road",
    "grid_roads",
    "plan_district",
    "roads_from_geojson",
]

BBox = tuple[float, float, float, float]
"""(south, west, north, east) in degrees."""


@dataclass(frozen=True, slots=True)
class Road:
    """A road as a polyline of (lat, lon) points, with its short code."""

    code: str
    name: str
    points: tuple[tuple[float, float], ...]


@dataclass(slots=True)
class PlannedDevice:
    """A device to mount: kind, owner tenant name, gateway port."""

    kind: DeviceKind
    owner: str
    port: int


@dataclass(slots=True)
class PlannedPole:
    """A pole to build, with its devices."""

    code: str
    name: str
    lat: float
    lon: float
    height_m: float
    district: str
    road: str
    devices: list[PlannedDevice] = field(default_factory=list)


# (name, title, is the city operator)
TENANTS: list[tuple[str, str, bool]] = [
    ("city", "City operator 城市运营中心", True),
    ("lighting", "Lighting department 路灯管理处", False),
    ("telecom", "Telecom operator 通信运营商", False),
    ("police", "Public security 公安局", False),
    ("environment", "Environment bureau 生态环境局", False),
    ("transport", "Transport bureau 交通运输局", False),
    ("media", "City information and advertising 信息发布", False),
]

# Main roads of Futian, as straight-ish polylines (lat, lon).
FUTIAN_ROADS: list[Road] = [
    Road(
        "SN",
        "Shennan Blvd 深南大道",
        ((22.5405, 114.0110), (22.5412, 114.0450), (22.5430, 114.0820)),
    ),
    Road(
        "BH", "Binhe Blvd 滨河大道", ((22.5262, 114.0150), (22.5285, 114.0500), (22.5320, 114.0800))
    ),
    Road("FH", "Fuhua Rd 福华路", ((22.5360, 114.0450), (22.5362, 114.0700))),
    Road("YT", "Yitian Rd 益田路", ((22.5250, 114.0560), (22.5600, 114.0570))),
    Road("CT", "Caitian Rd 彩田路", ((22.5260, 114.0680), (22.5650, 114.0700))),
    Road("HQ", "Huanggang Rd 皇岗路", ((22.5230, 114.0750), (22.5640, 114.0770))),
    Road("BN", "Beihuan Blvd 北环大道", ((22.5610, 114.0150), (22.5625, 114.0800))),
    Road("HF", "Hongli Rd 红荔路", ((22.5500, 114.0200), (22.5510, 114.0800))),
]

# (kind, owner, probability that a pole carries it); every pole has a gateway and a lamp.
MIX: list[tuple[DeviceKind, str, float]] = [
    (DeviceKind.GATEWAY, "city", 1.0),
    (DeviceKind.LAMP, "lighting", 1.0),
    (DeviceKind.METER, "city", 0.3),
    (DeviceKind.CAMERA, "police", 0.45),
    (DeviceKind.SMALL_CELL, "telecom", 0.35),
    (DeviceKind.AIR, "environment", 0.25),
    (DeviceKind.WEATHER, "environment", 0.1),
    (DeviceKind.NOISE, "environment", 0.2),
    (DeviceKind.DISPLAY, "media", 0.08),
    (DeviceKind.SPEAKER, "media", 0.06),
    (DeviceKind.SOS, "police", 0.05),
    (DeviceKind.CHARGER, "transport", 0.04),
    (DeviceKind.WIFI, "telecom", 0.15),
    (DeviceKind.TILT, "city", 0.3),
    (DeviceKind.FLOOD, "city", 0.05),
    (DeviceKind.MANHOLE, "city", 0.05),
]

EARTH_M = 6_371_008.8
FUTIAN_BBOX: BBox = (22.515, 114.005, 22.570, 114.090)
MEAN_SPACING_M = 32.5  # poles every 25-40 m


def grid_roads(bbox: BBox, spacing_m: float, prefix: str = "") -> list[Road]:
    """Straight streets over ``bbox``: north-south ``NS..`` and east-west ``EW..``, ``spacing_m``
    apart, as a planned district's secondary streets."""
    south, west, north, east = bbox
    mid = math.radians((south + north) / 2)
    dlat = math.degrees(spacing_m / EARTH_M)
    dlon = math.degrees(spacing_m / (EARTH_M * math.cos(mid)))
    out: list[Road] = []
    n = 1
    lon = west + dlon / 2
    while lon < east:
        out.append(
            Road(f"{prefix}NS{n:02d}", f"Street NS{n:02d} 纵{n}路", ((south, lon), (north, lon)))
        )
        lon += dlon
        n += 1
    n = 1
    lat = south + dlat / 2
    while lat < north:
        out.append(
            Road(f"{prefix}EW{n:02d}", f"Street EW{n:02d} 横{n}路", ((lat, west), (lat, east)))
        )
        lat += dlat
        n += 1
    return out


def roads_from_geojson(path: Path) -> list[Road]:
    """The LineString and MultiLineString features of a GeoJSON file as roads.

    A feature's ``ref`` or ``code`` property gives the road code (else ``R001``, ``R002``...),
    its ``name`` the name; coordinates are GeoJSON's (lon, lat).
    """
    doc = orjson.loads(path.read_bytes())
    features: list[dict[str, Any]] = doc.get("features", [doc] if "geometry" in doc else [])
    out: list[Road] = []
    for feature in features:
        geometry = feature.get("geometry") or {}
        props = feature.get("properties") or {}
        if geometry.get("type") == "LineString":
            lines = [geometry["coordinates"]]
        elif geometry.get("type") == "MultiLineString":
            lines = geometry["coordinates"]
        else:
            continue
        for line in lines:
            if len(line) < 2:
                continue
            n = len(out) + 1
            raw = str(props.get("ref") or props.get("code") or f"R{n:03d}")
            code = "".join(c for c in raw if c.isalnum())[:12] or f"R{n:03d}"
            if any(r.code == code for r in out):
                code = f"{code}{n}"
            name = str(props.get("name") or code)
            out.append(Road(code, name, tuple((float(p[1]), float(p[0])) for p in line)))
    return out


def _capacity(roads: list[Road]) -> int:
    return int(
        sum(_metres(a, b) for r in roads for a, b in zip(r.points, r.points[1:], strict=False))
        / MEAN_SPACING_M
    )


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat = math.radians((a[0] + b[0]) / 2)
    dy = math.radians(b[0] - a[0]) * EARTH_M
    dx = math.radians(b[1] - a[1]) * EARTH_M * math.cos(lat)
    return math.hypot(dx, dy)


def _along(road: Road, rng: random.Random) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    carry = 0.0
    for a, b in zip(road.points, road.points[1:], strict=False):
        length = _metres(a, b)
        pos = carry
        while pos < length:
            f = pos / length
            out.append((a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f))
            pos += rng.uniform(25, 40)
        carry = pos - length
    return out


def plan_district(
    poles: int = 500,
    seed: int = 1,
    district: str = "Futian",
    roads: list[Road] | None = None,
    bbox: BBox | None = None,
) -> list[PlannedPole]:
    """Up to ``poles`` poles along the roads, with their devices; same seed, same district.

    Roads given are used as they are. Otherwise the district is Futian's main roads (or a street
    grid over ``bbox`` when one is given), and a generated street grid over the bounding box
    makes up for the poles the main roads cannot carry.
    """
    rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    if roads is None:
        area = bbox or FUTIAN_BBOX
        roads = [] if bbox else list(FUTIAN_ROADS)
        # Spacing is random, so the estimate may be a few poles over: keep 5% in hand.
        if _capacity(roads) * 0.95 < poles:
            south, west, north, east = area
            ns = _metres((south, west), (north, west))
            ew = _metres((south, west), (south, east))
            # A grid of spacing s carries about 2*ns*ew/s metres of street; leave 15% spare.
            need_m = (poles - _capacity(roads)) * MEAN_SPACING_M * 1.15
            spacing = min(1000.0, max(60.0, 2 * ns * ew / need_m))
            roads += grid_roads(area, spacing)
    spots = {road.code: _along(road, rng) for road in roads}
    out: list[PlannedPole] = []
    prefix = district[:2].upper()
    # Take poles round-robin over the roads so a small district still spans the map.
    index = 0
    while len(out) < poles and any(index < len(s) for s in spots.values()):
        for road in roads:
            if index < len(spots[road.code]) and len(out) < poles:
                lat, lon = spots[road.code][index]
                pole = PlannedPole(
                    code=f"{prefix}-{road.code}-{index + 1:04d}",
                    name=f"{road.name} #{index + 1}",
                    lat=round(lat, 6),
                    lon=round(lon, 6),
                    height_m=rng.choice([8.0, 10.0, 12.0]),
                    district=district,
                    road=road.name,
                )
                port = 0
                for kind, owner, p in MIX:
                    if rng.random() < p:
                        pole.devices.append(PlannedDevice(kind, owner, port))
                        port += 1
                out.append(pole)
        index += 1
    return out
