"""The simulator's device models and district: physics a reader of the data can rely on."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from statistics import mean

import orjson
import pytest

from smartpole.model.catalog import CATALOG, check_value
from smartpole.model.types import DeviceKind, Quality
from smartpole.sim.district import plan_district, roads_from_geojson
from smartpole.sim.environment import District, aqi
from smartpole.sim.equipment import Charger, Gateway
from smartpole.sim.faults import FAULTS, FaultRates
from smartpole.sim.fleet import FleetDevice, FleetPole, PoleSim, fleet_from_plan
from smartpole.sim.models import MODELS, model_for
from smartpole.sim.physics import Lamp, Site
from smartpole.sim.runner import payloads

SHENZHEN = timezone(timedelta(hours=8))
NIGHT = datetime(2025, 1, 15, 22, 0, tzinfo=SHENZHEN).timestamp()
NOON = datetime(2025, 1, 15, 12, 0, tzinfo=SHENZHEN).timestamp()
DISTRICT = District(seed=7)


def lamp_power(level: float) -> float:
    lamp = Lamp("FU-SN-0001-lamp", 7, Site(height_m=10.0))
    lamp.report(DISTRICT.at(NIGHT))
    lamp.command("setDim", {"level": level}, DISTRICT.at(NIGHT))
    return float(lamp.report(DISTRICT.at(NIGHT + 10))["power"])  # type: ignore[arg-type]


def test_a_dimmed_lamp_draws_less() -> None:
    full, half, low = lamp_power(100), lamp_power(50), lamp_power(20)
    assert full > half > low > 0
    # rated 90 W LED at 100 % plus the driver's loss; at 20 % far less than a fifth of that +
    assert 90 < full < 105
    assert low < full * 0.35


def test_a_lamp_follows_the_photocell_and_a_command_until_the_next_dusk() -> None:
    lamp = Lamp("FU-SN-0002-lamp", 7)
    assert lamp.report(DISTRICT.at(NIGHT))["on"] is True
    assert lamp.report(DISTRICT.at(NOON + 86_400))["on"] is False
    lamp.command("setOn", {"on": True}, DISTRICT.at(NOON + 86_400 + 60))
    assert lamp.report(DISTRICT.at(NOON + 86_400 + 120))["on"] is True  # the override holds
    assert lamp.report(DISTRICT.at(NIGHT + 86_400))["on"] is True  # dusk: back on the program
    assert lamp.report(DISTRICT.at(NOON + 2 * 86_400))["on"] is False


def test_counters_never_decrease_over_two_days_of_commands() -> None:
    rng = random.Random(3)
    pole = FleetPole("FU-SN-0001", 22.54, 114.05, 10.0)
    for port, kind in enumerate(("gateway", "lamp", "meter", "charger", "wifi")):
        pole.devices.append(FleetDevice(f"FU-SN-0001-{kind}", kind, port, "t"))
    ps = PoleSim(pole, 5, DISTRICT, FaultRates.parse(["all=0.05"]))
    counters = {
        "FU-SN-0001-gateway": ("energy", "uptime", "port1_energy"),
        "FU-SN-0001-lamp": ("energy", "hours"),
        "FU-SN-0001-meter": ("energy",),
        "FU-SN-0001-charger": ("energy",),
        "FU-SN-0001-wifi": ("traffic",),
    }
    last: dict[tuple[str, str], float] = {}
    t = NOON
    for _ in range(2 * 24 * 6):  # every 10 minutes
        t += 600
        if rng.random() < 0.1:
            ps.command("FU-SN-0001-lamp", "setDim", {"level": rng.randint(0, 100)}, t)
        for name, entries in ps.tick(t).telemetry.items():
            for entry in entries:
                for key in counters[name]:
                    value = float(entry["values"][key])
                    assert value >= last.get((name, key), 0.0), f"{name}.{key} went down"
                    last[(name, key)] = value
    assert last[("FU-SN-0001-lamp", "hours")] > 0


def test_air_quality_follows_the_traffic_peaks_and_the_afternoon_sun() -> None:
    air = model_for(DeviceKind.AIR, "FU-SN-0001-air", 7)
    by_hour: dict[int, list[dict[str, float]]] = {}
    start = datetime(2025, 3, 1, tzinfo=SHENZHEN).timestamp()
    for step in range(14 * 24 * 6):  # two weeks, every 10 minutes
        t = start + step * 600
        values = air.report(DISTRICT.at(t))
        hour = datetime.fromtimestamp(t, SHENZHEN).hour
        by_hour.setdefault(hour, []).append({k: float(v) for k, v in values.items()})  # type: ignore[arg-type]

    def avg(hour: int, key: str) -> float:
        return mean(v[key] for v in by_hour[hour])

    assert avg(9, "no2") > 1.5 * avg(3, "no2")  # morning rush hour vs small hours
    assert avg(19, "pm25") > avg(3, "pm25")
    assert avg(9, "aqi") > avg(3, "aqi")
    assert avg(15, "o3") > 2 * avg(3, "o3")  # photochemical: afternoon sun


def test_aqi_is_the_worst_individual_index() -> None:
    assert aqi({"pm25": 35, "no2": 20}) == 50
    assert aqi({"pm25": 75, "o3": 100}) == 100
    assert aqi({"pm25": 600}) == 500


@pytest.mark.parametrize("kind", [pytest.param(k, id=str(k)) for k in MODELS])
def test_every_kind_reports_catalog_keys_in_range_through_a_faulty_week(kind: DeviceKind) -> None:
    model = model_for(kind, f"FU-SN-0001-{kind}", 11)
    if isinstance(model, Gateway):
        model.ports = {1: Lamp("l", 11), 2: Charger("c", 11)}
    spec = CATALOG[kind].keys
    seen: set[str] = set()
    for step in range(7 * 24 * 4):
        amb = DISTRICT.at(NOON + step * 900)
        for fault in FAULTS:
            if step % 97 == 0:
                model.inject(fault, amb)
        for key, value in model.report(amb).items():
            if key.startswith("port"):
                continue  # per-port meters of a gateway: not catalog keys
            assert key in spec, f"{kind} reports {key}, which the catalog does not list"
            assert check_value(kind, key, value) == (Quality.GOOD, ""), (kind, key, value)
            seen.add(key)
    assert seen == set(spec)


def test_same_seed_same_readings_other_seed_other_readings() -> None:
    plan = plan_district(5, seed=2)
    fleet = fleet_from_plan(
        plan, {f"{p.code}-{d.kind}": "t" for p in plan for d in p.devices}, 2, "F"
    )

    def run(seed: int) -> list[object]:
        district = District(seed)
        poles = [PoleSim(p, seed, district, FaultRates.parse(["all=0.5"])) for p in fleet.poles]
        return [ps.tick(NIGHT + k * 600).telemetry for k in range(20) for ps in poles]

    assert run(2) == run(2)
    assert run(2) != run(3)


@pytest.mark.parametrize(
    ("rate", "expected"),
    [pytest.param(1.0, True, id="rate-1-hourly-always"), pytest.param(0.0, False, id="rate-0")],
)
def test_a_fault_rate_is_per_device_hour(rate: float, expected: bool) -> None:
    rates = FaultRates.parse(["none", f"lamp_failure={rate}"])
    rng = random.Random(1)
    assert all(rates.starts("lamp_failure", 3600, rng) is expected for _ in range(100))


def test_a_failed_lamp_is_on_but_draws_next_to_nothing() -> None:
    lamp = Lamp("FU-SN-0003-lamp", 7)
    assert lamp.inject("lamp_failure", DISTRICT.at(NIGHT))
    values = lamp.report(DISTRICT.at(NIGHT))
    assert values["on"] is True
    assert float(values["power"]) < 3  # type: ignore[arg-type]


def test_unknown_faults_and_bad_rates_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        FaultRates.parse(["meteor=1"])
    with pytest.raises(ValueError, match="RATE >= 0"):
        FaultRates.parse(["sos=-1"])


def test_a_district_of_ten_thousand_poles_has_unique_codes_and_every_pole_a_lamp() -> None:
    plan = plan_district(10_000, seed=1)
    assert len(plan) == 10_000
    assert len({p.code for p in plan}) == 10_000
    assert all(any(d.kind == DeviceKind.LAMP for d in p.devices) for p in plan)
    assert all(22.5 < p.lat < 22.58 and 114.0 < p.lon < 114.1 for p in plan)


def test_a_bounding_box_or_a_geojson_road_file_gives_the_roads(tmp_path: Path) -> None:
    box = plan_district(200, bbox=(31.22, 121.46, 31.24, 121.49))
    assert len(box) == 200
    assert all(31.22 <= p.lat <= 31.24 and 121.46 <= p.lon <= 121.49 for p in box)
    road = {
        "type": "Feature",
        "properties": {"name": "Nanjing Rd", "ref": "NJ"},
        "geometry": {"type": "LineString", "coordinates": [[121.47, 31.235], [121.49, 31.235]]},
    }
    path = tmp_path / "roads.geojson"
    path.write_bytes(orjson.dumps({"type": "FeatureCollection", "features": [road]}))
    roads = roads_from_geojson(path)
    plan = plan_district(1000, roads=roads)
    assert 50 < len(plan) < 90  # about 1.9 km of road at 25-40 m
    assert plan[0].code == "FU-NJ-0001"
    assert plan[0].road == "Nanjing Rd"


def test_a_long_backlog_is_split_under_the_payload_limit() -> None:
    entry = {"ts": 1, "values": {"power": 1.0, "energy": 2.0}}
    backlog = {f"dev-{i}": [entry] * 200 for i in range(5)}
    parts = payloads(backlog, limit=4000)
    assert all(len(body) <= 4000 for body, _ in parts)
    assert sum(n for _, n in parts) == 5 * 200 * 2
    merged: dict[str, int] = {}
    for body, _ in parts:
        for name, entries in orjson.loads(body).items():
            merged[name] = merged.get(name, 0) + len(entries)
    assert merged == {f"dev-{i}": 200 for i in range(5)}


def test_the_district_clock_is_local_time() -> None:
    noon_utc = datetime(2025, 6, 1, 4, 0, tzinfo=UTC).timestamp()  # 12:00 in Shenzhen
    amb = DISTRICT.at(noon_utc)
    assert round(amb.hour) == 12
    assert amb.sun > 0.9
