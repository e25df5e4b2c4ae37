"""The NGSI-LD temporal API: history of other systems' entities (every change kept) and of
smartpole's own devices (their readings and rollups), windows, lastN, temporalValues and
aggregations (on both engines)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from fixtures_api import City, make_device, make_pole
from smartpole.app import Platform
from smartpole.model.types import Reading, Role
from smartpole.model.writes import WriteBatch

BASE = "/ngsi-ld/v1"
OWN_CONTEXT = "http://smartpole.test/ngsi-ld/v1/jsonldContexts/smartpole-context.jsonld"
LINK = {"Link": f'<{OWN_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"'}
T0 = "2026-12-01T00:00:00Z"
T0_MS = 1_764_547_200_000
MIN = 60_000


def at(minutes: int) -> str:
    """T0 plus some minutes, as the standard's DateTime."""
    return datetime.fromtimestamp((T0_MS + minutes * MIN) / 1000, UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


async def test_every_change_of_an_entity_is_in_its_history(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    url = f"{BASE}/entities"
    r = await client.post(
        url,
        json={
            "id": "urn:ngsi-ld:Counter:1",
            "type": "Counter",
            "count": {"type": "Property", "value": 1, "observedAt": at(0)},
        },
        headers=auth,
    )
    assert r.status_code == 201, r.text
    for n in range(2, 6):
        r = await client.patch(
            f"{url}/urn:ngsi-ld:Counter:1/attrs",
            json={"count": {"type": "Property", "value": n, "observedAt": at(n)}},
            headers=auth,
        )
        assert r.status_code == 204, r.text
    temporal = f"{BASE}/temporal/entities/urn:ngsi-ld:Counter:1"
    r = await client.get(temporal, headers=auth)
    assert r.status_code == 200, r.text
    instances = r.json()["count"]
    assert [i["value"] for i in instances] == [1, 2, 3, 4, 5]
    assert instances[0]["observedAt"] == at(0)
    assert all(i["instanceId"].startswith("urn:ngsi-ld:attribute:instance:") for i in instances)
    r = await client.get(temporal, params={"lastN": 2}, headers=auth)
    assert [i["value"] for i in r.json()["count"]] == [4, 5]
    r = await client.get(
        temporal,
        params={"timerel": "between", "timeAt": at(2), "endTimeAt": at(4)},
        headers=auth,
    )
    assert [i["value"] for i in r.json()["count"]] == [2, 3]
    r = await client.get(
        temporal,
        params={"timerel": "before", "timeAt": at(2), "options": "temporalValues"},
        headers=auth,
    )
    assert r.json()["count"] == {"type": "Property", "values": [[1, at(0)]]}
    r = await client.get(
        temporal,
        params={
            "timerel": "after",
            "timeAt": at(0),
            "aggrMethods": "sum,avg,max,totalCount",
        },
        headers=auth,
    )
    aggregated = r.json()["count"]
    assert aggregated["sum"][0][0] == 15
    assert aggregated["avg"][0][0] == 3
    assert aggregated["max"][0][0] == 5
    assert aggregated["totalCount"][0][0] == 5


async def test_instances_are_provided_through_the_temporal_api(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    body = {
        "id": "urn:ngsi-ld:TrafficFlowObserved:shennan",
        "type": "TrafficFlowObserved",
        "intensity": [
            {"type": "Property", "value": 100, "observedAt": at(10)},
            {"type": "Property", "value": 300, "observedAt": at(30)},
            {"type": "Property", "value": 200, "observedAt": at(20)},
        ],
    }
    r = await client.post(f"{BASE}/temporal/entities", json=body, headers=auth)
    assert r.status_code == 201, r.text
    # the current state is the newest instance
    r = await client.get(f"{BASE}/entities/{body['id']}", headers=auth)
    assert r.json()["intensity"]["value"] == 300
    more = {
        "id": body["id"],
        "type": "TrafficFlowObserved",
        "intensity": [{"type": "Property", "value": 50, "observedAt": at(5)}],
    }
    r = await client.post(f"{BASE}/temporal/entities", json=more, headers=auth)
    assert r.status_code == 204, r.text
    r = await client.get(f"{BASE}/entities/{body['id']}", headers=auth)
    assert r.json()["intensity"]["value"] == 300  # an older instance is history only
    r = await client.get(
        f"{BASE}/temporal/entities",
        params={"type": "TrafficFlowObserved", "timerel": "after", "timeAt": at(0)},
        headers=auth,
    )
    [entity] = r.json()
    assert [i["value"] for i in entity["intensity"]] == [50, 100, 200, 300]
    r = await client.get(
        f"{BASE}/temporal/entities/{body['id']}",
        params={
            "timerel": "between",
            "timeAt": at(0),
            "endTimeAt": at(40),
            "aggrMethods": "avg,min",
            "aggrPeriodDuration": "PT20M",
        },
        headers=auth,
    )
    agg = r.json()["intensity"]
    assert agg["avg"] == [[75.0, at(0), at(20)], [250.0, at(20), at(40)]]
    assert agg["min"] == [[50.0, at(0), at(20)], [200.0, at(20), at(40)]]
    # periods are counted from the window's start, not the clock's
    r = await client.get(
        f"{BASE}/temporal/entities/{body['id']}",
        params={
            "timerel": "after",
            "timeAt": at(8),
            "aggrMethods": "sum",
            "aggrPeriodDuration": "PT20M",
        },
        headers=auth,
    )
    assert r.json()["intensity"]["sum"] == [[300.0, at(8), at(28)], [300.0, at(28), at(48)]]
    # without a window's start, from the first instance (minute 5)
    for window in ({}, {"timerel": "before", "timeAt": at(40)}):
        r = await client.get(
            f"{BASE}/temporal/entities/{body['id']}",
            params={**window, "aggrMethods": "totalCount", "aggrPeriodDuration": "PT20M"},
            headers=auth,
        )
        assert r.status_code == 200, r.text
        assert r.json()["intensity"]["totalCount"] == [[3, at(5), at(25)], [1, at(25), at(45)]]


async def test_a_device_history_comes_from_its_readings(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    pole = await make_pole(client, city, "FU-SN-0001")
    lamp = await make_device(client, city, "lighting", "lamp", pole, name="FU-SN-0001-lamp")
    readings = [
        Reading(lamp["id"], "dim", T0_MS + m * MIN, float(level))
        for m, level in enumerate([0, 20, 40, 60, 80, 100] * 20)  # two hours, a minute apart
    ]
    await platform.pipeline.submit(WriteBatch(readings))
    await platform.pipeline.drain()
    auth = {**city.auth("lighting", Role.VIEWER), **LINK}
    url = f"{BASE}/temporal/entities/urn:ngsi-ld:Streetlight:smartpole:FU-SN-0001-lamp"
    r = await client.get(url, params={"attrs": "illuminanceLevel", "lastN": 3}, headers=auth)
    assert r.status_code == 200, r.text
    got = r.json()["illuminanceLevel"]
    assert [i["value"] for i in got] == [0.6, 0.8, 1.0]  # dim % as the model's 0-1
    assert got[-1]["observedAt"] == at(119)
    r = await client.get(
        url,
        params={
            "attrs": "illuminanceLevel",
            "timerel": "between",
            "timeAt": at(0),
            "endTimeAt": at(120),
            "aggrMethods": "avg,totalCount,stddev",
            "aggrPeriodDuration": "PT1H",
        },
        headers=auth,
    )
    agg = r.json()["illuminanceLevel"]
    assert agg["totalCount"] == [[60, at(0), at(60)], [60, at(60), at(120)]]
    assert agg["avg"] == [[0.5, at(0), at(60)], [0.5, at(60), at(120)]]
    assert agg["stddev"][0][0] == pytest.approx(0.3416, abs=1e-3)
    # a window starting off the hour: periods from its start (from the raw readings)
    r = await client.get(
        url,
        params={
            "attrs": "illuminanceLevel",
            "timerel": "between",
            "timeAt": at(30),
            "endTimeAt": at(120),
            "aggrMethods": "totalCount,avg",
            "aggrPeriodDuration": "PT1H",
        },
        headers=auth,
    )
    agg = r.json()["illuminanceLevel"]
    assert agg["totalCount"] == [[60, at(30), at(90)], [30, at(90), at(150)]]
    assert agg["avg"][0] == [0.5, at(30), at(90)]
    # open-ended after, by the hour (the store's buckets), and by the week from a Thursday
    # (not the store's weeks, which start on Mondays)
    for start, period, expected in (
        (at(0), "PT1H", [[60, at(0), at(60)], [60, at(60), at(120)]]),
        ("2025-11-27T00:00:00Z", "P1W", [[120, "2025-11-27T00:00:00Z", "2025-12-04T00:00:00Z"]]),
        (at(0), "PT36H", [[120, at(0), at(36 * 60)]]),  # no store bucket: from the readings
    ):
        params = {
            "attrs": "illuminanceLevel",
            "timerel": "after",
            "timeAt": start,
            "aggrMethods": "totalCount",
            "aggrPeriodDuration": period,
        }
        r = await client.get(url, params=params, headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["illuminanceLevel"]["totalCount"] == expected
    # a query over every lamp of the tenant, as temporalValues
    r = await client.get(
        f"{BASE}/temporal/entities",
        params={
            "type": "Streetlight",
            "attrs": "illuminanceLevel",
            "lastN": 1,
            "options": "temporalValues",
        },
        headers=auth,
    )
    assert r.json()[0]["illuminanceLevel"] == {"type": "Property", "values": [[1.0, at(119)]]}
    # another tenant does not see it
    r = await client.get(url, headers={**city.auth("telecom"), **LINK})
    assert r.status_code == 404
    # past the raw readings' retention the rollups still answer, and the lamp is listed
    await asyncio.to_thread(platform.series.flush)
    with platform.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM readings WHERE device_id = :d"), {"d": lamp["id"]})
    r = await client.get(
        f"{BASE}/temporal/entities",
        params={
            "type": "Streetlight",
            "attrs": "illuminanceLevel",
            "timerel": "between",
            "timeAt": at(0),
            "endTimeAt": at(120),
            "aggrMethods": "totalCount",
            "aggrPeriodDuration": "PT1H",
        },
        headers=auth,
    )
    assert r.status_code == 200, r.text
    [rolled_up] = r.json()
    assert rolled_up["illuminanceLevel"]["totalCount"] == [
        [60, at(0), at(60)],
        [60, at(60), at(120)],
    ]


@pytest.mark.parametrize(
    ("params", "what"),
    [
        ({"timerel": "during", "timeAt": T0}, "timerel"),
        ({"timerel": "before"}, "timeAt"),
        ({"timerel": "between", "timeAt": T0}, "endTimeAt"),
        ({"timerel": "after", "timeAt": "yesterday"}, "timeAt"),
        ({"lastN": "-1"}, "lastN"),
        ({"lastN": "5000000"}, "lastN"),  # beyond any page: refused, not paged
        (
            {
                "aggrMethods": "avg",
                "timerel": "after",
                "timeAt": T0,
                "aggrPeriodDuration": "P99999999999W",
            },
            "aggrPeriodDuration",
        ),
        ({"aggrMethods": "median", "timerel": "after", "timeAt": T0}, "aggrMethods"),
        (
            {"aggrMethods": "avg", "timerel": "after", "timeAt": T0, "aggrPeriodDuration": "P1M"},
            "aggrPeriodDuration",
        ),
    ],
)
async def test_bad_temporal_parameters_are_bad_request_data(
    client: httpx.AsyncClient, city: City, params: dict[str, Any], what: str
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    r = await client.post(
        f"{BASE}/entities",
        json={"id": "urn:ngsi-ld:Thing:1", "type": "Thing", "n": 1},
        headers=auth,
    )
    assert r.status_code == 201
    r = await client.get(
        f"{BASE}/temporal/entities/urn:ngsi-ld:Thing:1", params=params, headers=auth
    )
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    assert what in r.json()["detail"]


async def test_history_keeps_sub_attributes_and_answers_every_form(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    speed = {"type": "Property", "value": 10, "observedAt": at(1), "accuracy": {"value": 0.5}}
    r = await client.post(
        f"{BASE}/entities",
        json={"id": "urn:ngsi-ld:Car:9", "type": "Car", "speed": speed, "colour": "red"},
        headers=auth,
    )
    assert r.status_code == 201, r.text
    r = await client.patch(
        f"{BASE}/entities/urn:ngsi-ld:Car:9/attrs",
        json={"speed": {**speed, "value": 20, "observedAt": at(2)}, "colour": "blue"},
        headers=auth,
    )
    assert r.status_code == 204, r.text
    url = f"{BASE}/temporal/entities/urn:ngsi-ld:Car:9"
    got = (await client.get(url, params={"lastN": 5}, headers=auth)).json()
    assert [(i["value"], i["accuracy"]["value"]) for i in got["speed"]] == [(10, 0.5), (20, 0.5)]
    assert [i["value"] for i in got["colour"]] == ["red", "blue"]
    values = (await client.get(url, params={"options": "temporalValues"}, headers=auth)).json()
    assert values["speed"]["values"] == [[10, at(1)], [20, at(2)]]
    assert [v[0] for v in values["colour"]["values"]] == ["red", "blue"]


async def traffic(
    client: httpx.AsyncClient, auth: dict[str, str], road: str, *minutes: int, **more: Any
) -> str:
    """A TrafficFlowObserved of ``road`` created with its history: an ``intensity`` of ``m``
    at each of ``minutes`` past T0 (and the attributes ``more``); its id."""
    body = {
        "id": f"urn:ngsi-ld:TrafficFlowObserved:{road}",
        "type": "TrafficFlowObserved",
        "intensity": [{"type": "Property", "value": m, "observedAt": at(m)} for m in minutes],
        **more,
    }
    r = await client.post(f"{BASE}/temporal/entities", json=body, headers=auth)
    assert r.status_code == 201, r.text
    return str(body["id"])


async def test_pick_and_omit_choose_the_members_of_a_history(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    occupancy = [{"type": "Property", "value": 0.5, "observedAt": at(1)}]
    entity_id = await traffic(client, auth, "binhe", 1, 2, occupancy=occupancy)
    url = f"{BASE}/temporal/entities/{entity_id}"
    window = {"timerel": "after", "timeAt": at(0)}
    r = await client.get(url, params={**window, "pick": "id,intensity"}, headers=auth)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"id", "intensity"}
    assert [i["value"] for i in r.json()["intensity"]] == [1, 2]
    query = {**window, "type": "TrafficFlowObserved", "omit": "occupancy,type"}
    r = await client.get(f"{BASE}/temporal/entities", params=query, headers=auth)
    [entity] = r.json()
    assert set(entity) == {"id", "intensity"}
    r = await client.get(url, params={**window, "pick": "id", "attrs": "intensity"}, headers=auth)
    assert r.status_code == 400  # pick replaces attrs
    assert r.json()["type"].endswith("BadRequestData")
    # an entity's history with nothing left to show is not found, as with attrs it lacks
    for nothing in ({"pick": "speed"}, {"omit": "id,type,intensity,occupancy"}, {"attrs": "speed"}):
        r = await client.get(url, params={**window, **nothing}, headers=auth)
        assert r.status_code == 404, (nothing, r.text)
        assert r.json()["type"].endswith("ResourceNotFound")


async def test_temporal_values_name_each_kind_by_its_member(
    client: httpx.AsyncClient, city: City
) -> None:
    """Clause 4.5.9: ``values`` of a Property, ``objects`` of a Relationship,
    ``languageMaps`` of a LanguageProperty, ``vocabs``, ``jsons``."""
    auth = city.auth("city", Role.OPERATOR)
    entity_id = await traffic(
        client,
        auth,
        "shennan",
        1,
        refRoad=[{"type": "Relationship", "object": "urn:ngsi-ld:Road:1", "observedAt": at(1)}],
        name=[{"type": "LanguageProperty", "languageMap": {"zh": "深南大道"}, "observedAt": at(1)}],
        laneUsage=[{"type": "VocabProperty", "vocab": "forward", "observedAt": at(1)}],
        extra=[{"type": "JsonProperty", "json": {"lanes": 8}, "observedAt": at(1)}],
    )
    url = f"{BASE}/temporal/entities/{entity_id}"
    r = await client.get(url, params={"options": "temporalValues"}, headers=auth)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["intensity"] == {"type": "Property", "values": [[1, at(1)]]}
    assert got["refRoad"] == {"type": "Relationship", "objects": [["urn:ngsi-ld:Road:1", at(1)]]}
    # these three name their member around the value
    assert got["name"] == {
        "type": "LanguageProperty",
        "languageMaps": [[{"languageMap": {"zh": "深南大道"}}, at(1)]],
    }
    assert got["laneUsage"]["vocabs"][0][0] == {"vocab": "forward"}
    assert got["extra"]["jsons"] == [[{"json": {"lanes": 8}}, at(1)]]


@pytest.mark.parametrize(
    "params",
    [
        {"format": "invalidFormat"},
        {"options": "invalidOptions"},
        {"options": "temporalValues,invalidOptions"},
        {"format": "temporalValues", "options": "aggregatedValues,invalidOptions"},
    ],
)
async def test_an_unknown_temporal_format_or_option_is_an_invalid_request(
    client: httpx.AsyncClient, city: City, params: dict[str, str]
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    query = {"type": "Thing", "timerel": "after", "timeAt": T0, **params}
    r = await client.get(f"{BASE}/temporal/entities", params=query, headers=auth)
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/InvalidRequest"


async def test_format_takes_precedence_over_options_and_aggr_methods(
    client: httpx.AsyncClient, city: City
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    await traffic(client, auth, "hongli", 1, 2)
    query = {
        "type": "TrafficFlowObserved",
        "timerel": "after",
        "timeAt": at(0),
        "format": "temporalValues",
        "options": "aggregatedValues",
        "aggrMethods": "sum",
    }
    r = await client.get(f"{BASE}/temporal/entities", params=query, headers=auth)
    assert r.status_code == 200, r.text
    [entity] = r.json()
    assert [v[0] for v in entity["intensity"]["values"]] == [1, 2]
    # sysAttrs is the standard's: accepted; aggregation parameters are checked all the same
    r = await client.get(
        f"{BASE}/temporal/entities", params={**query, "options": "sysAttrs"}, headers=auth
    )
    assert r.status_code == 200, r.text
    query["aggrPeriodDuration"] = "soon"
    r = await client.get(f"{BASE}/temporal/entities", params=query, headers=auth)
    assert r.status_code == 400, r.text


async def test_a_temporal_query_comes_in_a_body_too(client: httpx.AsyncClient, city: City) -> None:
    auth = city.auth("city", Role.OPERATOR)
    await traffic(client, auth, "yitian", 1, 5, 9)
    await traffic(client, auth, "caitian", 2, 6)
    query = {
        "type": "Query",
        "entities": [{"type": "TrafficFlowObserved"}],
        "q": "intensity>6",  # on the current state: yitian's 9, not caitian's 6
        "temporalQ": {"timerel": "between", "timeAt": at(3), "endTimeAt": at(9)},
    }
    url = f"{BASE}/temporal/entityOperations/query"
    r = await client.post(url, json=query, params={"count": "true"}, headers=auth)
    assert r.status_code == 200, r.text
    assert r.headers["NGSILD-Results-Count"] == "1"
    [entity] = r.json()
    assert entity["id"] == "urn:ngsi-ld:TrafficFlowObserved:yitian"
    assert [i["value"] for i in entity["intensity"]] == [5]  # the end is not in the window
    del query["q"]
    query["temporalQ"] = {"timerel": "after", "timeAt": at(0), "lastN": 1}
    r = await client.post(url, json=query, params={"options": "temporalValues"}, headers=auth)
    got = {e["id"].rsplit(":", 1)[1]: e["intensity"]["values"] for e in r.json()}
    assert got == {"yitian": [[9, at(9)]], "caitian": [[6, at(6)]]}
    bad_bodies = (
        {"temporalQ": "after"},
        {"temporalQ": {"timeAt": 5}},
        {"temporalQ": {"timerel": "after", "timeAt": at(0), "lastN": "1"}},
        {"temporalQ": {"timerel": "after", "timeAt": at(0), "timeproperty": "modifiedAt"}},
        {"temporalQ": {"timerel": "after", "timeAt": at(0), "timeRel": "before"}},
        {"type": "Entity"},
    )
    for bad in bad_bodies:
        r = await client.post(url, json={**query, **bad}, headers=auth)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["type"].endswith("BadRequestData")


async def test_deletions_are_kept_and_read_by_deleted_at(
    client: httpx.AsyncClient, city: City
) -> None:
    """Deleting an attribute (or merging NGSI-LD Null into it) records when: read with
    ``timeproperty=deletedAt``; the observed history stays as it was."""
    auth = city.auth("city", Role.OPERATOR)
    entity_id = await traffic(
        client,
        auth,
        "binhai",
        1,
        2,
        refRoad=[{"type": "Relationship", "object": "urn:ngsi-ld:Road:2", "observedAt": at(1)}],
        name=[{"type": "LanguageProperty", "languageMap": {"zh": "滨海大道"}, "observedAt": at(1)}],
    )
    r = await client.delete(f"{BASE}/entities/{entity_id}/attrs/intensity", headers=auth)
    assert r.status_code == 204, r.text
    r = await client.patch(
        f"{BASE}/entities/{entity_id}",
        json={"name": "urn:ngsi-ld:null", "refRoad": "urn:ngsi-ld:null"},
        headers={**auth, "Content-Type": "application/merge-patch+json"},
    )
    assert r.status_code == 204, r.text
    url = f"{BASE}/temporal/entities/{entity_id}"
    r = await client.get(url, params={"timeproperty": "deletedAt"}, headers=auth)
    assert r.status_code == 200, r.text
    got = r.json()
    [intensity] = got["intensity"]
    assert intensity["value"] == "urn:ngsi-ld:null"
    assert intensity["instanceId"].startswith("urn:ngsi-ld:attribute:instance:")
    assert "observedAt" not in intensity
    assert got["name"][0]["languageMap"] == {"@none": "urn:ngsi-ld:null"}
    assert got["refRoad"][0]["object"] == "urn:ngsi-ld:null"
    deleted = [datetime.fromisoformat(x[0]["deletedAt"]) for x in (got["intensity"], got["name"])]
    assert deleted[1] >= deleted[0]  # the name was deleted later
    r = await client.get(
        url, params={"timeproperty": "deletedAt", "options": "temporalValues"}, headers=auth
    )
    deleted_at = intensity["deletedAt"]
    assert r.json()["intensity"] == {
        "type": "Property",
        "values": [["urn:ngsi-ld:null", deleted_at]],
    }
    assert r.json()["refRoad"]["objects"][0][0] == "urn:ngsi-ld:null"
    # the observed history is as it was, without the deletions
    r = await client.get(url, headers=auth)
    assert [i["value"] for i in r.json()["intensity"]] == [1, 2]
    r = await client.get(url, params={"timeproperty": "modifiedAt"}, headers=auth)
    assert r.status_code == 400
    assert "timeproperty" in r.json()["detail"]
    # the deletions of an attribute the entity no longer has, asked for by name
    r = await client.get(
        url, params={"timeproperty": "deletedAt", "attrs": "intensity"}, headers=auth
    )
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"id", "type", "intensity"}
    # a batch upsert that replaces the entity without an attribute deletes it too
    r = await client.post(
        f"{BASE}/entityOperations/upsert",
        json=[{"id": entity_id, "type": "TrafficFlowObserved", "laneId": 2}],
        headers=auth,
    )
    assert r.status_code in (201, 204), r.text
    r = await client.post(
        f"{BASE}/entityOperations/upsert",
        json=[{"id": entity_id, "type": "TrafficFlowObserved", "occupancy": 0.1}],
        headers=auth,
    )
    assert r.status_code == 204, r.text
    r = await client.get(url, params={"timeproperty": "deletedAt"}, headers=auth)
    assert r.json()["laneId"][0]["value"] == "urn:ngsi-ld:null"


async def test_a_temporal_query_lists_only_entities_with_instances_in_its_window(
    client: httpx.AsyncClient, city: City, platform: Platform
) -> None:
    """An entity with nothing in the window (of the attributes asked for) has no temporal
    evolution to show: it is neither listed nor counted; smartpole's lamps alike."""
    auth = city.auth("city", Role.OPERATOR)
    early = await traffic(client, auth, "early", 1, 2)
    late = await traffic(
        client,
        auth,
        "late",
        30,
        31,
        occupancy=[{"type": "Property", "value": 0.2, "observedAt": at(3)}],
    )
    url = f"{BASE}/temporal/entities"
    base = {"type": "TrafficFlowObserved", "count": "true"}

    async def listed(**params: Any) -> tuple[list[str], str]:
        r = await client.get(url, params={**base, **params}, headers=auth)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()], r.headers["NGSILD-Results-Count"]

    assert await listed(timerel="after", timeAt=at(10)) == ([late], "1")
    assert await listed(timerel="before", timeAt=at(10)) == ([early, late], "2")
    assert await listed(timerel="between", timeAt=at(10), endTimeAt=at(20)) == ([], "0")
    # by the attributes asked for: only the late one has an occupancy before minute 10
    assert await listed(timerel="before", timeAt=at(10), attrs="occupancy") == ([late], "1")
    # paging counts only those listed
    assert await listed(timerel="before", timeAt=at(40), limit="1", offset="1") == ([late], "2")

    pole = await make_pole(client, city, "FU-TW-0001")
    names = ["FU-TW-0001-lamp-a", "FU-TW-0001-lamp-b"]
    lamps = [await make_device(client, city, "city", "lamp", pole, name=n) for n in names]
    readings = [Reading(lamps[0]["id"], "dim", T0_MS + 5 * MIN, 50.0)]
    readings += [Reading(lamps[1]["id"], "dim", T0_MS + 50 * MIN, 60.0)]
    await platform.pipeline.submit(WriteBatch(readings))
    await platform.pipeline.drain()
    r = await client.get(
        url,
        params={"type": "Streetlight", "timerel": "before", "timeAt": at(10), "count": "true"},
        headers={**auth, **LINK},
    )
    assert r.status_code == 200, r.text
    assert [e["id"] for e in r.json()] == [f"urn:ngsi-ld:Streetlight:smartpole:{names[0]}"]
    assert r.headers["NGSILD-Results-Count"] == "1"
