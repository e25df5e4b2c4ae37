"""Lighting over REST: programs, groups and calendars one at a time or as a document, overrides,
plans with their reasons, energy, and tenancy (on both engines)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from fixtures_api import City, make_device, make_pole
from smartpole.app import Platform
from smartpole.lighting.energy import HEADER
from smartpole.model.types import Reading, Role
from smartpole.model.writes import WriteBatch

SHANGHAI = ZoneInfo("Asia/Shanghai")
HOUR = 3_600_000
NIGHT = dt.date(2026, 3, 10)
DOCUMENT = b"""
programs:
  - name: night
    steps:
      - {at: sunset, level: 100}
      - {at: "virtual_midnight-60", level: 50, fade_s: 300}
      - {at: "virtual_midnight+60", level: 80}
      - {at: sunrise, level: 0}
groups:
  - {name: everyone}
  - {name: shennan, roads: [Shennan]}
holidays:
  - {name: shenzhen, dates: [2026-09-01]}
calendar:
  - name: every-night
    program: night
    group: everyone
    weekdays: [mon, tue, wed, thu, fri, sat, sun]
  - {name: festival, program: night, group: shennan, holidays: shenzhen, priority: 10}
"""
YAML = {"Content-Type": "application/yaml"}


def ms(*when: int) -> int:
    """Shanghai wall time to ms."""
    return round(dt.datetime(*when, tzinfo=SHANGHAI).timestamp() * 1000)  # type: ignore[misc]


@dataclass
class Clock:
    """A clock the test moves."""

    now: int

    def __call__(self) -> int:
        return self.now


@dataclass
class Lit:
    """The lighting tenant's lamps (name -> device id) and its gateway."""

    lamps: dict[str, int]
    gateway: str


async def light_up(client: httpx.AsyncClient, city: City) -> Lit:
    """Two poles of the lighting tenant: one on Shennan with a gateway and two lamps, one on
    Binhe with a lamp and no gateway; its lighting document imported."""
    a = await make_pole(client, city, "FT-SN-001", road="Shennan")
    b = await make_pole(client, city, "FT-BH-001", road="Binhe")
    await make_device(client, city, "lighting", "gateway", a, name="gw-a", port=1)
    lamps = {}
    for name, pole, port in (("lamp-a1", a, 2), ("lamp-a2", a, 3), ("lamp-b1", b, 2)):
        lamps[name] = (
            await make_device(client, city, "lighting", "lamp", pole, name=name, port=port)
        )["id"]
    headers = {**YAML, **city.auth("lighting", Role.OPERATOR)}
    r = await client.put("/api/lighting/document", content=DOCUMENT, headers=headers)
    assert r.status_code == 200, r.text
    return Lit(lamps, "gw-a")


