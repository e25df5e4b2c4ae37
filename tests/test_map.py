"""The city map's data: which poles a tenant sees, their columns and states, value layers,
outlines, the catalog; over the REST API, in process (httpx over ASGI)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import shapely

from fixtures_api import City, make_device, make_pole
from helpers import HOT_LAMP, Street, add_rule, all_online, make_street, send, settle
from smartpole.app import Platform
from smartpole.hub.alarms.store import Alarms
from smartpole.hub.aqi import iaqi
from smartpole.model.clock import now_ms
from smartpole.model.lifecycle import Severity
from smartpole.model.types import Role


@pytest.fixture
async def street(platform: Platform, client: httpx.AsyncClient, city: City) -> Street:
    """The street of poles, every device heard from once."""
    built = await make_street(client, city)
    await all_online(platform, client, built)
    return built


async def map_of(client: httpx.AsyncClient, city: City, tenant: str) -> dict[str, Any]:
    r = await client.get("/api/map/poles", headers=city.auth(tenant, Role.VIEWER))
    assert r.status_code == 200, r.text
    return dict(r.json())


def rows(body: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The columns as one dict per pole id, with indexes resolved to names."""
    cols = body["poles"]
    out = {}
    for i, pole_id in enumerate(cols["id"]):
        mask = cols["kinds"][i]
        out[pole_id] = {
            "code": cols["code"][i],
            "lon": cols["lon"][i],
            "lat": cols["lat"][i],
            "district": body["districts"][cols["district"][i]],
            "road": body["roads"][cols["road"][i]],
            "kinds": {k for b, k in enumerate(body["kinds"]) if mask >> b & 1},
            "owners": {body["owners"][o] for o in body["owner_sets"][cols["owners"][i]]},
            "state": cols["state"][i],
        }
    return out


def states(body: dict[str, Any]) -> dict[int, int]:
    return dict(zip(body["poles"]["id"], body["poles"]["state"], strict=True))


