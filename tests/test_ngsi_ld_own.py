"""smartpole's own poles and devices through NGSI-LD: Smart Data Models entities built from the
registry and the latest readings (a reading sent over MQTT is there at once), per tenant,
read-only (on both engines)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from fixtures_api import City, make_device, make_pole, started
from mqtt_client import send_telemetry
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.model.catalog import CATALOG
from smartpole.model.lifecycle import Severity
from smartpole.model.types import Role
from smartpole.ngsild.models import attribute_of, type_of
from smartpole.store import Database

BASE = "/ngsi-ld/v1"
OWN_CONTEXT = "http://smartpole.test/ngsi-ld/v1/jsonldContexts/smartpole-context.jsonld"
LINK = {"Link": f'<{OWN_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"'}


async def send(platform: Platform, token: str, values: dict[str, Any]) -> None:
    """Publish telemetry over the platform's MQTT endpoint (acknowledged after the commit)."""
    await send_telemetry(platform.mqtt[0].mqtt_port, token, values)


async def entity(client: httpx.AsyncClient, auth: dict[str, str], entity_id: str) -> Any:
    r = await client.get(f"{BASE}/entities/{entity_id}", headers={**auth, **LINK})
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_streetlight_status_follows_its_lamp_and_pole_alarms(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    """The Smart Data Model's ``status``: defectiveLamp while the lamp diagnostics hold a lamp
    failure on it, columnIssue while its pole is tilted, ok otherwise."""
    pole = await make_pole(client, city, "FU-ST-0001")
    lamp = await make_device(client, city, "lighting", "lamp", pole, name="FU-ST-0001-lamp")
    auth = city.auth("lighting", Role.VIEWER)
    lamp_id = "urn:ngsi-ld:Streetlight:smartpole:FU-ST-0001-lamp"

    async def status() -> str:
        got = await entity(client, auth, lamp_id)
        return str(got["status"]["value"])

    assert await status() == "ok"
    alarms = platform.hub.alarms
    lighting = city.ids["lighting"]
    raised = {"tenant_id": lighting, "severity": Severity.MAJOR, "pole_id": pole}
    await alarms.raise_alarm(
        originator_type="device", originator_id=lamp["id"], type="lamp_failure", **raised
    )
    assert await status() == "defectiveLamp"
    r = await client.get(
        f"{BASE}/entities",
        params={"type": "Streetlight", "q": 'status=="defectiveLamp"'},
        headers={**auth, **LINK},
    )
    assert [e["id"] for e in r.json()] == [lamp_id]
    await alarms.clear(originator_type="device", originator_id=lamp["id"], type="lamp_failure")
    assert await status() == "ok"
    await alarms.raise_alarm(originator_type="pole", originator_id=pole, type="pole_tilt", **raised)
    assert await status() == "columnIssue"


async def test_a_lamp_is_a_streetlight_with_its_latest_readings(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    pole = await make_pole(client, city, "FU-SN-0001", name="Shennan 1")
    lamp = await make_device(client, city, "lighting", "lamp", pole, name="FU-SN-0001-lamp")
    auth = city.auth("lighting", Role.VIEWER)
    lamp_id = "urn:ngsi-ld:Streetlight:smartpole:FU-SN-0001-lamp"
    got = await entity(client, auth, lamp_id)
    assert got["type"] == "Streetlight"
    assert got["refPole"] == {
        "type": "Relationship",
        "object": "urn:ngsi-ld:Pole:smartpole:FU-SN-0001",
    }
    assert got["location"]["value"] == {"type": "Point", "coordinates": [114.05, 22.54]}
    assert "powerState" not in got  # nothing reported yet
    await send(
        platform,
        lamp["token"],
        {"ts": 1_765_000_000_000, "values": {"on": True, "dim": 60, "power": 88.5}},
    )
    got = await entity(client, auth, lamp_id)
    assert got["powerState"] == {
        "type": "Property",
        "value": "on",
        "observedAt": "2025-12-06T05:46:40Z",
    }
    assert got["illuminanceLevel"]["value"] == 0.6
    assert got["power"] == {
        "type": "Property",
        "value": 88.5,
        "observedAt": "2025-12-06T05:46:40Z",
        "unitCode": "WTT",
    }
    # the same entity, keyValues, without smartpole's context: full IRIs for its terms
    r = await client.get(
        f"{BASE}/entities/{lamp_id}", params={"options": "keyValues"}, headers=auth
    )
    plain = r.json()
    assert plain["type"] == "https://smartdatamodels.org/dataModel.Streetlighting/Streetlight"
    assert plain["https://smartdatamodels.org/dataModel.Streetlighting/powerState"] == "on"


async def test_an_air_sensor_and_its_pole_link_each_other(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    pole = await make_pole(client, city, "FU-SN-0002")
    air = await make_device(client, city, "city", "air", pole, name="FU-SN-0002-air")
    await make_device(client, city, "telecom", "small_cell", pole, name="FU-SN-0002-5g")
    await send(platform, air["token"], {"ts": 1_765_000_000_000, "values": {"pm25": 35, "aqi": 50}})
    auth = city.auth("city")
    got = await entity(client, auth, "urn:ngsi-ld:AirQualityObserved:smartpole:FU-SN-0002-air")
    assert got["pm25"]["unitCode"] == "GQ"
    assert got["airQualityIndex"]["value"] == 50
    assert got["dateObserved"]["value"] == "2025-12-06T05:46:40Z"
    pole_entity = await entity(client, auth, "urn:ngsi-ld:Pole:smartpole:FU-SN-0002")
    assert pole_entity["type"] == "Pole"
    assert pole_entity["hasDevice"]["object"] == [
        "urn:ngsi-ld:AirQualityObserved:smartpole:FU-SN-0002-air",
        "urn:ngsi-ld:Device:smartpole:FU-SN-0002-5g",
    ]
    # the telecom sees its small cell and the pole it is on, with only its own device
    telecom = city.auth("telecom", Role.VIEWER)
    pole_entity = await entity(client, telecom, "urn:ngsi-ld:Pole:smartpole:FU-SN-0002")
    assert pole_entity["hasDevice"]["object"] == ["urn:ngsi-ld:Device:smartpole:FU-SN-0002-5g"]
    r = await client.get(
        f"{BASE}/entities/urn:ngsi-ld:AirQualityObserved:smartpole:FU-SN-0002-air", headers=telecom
    )
    assert r.status_code == 404
    # join: the pole with the devices it carries (and they with it); the telecom's join reaches
    # its own small cell only
    pole_url = f"{BASE}/entities/urn:ngsi-ld:Pole:smartpole:FU-SN-0002"
    r = await client.get(pole_url, params={"join": "flat"}, headers={**auth, **LINK})
    assert [e["id"] for e in r.json()] == [
        "urn:ngsi-ld:Pole:smartpole:FU-SN-0002",
        "urn:ngsi-ld:AirQualityObserved:smartpole:FU-SN-0002-air",
        "urn:ngsi-ld:Device:smartpole:FU-SN-0002-5g",
    ]
    assert r.json()[1]["airQualityIndex"]["value"] == 50
    r = await client.get(pole_url, params={"join": "flat"}, headers={**telecom, **LINK})
    assert [e["id"] for e in r.json()] == [
        "urn:ngsi-ld:Pole:smartpole:FU-SN-0002",
        "urn:ngsi-ld:Device:smartpole:FU-SN-0002-5g",
    ]
    # queries: by type, by q over a reading, by place, merged with entities others created
    r = await client.get(
        f"{BASE}/entities",
        params={"type": "AirQualityObserved", "q": "pm25>30"},
        headers={**auth, **LINK},
    )
    assert [e["id"] for e in r.json()] == [
        "urn:ngsi-ld:AirQualityObserved:smartpole:FU-SN-0002-air"
    ]
    r = await client.get(
        f"{BASE}/entities",
        params={"type": "AirQualityObserved", "q": "pm25>40"},
        headers={**auth, **LINK},
    )
    assert r.json() == []
    r = await client.post(
        f"{BASE}/entities",
        json={
            "id": "urn:ngsi-ld:AirQualityObserved:bureau-7",
            "type": "AirQualityObserved",
            "pm25": {"type": "Property", "value": 80},
            "location": {
                "type": "GeoProperty",
                "value": {"type": "Point", "coordinates": [114.0501, 22.5401]},
            },
        },
        headers={**city.auth("city", Role.OPERATOR), **LINK},
    )
    assert r.status_code == 201, r.text
    r = await client.get(
        f"{BASE}/entities",
        params={
            "type": "AirQualityObserved",
            "georel": "near;maxDistance==100",
            "geometry": "Point",
            "coordinates": "[114.05,22.54]",
            "count": "true",
        },
        headers={**auth, **LINK},
    )
    assert [e["id"] for e in r.json()] == [
        "urn:ngsi-ld:AirQualityObserved:bureau-7",
        "urn:ngsi-ld:AirQualityObserved:smartpole:FU-SN-0002-air",
    ]
    assert r.headers["NGSILD-Results-Count"] == "2"
    r = await client.get(f"{BASE}/types", headers={**auth, **LINK})
    assert {"AirQualityObserved", "Device", "Pole"} <= set(r.json()["typeList"])


async def test_smartpoles_own_entities_are_read_only(client: httpx.AsyncClient, city: City) -> None:
    pole = await make_pole(client, city, "FU-SN-0003")
    await make_device(client, city, "lighting", "lamp", pole, name="FU-SN-0003-lamp")
    auth = city.auth("lighting", Role.ADMIN)
    lamp_id = "urn:ngsi-ld:Streetlight:smartpole:FU-SN-0003-lamp"
    r = await client.patch(
        f"{BASE}/entities/{lamp_id}/attrs", json={"powerState": "off"}, headers=auth
    )
    assert r.status_code == 422
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/OperationNotSupported"
    r = await client.delete(f"{BASE}/entities/{lamp_id}", headers=auth)
    assert r.status_code == 422
    r = await client.post(
        f"{BASE}/entities",
        json={"id": "urn:ngsi-ld:Streetlight:smartpole:new", "type": "Streetlight"},
        headers=auth,
    )
    assert r.status_code == 422
    r = await client.post(
        f"{BASE}/entityOperations/upsert",
        json=[
            {"id": lamp_id, "type": "Streetlight"},
            {"id": "urn:ngsi-ld:Thing:1", "type": "Thing"},
        ],
        headers=auth,
    )
    assert r.status_code == 207
    assert r.json()["success"] == ["urn:ngsi-ld:Thing:1"]
    assert (await client.get(f"{BASE}/entities/{lamp_id}", headers=auth)).status_code == 200


async def test_the_own_context_names_every_attribute_it_publishes(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    r = await client.get(f"{BASE}/jsonldContexts/smartpole-context.jsonld")
    terms = r.json()["@context"]
    pole = await make_pole(client, city, "FU-SN-0004")
    weather = await make_device(client, city, "city", "weather", pole, name="FU-SN-0004-wx")
    await send(
        platform,
        weather["token"],
        {"temperature": 21.5, "humidity": 40, "pressure": 1012, "wind_speed": 3, "rain": 0},
    )
    got = await entity(
        client, city.auth("city"), "urn:ngsi-ld:WeatherObserved:smartpole:FU-SN-0004-wx"
    )
    names = set(got) - {"id", "type", "location"}  # location: a core term
    assert names <= set(terms), names - set(terms)  # no name left as a full IRI
    assert got["relativeHumidity"]["value"] == 0.4
    assert got["atmosphericPressure"]["unitCode"] == "A97"


def test_docs_give_the_mapping_of_every_catalog_key() -> None:
    """docs/ngsi-ld.md prints what each key becomes; it says what the code does."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "ngsi-ld.md").read_text()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        if len(cells) == 6 and cells[0] in {k.value for k in CATALOG}:
            rows[(cells[0], cells[2])] = cells
    for kind, spec in CATALOG.items():
        for key in spec.keys:
            row = rows.get((kind.value, key))
            assert row is not None, f"docs/ngsi-ld.md has no row for {kind.value} {key}"
            mapped = attribute_of(kind, key)
            assert row[1] == type_of(kind)
            assert row[3] == mapped.name
            assert row[4] == (mapped.unit or "—")


async def test_open_types_are_readable_without_credentials(
    database: Database, tmp_path: Path
) -> None:
    async with started(database, tmp_path, ngsi_ld_open_types="AirQualityObserved") as platform:
        transport = httpx.ASGITransport(app=create_app(platform.api_services()))
        async with httpx.AsyncClient(transport=transport, base_url="http://smartpole.test") as c:
            city = City()
            for name, is_operator in (("city", True), ("lighting", False)):
                row = platform.tenants.create(name, name.title(), is_operator)
                city.ids[name] = row["id"]
                city.keys[(name, Role.ADMIN)] = platform.tenants.create_key(row["id"], Role.ADMIN)[
                    1
                ]
            pole = await make_pole(c, city, "FU-SN-0005")
            air = await make_device(c, city, "city", "air", pole, name="FU-SN-0005-air")
            await make_device(c, city, "lighting", "lamp", pole, name="FU-SN-0005-lamp")
            await send(platform, air["token"], {"pm25": 12})
            air_id = "urn:ngsi-ld:AirQualityObserved:smartpole:FU-SN-0005-air"
            r = await c.get(f"{BASE}/entities/{air_id}", headers=LINK)
            assert r.status_code == 200, r.text
            assert r.json()["pm25"]["value"] == 12
            r = await c.get(f"{BASE}/entities/urn:ngsi-ld:Streetlight:smartpole:FU-SN-0005-lamp")
            assert r.status_code == 404  # not an open type
            r = await c.get(f"{BASE}/entities", params={"type": "Streetlight"}, headers=LINK)
            assert r.json() == []
            r = await c.get(f"{BASE}/entities", params={"q": "pm25>1"}, headers=LINK)
            assert [e["id"] for e in r.json()] == [air_id]
            r = await c.get(f"{BASE}/types", headers=LINK)
            assert r.json()["typeList"] == ["AirQualityObserved"]
            r = await c.get(f"{BASE}/temporal/entities/{air_id}", headers=LINK)
            assert r.json()["pm25"][0]["value"] == 12
            r = await c.get(f"{BASE}/subscriptions")
            assert r.status_code == 401
            # open data is one tenant's view: naming another tenant reaches nothing
            r = await c.get(
                f"{BASE}/entities", params={"q": "pm25>1"}, headers={"NGSILD-Tenant": "lighting"}
            )
            assert r.status_code == 404
            assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant"
            r = await c.post(f"{BASE}/entities", json={"id": "urn:ngsi-ld:X:1", "type": "X"})
            assert r.status_code == 401