async def test_programs_are_created_read_replaced_and_deleted_one_at_a_time(
    client: httpx.AsyncClient, city: City
) -> None:
    op = city.auth("lighting", Role.OPERATOR)
    program = {
        "name": "half",
        "steps": [{"at": "sunset", "level": 50}, {"at": "sunrise", "level": 0}],
    }
    r = await client.post("/api/lighting/programs", json=program, headers=op)
    assert r.status_code == 201, r.text
    again = await client.post("/api/lighting/programs", json=program, headers=op)
    assert again.status_code == 200
    steps = [{"at": "sunset+15", "level": 40, "fade_s": 60}, {"at": "sunrise", "level": 0}]
    r = await client.put("/api/lighting/programs/half", json={"steps": steps}, headers=op)
    assert r.status_code == 200, r.text
    got = await client.get(
        "/api/lighting/programs/half", headers=city.auth("lighting", Role.VIEWER)
    )
    assert got.json()["steps"][0] == {"at": "sunset+15", "level": 40.0, "fade_s": 60}
    listed = await client.get("/api/lighting/programs", headers=op)
    assert [p["name"] for p in listed.json()] == ["half"]
    assert (await client.delete("/api/lighting/programs/half", headers=op)).status_code == 204
    assert (await client.get("/api/lighting/programs/half", headers=op)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"),
    [
        pytest.param(
            "POST",
            "/api/lighting/calendars",
            {
                "name": "x",
                "program": "nope",
                "group": "everyone",
                "weekdays": ["sat"],
                "priority": 5,
            },
            ["calendar", 2, "program"],
            id="entry-naming-an-unknown-program",
        ),
        pytest.param(
            "DELETE",
            "/api/lighting/programs/night",
            None,
            ["calendar", 0, "program"],
            id="deleting-a-program-in-use",
        ),
        pytest.param(
            "DELETE",
            "/api/lighting/groups/everyone",
            None,
            ["calendar", 0, "group"],
            id="deleting-a-group-in-use",
        ),
        pytest.param(
            "DELETE",
            "/api/lighting/holidays/shenzhen",
            None,
            ["calendar", 1, "holidays"],
            id="deleting-a-holiday-calendar-in-use",
        ),
        pytest.param(
            "POST",
            "/api/lighting/groups",
            {"name": "x" * 129},
            ["groups", 2, "name"],
            id="a-name-too-long-to-store",
        ),
        pytest.param(
            "POST",
            "/api/lighting/programs",
            {"name": "bad", "steps": [{"at": "sunset", "level": 120}]},
            ["programs", 1, "steps", 0, "level"],
            id="a-step-above-100-percent",
        ),
        pytest.param(
            "POST",
            "/api/lighting/calendars",
            {"name": "twin", "program": "night", "group": "everyone", "weekdays": ["sat"]},
            None,
            id="equal-priorities-that-meet",
        ),
    ],
)
async def test_a_change_that_would_break_the_whole_is_refused_at_its_location(
    client: httpx.AsyncClient, city: City, method: str, path: str, body: Any, loc: list[Any] | None
) -> None:
    await light_up(client, city)
    op = city.auth("lighting", Role.OPERATOR)
    before = (await client.get("/api/lighting/document", headers=op)).json()
    r = await client.request(method, path, json=body, headers=op)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    if loc is not None:
        assert loc in [e["loc"] for e in r.json()["errors"]]
    assert (await client.get("/api/lighting/document", headers=op)).json() == before


async def test_a_document_exported_as_yaml_imports_back_to_the_same(
    client: httpx.AsyncClient, city: City
) -> None:
    await light_up(client, city)
    op = city.auth("lighting", Role.OPERATOR)
    exported = await client.get(
        "/api/lighting/document", headers={**op, "Accept": "application/yaml"}
    )
    assert exported.headers["content-type"].startswith("application/yaml")
    as_json = (await client.get("/api/lighting/document", headers=op)).json()
    assert yaml.safe_load(exported.text)["programs"] == as_json["programs"]
    r = await client.put("/api/lighting/document", content=exported.content, headers={**YAML, **op})
    assert r.status_code == 200, r.text
    assert r.json() == as_json


async def test_an_invalid_yaml_document_names_the_line_and_saves_nothing(
    client: httpx.AsyncClient, city: City
) -> None:
    await light_up(client, city)
    op = city.auth("lighting", Role.OPERATOR)
    bad = DOCUMENT.replace(b"level: 50,", b"level: 150,")
    r = await client.put("/api/lighting/document", content=bad, headers={**YAML, **op})
    assert r.status_code == 422
    [problem] = r.json()["errors"]
    assert problem["loc"] == ["programs", 0, "steps", 1, "level"]
    assert problem["line"] == 6
    steps = (await client.get("/api/lighting/programs/night", headers=op)).json()["steps"]
    assert steps[1]["level"] == 50


async def test_a_merge_import_adds_and_replaces_by_name_keeping_the_rest(
    client: httpx.AsyncClient, city: City
) -> None:
    await light_up(client, city)
    op = city.auth("lighting", Role.OPERATOR)
    more = {"groups": [{"name": "binhe", "roads": ["Binhe"]}]}
    r = await client.put("/api/lighting/document?replace=false", json=more, headers=op)
    assert r.status_code == 200, r.text
    assert [g["name"] for g in r.json()["groups"]] == ["everyone", "shennan", "binhe"]
    assert [p["name"] for p in r.json()["programs"]] == ["night"]


