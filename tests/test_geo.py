"""Geo queries over poles, checked against brute force over random poles."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from shapely.geometry import Point, shape
from sqlalchemy import create_engine, insert

from smartpole.errors import InvalidInput
from smartpole.model.clock import now_ms
from smartpole.model.poles import Pole
from smartpole.model.types import DeviceKind, Role
from smartpole.registry.access import Principal, Tenants
from smartpole.registry.assets import Assets, PoleFilter
from smartpole.registry.geo import Geo
from smartpole.store import Database
from smartpole.store.schema import poles

CENTER = (22.54, 114.05)  # lat, lon (Shenzhen)
N = 600


@dataclass
class World:
    geo: Geo
    assets: Assets
    city: Principal
    telco: Principal
    poles: list[dict[str, Any]]  # code, lat, lon, district
    telco_codes: set[str]


def brute_distance(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine again, written independently, on the same sphere."""
    r = 6_371_008.8
    x1, y1, x2, y2 = map(math.radians, (lat1, lon1, lat2, lon2))
    h = math.sin((x2 - x1) / 2) ** 2 + math.cos(x1) * math.cos(x2) * math.sin((y2 - y1) / 2) ** 2
    return 2 * r * math.asin(math.sqrt(h))


@pytest.fixture
def world(database: Database) -> World:
    rng = random.Random(20240611)
    rows = []
    for i in range(N):
        rows.append(
            {
                "code": f"P{i:04d}",
                "lat": CENTER[0] + rng.uniform(-0.08, 0.08),
                "lon": CENTER[1] + rng.uniform(-0.08, 0.08),
                "district": rng.choice(["Futian", "Nanshan", "Luohu"]),
                "created": now_ms(),
            }
        )
    # a few on grid points, to exercise edges of boxes
    rows += [
        {"code": "EDGE-1", "lat": 22.5, "lon": 114.0, "district": "Futian", "created": 0},
        {"code": "EDGE-2", "lat": 22.6, "lon": 114.1, "district": "Futian", "created": 0},
    ]
    with database.engine.begin() as conn:
        conn.execute(insert(poles), rows)
    tenants = Tenants(database.engine)
    city = Principal(tenants.create("city", is_operator=True)["id"], "city", Role.ADMIN, True)
    telco = Principal(tenants.create("telco")["id"], "telco", Role.ADMIN, False)
    assets = Assets(database.engine)
    listed, _ = assets.list_poles(city, PoleFilter(), limit=N + 10)
    telco_codes: set[str] = set()
    for pole in rng.sample(listed, 120):
        assets.create_device(telco, DeviceKind.SMALL_CELL, pole_id=pole.id, port=1)
        telco_codes.add(pole.code)
    return World(Geo(assets), assets, city, telco, rows, telco_codes)


@pytest.fixture
def bare() -> tuple[Geo, Principal]:
    """A Geo over an engine never connected: arguments are checked before any query."""
    geo = Geo(Assets(create_engine("sqlite://")))
    return geo, Principal(1, "city", Role.ADMIN, True)


def codes(rows: Sequence[Pole] | Sequence[tuple[Pole, float]]) -> list[str]:
    """The codes of poles (found in an area, or near a point with their distance)."""
    return [(r[0] if isinstance(r, tuple) else r).code for r in rows]


def test_near_matches_brute_force_sorted_by_distance(world: World) -> None:
    rng = random.Random(5)
    for _ in range(25):
        lat = CENTER[0] + rng.uniform(-0.1, 0.1)
        lon = CENTER[1] + rng.uniform(-0.1, 0.1)
        radius = rng.choice([50.0, 300.0, 1000.0, 2500.0, 6000.0, 20000.0])
        got = world.geo.near(world.city, lat, lon, radius)
        want = sorted(
            (d, p["code"])
            for p in world.poles
            if (d := brute_distance(lat, lon, p["lat"], p["lon"])) <= radius
        )
        assert codes(got) == [c for _, c in want]
        distances = [distance for _, distance in got]
        assert distances == sorted(distances)
        for (_, distance), (d, _) in zip(got, want, strict=True):
            assert distance == pytest.approx(d, abs=0.051)
        if got:
            pole, _ = got[0]
            inserted = next(p for p in world.poles if p["code"] == pole.code)
            assert (pole.lat, pole.lon, pole.district) == (
                inserted["lat"],
                inserted["lon"],
                inserted["district"],
            )


