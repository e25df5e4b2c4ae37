"""Bulk import and export of the pole inventory (CSV and GeoJSON)."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from smartpole.errors import Forbidden, InvalidInput
from smartpole.model.types import DeviceKind, Role
from smartpole.registry.access import Principal, Tenants
from smartpole.registry.assets import Assets, PoleFilter
from smartpole.registry.inventory import ImportReport, export_poles, import_poles
from smartpole.store import Database
from smartpole.store.schema import poles

HEADER = "code,name,lat,lon,height_m,district,road,installed"


@dataclass
class Env:
    assets: Assets
    city: Principal
    telco: Principal


@pytest.fixture
def env(database: Database) -> Env:
    tenants = Tenants(database.engine)
    city = tenants.create("city", is_operator=True)
    telco = tenants.create("telco")
    return Env(
        Assets(database.engine),
        Principal(city["id"], "city", Role.ADMIN, True),
        Principal(telco["id"], "telco", Role.ADMIN, False),
    )


def generated_csv(n: int, seed: int = 7) -> str:
    rng = random.Random(seed)
    lines = [HEADER]
    for i in range(n):
        lines.append(
            f"SZ-{i:05d},Pole {i},{22.5 + rng.random() / 10!r},{114.0 + rng.random() / 10!r},"
            f"{rng.choice(['', '8', '10.5', '12'])},D{i % 7},Road {i % 31},"
            f"{rng.choice(['', '2021-03-04', '2023-12-31'])}"
        )
    return "\r\n".join(lines) + "\r\n"


def count(env: Env) -> int:
    with env.assets.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(poles)).scalar_one())


def summary(report: ImportReport) -> tuple[int, int, int, int, bool]:
    return (
        report.created,
        report.updated,
        report.unchanged,
        len(report.rejected),
        report.applied,
    )


def test_import_1000_rows_then_reimport_is_idempotent(env: Env) -> None:
    text = generated_csv(1000)
    calls: list[tuple[int, int]] = []
    report = import_poles(
        env.assets, env.city, text, "csv", progress=lambda d, t: calls.append((d, t))
    )
    assert summary(report) == (1000, 0, 0, 0, True)
    assert report.warnings == []
    assert calls[-1] == (1000, 1000)
    assert count(env) == 1000
    pole = env.assets.pole_by_code(env.city, "SZ-00042")
    assert pole.name == "Pole 42"
    assert pole.district == "D0"

    again = import_poles(env.assets, env.city, text.encode(), "csv")
    assert summary(again) == (0, 0, 1000, 0, True)
    assert count(env) == 1000


def test_edited_row_updates_only_that_pole(env: Env) -> None:
    text = generated_csv(200)
    import_poles(env.assets, env.city, text, "csv")
    before = env.assets.pole_by_code(env.city, "SZ-00010")
    lines = text.split("\r\n")
    lines[11] = "SZ-00010,Renamed,22.51,114.01,15,D9,New Road,2020-01-02"  # line 12 = pole 10
    report = import_poles(env.assets, env.city, "\r\n".join(lines), "csv")
    assert summary(report) == (0, 1, 199, 0, True)
    after = env.assets.pole_by_code(env.city, "SZ-00010")
    assert after.id == before.id
    assert after.created == before.created
    assert (after.name, after.lat, after.lon, after.height_m) == (
        "Renamed",
        22.51,
        114.01,
        15.0,
    )
    assert (after.district, after.road, after.installed) == (
        "D9",
        "New Road",
        date(2020, 1, 2),
    )


def test_columns_left_out_keep_their_values_and_empty_cells_clear(env: Env) -> None:
    import_poles(
        env.assets,
        env.city,
        f"{HEADER}\nP-1,Lamp one,22.5,114.0,9,Futian,Shennan,2022-05-06\n",
        "csv",
    )
    report = import_poles(env.assets, env.city, "code,lat,lon\nP-1,22.5,114.0\n", "csv")
    assert summary(report) == (0, 0, 1, 0, True)
    pole = env.assets.pole_by_code(env.city, "P-1")
    assert (pole.name, pole.height_m, pole.installed) == (
        "Lamp one",
        9.0,
        date(2022, 5, 6),
    )

    report = import_poles(
        env.assets, env.city, "code,lat,lon,height_m,installed\nP-1,22.5,114.0,,\n", "csv"
    )
    assert summary(report) == (0, 1, 0, 0, True)
    pole = env.assets.pole_by_code(env.city, "P-1")
    assert (pole.name, pole.height_m, pole.installed) == ("Lamp one", None, None)


def test_rejected_rows_have_line_numbers_and_nothing_is_applied(env: Env) -> None:
    text = (
        f"{HEADER}\n"  # 1
        "OK-1,fine,22.5,114.0,10,D,R,2021-01-01\n"  # 2
        "BAD-LAT,x,95,114.0,,,,\n"  # 3
        ",no code,22.5,114.0,,,,\n"  # 4
        "OK-1,again,22.6,114.1,,,,\n"  # 5
        "BAD-DATE,x,22.5,114.0,,,,2021-13-45\n"  # 6
        '"OK-2","two\nline name",22.5,114.0,,,,\n'  # 7-8
        "\n"  # 9: blank, skipped
        "BAD-NUM,x,north,114.0,200,,,\n"  # 10
        "bad code!,x,22.5,114.0,,,,\n"  # 11
        "OK-3,x,22.5,114.0,,,,,\n"  # 12: a trailing empty cell is fine
        "EXTRA,x,22.5,114.0,,,,,surprise\n"  # 13
    )
    report = import_poles(env.assets, env.city, text, "csv")
    assert not report.applied
    assert (report.created, report.updated, report.unchanged) == (0, 0, 0)
    got = {r.line: (r.code, r.reason) for r in report.rejected}
    assert sorted(got) == [3, 4, 5, 6, 10, 11, 13]
    assert got[3][0] == "BAD-LAT"
    assert "latitude 95.0 outside [-90, 90]" in got[3][1]
    assert got[4] == (None, "code is required")
    assert got[5][0] == "OK-1"
    assert "duplicate code 'OK-1' (first on line 2)" in got[5][1]
    assert got[6] == ("BAD-DATE", "installed: '2021-13-45' is not an ISO date (YYYY-MM-DD)")
    assert "lat: 'north' is not a number" in got[10][1]
    assert "height 200.0 m outside (0, 100]" in got[10][1]  # every problem of a row is listed
    assert got[11][0] == "bad code!"
    assert got[11][1].startswith("code: ")
    assert "9 values but the header has 8 columns" in got[13][1]
    assert count(env) == 0

    report = import_poles(env.assets, env.city, text, "csv", skip_invalid=True)
    assert summary(report) == (3, 0, 0, 7, True)
    assert sorted(p.code for p in env.assets.list_poles(env.city, PoleFilter())[0]) == [
        "OK-1",
        "OK-2",
        "OK-3",
    ]
    assert env.assets.pole_by_code(env.city, "OK-2").name == "two\nline name"
    assert env.assets.pole_by_code(env.city, "OK-1").name == "fine"  # the first occurrence


def test_failed_transaction_writes_nothing(env: Env) -> None:
    def boom(done: int, total: int) -> None:
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        import_poles(env.assets, env.city, generated_csv(300), "csv", progress=boom)
    assert count(env) == 0


def test_bom_chinese_names_aliases_and_extra_columns_round_trip(env: Env, tmp_path: Path) -> None:
    text = (
        "Code,名称备注,Latitude,Longitude,Height,District,Road,Name\n"
        "SZ-FT-001,备注,22.5431,114.0579,12,福田区,深南大道,深南大道1号灯杆\n"
        'SZ-FT-002,,22.5432,114.0581,,福田区,"益田路, 南段",智慧杆 "二号"\n'
    )
    path = tmp_path / "poles.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    report = import_poles(env.assets, env.city, path, "csv")
    assert summary(report) == (2, 0, 0, 0, True)
    assert report.warnings == ["ignored unknown columns: 名称备注"]
    pole = env.assets.pole_by_code(env.city, "SZ-FT-001")
    assert (pole.name, pole.district, pole.road) == (
        "深南大道1号灯杆",
        "福田区",
        "深南大道",
    )
    assert (pole.lat, pole.lon, pole.height_m) == (22.5431, 114.0579, 12.0)

    exported = export_poles(env.assets, env.city, "csv")
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [r["code"] for r in rows] == ["SZ-FT-001", "SZ-FT-002"]
    assert rows[1]["name"] == '智慧杆 "二号"'
    assert rows[1]["road"] == "益田路, 南段"
    assert exported.splitlines()[0] == HEADER
    again = import_poles(env.assets, env.city, ("\ufeff" + exported).encode(), "csv")
    assert summary(again) == (0, 0, 2, 0, True)
    assert again.warnings == []


def test_bad_files_raise_invalid_input(env: Env) -> None:
    with pytest.raises(InvalidInput, match="header"):
        import_poles(env.assets, env.city, "", "csv")
    with pytest.raises(InvalidInput, match="lon"):
        import_poles(env.assets, env.city, "code,lat\nP,1\n", "csv")
    with pytest.raises(InvalidInput, match="both give lat"):
        import_poles(env.assets, env.city, "code,lat,lon,latitude\nP,1,2,3\n", "csv")
    with pytest.raises(InvalidInput, match="UTF-8"):
        import_poles(env.assets, env.city, "code,lat,lon\nP,1,2,\xe9\n".encode("latin-1"), "csv")
    with pytest.raises(InvalidInput, match="FeatureCollection"):
        import_poles(env.assets, env.city, '{"type": "Feature"}', "geojson")
    with pytest.raises(InvalidInput, match="JSON"):
        import_poles(env.assets, env.city, "{nope", "geojson")
    with pytest.raises(InvalidInput, match="format"):
        import_poles(env.assets, env.city, "", "xml")  # type: ignore[arg-type]


def feature(code: Any, lon: Any, lat: Any, **props: Any) -> dict[str, Any]:
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [lon, lat]},
        "properties": {"code": code, **props},
    }


def test_geojson_import_export_round_trip(env: Env) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            feature("G-1", 114.05, 22.54, name="南山一号", height_m=10, installed="2020-02-02"),
            feature("G-2", -0.1276, 51.5072, name="Strand", road="Strand", colour="green"),
            feature("G-3", 179.5, -16.5, district=None),
        ],
    }
    report = import_poles(env.assets, env.city, orjson.dumps(doc), "geojson")
    assert summary(report) == (3, 0, 0, 0, True)
    assert report.warnings == ["ignored unknown properties: colour"]
    pole = env.assets.pole_by_code(env.city, "G-1")
    assert (pole.lat, pole.lon, pole.name, pole.height_m) == (
        22.54,
        114.05,
        "南山一号",
        10.0,
    )
    assert pole.installed == date(2020, 2, 2)

    exported = export_poles(env.assets, env.city, "geojson")
    out = orjson.loads(exported)
    assert out["type"] == "FeatureCollection"
    assert [f["properties"]["code"] for f in out["features"]] == ["G-1", "G-2", "G-3"]
    first = out["features"][0]
    assert first["geometry"] == {"type": "Point", "coordinates": [114.05, 22.54]}
    assert first["properties"] == {
        "code": "G-1",
        "name": "南山一号",
        "height_m": 10.0,
        "district": "",
        "road": "",
        "installed": "2020-02-02",
        "devices": [],
    }
    again = import_poles(env.assets, env.city, exported, "geojson")
    assert summary(again) == (0, 0, 3, 0, True)
    assert again.warnings == []
    # and the CSV export of the same poles says the same
    assert summary(
        import_poles(env.assets, env.city, export_poles(env.assets, env.city, "csv"), "csv")
    ) == (
        0,
        0,
        3,
        0,
        True,
    )


def test_geojson_rejections_name_the_feature(env: Env) -> None:
    doc = {
        "type": "FeatureCollection",
        "features": [
            feature("G-1", 114.05, 22.54),  # 1
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": []},
                "properties": {"code": "G-2"},
            },
            feature("G-3", 200, 22.5),  # 3
            "nonsense",  # 4
            feature("G-1", 114.0, 22.0),  # 5
            feature("G-6", "114", True),  # 6
            feature(None, 114.0, 22.0),  # 7
        ],
    }
    report = import_poles(env.assets, env.city, orjson.dumps(doc), "geojson")
    assert not report.applied
    got = {r.line: (r.code, r.reason) for r in report.rejected}
    assert got == {
        2: ("G-2", "geometry must be a Point"),
        3: ("G-3", "lon: longitude 200.0 outside [-180, 180]"),
        4: (None, "not a GeoJSON Feature"),
        5: ("G-1", "duplicate code 'G-1' (first on line 1)"),
        6: ("G-6", "lat: True is not a number"),
        7: (None, "code is required"),
    }
    assert count(env) == 0
    report = import_poles(env.assets, env.city, orjson.dumps(doc), "geojson", skip_invalid=True)
    # "114" as a string is accepted as a number, so G-6 fails only on its boolean latitude
    assert summary(report) == (1, 0, 0, 6, True)


def test_tenant_export_lists_only_its_poles_and_device_kinds(env: Env) -> None:
    import_poles(env.assets, env.city, generated_csv(5), "csv")
    ids = {p.code: p.id for p in env.assets.list_poles(env.city, PoleFilter())[0]}
    env.assets.create_device(env.telco, DeviceKind.SMALL_CELL, pole_id=ids["SZ-00001"], port=1)
    env.assets.create_device(env.telco, DeviceKind.CAMERA, pole_id=ids["SZ-00001"], port=2)
    env.assets.create_device(env.telco, DeviceKind.CAMERA, pole_id=ids["SZ-00003"], port=1)
    env.assets.create_device(env.telco, DeviceKind.WIFI)  # not mounted
    env.assets.create_device(env.city, DeviceKind.LAMP, pole_id=ids["SZ-00001"], port=3)
    env.assets.create_device(env.city, DeviceKind.LAMP, pole_id=ids["SZ-00002"], port=1)

    mine = orjson.loads(export_poles(env.assets, env.telco, "geojson"))
    assert {f["properties"]["code"]: f["properties"]["devices"] for f in mine["features"]} == {
        "SZ-00001": ["camera", "small_cell"],
        "SZ-00003": ["camera"],
    }
    rows = list(csv.DictReader(io.StringIO(export_poles(env.assets, env.telco, "csv"))))
    assert [r["code"] for r in rows] == ["SZ-00001", "SZ-00003"]

    everything = orjson.loads(export_poles(env.assets, env.city, "geojson"))
    assert {
        f["properties"]["code"]: f["properties"]["devices"] for f in everything["features"]
    } == {
        "SZ-00000": [],
        "SZ-00001": ["camera", "lamp", "small_cell"],
        "SZ-00002": ["lamp"],
        "SZ-00003": ["camera"],
        "SZ-00004": [],
    }
    filtered = orjson.loads(
        export_poles(env.assets, env.city, "geojson", PoleFilter(district="D1"))
    )
    assert [
        (f["properties"]["code"], f["properties"]["devices"]) for f in filtered["features"]
    ] == [("SZ-00001", ["camera", "lamp", "small_cell"])]


def test_only_the_city_operator_imports(env: Env) -> None:
    with pytest.raises(Forbidden):
        import_poles(env.assets, env.telco, generated_csv(3), "csv")
    viewer = Principal(env.city.tenant_id, "city", Role.VIEWER, True)
    with pytest.raises(Forbidden):
        import_poles(env.assets, viewer, generated_csv(3), "csv")
    assert count(env) == 0
    operator = Principal(env.city.tenant_id, "city", Role.OPERATOR, True)
    assert import_poles(env.assets, operator, generated_csv(3), "csv").created == 3