async def test_a_group_plan_follows_the_program_through_the_night_with_its_reasons(
    client: httpx.AsyncClient, city: City
) -> None:
    await light_up(client, city)
    q = {"group": "shennan", "date": NIGHT.isoformat()}
    r = await client.get("/api/lighting/plan", params=q, headers=city.auth("lighting", Role.VIEWER))
    assert r.status_code == 200, r.text
    lamps = r.json()["lamps"]
    assert [lamp["lamp"] for lamp in lamps] == ["lamp-a1", "lamp-a2"]
    steps = lamps[0]["steps"]
    assert [s["level"] for s in steps] == [100, 50, 80, 0]
    assert {tuple(s["reason"].values()) for s in steps} == {("night", "every-night", None)}
    sunset = dt.datetime.fromtimestamp(steps[0]["ts"] / 1000, SHANGHAI)
    assert (sunset.date(), sunset.hour) == (NIGHT, 18)
    assert steps[1]["fade_s"] == 300


async def test_an_override_holds_a_lamp_then_ends_by_itself(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    await light_up(client, city)
    clock = Clock(ms(2026, 3, 10, 20))
    platform.lighting.clock = clock
    op = city.auth("lighting", Role.OPERATOR)
    body = {"group": "shennan", "level": 100, "duration_s": 1800, "reason": "festival"}
    r = await client.post("/api/lighting/overrides", json=body, headers=op)
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["until"] == clock.now + 1800 * 1000
    assert made["running"]

    async def at(ts: int) -> dict[str, Any]:
        q = {"lamp": "lamp-a1", "at": ts}
        return dict((await client.get("/api/lighting/plan", params=q, headers=op)).json())

    midnight = ms(2026, 3, 11, 0, 0)
    during = await at(clock.now + 60_000)
    assert during["level"] == 100
    assert during["reason"]["override"] == f"override-{made['id']}"
    after = await at(midnight)
    assert after["level"] == 50
    assert after["reason"] == {
        "program": "night",
        "entry": "every-night",
        "override": None,
    }
    clock.now = made["until"] + 1
    running = await client.get("/api/lighting/overrides?running=true", headers=op)
    assert running.json() == []
    unaffected = await client.get(
        "/api/lighting/plan", params={"lamp": "lamp-b1", "at": made["start"] + 60_000}, headers=op
    )
    assert unaffected.json()["reason"]["override"] is None


async def test_ending_an_override_now_returns_its_lamps_to_their_program(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    await light_up(client, city)
    clock = Clock(ms(2026, 3, 10, 20))
    platform.lighting.clock = clock
    op = city.auth("lighting", Role.OPERATOR)
    until = ms(2026, 3, 11, 5)
    made = (
        await client.post(
            "/api/lighting/overrides",
            json={"group": "everyone", "level": 20, "until": until},
            headers=op,
        )
    ).json()
    clock.now += 600_000
    ended = await client.delete(f"/api/lighting/overrides/{made['id']}", headers=op)
    assert ended.status_code == 200, ended.text
    assert ended.json()["until"] == clock.now
    assert not ended.json()["running"]
    q = {"lamp": "lamp-a1", "at": clock.now + 60_000}
    assert (await client.get("/api/lighting/plan", params=q, headers=op)).json()["level"] == 100


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        pytest.param(
            {"group": "nope", "level": 50, "duration_s": 60}, ["group"], id="unknown-group"
        ),
        pytest.param({"group": "everyone", "level": 50}, ["until"], id="no-end"),
        pytest.param(
            {"group": "everyone", "level": 150, "duration_s": 60},
            ["body", "level"],
            id="level-above-100",
        ),
    ],
)
async def test_a_bad_override_is_a_422_naming_the_field(
    client: httpx.AsyncClient, city: City, body: dict[str, Any], loc: list[str]
) -> None:
    await light_up(client, city)
    r = await client.post(
        "/api/lighting/overrides", json=body, headers=city.auth("lighting", Role.OPERATOR)
    )
    assert r.status_code == 422
    assert loc in [e["loc"] for e in r.json()["errors"]]