def test_near_limit_filter_and_tenant(world: World) -> None:
    lat, lon = CENTER
    everything = world.geo.near(world.city, lat, lon, 50_000)
    assert len(everything) == len(world.poles)
    assert codes(world.geo.near(world.city, lat, lon, 50_000, limit=7)) == codes(everything)[:7]

    nanshan = world.geo.near(world.city, lat, lon, 5000, PoleFilter(district="Nanshan"))
    by_code = {p["code"]: p for p in world.poles}
    assert nanshan
    assert all(by_code[c]["district"] == "Nanshan" for c in codes(nanshan))
    assert codes(nanshan) == [
        r.code for r, _ in world.geo.near(world.city, lat, lon, 5000) if r.district == "Nanshan"
    ]

    mine = world.geo.near(world.telco, lat, lon, 50_000)
    assert set(codes(mine)) == world.telco_codes
    assert codes(mine) == [c for c in codes(everything) if c in world.telco_codes]


def test_bbox_matches_brute_force(world: World) -> None:
    rng = random.Random(6)
    boxes = [(114.0, 22.5, 114.1, 22.6)]
    for _ in range(20):
        lon1, lon2 = sorted(CENTER[1] + rng.uniform(-0.1, 0.1) for _ in range(2))
        lat1, lat2 = sorted(CENTER[0] + rng.uniform(-0.1, 0.1) for _ in range(2))
        boxes.append((lon1, lat1, lon2, lat2))
    for box in boxes:
        min_lon, min_lat, max_lon, max_lat = box
        want = sorted(
            p["code"]
            for p in world.poles
            if min_lon <= p["lon"] <= max_lon and min_lat <= p["lat"] <= max_lat
        )
        assert codes(world.geo.bbox(world.city, *box)) == want
        assert codes(world.geo.bbox(world.telco, *box)) == [
            c for c in want if c in world.telco_codes
        ]
    assert {"EDGE-1", "EDGE-2"} <= set(codes(world.geo.bbox(world.city, *boxes[0])))
    assert len(world.geo.bbox(world.city, 113, 22, 115, 23, limit=10)) == 10


def random_polygon(rng: random.Random, n: int) -> dict[str, Any]:
    """A star-shaped (hence simple) polygon around a random point."""
    clat = CENTER[0] + rng.uniform(-0.05, 0.05)
    clon = CENTER[1] + rng.uniform(-0.05, 0.05)
    ring = []
    for k in range(n):
        angle = 2 * math.pi * k / n
        r = rng.uniform(0.005, 0.05)
        ring.append([clon + r * math.cos(angle), clat + r * math.sin(angle)])
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def brute_within(world: World, geometry: dict[str, Any]) -> list[str]:
    geom = shape(geometry)
    return sorted(p["code"] for p in world.poles if geom.covers(Point(p["lon"], p["lat"])))


def test_within_matches_brute_force(world: World) -> None:
    rng = random.Random(7)
    for _ in range(15):
        polygon = random_polygon(rng, rng.randint(3, 12))
        want = brute_within(world, polygon)
        assert codes(world.geo.within(world.city, polygon)) == want
        mine = [c for c in want if c in world.telco_codes]
        assert codes(world.geo.within(world.telco, polygon)) == mine

    # a multipolygon, one part with a hole; the grid points sit on edges
    outer = [[114.0, 22.5], [114.1, 22.5], [114.1, 22.6], [114.0, 22.6], [114.0, 22.5]]
    hole = [[114.03, 22.53], [114.07, 22.53], [114.07, 22.57], [114.03, 22.57], [114.03, 22.53]]
    other = [[113.95, 22.45], [113.99, 22.45], [113.99, 22.49], [113.95, 22.45]]
    multi = {"type": "MultiPolygon", "coordinates": [[outer, hole], [other]]}
    want = brute_within(world, multi)
    got = world.geo.within(world.city, multi)
    assert codes(got) == want
    assert {"EDGE-1", "EDGE-2"} <= set(want)
    assert not any(114.03 < r.lon < 114.07 and 22.53 < r.lat < 22.57 for r in got)
    assert codes(world.geo.within(world.city, multi, limit=5)) == want[:5]
    assert codes(world.geo.within(world.city, multi, PoleFilter(district="Luohu"))) == [
        c for c in want if next(p for p in world.poles if p["code"] == c)["district"] == "Luohu"
    ]