async def test_the_map_lists_exactly_the_poles_each_tenant_sees(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street
) -> None:
    lighting = rows(await map_of(client, city, "lighting"))
    telecom = rows(await map_of(client, city, "telecom"))
    everyone = rows(await map_of(client, city, "city"))
    assert set(lighting) == {street.p1, street.p2}
    assert set(telecom) == {street.p1}
    assert set(everyone) == {street.p1, street.p2, street.p3}
    assert lighting[street.p2] == {
        "code": "FT-SN-0002",
        "lon": 114_051_235,
        "lat": 22_540_000,
        "district": "Futian",
        "road": "Shennan Blvd",
        "kinds": {"lamp"},
        "owners": {"lighting"},
        "state": 0,
    }
    # a shared pole shows each tenant only its own devices, and the city all of them
    assert (lighting[street.p1]["kinds"], lighting[street.p1]["owners"]) == (
        {"gateway", "lamp"},
        {"lighting"},
    )
    assert (telecom[street.p1]["kinds"], telecom[street.p1]["owners"]) == (
        {"small_cell"},
        {"telecom"},
    )
    assert everyone[street.p1]["kinds"] == {"gateway", "lamp", "small_cell"}
    assert everyone[street.p1]["owners"] == {"lighting", "telecom"}
    assert everyone[street.p3]["kinds"] == set()
    assert (everyone[street.p3]["district"], everyone[street.p3]["road"]) == ("Nanshan", "Keji Rd")


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_lamp_alarm_colours_the_pole_for_lighting_and_the_city_not_for_telecom(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street
) -> None:
    await add_rule(client, city, "lighting", HOT_LAMP)
    before = (await map_of(client, city, "city"))["version"]
    await send(client, street.devices["lamp"]["token"], now_ms(), temperature=110.0)
    await settle(platform)
    major = 4
    assert states(await map_of(client, city, "lighting"))[street.p1] == major
    city_map = await map_of(client, city, "city")
    assert states(city_map)[street.p1] == major
    assert city_map["version"] > before
    assert states(await map_of(client, city, "telecom"))[street.p1] == 0
    # cleared: all well again
    await send(client, street.devices["lamp"]["token"], now_ms(), temperature=40.0)
    await settle(platform)
    assert states(await map_of(client, city, "lighting"))[street.p1] == 0


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_a_device_never_heard_from_shows_its_pole_offline_to_its_owner_only(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    street = await make_street(client, city)
    for name in ("gw", "lamp", "lamp2"):  # the small cell stays silent
        await send(client, street.devices[name]["token"], now_ms(), rssi=-60)
    await settle(platform)
    await platform.pole_states.refresh()
    offline = 1
    assert states(await map_of(client, city, "telecom"))[street.p1] == offline
    assert states(await map_of(client, city, "city"))[street.p1] == offline
    assert states(await map_of(client, city, "lighting")) == {street.p1: 0, street.p2: 0}


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_an_alarm_raised_by_another_node_shows_after_the_refresh(
    platform: Platform, client: httpx.AsyncClient, city: City, street: Street
) -> None:
    other_node = Alarms(platform.db.engine)  # the same database, none of this node's listeners
    other_node.raise_sync(
        tenant_id=city.ids["telecom"],
        originator_type="device",
        originator_id=street.devices["cell"]["id"],
        type="overheat",
        severity=Severity.CRITICAL,
        pole_id=street.p1,
    )
    assert states(await map_of(client, city, "telecom"))[street.p1] == 0
    await platform.pole_states.refresh()
    assert states(await map_of(client, city, "telecom"))[street.p1] == 5
    assert states(await map_of(client, city, "city"))[street.p1] == 5
    assert states(await map_of(client, city, "lighting"))[street.p1] == 0


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_the_map_is_gzipped_and_revalidated_by_its_etag(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    await make_street(client, city)
    auth = city.auth("city", Role.VIEWER)
    r = await client.get("/api/map/poles", headers={**auth, "Accept-Encoding": "gzip"})
    assert r.status_code == 200
    assert r.headers["content-encoding"] == "gzip"
    assert int(r.headers["content-length"]) < len(r.content)  # httpx decoded it
    assert r.json()["poles"]["code"] == ["FT-SN-0001", "FT-SN-0002", "NS-KJ-0001"]
    again = await client.get("/api/map/poles", headers={**auth, "If-None-Match": r.headers["etag"]})
    assert (again.status_code, again.content) == (304, b"")


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_layers_give_aqi_noise_and_lamp_level_per_pole(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    street = await make_street(client, city)
    air = await make_device(client, city, "lighting", "air", street.p1, name="air-1", port=4)
    noise = await make_device(client, city, "lighting", "noise", street.p2, name="noise-1", port=2)
    theirs = await make_device(client, city, "telecom", "noise", street.p1, name="noise-t", port=5)
    t = now_ms()
    await send(client, air["token"], t, pm25=80.0, pm10=60.0)
    await send(client, noise["token"], t, laeq=63.5)
    await send(client, theirs["token"], t, laeq=90.0)
    await send(client, street.devices["lamp"]["token"], t, on=True, dim=40)
    await send(client, street.devices["lamp2"]["token"], t, on=False, dim=70)
    await settle(platform)

    async def layer(name: str, tenant: str = "lighting") -> dict[int, float]:
        r = await client.get(f"/api/map/layers/{name}", headers=city.auth(tenant, Role.VIEWER))
        assert r.status_code == 200, r.text
        assert r.json()["version"] == t
        return dict(zip(r.json()["id"], r.json()["value"], strict=True))

    assert await layer("aqi") == {street.p1: round(iaqi("pm25", 80.0), 1)}
    assert await layer("noise") == {street.p2: 63.5}  # telecom's sensor is not lighting's
    assert await layer("noise", "telecom") == {street.p1: 90.0}
    assert await layer("lamp") == {street.p1: 40.0, street.p2: 0.0}  # switched off: 0
    r = await client.get("/api/map/layers/humidity", headers=city.auth("lighting"))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
async def test_outlines_draw_districts_from_their_poles_and_roads_through_them(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    await make_street(client, city)
    await make_pole(
        client, city, "FT-SN-0003", lon=114.04, lat=22.5399, district="Futian", road="Shennan Blvd"
    )
    await make_pole(client, city, "FT-YT-0001", lon=114.045, lat=22.55, district="Futian")
    r = await client.get("/api/map/outlines", headers=city.auth("city", Role.VIEWER))
    assert r.status_code == 200, r.text
    body = r.json()
    futian = next(d for d in body["districts"] if d["name"] == "Futian")
    ring = futian["outline"]
    assert ring[0] == ring[-1]
    corners = {(114.04, 22.5399), (114.051235, 22.54), (114.045, 22.55)}
    assert corners <= {tuple(p) for p in ring}
    assert shapely.Polygon(ring).covers(shapely.Point(114.05, 22.54))
    (shennan,) = [x for x in body["roads"] if x["name"] == "Shennan Blvd"]
    # ordered along the road, west to east (or east to west), not in the order they were made
    lons = [p[0] for p in shennan["line"]]
    assert lons in ([114.04, 114.05, 114.051235], [114.051235, 114.05, 114.04])
    # a tenant's outlines are drawn from its own poles only
    r = await client.get("/api/map/outlines", headers=city.auth("telecom", Role.VIEWER))
    assert [d["name"] for d in r.json()["districts"]] == ["Futian"]
    assert r.json()["roads"] == []  # one pole is no line


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("lang", "kind", "key", "label"),
    [
        pytest.param("en", "Street lamp", "dim", "Dim level", id="en"),
        pytest.param("zh-CN", "路灯", "dim", "调光等级", id="zh-CN"),
    ],
)
async def test_the_catalog_labels_kinds_and_keys_in_either_language(
    client: httpx.AsyncClient, city: City, lang: str, kind: str, key: str, label: str
) -> None:
    r = await client.get("/api/catalog", params={"lang": lang}, headers=city.auth("telecom"))
    assert r.status_code == 200, r.text
    lamp = next(k for k in r.json()["kinds"] if k["kind"] == "lamp")
    assert lamp["label"] == kind
    dim = next(k for k in lamp["keys"] if k["key"] == key)
    assert (dim["label"], dim["unit"], dim["min"], dim["max"]) == (label, "%", 0, 100)
    assert len(r.json()["kinds"]) >= 16


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    "path", ["/api/map/poles", "/api/map/layers/aqi", "/api/map/outlines", "/api/catalog"]
)
async def test_map_data_needs_credentials(client: httpx.AsyncClient, path: str) -> None:
    r = await client.get(path)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
