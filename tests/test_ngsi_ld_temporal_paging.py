"""Histories longer than an answer holds (clause 6.3.10): 206 with a Content-Range, every
attribute cut at the same time, and the pages walked by time give every instance once, for
other systems' entities and smartpole's own devices alike (on both engines)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device, make_pole, started
from smartpole.app import Platform
from smartpole.model.types import Reading, Role
from smartpole.model.writes import WriteBatch
from smartpole.store import Database

BASE = "/ngsi-ld/v1"
OWN_CONTEXT = "http://smartpole.test/ngsi-ld/v1/jsonldContexts/smartpole-context.jsonld"
LINK = {"Link": f'<{OWN_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"'}
T0_MS = 1_764_547_200_000  # 2025-12-01T00:00:00Z
MIN = 60_000
LIMIT = 5  # instances of an attribute in one answer
RANGE = re.compile(r"^date-time (\S+Z)-(\S+Z)/(\*|\d+)$")


@pytest.fixture
async def platform(database: Database, tmp_path: Path) -> AsyncIterator[Platform]:
    """A platform whose temporal answers hold five instances of an attribute."""
    async with started(database, tmp_path, ngsi_ld_temporal_limit=LIMIT) as p:
        yield p


def at(minutes: int) -> str:
    """T0 plus some minutes, as the standard's DateTime."""
    return datetime.fromtimestamp((T0_MS + minutes * MIN) / 1000, UTC).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z"
    )


def minute_of(text: str) -> int:
    """The minutes after T0 of a DateTime."""
    return round((datetime.fromisoformat(text).timestamp() * 1000 - T0_MS) / MIN)


def range_of(r: httpx.Response) -> tuple[str, str, str]:
    """A 206's Content-Range as (first time, last time, size)."""
    assert r.status_code == 206, r.text
    match = RANGE.match(r.headers["Content-Range"])
    assert match is not None, r.headers["Content-Range"]
    return match[1], match[2], match[3]


def content_range(r: httpx.Response) -> tuple[int, int, str]:
    """A 206's Content-Range as (first minute, last minute, size)."""
    first, last, size = range_of(r)
    return minute_of(first), minute_of(last), size


def same_time(a: str, b: str) -> bool:
    """Whether two DateTimes name the same instant (with or without milliseconds)."""
    return datetime.fromisoformat(a) == datetime.fromisoformat(b)


def plus_ms(text: str, ms: int) -> str:
    """A DateTime some milliseconds later, with its milliseconds."""
    moment = datetime.fromisoformat(text) + timedelta(milliseconds=ms)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def minutes(body: dict[str, Any], name: str) -> list[int]:
    """The minutes of an attribute's instances in an answer."""
    return [minute_of(i["observedAt"]) for i in body.get(name, [])]


@pytest.fixture
async def vehicle(client: httpx.AsyncClient, city: City) -> str:
    """A vehicle whose speed was observed every minute for 12 minutes and its fuel level every
    other minute for 16 (8 instances): the temporal URL of it."""
    history = {
        "id": "urn:ngsi-ld:Vehicle:7",
        "type": "Vehicle",
        "speed": [{"type": "Property", "value": m, "observedAt": at(m)} for m in range(12)],
        "fuelLevel": [
            {"type": "Property", "value": 100 - m, "observedAt": at(m)} for m in range(0, 16, 2)
        ],
    }
    r = await client.post(
        f"{BASE}/temporal/entities", json=history, headers=city.auth("city", Role.OPERATOR)
    )
    assert r.status_code == 201, r.text
    return f"{BASE}/temporal/entities/urn:ngsi-ld:Vehicle:7"


async def test_a_long_history_is_answered_in_part_oldest_first(
    client: httpx.AsyncClient, city: City, vehicle: str
) -> None:
    r = await client.get(vehicle, headers=city.auth("city"))
    first, last, size = content_range(r)
    assert (first, last, size) == (0, 4, "*")
    body = r.json()
    # speed was cut at its fifth instance; the fuel level at the same time, not at its fifth
    assert minutes(body, "speed") == [0, 1, 2, 3, 4]
    assert minutes(body, "fuelLevel") == [0, 2, 4]