def test_near_across_the_antimeridian_and_near_a_geographic_pole(database: Database) -> None:
    with database.engine.begin() as conn:
        conn.execute(
            insert(poles),
            [
                {"code": "EAST", "lat": 0.0, "lon": 179.9995, "created": 0},
                {"code": "WEST", "lat": 0.0, "lon": -179.9995, "created": 0},
                {"code": "FAR", "lat": 0.0, "lon": 179.9, "created": 0},
                {"code": "NORTH-A", "lat": 89.9999, "lon": 0.0, "created": 0},
                {"code": "NORTH-B", "lat": 89.9999, "lon": 180.0, "created": 0},
            ],
        )
    city = Principal(Tenants(database.engine).create("city", True)["id"], "city", Role.ADMIN, True)
    geo = Geo(Assets(database.engine))
    got = geo.near(city, 0.0, 180.0, 200)
    assert sorted(codes(got)) == ["EAST", "WEST"]
    assert [distance for _, distance in got] == [55.6, 55.6]
    assert codes(geo.near(city, 0.0, -179.9999, 200)) == ["WEST", "EAST"]
    assert sorted(codes(geo.near(city, 90.0, 0.0, 100))) == ["NORTH-A", "NORTH-B"]
    # 0.0001 deg from the pole, a quarter turn round it: 15.7 m from both
    assert codes(geo.near(city, 89.9999, 90.0, 15)) == []
    assert sorted(codes(geo.near(city, 89.9999, 90.0, 16))) == ["NORTH-A", "NORTH-B"]


@pytest.mark.parametrize(
    ("geometry", "message"),
    [
        ({"type": "Point", "coordinates": [114.0, 22.5]}, "Polygon or MultiPolygon"),
        ("POLYGON ((0 0, 1 0, 1 1, 0 0))", "GeoJSON object"),
        ({"type": "Polygon"}, "coordinates"),
        ({"type": "Polygon", "coordinates": "nope"}, "malformed Polygon"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}, "malformed Polygon"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]},
            "invalid Polygon: Self-intersection",
        ),
        ({"type": "Polygon", "coordinates": []}, "empty"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [0, 100], [1, 100], [0, 0]]]},
            r"within \[-180, 180\]",
        ),
        ({"type": "MultiPolygon", "coordinates": [[[[0, 0], [1, 1]]]]}, "malformed MultiPolygon"),
    ],
)
def test_within_rejects_bad_geometry(
    bare: tuple[Geo, Principal], geometry: Any, message: str
) -> None:
    geo, who = bare
    with pytest.raises(InvalidInput, match=message):
        geo.within(who, geometry)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda g, w: g.near(w, 91, 0, 10), "lat"),
        (lambda g, w: g.near(w, 0, -180.5, 10), "lon"),
        (lambda g, w: g.near(w, 0, 0, 0), "radius_m"),
        (lambda g, w: g.near(w, 0, 0, 50_001), "radius_m"),
        (lambda g, w: g.near(w, 0, 0, float("nan")), "radius_m"),
        (lambda g, w: g.near(w, "north", 0, 10), "lat must be a number"),
        (lambda g, w: g.near(w, 0, 0, 10, limit=0), "limit"),
        (lambda g, w: g.bbox(w, 114.1, 22.5, 114.0, 22.6), "min_lon <= max_lon"),
        (lambda g, w: g.bbox(w, 114.0, 22.6, 114.1, 22.5), "min_lat <= max_lat"),
        (lambda g, w: g.bbox(w, 114.0, -91, 114.1, 22.5), "min_lat"),
        (lambda g, w: g.bbox(w, 114.0, 22.5, 181, 22.6), "max_lon"),
    ],
)
def test_invalid_arguments(bare: tuple[Geo, Principal], call: Any, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        call(*bare)