async def test_energy_of_a_group_answers_json_and_csv(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    lit = await light_up(client, city)
    day = ms(2026, 3, 10)
    counter = [
        Reading(lit.lamps["lamp-a1"], "energy", day + h * HOUR, 10.0 + 0.02 * h)
        for h in range(-1, 25)
    ]
    platform.series.write(WriteBatch(readings=counter))
    op = city.auth("lighting", Role.VIEWER)
    q = {"group": "shennan", "from": day, "to": day + 24 * HOUR, "by": "day"}
    r = await client.get("/api/lighting/energy", params=q, headers=op)
    assert r.status_code == 200, r.text
    [row] = r.json()["rows"]
    assert row["group"] == "shennan"
    assert row["period"] == "2026-03-10"
    assert row["actual_kwh"] == pytest.approx(0.48)
    assert 1.0 < row["baseline_kwh"] < 1.4  # 100 W (the default rating) for the day's dark
    assert row["saved_kwh"] == pytest.approx(row["baseline_kwh"] - 0.48, abs=0.002)
    as_csv = await client.get(
        "/api/lighting/energy", params=q, headers={**op, "Accept": "text/csv"}
    )
    assert as_csv.headers["content-type"].startswith("text/csv")
    lines = as_csv.text.splitlines()
    assert lines[0] == ",".join(HEADER)
    assert lines[1].startswith("shennan,2026-03-10,0.480,")
    report = await client.get("/api/lighting/energy/report?month=2026-03", headers=op)
    assert report.status_code == 200
    assert "Futian," in report.text
    assert "tenant," in report.text


async def test_energy_settings_take_a_tariff_and_refuse_one_with_a_hole(
    client: httpx.AsyncClient, city: City
) -> None:
    op = city.auth("lighting", Role.OPERATOR)
    default = (await client.get("/api/lighting/settings", headers=op)).json()
    assert default["grid"]["kg_per_kwh"] == 0.5366
    tariff = {
        "name": "ToU",
        "currency": "CNY",
        "periods": [
            {"kind": "valley", "start": "22:00", "end": "08:00", "price": 0.3},
            {"kind": "peak", "start": "08:00", "end": "22:00", "price": 1.2},
        ],
    }
    grid = {"kg_per_kwh": 0.55, "source": "a provincial factor"}
    r = await client.put(
        "/api/lighting/settings", json={"tariff": tariff, "grid": grid}, headers=op
    )
    assert r.status_code == 200, r.text
    assert r.json()["tariff"] == tariff
    assert r.json()["grid"] == grid
    holed = {**tariff, "periods": tariff["periods"][:1]}
    r = await client.put("/api/lighting/settings", json={"tariff": holed}, headers=op)
    assert r.status_code == 422
    assert ["tariff", "periods"] in [e["loc"] for e in r.json()["errors"]]


async def test_another_tenant_neither_sees_nor_changes_the_lighting_of_the_first(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    await light_up(client, city)
    op = city.auth("lighting", Role.OPERATOR)
    made = (
        await client.post(
            "/api/lighting/overrides",
            json={"group": "everyone", "level": 20, "duration_s": 600},
            headers=op,
        )
    ).json()
    other = city.auth("telecom", Role.ADMIN)
    assert (await client.get("/api/lighting/programs", headers=other)).json() == []
    assert (await client.get("/api/lighting/programs/night", headers=other)).status_code == 404
    assert (await client.delete("/api/lighting/programs/night", headers=other)).status_code == 404
    assert (
        await client.get(f"/api/lighting/overrides/{made['id']}", headers=other)
    ).status_code == 404
    assert (
        await client.delete(f"/api/lighting/overrides/{made['id']}", headers=other)
    ).status_code == 404
    assert (await client.get("/api/lighting/overrides", headers=other)).json() == []
    # the same names in its own document select none of the first tenant's lamps
    r = await client.put("/api/lighting/document", content=DOCUMENT, headers={**YAML, **other})
    assert r.status_code == 200, r.text
    plan = await client.get("/api/lighting/plan", params={"group": "everyone"}, headers=other)
    assert plan.json()["lamps"] == []
    lamp = await client.get("/api/lighting/plan", params={"lamp": "lamp-a1"}, headers=other)
    assert lamp.status_code == 404
    mine = await client.get("/api/lighting/overrides/" + str(made["id"]), headers=op)
    assert mine.json()["running"]


async def test_a_viewer_reads_but_cannot_write(client: httpx.AsyncClient, city: City) -> None:
    await light_up(client, city)
    viewer = city.auth("lighting", Role.VIEWER)
    assert (await client.get("/api/lighting/programs", headers=viewer)).status_code == 200
    program = {"name": "x", "steps": [{"at": "sunset", "level": 10}]}
    writes = [
        client.post("/api/lighting/programs", json=program, headers=viewer),
        client.delete("/api/lighting/calendars/every-night", headers=viewer),
        client.put("/api/lighting/document", content=DOCUMENT, headers={**YAML, **viewer}),
        client.post(
            "/api/lighting/overrides",
            json={"group": "everyone", "level": 1, "duration_s": 60},
            headers=viewer,
        ),
        client.put("/api/lighting/settings", json={}, headers=viewer),
    ]
    for write in writes:
        assert (await write).status_code == 403


async def test_changes_are_in_the_audit_log(client: httpx.AsyncClient, city: City) -> None:
    await light_up(client, city)
    r = await client.get("/api/audit", params={"action": "lighting"}, headers=city.auth("lighting"))
    assert "lighting.document.import" in [e["action"] for e in r.json()["entries"]]


async def test_plan_listeners_hear_which_lamps_a_change_touches(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    await light_up(client, city)
    platform.lighting.clock = Clock(ms(2026, 3, 10, 15))
    heard: list[tuple[str, set[str]]] = []
    platform.lighting.plan_listeners.append(lambda tenant, ids: heard.append((tenant, ids)))
    op = city.auth("lighting", Role.OPERATOR)
    unused = {"name": "unused", "steps": [{"at": "sunset", "level": 10}]}
    assert (await client.post("/api/lighting/programs", json=unused, headers=op)).status_code == 201
    assert heard == [("lighting", {"lamp-a1", "lamp-a2", "lamp-b1"})]  # the first: all new
    r = await client.post(
        "/api/lighting/overrides",
        json={"group": "shennan", "level": 10, "duration_s": 600},
        headers=op,
    )
    assert r.status_code == 201
    assert heard[-1] == ("lighting", {"lamp-a1", "lamp-a2"})


async def test_a_lamps_server_attributes_cap_its_plan_and_rate_its_baseline(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    lit = await light_up(client, city)
    op = city.auth("lighting", Role.OPERATOR)
    attrs = {"maintenance": 0.8, "rated_power": 50, "tags": ["school"]}
    path = f"/api/devices/{lit.lamps['lamp-a1']}/attributes/server"
    assert (await client.post(path, json=attrs, headers=op)).status_code in (200, 201)
    q = {"lamp": "lamp-a1", "date": NIGHT.isoformat()}
    steps = (await client.get("/api/lighting/plan", params=q, headers=op)).json()["lamps"][0]
    assert [s["level"] for s in steps["steps"]] == [80, 40, 64, 0]
    lamps = platform.lighting.inventory.lamps(city.ids["lighting"])
    [lamp] = [r for r in lamps if r.lamp.id == "lamp-a1"]
    assert lamp.rated_w == 50
    assert lamp.lamp.tags == frozenset({"school"})
    assert lamp.lamp.gateway == lit.gateway


async def test_replacements_forecast_each_road_from_burn_hours_and_rated_life(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    lit = await light_up(client, city)
    now = ms(2026, 3, 10, 12)
    platform.lighting.clock = Clock(now)
    op = city.auth("lighting", Role.OPERATOR)
    for name, life in (("lamp-a1", 50_000), ("lamp-a2", 30_000), ("lamp-b1", 60_000)):
        path = f"/api/devices/{lit.lamps[name]}/attributes/server"
        r = await client.post(path, json={"rated_life": life}, headers=op)
        assert r.status_code in (200, 201), r.text
    a1, a2, b1 = (lit.lamps[n] for n in ("lamp-a1", "lamp-a2", "lamp-b1"))
    readings = [
        # 12 h a night over 40 days: 520 h left is 43 days, due 22 April
        Reading(a1, "hours", now - 40 * 24 * HOUR, 49_000.0),
        Reading(a1, "hours", now - HOUR, 49_480.0),
        Reading(a2, "hours", now - HOUR, 31_000.0),  # past its 30,000 h
        # one reading: 50,000 h left at 11.5 h a day is 11.9 years, in 2038
        Reading(b1, "hours", now - HOUR, 10_000.0),
    ]
    platform.series.write(WriteBatch(readings=readings))
    platform.series.flush()  # type: ignore[attr-defined]
    viewer = city.auth("lighting", Role.VIEWER)
    r = await client.get("/api/lighting/replacements", headers=viewer)
    assert r.status_code == 200, r.text
    roads = {row["road"]: row for row in r.json()["roads"]}
    assert roads["Shennan"] == {
        "district": "Futian",
        "road": "Shennan",
        "lamps": 2,
        "past_l70": 1,
        "next_due": "2026-03-10",
        "due": [{"year": 2026, "lamps": 1}],
        "mean_life_used": pytest.approx((49_480 / 50_000 + 31_000 / 30_000) / 2, abs=1e-4),
    }
    assert roads["Binhe"]["past_l70"] == 0
    assert roads["Binhe"]["due"] == []  # beyond the 10 years asked
    assert roads["Binhe"]["next_due"].startswith("2038-")
    q = {"horizon_years": 12, "format": "csv"}
    as_csv = await client.get("/api/lighting/replacements", params=q, headers=viewer)
    assert as_csv.headers["content-type"].startswith("text/csv")
    header, *rows = as_csv.text.splitlines()
    assert header.split(",")[-13:] == [str(y) for y in range(2026, 2039)]
    [binhe] = [row.split(",") for row in rows if ",Binhe," in row]
    assert binhe[-1] == "1"  # due in 2038
    # another tenant sees none of these lamps
    other = city.auth("telecom", Role.ADMIN)
    theirs = await client.get("/api/lighting/replacements", headers=other)
    assert theirs.status_code == 200
    assert theirs.json()["roads"] == []


async def test_a_lamp_burns_at_the_rate_its_hours_grew_over_the_last_day(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    lit = await light_up(client, city)
    now = ms(2026, 3, 10, 12)
    platform.lighting.clock = Clock(now)
    a1 = lit.lamps["lamp-a1"]
    readings = [
        # 20 h a day over the last day only: 1,000 h left is 50 days, due 29 April
        Reading(a1, "hours", now - 25 * HOUR, 48_980.0),
        Reading(a1, "hours", now - HOUR, 49_000.0),
    ]
    platform.series.write(WriteBatch(readings=readings))
    platform.series.flush()  # type: ignore[attr-defined]
    q = {"horizon_years": 1}
    r = await client.get("/api/lighting/replacements", params=q, headers=city.auth("lighting"))
    shennan = next(row for row in r.json()["roads"] if row["road"] == "Shennan")
    assert shennan["next_due"] == "2026-04-29"
    assert shennan["past_l70"] == 0


async def test_a_lamp_last_read_months_ago_burns_at_the_rate_since_then(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    lit = await light_up(client, city)
    now = ms(2026, 3, 10, 12)
    platform.lighting.clock = Clock(now)
    a1 = lit.lamps["lamp-a1"]
    readings = [
        # 1,100 h in 100 days: 11 h a day; 1,000 h left is 91 days, due 8 June
        Reading(a1, "hours", now - 100 * 24 * HOUR, 47_900.0),
        Reading(a1, "hours", now - HOUR, 49_000.0),
    ]
    platform.series.write(WriteBatch(readings=readings))
    platform.series.flush()  # type: ignore[attr-defined]
    q = {"horizon_years": 1}
    r = await client.get("/api/lighting/replacements", params=q, headers=city.auth("lighting"))
    shennan = next(row for row in r.json()["roads"] if row["road"] == "Shennan")
    assert shennan["next_due"] == "2026-06-08"


@pytest.mark.parametrize(
    "horizon", [pytest.param(0, id="zero-years"), pytest.param(31, id="past-the-longest")]
)
async def test_a_replacements_horizon_out_of_range_is_a_422(
    client: httpx.AsyncClient, city: City, horizon: int
) -> None:
    r = await client.get(
        "/api/lighting/replacements",
        params={"horizon_years": horizon},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
