"""A realistic district of smart poles: roads, poles every 25-40 m, a mix of devices.

Deterministic for a seed. The default is Futian, Shenzhen (around 22.54 N, 114.05 E).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from smartpole.model.types import DeviceKind

__all__ = ["FUTIAN_ROADS", "TENANTS", "PlannedDevice", "PlannedPole", "Road", "plan_district"]


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
    poles: int = 500, seed: int = 1, district: str = "Futian", roads: list[Road] | None = None
) -> list[PlannedPole]:
    """Up to ``poles`` poles along the roads, with their devices; same seed, same district."""
    rng = random.Random(seed)  # noqa: S311 - a simulation, not a secret
    roads = roads or FUTIAN_ROADS
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