async def test_walking_the_pages_by_time_gives_every_instance_once(
    client: httpx.AsyncClient, city: City, vehicle: str
) -> None:
    seen: dict[str, list[int]] = {"speed": [], "fuelLevel": []}
    params = {"timerel": "after", "timeAt": at(0)}
    for _ in range(10):
        r = await client.get(vehicle, params=params, headers=city.auth("city"))
        for name, got in seen.items():
            got += minutes(r.json(), name)
        if r.status_code == 200:
            assert "Content-Range" not in r.headers
            break
        first, last, _ = content_range(r)
        assert first == minute_of(params["timeAt"])  # from the window's start asked
        params = {"timerel": "after", "timeAt": at(last)[:-5] + ".001Z"}  # just after the end
    assert seen == {"speed": list(range(12)), "fuelLevel": list(range(0, 16, 2))}


async def test_last_n_beyond_the_limit_is_answered_newest_first(
    client: httpx.AsyncClient, city: City, vehicle: str
) -> None:
    r = await client.get(vehicle, params={"lastN": 8}, headers=city.auth("city"))
    first, last, size = content_range(r)
    # newest first: from the newest instance back to where the cut was made
    # speed's newest five go back to minute 7, the fuel level's to 6: both are cut at 7
    assert (first, last, size) == (14, 7, "8")
    assert minutes(r.json(), "speed") == [7, 8, 9, 10, 11]
    assert minutes(r.json(), "fuelLevel") == [8, 10, 12, 14]
    # a lastN the limit holds is whole
    r = await client.get(vehicle, params={"lastN": LIMIT}, headers=city.auth("city"))
    assert r.status_code == 200
    assert "Content-Range" not in r.headers
    assert minutes(r.json(), "speed") == [7, 8, 9, 10, 11]
    # bounded above: the range starts at the bound asked
    r = await client.get(
        vehicle,
        params={"lastN": 8, "timerel": "before", "timeAt": at(9)},
        headers=city.auth("city"),
    )
    assert content_range(r) == (9, 4, "8")
    assert minutes(r.json(), "speed") == [4, 5, 6, 7, 8]
    assert minutes(r.json(), "fuelLevel") == [4, 6, 8]


async def test_a_short_history_is_whole(
    client: httpx.AsyncClient, city: City, vehicle: str
) -> None:
    r = await client.get(
        vehicle,
        params={"timerel": "between", "timeAt": at(3), "endTimeAt": at(6)},
        headers=city.auth("city"),
    )
    assert r.status_code == 200, r.text
    assert "Content-Range" not in r.headers
    assert minutes(r.json(), "speed") == [3, 4, 5]


async def test_a_query_cuts_every_entity_at_one_time(
    client: httpx.AsyncClient, city: City, platform: Platform, vehicle: str
) -> None:
    """Other systems' entities and smartpole's lamps in one answer share one range."""
    pole = await make_pole(client, city, "FU-PG-0001")
    lamp = await make_device(client, city, "city", "lamp", pole, name="FU-PG-0001-lamp")
    readings = [Reading(lamp["id"], "dim", T0_MS + m * MIN, float(m)) for m in range(1, 20, 3)]
    await platform.pipeline.submit(WriteBatch(readings))
    await platform.pipeline.drain()
    lamp_url = f"{BASE}/temporal/entities/urn:ngsi-ld:Streetlight:smartpole:FU-PG-0001-lamp"
    auth = {**city.auth("city"), **LINK}
    r = await client.get(lamp_url, params={"attrs": "illuminanceLevel"}, headers=auth)
    assert content_range(r) == (1, 13, "*")
    assert minutes(r.json(), "illuminanceLevel") == [1, 4, 7, 10, 13]
    r = await client.get(lamp_url, params={"attrs": "illuminanceLevel", "lastN": 6}, headers=auth)
    assert content_range(r) == (19, 7, "6")
    assert minutes(r.json(), "illuminanceLevel") == [7, 10, 13, 16, 19]
    # both kinds in one query (the vehicle's speed cut at minute 4 cuts the lamp there too)
    r = await client.post(
        f"{BASE}/temporal/entityOperations/query",
        json={
            "type": "Query",
            "entities": [{"type": "Vehicle"}, {"type": "Streetlight"}],
            "attrs": ["speed", "illuminanceLevel"],
            "temporalQ": {"timerel": "after", "timeAt": at(0)},
        },
        headers=auth,
    )
    assert content_range(r) == (0, 4, "*")
    by_id = {e["id"]: e for e in r.json()}
    assert minutes(by_id["urn:ngsi-ld:Vehicle:7"], "speed") == [0, 1, 2, 3, 4]
    lamp_entity = by_id["urn:ngsi-ld:Streetlight:smartpole:FU-PG-0001-lamp"]
    assert minutes(lamp_entity, "illuminanceLevel") == [1, 4]


