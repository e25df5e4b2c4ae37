"""NGSI-LD entities over HTTP: create, retrieve, query, update, delete, with the standard's
media types, @context handling, problem types and tenants (on both engines)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fixtures_api import City
from smartpole.app import Platform
from smartpole.model.types import Role

BASE = "/ngsi-ld/v1"
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
LINK_REL = 'rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
SDM = "https://smartdatamodels.org/"
USER_CONTEXT = {"sdm": SDM, "speed": "sdm:speed", "brandName": "sdm:brandName", "Car": "sdm:Car"}


def car(
    n: int, speed: float = 50, lon: float = 114.05, lat: float = 22.54, **extra: Any
) -> dict[str, Any]:
    """A car entity, normalized, with a location."""
    return {
        "id": f"urn:ngsi-ld:Car:{n}",
        "type": "Car",
        "speed": {
            "type": "Property",
            "value": speed,
            "unitCode": "KMH",
            "observedAt": "2026-12-01T08:00:00Z",
        },
        "brandName": {"type": "Property", "value": "BYD" if n % 2 else "NIO"},
        "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [lon, lat]}},
        **extra,
    }


def ld(body: Any) -> dict[str, str]:
    """Headers that send ``body`` as application/ld+json."""
    return {"Content-Type": "application/ld+json"}


def with_context(entity: dict[str, Any], context: Any) -> dict[str, Any]:
    return {**entity, "@context": context}


async def create(client: httpx.AsyncClient, auth: dict[str, str], entity: dict[str, Any]) -> None:
    r = await client.post(f"{BASE}/entities", json=entity, headers=auth)
    assert r.status_code == 201, r.text


async def test_an_entity_created_is_retrieved_as_sent(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    r = await client.post(f"{BASE}/entities", json=car(1), headers=auth)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{BASE}/entities/urn:ngsi-ld:Car:1"
    r = await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:1", headers=auth)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert "json-ld#context" in r.headers["link"]
    got = r.json()
    assert got == car(1)  # as sent, its DateTime too
    # keyValues and sysAttrs
    r = await client.get(
        f"{BASE}/entities/urn:ngsi-ld:Car:1", params={"options": "keyValues"}, headers=auth
    )
    assert r.json() == {
        "id": "urn:ngsi-ld:Car:1",
        "type": "Car",
        "speed": 50,
        "brandName": "BYD",
        "location": {"type": "Point", "coordinates": [114.05, 22.54]},
    }
    r = await client.get(
        f"{BASE}/entities/urn:ngsi-ld:Car:1", params={"options": "sysAttrs"}, headers=auth
    )
    body = r.json()
    assert body["createdAt"].endswith("Z")
    assert body["modifiedAt"] == body["createdAt"]
    assert body["speed"]["createdAt"] == body["createdAt"]
    # a second create of the same id is AlreadyExists
    r = await client.post(f"{BASE}/entities", json=car(1), headers=auth)
    assert r.status_code == 409
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/AlreadyExists"
    assert r.headers["content-type"] == "application/json"


async def test_a_context_in_the_body_or_a_link_decides_the_names(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    entity = with_context(car(2), [USER_CONTEXT, CORE])
    r = await client.post(f"{BASE}/entities", json=entity, headers={**auth, **ld(entity)})
    assert r.status_code == 201, r.text
    # Without the context the names come back as full IRIs ...
    r = await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:2", headers=auth)
    got = r.json()
    assert got["type"] == SDM + "Car"
    assert SDM + "speed" in got
    assert "location" in got
    # ... with it, as the caller wrote them, ld+json carrying the context inside.
    r = await client.get(
        f"{BASE}/entities/urn:ngsi-ld:Car:2",
        headers={**auth, "Accept": "application/ld+json"},
    )
    # the context was inline: the caller must send it again to read short names
    assert r.headers["content-type"] == "application/ld+json"
    assert r.json()["@context"]
    # A query by the short type needs the same context; by the IRI it works without.
    r = await client.get(f"{BASE}/entities", params={"type": SDM + "Car"}, headers=auth)
    assert [e["id"] for e in r.json()] == ["urn:ngsi-ld:Car:2"]
    r = await client.get(f"{BASE}/entities", params={"type": "Car"}, headers=auth)
    assert r.json() == []
    # without a context of its own, an ld+json answer names the core context, as an array
    r = await client.get(
        f"{BASE}/entities/urn:ngsi-ld:Car:2", headers={**auth, "Accept": "application/ld+json"}
    )
    assert r.json()["@context"] == [CORE]


async def test_a_context_that_is_not_here_is_refused_offline(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    link = f"<https://example.org/ctx.jsonld>; {LINK_REL}"
    r = await client.post(f"{BASE}/entities", json=car(3), headers={**auth, "Link": link})
    assert r.status_code == 503
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/LdContextNotAvailable"
    r = await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:3", headers=auth)
    assert r.status_code == 404  # nothing half-written
    # The core context by any of its URLs is known without a fetch.
    link = f"<{CORE}>; {LINK_REL}"
    r = await client.post(f"{BASE}/entities", json=car(3), headers={**auth, "Link": link})
    assert r.status_code == 201, r.text


async def test_a_type_selection_reads_or_and_and_parentheses(
    client: httpx.AsyncClient, city: City
) -> None:
    """``,`` and ``|`` select entities of either type, ``;`` those of both (multi-typed),
    parentheses group (clause 4.17)."""
    auth = city.auth("city", Role.OPERATOR)
    kinds = {"1": ["Home"], "2": ["Building"], "3": ["Home", "Building"], "4": ["Car"]}
    for n, types in kinds.items():
        await create(client, auth, {"id": f"urn:ngsi-ld:Thing:{n}", "type": types, "size": 1})

    async def ids(selection: str) -> list[str]:
        r = await client.get(f"{BASE}/entities", params={"type": selection}, headers=auth)
        assert r.status_code == 200, r.text
        return [e["id"].rsplit(":", 1)[1] for e in r.json()]

    assert await ids("Home") == ["1", "3"]
    assert await ids("Home,Car") == ["1", "3", "4"]
    assert await ids("Home|Car") == ["1", "3", "4"]
    assert await ids("Home;Building") == ["3"]
    assert await ids("(Home;Building),Car") == ["3", "4"]
    assert await ids("Home;(Building|Car)") == ["3"]
    for bad in ("Home;", "(Home", "Home)", ",", "Ho=me"):
        r = await client.get(f"{BASE}/entities", params={"type": bad}, headers=auth)
        assert r.status_code == 400, bad
        assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"


async def test_queries_filter_by_type_q_geo_and_page(client: httpx.AsyncClient, city: City) -> None:
    auth = city.auth("city", Role.OPERATOR)
    for n in range(10):
        await create(client, auth, car(n, speed=10 * n, lon=114.05 + n * 0.001))

    async def ids(**params: Any) -> list[str]:
        r = await client.get(f"{BASE}/entities", params=params, headers=auth)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()]

    assert len(await ids(type="Car", limit=100)) == 10
    assert await ids(type="Car", q="speed>70") == ["urn:ngsi-ld:Car:8", "urn:ngsi-ld:Car:9"]
    assert await ids(type="Car", q='speed>=70;brandName=="NIO"') == ["urn:ngsi-ld:Car:8"]
    assert await ids(type="Car", q="speed==10..20|speed==90") == [
        "urn:ngsi-ld:Car:1",
        "urn:ngsi-ld:Car:2",
        "urn:ngsi-ld:Car:9",
    ]
    assert await ids(type="Car", q='brandName=~"^N"', limit=2) == [
        "urn:ngsi-ld:Car:0",
        "urn:ngsi-ld:Car:2",
    ]
    assert len(await ids(local="true", limit=100)) == 10  # no filter: every entity
    assert await ids(type="Car", scopeQ="/A,/B") == []  # "," is OR in scopeQ, as "|"
    assert await ids(type="Car", idPattern="urn:ngsi-ld:Car:[3-4]") == [
        "urn:ngsi-ld:Car:3",
        "urn:ngsi-ld:Car:4",
    ]
    near = await ids(
        type="Car",
        georel="near;maxDistance==250",
        geometry="Point",
        coordinates="[114.05,22.54]",
    )
    assert near == ["urn:ngsi-ld:Car:0", "urn:ngsi-ld:Car:1", "urn:ngsi-ld:Car:2"]  # ~103 m apart
    polygon = (
        "[[[114.0545,22.53],[114.0575,22.53],[114.0575,22.55],[114.0545,22.55],[114.0545,22.53]]]"
    )
    assert await ids(type="Car", georel="within", geometry="Polygon", coordinates=polygon) == [
        "urn:ngsi-ld:Car:5",
        "urn:ngsi-ld:Car:6",
        "urn:ngsi-ld:Car:7",
    ]
    r = await client.get(
        f"{BASE}/entities",
        params={"type": "Car", "limit": 3, "offset": 3, "count": "true"},
        headers=auth,
    )
    assert r.headers["NGSILD-Results-Count"] == "10"
    assert [e["id"] for e in r.json()] == [f"urn:ngsi-ld:Car:{n}" for n in (3, 4, 5)]
    r = await client.get(
        f"{BASE}/entities",
        params={"type": "Car", "attrs": "speed", "limit": 1},
        headers=auth,
    )
    assert set(r.json()[0]) == {"id", "type", "speed"}
    r = await client.get(
        f"{BASE}/entities",
        params={"type": "Car", "limit": 2},
        headers={**auth, "Accept": "application/geo+json"},
    )
    assert r.headers["content-type"] == "application/geo+json"
    features = r.json()
    assert features["type"] == "FeatureCollection"
    assert features["features"][0]["geometry"] == {"type": "Point", "coordinates": [114.05, 22.54]}
    assert features["features"][0]["@context"] == CORE
    query = {"type": "Query", "entities": [{"type": "Car"}]}
    r = await client.post(
        f"{BASE}/entityOperations/query",
        params={"limit": 2},
        json=query,
        headers={**auth, "Accept": "application/geo+json"},
    )
    assert r.status_code == 200, r.text
    assert [f["id"] for f in r.json()["features"]] == ["urn:ngsi-ld:Car:0", "urn:ngsi-ld:Car:1"]


@pytest.mark.parametrize(
    ("params", "what"),
    [
        ({}, "a query needs at least one"),
        ({"id": "urn:ngsi-ld:Car:1"}, "a query needs at least one"),  # ids alone: 5.7.2
        ({"type": "Car", "attrs": "id,type"}, "members"),
        ({"type": "Car", "q": "speed>>3"}, "q"),
        ({"type": "Car", "q": "(speed>3"}, "q"),
        ({"type": "Car", "georel": "near", "geometry": "Point", "coordinates": "[1,2]"}, "near"),
        (
            {
                "type": "Car",
                "georel": "within",
                "geometry": "Polygon",
                "coordinates": "[[[0,0],[1,0],[1,1],[0,1]]]",
            },
            "close",
        ),
        ({"type": "Car", "idPattern": "(["}, "idPattern"),
        ({"type": "Car", "idPattern": "(a)\\1"}, "idPattern"),  # no back-references (RE2)
        ({"type": "Car", "idPattern": "a" * 2000}, "at most"),
        ({"type": "Car", "limit": "lots"}, "limit"),
        ({"type": "Car", "limit": "5000"}, "limit"),
        ({"type": "Car", "options": "everything"}, "options"),
        ({"type": "Car", "q": 'brand=~"\\d+\\q"'}, "pattern"),
        ({"type": "Car", "q": "(" * 40 + "speed>1" + ")" * 40}, "nests"),
        ({"type": "Car", "limit": str(10**20)}, "limit"),
        (
            {
                "type": "Car",
                "georel": "near;maxDistance==5",
                "geometry": "LineString",
                "coordinates": "[[114.0,22.5]]",
            },
            "2 positions",
        ),
    ],
)
async def test_a_bad_query_is_bad_request_data(
    client: httpx.AsyncClient, city: City, params: dict[str, str], what: str
) -> None:
    r = await client.get(f"{BASE}/entities", params=params, headers=city.auth("city"))
    assert r.status_code == 400, r.text
    problem = r.json()
    assert problem["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    assert what in problem["detail"]


async def test_a_pathological_pattern_answers_at_once(
    client: httpx.AsyncClient, city: City
) -> None:
    """``(a+)+b`` over a long run of ``a`` takes a backtracking matcher longer than the age of
    the universe; patterns are matched in linear time, so an open-data reader cannot hold a
    worker with one."""
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(1, brandName={"type": "Property", "value": "a" * 5000 + "c"}))
    params = {"type": "Car", "q": 'brandName=~"(a+)+b"'}
    r = await client.get(f"{BASE}/entities", params=params, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == []
    params = {"type": "Car", "idPattern": "(u+r+n+.*)+x"}
    r = await client.get(f"{BASE}/entities", params=params, headers=auth)
    assert r.status_code == 200, r.text
    assert r.json() == []


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        (b"{not json", 400, "InvalidRequest"),
        (b'{"id": "no uri", "type": "Car"}', 400, "BadRequestData"),
        (b'{"id": "urn:ngsi-ld:Car:x"}', 400, "BadRequestData"),
        (
            b'{"id": "urn:ngsi-ld:Car:x", "type": "Car", "speed": {"type": "Property"}}',
            400,
            "BadRequestData",
        ),
        (
            b'{"id": "urn:ngsi-ld:Car:x", "type": "Car", "speed": {"type": "Weird", "value": 1}}',
            400,
            "BadRequestData",
        ),
        (
            b'{"id": "urn:ngsi-ld:Car:x", "type": "Car", "location": {"type": "GeoProperty", '
            b'"value": {"type": "Polygon", "coordinates": [[[0,0],[1,0],[1,1],[0,1]]]}}}',
            400,
            "BadRequestData",
        ),
        (b'{"id": "urn:ngsi-ld:Car:x", "type": "Car", "@context": []}', 400, "BadRequestData"),
    ],
)
async def test_a_bad_entity_is_refused_with_the_standard_type(
    client: httpx.AsyncClient, city: City, body: bytes, status: int, kind: str
) -> None:
    auth = {**city.auth("city"), "Content-Type": "application/json"}
    r = await client.post(f"{BASE}/entities", content=body, headers=auth)
    assert r.status_code == status, r.text
    assert r.json()["type"] == f"https://uri.etsi.org/ngsi-ld/errors/{kind}"
    r = await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:x", headers=city.auth("city"))
    assert r.status_code == 404


async def test_a_range_of_mixed_types_matches_nothing(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(1))
    r = await client.get(
        f"{BASE}/entities", params={"type": "Car", "q": "speed==2026-01-01..2027"}, headers=auth
    )
    assert r.status_code == 200, r.text
    assert r.json() == []


async def test_a_change_that_changes_nothing_writes_no_history(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(1))
    r = await client.patch(
        f"{BASE}/entities/urn:ngsi-ld:Car:1/attrs", json={"weight": 1}, headers=auth
    )
    assert r.status_code == 207  # weight does not exist: nothing updated
    r = await client.get(f"{BASE}/temporal/entities/urn:ngsi-ld:Car:1", headers=auth)
    assert len(r.json()["speed"]) == 1  # the creation's instance, once


async def test_media_types_are_negotiated(client: httpx.AsyncClient, city: City) -> None:
    auth = city.auth("city")
    r = await client.post(
        f"{BASE}/entities", content=b"<car/>", headers={**auth, "Content-Type": "application/xml"}
    )
    assert r.status_code == 415
    r = await client.get(
        f"{BASE}/entities", params={"type": "Car"}, headers={**auth, "Accept": "text/html"}
    )
    assert r.status_code == 406
    r = await client.post(
        f"{BASE}/entities", json=car(5), headers={**auth, "Content-Type": "application/ld+json"}
    )
    assert r.status_code == 400  # ld+json without @context


async def test_attributes_are_appended_updated_patched_and_deleted(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(1))
    url = f"{BASE}/entities/urn:ngsi-ld:Car:1"
    r = await client.post(
        f"{url}/attrs",
        json={"colour": {"type": "Property", "value": "red"}, "speed": {"value": 60}},
        params={"options": "noOverwrite"},
        headers=auth,
    )
    assert r.status_code == 207, r.text
    assert r.json() == {
        "updated": ["colour"],
        "notUpdated": [{"attributeName": "speed", "reason": "attribute exists"}],
    }
    r = await client.patch(
        f"{url}/attrs",
        json={"speed": {"type": "Property", "value": 70, "unitCode": "MPH"}},
        headers=auth,
    )
    assert r.status_code == 204, r.text
    r = await client.patch(
        f"{url}/attrs", json={"weight": {"type": "Property", "value": 1}}, headers=auth
    )
    assert r.status_code == 207
    r = await client.patch(f"{url}/attrs/speed", json={"value": 80}, headers=auth)
    assert r.status_code == 204, r.text
    got = (await client.get(url, headers=auth)).json()
    assert got["speed"]["value"] == 80
    assert got["speed"]["unitCode"] == "MPH"  # PATCH of the value kept the unit
    assert got["colour"]["value"] == "red"
    r = await client.delete(f"{url}/attrs/colour", headers=auth)
    assert r.status_code == 204
    r = await client.delete(f"{url}/attrs/colour", headers=auth)
    assert r.status_code == 404
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound"
    # merge: a new attribute, a changed one, one deleted with urn:ngsi-ld:null
    r = await client.patch(
        url,
        json={"brandName": "urn:ngsi-ld:null", "speed": {"value": 5}, "seats": 4},
        headers=auth,
    )
    assert r.status_code == 204, r.text
    got = (await client.get(url, params={"options": "keyValues"}, headers=auth)).json()
    assert got["speed"] == 5
    assert got["seats"] == 4
    assert "brandName" not in got
    # replace: only what is sent remains
    r = await client.put(url, json={"type": "Car", "speed": 1}, headers=auth)
    assert r.status_code == 204, r.text
    got = (await client.get(url, params={"options": "keyValues"}, headers=auth)).json()
    assert got == {"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": 1}
    r = await client.delete(url, headers=auth)
    assert r.status_code == 204
    r = await client.get(url, headers=auth)
    assert r.status_code == 404


async def test_batch_operations_answer_per_entity(client: httpx.AsyncClient, city: City) -> None:
    auth = city.auth("city", Role.OPERATOR)
    r = await client.post(f"{BASE}/entityOperations/create", json=[car(1), car(2)], headers=auth)
    assert r.status_code == 201, r.text
    assert r.json() == ["urn:ngsi-ld:Car:1", "urn:ngsi-ld:Car:2"]
    r = await client.post(
        f"{BASE}/entityOperations/create",
        json=[car(2), car(3), {"id": "bad", "type": "Car"}],
        headers=auth,
    )
    assert r.status_code == 207
    result = r.json()
    assert result["success"] == ["urn:ngsi-ld:Car:3"]
    kinds = {e["entityId"]: e["error"]["type"].rsplit("/", 1)[1] for e in result["errors"]}
    assert kinds == {"urn:ngsi-ld:Car:2": "AlreadyExists", "bad": "BadRequestData"}
    r = await client.post(
        f"{BASE}/entityOperations/upsert", json=[car(3, speed=99), car(4)], headers=auth
    )
    assert r.status_code == 201, r.text
    assert r.json() == ["urn:ngsi-ld:Car:4"]
    r = await client.post(
        f"{BASE}/entityOperations/update",
        json=[{"id": "urn:ngsi-ld:Car:1", "speed": 1}, {"id": "urn:ngsi-ld:Car:9", "speed": 1}],
        headers=auth,
    )
    assert r.status_code == 207
    assert r.json()["success"] == ["urn:ngsi-ld:Car:1"]
    r = await client.post(
        f"{BASE}/entityOperations/query",
        json={"type": "Query", "entities": [{"type": "Car"}], "q": "speed>90"},
        headers=auth,
    )
    assert [e["id"] for e in r.json()] == ["urn:ngsi-ld:Car:3"]
    r = await client.post(
        f"{BASE}/entityOperations/delete",
        json=["urn:ngsi-ld:Car:1", "urn:ngsi-ld:Car:2", "urn:ngsi-ld:Car:3", "urn:ngsi-ld:Car:4"],
        headers=auth,
    )
    assert r.status_code == 204, r.text
    r = await client.get(f"{BASE}/entities", params={"type": "Car"}, headers=auth)
    assert r.json() == []


async def test_types_and_attributes_list_what_is_there(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(1))
    await create(
        client, auth, {"id": "urn:ngsi-ld:Bus:1", "type": "Bus", "speed": 3, "route": "B1"}
    )
    r = await client.get(f"{BASE}/types", headers=auth)
    assert r.json()["typeList"] == ["Bus", "Car"]
    r = await client.get(f"{BASE}/types/Car", headers=auth)
    info = r.json()
    assert info["entityCount"] == 1
    assert {a["attributeName"] for a in info["attributeDetails"]} == {
        "speed",
        "brandName",
        "location",
    }
    r = await client.get(f"{BASE}/attributes", headers=auth)
    assert r.json()["attributeList"] == ["brandName", "location", "route", "speed"]
    r = await client.get(f"{BASE}/types/Plane", headers=auth)
    assert r.status_code == 404


async def test_tenants_see_only_their_own_entities(client: httpx.AsyncClient, city: City) -> None:
    telecom = city.auth("telecom", Role.OPERATOR)
    await create(client, telecom, car(1))
    lighting = city.auth("lighting", Role.ADMIN)
    r = await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:1", headers=lighting)
    assert r.status_code == 404
    r = await client.get(f"{BASE}/entities", params={"type": "Car"}, headers=lighting)
    assert r.json() == []
    # the same id in another tenant is another entity
    await create(client, lighting, car(1, speed=1))
    # an ordinary tenant may not name another one; the city operator may
    r = await client.get(
        f"{BASE}/entities/urn:ngsi-ld:Car:1", headers={**lighting, "NGSILD-Tenant": "telecom"}
    )
    assert r.status_code == 404
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant"
    r = await client.get(
        f"{BASE}/entities/urn:ngsi-ld:Car:1",
        headers={**city.auth("city"), "NGSILD-Tenant": "telecom"},
    )
    assert r.json()["speed"]["value"] == 50
    r = await client.get(
        f"{BASE}/entities/urn:ngsi-ld:Car:1",
        headers={**city.auth("city"), "NGSILD-Tenant": "nobody"},
    )
    assert r.status_code == 404
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant"
    # a viewer reads but does not write
    viewer = city.auth("telecom", Role.VIEWER)
    r = await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:1", headers=viewer)
    assert r.status_code == 200
    r = await client.delete(f"{BASE}/entities/urn:ngsi-ld:Car:1", headers=viewer)
    assert r.status_code == 403
    # no credential, no access (ngsi_ld_anonymous is off by default)
    r = await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:1")
    assert r.status_code == 401


async def test_the_core_context_is_served_from_the_package(client: httpx.AsyncClient) -> None:
    r = await client.get(f"{BASE}/jsonldContexts/ngsi-ld-core-context.jsonld")
    assert r.status_code == 200
    assert r.json()["@context"]["Property"] == "ngsi-ld:Property"
    r = await client.get(f"{BASE}/jsonldContexts/smartpole-context.jsonld")
    assert r.json()["@context"]["Streetlight"].startswith(SDM)


async def test_a_batch_merge_merges_each_entity(client: httpx.AsyncClient, city: City) -> None:
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(1))
    await create(client, auth, car(2))
    r = await client.post(
        f"{BASE}/entityOperations/merge",
        json=[
            {"id": "urn:ngsi-ld:Car:1", "brandName": "urn:ngsi-ld:null", "speed": {"value": 7}},
            {"id": "urn:ngsi-ld:Car:2", "seats": 5},
            {"id": "urn:ngsi-ld:Car:404", "seats": 5},
        ],
        headers=auth,
    )
    assert r.status_code == 207, r.text
    assert r.json()["success"] == ["urn:ngsi-ld:Car:1", "urn:ngsi-ld:Car:2"]
    [error] = r.json()["errors"]
    assert error["entityId"] == "urn:ngsi-ld:Car:404"
    first = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:1", headers=auth)).json()
    assert "brandName" not in first  # deleted, not stored as a value
    assert first["speed"]["value"] == 7
    assert first["speed"]["unitCode"] == "KMH"  # merged member by member
    second = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:2", headers=auth)).json()
    assert second["seats"]["value"] == 5


async def test_a_merge_deletes_one_instance_or_a_language_property_with_null(
    client: httpx.AsyncClient, city: City
) -> None:
    """NGSI-LD Null with a datasetId deletes only that instance; a LanguageProperty is
    deleted with ``{"languageMap": {"@none": "urn:ngsi-ld:null"}}`` (clause 4.5.5)."""
    auth = city.auth("city", Role.OPERATOR)
    building = {
        "id": "urn:ngsi-ld:Building:1",
        "type": "Building",
        "name": [
            {"type": "Property", "value": "Civic Centre", "datasetId": "urn:ngsi-ld:Dataset:en"},
            {"type": "Property", "value": "市民中心", "datasetId": "urn:ngsi-ld:Dataset:zh"},
        ],
        "street": {"type": "LanguageProperty", "languageMap": {"en": "Fuzhong Rd", "zh": "福中路"}},
    }
    await create(client, auth, building)
    url = f"{BASE}/entities/urn:ngsi-ld:Building:1"
    patch = {
        "name": {
            "type": "Property",
            "value": "urn:ngsi-ld:null",
            "datasetId": "urn:ngsi-ld:Dataset:en",
        },
        "street": {"type": "LanguageProperty", "languageMap": {"@none": "urn:ngsi-ld:null"}},
    }
    assert (await client.patch(url, json=patch, headers=auth)).status_code == 204
    got = (await client.get(url, headers=auth)).json()
    assert got["name"] == {
        "type": "Property",
        "value": "市民中心",
        "datasetId": "urn:ngsi-ld:Dataset:zh",
    }
    assert "street" not in got


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_an_entity_url_without_an_id_is_bad_request_data(
    client: httpx.AsyncClient, city: City, method: str
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    r = await client.request(method, f"{BASE}/entities/", json=car(1), headers=auth)
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/entities//attrs/"),
        ("PATCH", "/entities//attrs/"),
        ("PATCH", "/entities//attrs/speed"),
        ("PUT", "/entities//attrs/speed"),
        ("DELETE", "/entities//attrs/speed"),
    ],
)
async def test_an_attribute_url_without_an_entity_id_is_bad_request_data(
    client: httpx.AsyncClient, city: City, method: str, path: str
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    body = None if method == "DELETE" else {"speed": {"type": "Property", "value": 1}}
    r = await client.request(method, f"{BASE}{path}", json=body, headers=auth)
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"


async def test_an_attribute_named_as_a_json_ld_keyword_is_refused(
    client: httpx.AsyncClient, city: City
) -> None:
    """``@…`` names belong to JSON-LD: replacing such an attribute is BadRequestData, not a
    ResourceNotFound, and an entity cannot carry one."""
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(1))
    url = f"{BASE}/entities/urn:ngsi-ld:Car:1"
    r = await client.put(
        f"{url}/attrs/@invalid", json={"type": "Property", "value": 1}, headers=auth
    )
    assert r.status_code == 400, r.text
    r = await client.post(
        f"{url}/attrs", json={"@graph": {"type": "Property", "value": 1}}, headers=auth
    )
    assert r.status_code == 400, r.text


async def test_a_partial_update_cannot_change_an_attributes_type(
    client: httpx.AsyncClient, city: City
) -> None:
    """A Property stays a Property through a partial update (BadRequestData, nothing
    written); a replace may change it."""
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(1))
    url = f"{BASE}/entities/urn:ngsi-ld:Car:1"
    link = {"type": "Relationship", "object": "urn:ngsi-ld:Entity:01"}
    r = await client.patch(f"{url}/attrs/speed", json=link, headers=auth)
    assert r.status_code == 400, r.text
    assert (await client.get(url, headers=auth)).json()["speed"]["value"] == 50
    r = await client.put(f"{url}/attrs/speed", json=link, headers=auth)
    assert r.status_code == 204, r.text
    assert (await client.get(url, headers=auth)).json()["speed"]["object"] == link["object"]


async def test_append_and_update_set_an_entitys_scope(
    client: httpx.AsyncClient, city: City
) -> None:
    """``scope`` in an append or an update body replaces the entity's scopes; an append with
    noOverwrite adds to them."""
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, {**car(1), "scope": "/Madrid/Gardens"})
    url = f"{BASE}/entities/urn:ngsi-ld:Car:1"

    async def scope() -> Any:
        return (await client.get(url, headers=auth)).json()["scope"]

    r = await client.post(f"{url}/attrs", json={"scope": "/Shenzhen/Futian"}, headers=auth)
    assert r.status_code == 204, r.text
    assert await scope() == "/Shenzhen/Futian"
    r = await client.post(
        f"{url}/attrs", params={"options": "noOverwrite"}, json={"scope": "/A"}, headers=auth
    )
    assert r.status_code == 204, r.text
    assert await scope() == ["/Shenzhen/Futian", "/A"]
    r = await client.patch(f"{url}/attrs", json={"scope": ["/B", "/C"]}, headers=auth)
    assert r.status_code == 204, r.text
    assert await scope() == ["/B", "/C"]
    r = await client.patch(f"{url}/attrs", json={"scope": "no-slash"}, headers=auth)
    assert r.status_code == 400, r.text


async def test_an_update_adds_the_types_it_names(client: httpx.AsyncClient, city: City) -> None:
    """``type`` in an update body adds types (an entity's types are only added to), as in an
    append; the attributes are updated alongside."""
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(1))
    url = f"{BASE}/entities/urn:ngsi-ld:Car:1"
    body = {"type": ["Vehicle", "Car"], "speed": {"type": "Property", "value": 70}}
    r = await client.patch(f"{url}/attrs", json=body, headers=auth)
    assert r.status_code == 204, r.text
    got = (await client.get(url, headers=auth)).json()
    assert (got["type"], got["speed"]["value"]) == (["Car", "Vehicle"], 70)


async def test_a_type_that_names_a_keyword_is_refused(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    for name in ("type", "id"):
        body = {"id": "urn:ngsi-ld:Building:2", "type": name}
        r = await client.post(f"{BASE}/entities", json=body, headers=auth)
        assert r.status_code == 400, r.text
        assert "keyword" in r.json()["detail"]


async def test_instances_by_dataset_id_and_languages_by_lang(
    client: httpx.AsyncClient, city: City
) -> None:
    """``datasetId`` shows only the instances of those dataset ids (``@none``: the default
    one); ``lang`` shows a LanguageProperty as a Property in the language most wanted."""
    auth = city.auth("city", Role.OPERATOR)
    pole = {
        "id": "urn:ngsi-ld:Pole:FU-0001",
        "type": "Pole",
        "name": [
            {"type": "Property", "value": "FU-0001"},
            {"type": "Property", "value": "Civic Centre 1", "datasetId": "urn:ngsi-ld:Dataset:en"},
            {"type": "Property", "value": "市民中心一号", "datasetId": "urn:ngsi-ld:Dataset:zh"},
        ],
        "street": {
            "type": "LanguageProperty",
            "languageMap": {"zh-CN": "福中路", "en": "Fuzhong Road"},
        },
    }
    await create(client, auth, pole)
    url = f"{BASE}/entities/urn:ngsi-ld:Pole:FU-0001"

    async def get(**params: str) -> Any:
        r = await client.get(url, params=params, headers=auth)
        assert r.status_code == 200, r.text
        return r.json()

    got = await get(datasetId="urn:ngsi-ld:Dataset:zh")
    assert got["name"] == {
        "type": "Property",
        "value": "市民中心一号",
        "datasetId": "urn:ngsi-ld:Dataset:zh",
    }
    assert "street" not in got  # it has only a default instance
    assert (await get(datasetId="@none", attrs="name"))["name"]["value"] == "FU-0001"
    assert len((await get(datasetId="@none,urn:ngsi-ld:Dataset:en"))["name"]) == 2
    assert (await get(lang="zh"))["street"] == {
        "type": "Property",
        "value": "福中路",
        "lang": "zh-CN",
    }
    assert (await get(lang="fr,en;q=0.5"))["street"]["value"] == "Fuzhong Road"
    assert (await get(lang="*", options="keyValues"))["street"] == "福中路"
    r = await client.get(url, params={"attrs": "height"}, headers=auth)
    assert r.status_code == 404  # none of the attributes asked for
    for bad in ({"lang": "en;q=2"}, {"datasetId": "not a uri"}):
        r = await client.get(url, params=bad, headers=auth)
        assert r.status_code == 400, bad


async def test_batches_report_each_entity_they_refuse(
    client: httpx.AsyncClient, city: City
) -> None:
    """A batch refuses an entity, not the request: a second copy of an id in a create, an
    @context in an application/json entity or one missing from an ld+json batch; a
    noOverwrite update reports the entities whose attributes it kept; an update adds types;
    a batch delete takes its ids as ld+json too."""
    auth = city.auth("city", Role.OPERATOR)
    url = f"{BASE}/entityOperations"
    twice = [car(1), car(2), car(1)]
    r = await client.post(f"{url}/create", json=twice, headers=auth)
    assert r.status_code == 207, r.text
    assert r.json()["success"] == ["urn:ngsi-ld:Car:1", "urn:ngsi-ld:Car:2"]
    assert [e["entityId"] for e in r.json()["errors"]] == ["urn:ngsi-ld:Car:1"]
    r = await client.post(f"{url}/create", json=[with_context(car(3), CORE), car(4)], headers=auth)
    assert r.status_code == 207, r.text
    assert [e["entityId"] for e in r.json()["errors"]] == ["urn:ngsi-ld:Car:3"]
    body = [with_context(car(5), [CORE]), car(6)]
    r = await client.post(f"{url}/create", json=body, headers={**auth, **ld(body)})
    assert r.status_code == 207, r.text
    assert r.json()["success"] == ["urn:ngsi-ld:Car:5"]
    update = [
        {"id": "urn:ngsi-ld:Car:1", "speed": 99, "colour": "red"},
        {"id": "urn:ngsi-ld:Car:2", "colour": "blue", "type": "Taxi"},
    ]
    r = await client.post(
        f"{url}/update", params={"options": "noOverwrite"}, json=update, headers=auth
    )
    assert r.status_code == 207, r.text
    assert [e["entityId"] for e in r.json()["errors"]] == ["urn:ngsi-ld:Car:1"]
    one = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:1", headers=auth)).json()
    assert (one["speed"]["value"], one["colour"]["value"]) == (50, "red")  # speed kept
    two = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:2", headers=auth)).json()
    assert two["type"] == ["Car", "Taxi"]
    alone = [car(7)]  # ld+json, and not one entity with its @context
    r = await client.post(f"{url}/create", json=alone, headers={**auth, **ld(alone)})
    assert r.status_code == 207, r.text
    assert [e["entityId"] for e in r.json()["errors"]] == ["urn:ngsi-ld:Car:7"]
    ids = ["urn:ngsi-ld:Car:1", "urn:ngsi-ld:Car:2"]
    r = await client.post(f"{url}/delete", json=ids, headers={**auth, **ld(ids)})
    assert r.status_code == 204, r.text
    twice_gone = ["urn:ngsi-ld:Car:5", "urn:ngsi-ld:Car:5"]
    r = await client.post(f"{url}/delete", json=twice_gone, headers=auth)
    assert r.status_code == 207, r.text
    assert r.json()["success"] == ["urn:ngsi-ld:Car:5"]


async def test_a_polygon_that_crosses_itself_is_kept_and_queried(
    client: httpx.AsyncClient, city: City
) -> None:
    """GeoJSON does not forbid a closed ring that crosses itself (a bow tie): it is stored as
    sent and compared as the valid shape it outlines."""
    auth = city.auth("city", Role.OPERATOR)
    bow_tie = [[[114.0, 22.5], [114.1, 22.6], [114.1, 22.5], [114.0, 22.6], [114.0, 22.5]]]
    zone = {
        "id": "urn:ngsi-ld:Zone:1",
        "type": "Zone",
        "location": {"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": bow_tie}},
    }
    await create(client, auth, zone)
    got = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Zone:1", headers=auth)).json()
    assert got["location"]["value"]["coordinates"] == bow_tie
    params = {"type": "Zone", "georel": "intersects", "geometry": "Point"}
    inside = await client.get(
        f"{BASE}/entities", params={**params, "coordinates": "[114.02,22.55]"}, headers=auth
    )
    assert [e["id"] for e in inside.json()] == ["urn:ngsi-ld:Zone:1"]
    outside = await client.get(
        f"{BASE}/entities", params={**params, "coordinates": "[114.05,22.59]"}, headers=auth
    )
    assert outside.json() == []


async def test_pick_and_omit_project_members(client: httpx.AsyncClient, city: City) -> None:
    """``pick`` shows only the members named (id and type included only if named), ``omit``
    all but those (clause 4.21); misuse is BadRequestData."""
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(1))

    async def get(url: str, **params: str) -> Any:
        r = await client.get(f"{BASE}/{url}", params=params, headers=auth)
        assert r.status_code == 200, r.text
        return r.json()

    picked = await get("entities/urn:ngsi-ld:Car:1", pick="id,speed")
    assert set(picked) == {"id", "speed"}
    assert picked["speed"]["value"] == 50
    assert set(await get("entities/urn:ngsi-ld:Car:1", omit="speed,location")) == {
        "id",
        "type",
        "brandName",
    }
    [only] = await get("entities", type="Car", pick="brandName")
    assert only == {"brandName": car(1)["brandName"]}
    # the same in a query with a body, and in GeoJSON (the geometry stays)
    r = await client.post(
        f"{BASE}/entityOperations/query",
        params={"pick": "brandName"},
        json={"type": "Query", "entities": [{"type": "Car"}]},
        headers=auth,
    )
    assert r.json() == [{"brandName": car(1)["brandName"]}]
    r = await client.get(
        f"{BASE}/entities",
        params={"type": "Car", "omit": "brandName,location"},
        headers={**auth, "Accept": "application/geo+json"},
    )
    [feature] = r.json()["features"]
    assert set(feature["properties"]) == {"type", "speed"}
    assert feature["geometry"]["type"] == "Point"
    for bad in (
        {"pick": "speed", "omit": "speed"},
        {"pick": "speed", "attrs": "speed"},
        {"pick": "id;name"},
        {"pick": "id,locatedAt{name"},
        {"pick": "id,locatedAt{{name}"},
        {"pick": "id,,name"},
        {"pick": "id,locatedAt{,name}"},
        {"pick": "id,locatedAt{}"},
    ):
        r = await client.get(f"{BASE}/entities", params={"type": "Car", **bad}, headers=auth)
        assert r.status_code == 400, bad


async def test_join_shows_linked_entities_inline_or_flat(
    client: httpx.AsyncClient, city: City
) -> None:
    """``join=inline`` puts the entity a Relationship names inside it (in keyValues, in place of
    the object); ``join=flat`` lists it after; ``joinLevel`` follows links further."""
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, {"id": "urn:ngsi-ld:City:Shenzhen", "type": "City"})
    district = {
        "id": "urn:ngsi-ld:District:Futian",
        "type": "District",
        "partOf": {"type": "Relationship", "object": "urn:ngsi-ld:City:Shenzhen"},
    }
    await create(client, auth, district)
    pole = {
        "id": "urn:ngsi-ld:Pole:FU-1",
        "type": "Pole",
        "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:District:Futian"},
    }
    await create(client, auth, pole)
    url = f"{BASE}/entities/urn:ngsi-ld:Pole:FU-1"

    async def get(**params: str) -> Any:
        r = await client.get(url, params=params, headers=auth)
        assert r.status_code == 200, r.text
        return r.json()

    inline = await get(join="inline")
    assert inline["locatedAt"]["object"] == "urn:ngsi-ld:District:Futian"
    assert inline["locatedAt"]["entity"]["id"] == "urn:ngsi-ld:District:Futian"
    assert "entity" not in inline["locatedAt"]["entity"]["partOf"]  # joinLevel 1
    deeper = await get(join="inline", joinLevel="2")
    assert deeper["locatedAt"]["entity"]["partOf"]["entity"]["id"] == "urn:ngsi-ld:City:Shenzhen"
    simple = await get(join="inline", options="keyValues")
    assert simple["locatedAt"]["id"] == "urn:ngsi-ld:District:Futian"
    flat = await get(join="flat", joinLevel="2")
    assert [e["id"] for e in flat] == [
        "urn:ngsi-ld:Pole:FU-1",
        "urn:ngsi-ld:District:Futian",
        "urn:ngsi-ld:City:Shenzhen",
    ]
    r = await client.get(f"{BASE}/entities", params={"type": "Pole", "join": "flat"}, headers=auth)
    assert [e["id"] for e in r.json()] == ["urn:ngsi-ld:Pole:FU-1", "urn:ngsi-ld:District:Futian"]
    for bad in ({"join": "sideways"}, {"join": "flat", "joinLevel": "9"}, {"joinLevel": "1"}):
        r = await client.get(url, params=bad, headers=auth)
        assert r.status_code == 400, bad


async def test_review_cases_merge_null_dataset_batch_merge_context_and_no_overwrite(
    client: httpx.AsyncClient, city: City
) -> None:
    """A Null whose datasetId is not a URI is refused (it deleted the default instance); a
    batch merge refuses an entity whose @context is not the request's; noOverwrite adds an
    instance of a new datasetId, in a batch as in a single append."""
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(1))
    await create(client, auth, car(2))
    url = f"{BASE}/entities/urn:ngsi-ld:Car:1"
    null = {"speed": {"type": "Property", "value": "urn:ngsi-ld:null", "datasetId": 5}}
    assert (await client.patch(url, json=null, headers=auth)).status_code == 400
    assert (await client.get(url, headers=auth)).json()["speed"]["value"] == 50
    body = [
        {"id": "urn:ngsi-ld:Car:1", "speed": 1, "@context": [CORE]},
        {"id": "urn:ngsi-ld:Car:2", "speed": 2, "@context": {"speed": "https://b.example/speed"}},
    ]
    r = await client.post(f"{BASE}/entityOperations/merge", json=body, headers={**auth, **ld(body)})
    assert r.status_code == 207, r.text
    assert [e["entityId"] for e in r.json()["errors"]] == ["urn:ngsi-ld:Car:2"]
    two = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:2", headers=auth)).json()
    assert "https://b.example/speed" not in two
    assert two["speed"]["value"] == 50
    extra = [
        {
            "id": "urn:ngsi-ld:Car:2",
            "speed": {"type": "Property", "value": 9, "datasetId": "urn:ngsi-ld:Dataset:gps"},
        }
    ]
    r = await client.post(
        f"{BASE}/entityOperations/update",
        params={"options": "noOverwrite"},
        json=extra,
        headers=auth,
    )
    assert r.status_code == 204, r.text
    two = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:2", headers=auth)).json()
    assert len(two["speed"]) == 2


async def test_null_in_an_attribute_update_deletes_the_instance(
    client: httpx.AsyncClient, city: City
) -> None:
    """NGSI-LD Null deletes in an update (``PATCH …/attrs``) and a partial update (``PATCH
    …/attrs/{name}``) as in a merge, not stored as a string."""
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(1, colour={"type": "Property", "value": "red"}))
    url = f"{BASE}/entities/urn:ngsi-ld:Car:1"
    null = {"type": "Property", "value": "urn:ngsi-ld:null"}
    r = await client.patch(f"{url}/attrs", json={"brandName": null}, headers=auth)
    assert r.status_code == 204, r.text
    r = await client.patch(f"{url}/attrs/colour", json=null, headers=auth)
    assert r.status_code == 204, r.text
    got = (await client.get(url, headers=auth)).json()
    assert "brandName" not in got
    assert "colour" not in got
    assert got["speed"]["value"] == 50


async def test_changes_in_the_same_millisecond_are_all_written(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    """Two systems patching one entity within a millisecond (the clock stopped here): each
    change is written, and each stamped later than the one before it."""
    auth = city.auth("city", Role.OPERATOR)
    await create(client, auth, car(901, speed=1))
    broker = platform.open_data.broker
    broker.clock = lambda: 1_700_000_000_000
    stamps = []
    for attr, value in (("speed", 2), ("brandName", "Volvo"), ("speed", 3)):
        r = await client.patch(
            f"{BASE}/entities/urn:ngsi-ld:Car:901/attrs", json={attr: value}, headers=auth
        )
        assert r.status_code in (204, 207), r.text
        r = await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:901?options=sysAttrs", headers=auth)
        stamps.append(r.json()["modifiedAt"])
    car_now = r.json()
    assert (car_now["speed"]["value"], car_now["brandName"]["value"]) == (3, "Volvo")
    batches = [
        ("update", [{"id": "urn:ngsi-ld:Car:901", "speed": 4}]),
        ("upsert", [car(901, speed=5)]),
    ]
    for operation, body in batches:  # a batch in the same millisecond: later again
        r = await client.post(f"{BASE}/entityOperations/{operation}", json=body, headers=auth)
        assert r.status_code in (201, 204), r.text
        r = await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:901?options=sysAttrs", headers=auth)
        stamps.append(r.json()["modifiedAt"])
    assert r.json()["speed"]["value"] == 5
    assert stamps == sorted(set(stamps))  # five changes, each stamped later than the last