async def test_aggregations_are_not_paged(
    client: httpx.AsyncClient, city: City, vehicle: str
) -> None:
    r = await client.get(
        vehicle,
        params={"aggrMethods": "totalCount", "timerel": "after", "timeAt": at(0)},
        headers=city.auth("city"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["speed"]["totalCount"][0][0] == 12


async def test_an_attribute_cut_away_whole_is_shown_empty(
    client: httpx.AsyncClient, city: City
) -> None:
    """Speed for the first ten minutes, the fuel level for ten minutes from minute 20: a page
    of the first shows the second as empty, so the reader knows it continues later."""
    auth = city.auth("city", Role.OPERATOR)
    history = {
        "id": "urn:ngsi-ld:Vehicle:8",
        "type": "Vehicle",
        "speed": [{"type": "Property", "value": m, "observedAt": at(m)} for m in range(10)],
        "fuelLevel": [{"type": "Property", "value": m, "observedAt": at(m)} for m in range(20, 30)],
    }
    r = await client.post(f"{BASE}/temporal/entities", json=history, headers=auth)
    assert r.status_code == 201, r.text
    url = f"{BASE}/temporal/entities/urn:ngsi-ld:Vehicle:8"
    r = await client.get(url, headers=auth)
    assert content_range(r) == (0, 4, "*")
    assert minutes(r.json(), "speed") == [0, 1, 2, 3, 4]
    assert r.json()["fuelLevel"] == []
    r = await client.get(url, params={"options": "temporalValues"}, headers=auth)
    assert r.json()["fuelLevel"] == {"type": "Property", "values": []}
    r = await client.get(url, params={"lastN": 6}, headers=auth)
    assert content_range(r) == (29, 25, "6")
    assert r.json()["speed"] == []
    assert minutes(r.json(), "fuelLevel") == [25, 26, 27, 28, 29]


async def test_instances_of_one_time_are_never_split_between_pages(
    client: httpx.AsyncClient, city: City
) -> None:
    """Three speeds observed at the minute where the page would be cut: the page ends just
    before that minute and the next page has all three (none lost), oldest or newest first."""
    auth = city.auth("city", Role.OPERATOR)

    async def vehicle_with(number: int, speed_minutes: list[int]) -> str:
        history = {
            "id": f"urn:ngsi-ld:Vehicle:{number}",
            "type": "Vehicle",
            "speed": [
                {"type": "Property", "value": i, "observedAt": at(m)}
                for i, m in enumerate(speed_minutes)
            ],
        }
        r = await client.post(f"{BASE}/temporal/entities", json=history, headers=auth)
        assert r.status_code == 201, r.text
        return f"{BASE}/temporal/entities/{history['id']}"

    url = await vehicle_with(9, [0, 1, 2, 3, 4, 4, 4, 5])
    r = await client.get(url, params={"timerel": "after", "timeAt": at(0)}, headers=auth)
    assert minutes(r.json(), "speed") == [0, 1, 2, 3]
    last = range_of(r)[1]
    assert same_time(last, plus_ms(at(4), -1))  # a millisecond before minute 4
    r = await client.get(url, params={"timerel": "after", "timeAt": plus_ms(last, 1)}, headers=auth)
    assert r.status_code == 200, r.text
    assert minutes(r.json(), "speed") == [4, 4, 4, 5]

    url = await vehicle_with(10, [0, 1, 1, 1, 2, 3, 4])
    r = await client.get(url, params={"lastN": 6}, headers=auth)
    assert minutes(r.json(), "speed") == [2, 3, 4]  # minute 1's three stay together
    first, last, size = range_of(r)
    assert same_time(first, at(4))
    assert same_time(last, plus_ms(at(1), 1))  # just after minute 1
    assert size == "6"
    r = await client.get(
        url, params={"lastN": 6, "timerel": "before", "timeAt": last}, headers=auth
    )
    assert r.status_code == 200, r.text
    assert minutes(r.json(), "speed") == [0, 1, 1, 1]
