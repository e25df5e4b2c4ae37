"""NGSI-LD subscriptions: created, listed, updated and deleted; notifications of other systems'
changes and of readings of smartpole's own devices, delivered to a real receiver, kept while it
is down and delivered once, in order, when it is back (on both engines)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device, make_pole, started
from helpers import free_port
from mqtt_client import V5, Device
from receiver import Receiver
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.model.lifecycle import Severity
from smartpole.model.types import Role
from smartpole.store import Database

BASE = "/ngsi-ld/v1"
OWN_CONTEXT = "http://smartpole.test/ngsi-ld/v1/jsonldContexts/smartpole-context.jsonld"
LINK = {"Link": f'<{OWN_CONTEXT}>; rel="http://www.w3.org/ns/json-ld#context"'}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A notification receiver, listening."""
    r = Receiver()
    await r.up()
    try:
        yield r
    finally:
        await r.down()


def subscription(url: str, **extra: Any) -> dict[str, Any]:
    """A subscription to cars' speed, told at ``url``."""
    return {
        "id": "urn:ngsi-ld:Subscription:speeding",
        "type": "Subscription",
        "entities": [{"type": "Car"}],
        "watchedAttributes": ["speed"],
        "q": "speed>50",
        "notification": {"endpoint": {"uri": url}, "attributes": ["speed"]},
        **extra,
    }


async def set_speed(client: httpx.AsyncClient, auth: dict[str, str], n: int, speed: int) -> None:
    r = await client.patch(
        f"{BASE}/entities/urn:ngsi-ld:Car:{n}/attrs", json={"speed": speed}, headers=auth
    )
    assert r.status_code == 204, r.text


async def test_subscriptions_are_created_read_updated_and_deleted(
    client: httpx.AsyncClient, city: City, receiver: Receiver
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    r = await client.post(f"{BASE}/subscriptions", json=subscription(receiver.url), headers=auth)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:speeding"
    r = await client.post(f"{BASE}/subscriptions", json=subscription(receiver.url), headers=auth)
    assert r.status_code == 409
    url = f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:speeding"
    got = (await client.get(url, headers=auth)).json()
    assert got["entities"] == [{"type": "Car"}]
    assert got["watchedAttributes"] == ["speed"]
    assert got["notification"]["status"] == "ok"
    assert got["notification"]["timesSent"] == 0
    assert got["status"] == "active"
    r = await client.patch(url, json={"throttling": 5, "isActive": False}, headers=auth)
    assert r.status_code == 204, r.text
    got = (await client.get(url, headers=auth)).json()
    assert (got["throttling"], got["status"], got["q"]) == (5, "paused", "speed>50")
    r = await client.get(f"{BASE}/subscriptions", params={"count": "true"}, headers=auth)
    assert r.headers["NGSILD-Results-Count"] == "1"
    # another tenant does not see it
    r = await client.get(url, headers=city.auth("telecom"))
    assert r.status_code == 404
    r = await client.delete(url, headers=auth)
    assert r.status_code == 204
    r = await client.get(url, headers=auth)
    assert r.status_code == 404


@pytest.mark.parametrize(
    ("change", "what"),
    [
        ({"notification": {}}, "endpoint"),
        ({"notification": {"endpoint": {"uri": "ftp://x/y"}}}, "http"),
        ({"q": "speed>>1"}, "q"),
        ({"entities": [], "watchedAttributes": None}, "entities or watchedAttributes"),
        ({"throttling": -1}, "throttling"),
        ({"entities": [{"type": "Car", "idPattern": 5}]}, "idPattern"),
        (
            {
                "notification": {
                    "endpoint": {
                        "uri": "http://127.0.0.1:9/n",
                        "receiverInfo": [{"key": "X-Où", "value": "ü"}],
                    }
                }
            },
            "receiverInfo",
        ),
        ({"notification": {"endpoint": {"uri": "http://[::1/n"}}}, "URL"),
        ({"expiresAt": "2001-01-01T00:00:00Z"}, "past"),
        (
            {
                "geoQ": {
                    "georel": "within",
                    "geometry": "Polygon",
                    "coordinates": [[[0, 0], [1, 0], [1, 1]]],
                }
            },
            "ring",
        ),
    ],
)
async def test_a_bad_subscription_is_refused_and_not_kept(
    client: httpx.AsyncClient, city: City, change: dict[str, Any], what: str
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    body = {
        k: v for k, v in {**subscription("http://127.0.0.1:9/n"), **change}.items() if v is not None
    }
    r = await client.post(f"{BASE}/subscriptions", json=body, headers=auth)
    assert r.status_code == 400, r.text
    assert r.json()["type"] == "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
    assert what in r.json()["detail"]
    r = await client.get(f"{BASE}/subscriptions", headers=auth)
    assert r.json() == []


async def test_private_endpoints_can_be_forbidden(database: Database, tmp_path: Path) -> None:
    async with started(database, tmp_path, ngsi_ld_private_endpoints=False) as platform:
        tenant = platform.tenants.create("city", "City", is_operator=True)
        key = platform.tenants.create_key(tenant["id"], Role.OPERATOR)[1]
        transport = httpx.ASGITransport(app=create_app(platform.api_services()))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for url in ("http://127.0.0.1:8000/n", "http://10.1.2.3/n", "http://[::1]/n"):
                r = await client.post(
                    f"{BASE}/subscriptions",
                    json=subscription(url),
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert r.status_code == 400, r.text
                assert "private address" in r.json()["detail"]


async def test_a_watched_change_that_matches_is_notified_once(
    client: httpx.AsyncClient, city: City, receiver: Receiver
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    r = await client.post(f"{BASE}/subscriptions", json=subscription(receiver.url), headers=auth)
    assert r.status_code == 201, r.text
    car = {"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": 40, "brand": "BYD"}
    assert (await client.post(f"{BASE}/entities", json=car, headers=auth)).status_code == 201
    await set_speed(client, auth, 1, 45)  # watched, but q does not match
    await set_speed(client, auth, 1, 60)  # notified
    r = await client.patch(
        f"{BASE}/entities/urn:ngsi-ld:Car:1/attrs", json={"brand": "NIO"}, headers=auth
    )
    assert r.status_code == 204  # not watched
    await set_speed(client, auth, 1, 70)  # notified
    got = await receiver.wait_for(2)
    await asyncio.sleep(0.5)  # nothing else comes
    assert [(e["id"], e["speed"]["value"]) for e in receiver.entities()] == [
        ("urn:ngsi-ld:Car:1", 60),
        ("urn:ngsi-ld:Car:1", 70),
    ]
    assert set(got[0]) == {"id", "type", "speed"}  # notification.attributes
    body = receiver.bodies[0]
    assert body["type"] == "Notification"
    assert body["subscriptionId"] == "urn:ngsi-ld:Subscription:speeding"
    assert "json-ld#context" in receiver.headers[0]["link"]
    status = (
        await client.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:speeding", headers=auth)
    ).json()
    assert status["notification"]["timesSent"] == len(receiver.bodies)
    assert "lastSuccess" in status["notification"]
    assert "lastFailure" not in status["notification"]


async def test_notifications_wait_while_the_receiver_is_down(
    client: httpx.AsyncClient, city: City, receiver: Receiver
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    r = await client.post(f"{BASE}/subscriptions", json=subscription(receiver.url), headers=auth)
    assert r.status_code == 201
    car = {"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": 10}
    assert (await client.post(f"{BASE}/entities", json=car, headers=auth)).status_code == 201
    await receiver.down()
    for speed in range(51, 61):
        await set_speed(client, auth, 1, speed)
    url = f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:speeding"
    async with asyncio.timeout(10):
        while (await client.get(url, headers=auth)).json()["notification"]["timesFailed"] == 0:  # noqa: ASYNC110 - polling the API, as a user would
            await asyncio.sleep(0.1)
    status = (await client.get(url, headers=auth)).json()["notification"]
    assert status["status"] == "failed"
    assert "lastFailure" in status
    await receiver.up()
    await receiver.wait_for(10)
    await asyncio.sleep(0.5)
    speeds = [e["speed"]["value"] for e in receiver.entities()]
    assert speeds == list(range(51, 61))  # every change, once, in order
    status = (await client.get(url, headers=auth)).json()["notification"]
    assert status["status"] == "ok"


async def test_a_reading_of_an_own_device_is_notified(
    client: httpx.AsyncClient, city: City, platform: Platform, receiver: Receiver
) -> None:
    pole = await make_pole(client, city, "FU-SN-0001")
    lamp = await make_device(client, city, "lighting", "lamp", pole, name="FU-SN-0001-lamp")
    await make_device(client, city, "city", "air", pole, name="FU-SN-0001-air")
    auth = {**city.auth("lighting", Role.OPERATOR), **LINK}
    body = {
        "type": "Subscription",
        "entities": [{"type": "Streetlight"}],
        "watchedAttributes": ["powerState"],
        "notification": {"endpoint": {"uri": receiver.url}, "format": "keyValues"},
    }
    r = await client.post(f"{BASE}/subscriptions", json=body, headers=auth)
    assert r.status_code == 201, r.text
    device = Device(platform.mqtt[0].mqtt_port, lamp["token"], V5)
    await device.connect()
    try:
        await device.publish("v1/devices/me/telemetry", {"power": 80})  # not watched
        await device.publish("v1/devices/me/telemetry", {"on": True, "dim": 70})
    finally:
        await device.close()
    [entity] = await receiver.wait_for(1)
    assert entity["id"] == "urn:ngsi-ld:Streetlight:smartpole:FU-SN-0001-lamp"
    assert entity["powerState"] == "on"
    assert entity["illuminanceLevel"] == 0.7
    await asyncio.sleep(0.3)
    assert len(receiver.entities()) == 1


async def test_a_streetlight_status_set_by_an_alarm_is_notified(
    client: httpx.AsyncClient, city: City, platform: Platform, receiver: Receiver
) -> None:
    """A lamp failure raised and cleared on the lamp, and a tilt raised on its pole, change the
    Streetlight's ``status``: a subscription watching it is told each time, with no reading
    sent; a tenant that does not see the lamp is told nothing."""
    pole = await make_pole(client, city, "FU-ST-0002")
    lamp = await make_device(client, city, "lighting", "lamp", pole, name="FU-ST-0002-lamp")
    for tenant, url in (("lighting", receiver.url), ("telecom", f"{receiver.url}/telecom")):
        body = {
            "type": "Subscription",
            "entities": [{"type": "Streetlight"}],
            "watchedAttributes": ["status"],
            "notification": {"endpoint": {"uri": url}, "format": "keyValues"},
        }
        auth = {**city.auth(tenant, Role.OPERATOR), **LINK}
        r = await client.post(f"{BASE}/subscriptions", json=body, headers=auth)
        assert r.status_code == 201, r.text
    alarms = platform.hub.alarms
    raised = {"tenant_id": city.ids["lighting"], "severity": Severity.MAJOR, "pole_id": pole}
    on_lamp = {"originator_type": "device", "originator_id": lamp["id"], "type": "lamp_failure"}
    await alarms.raise_alarm(**on_lamp, **raised)
    await receiver.wait_for(1)
    await alarms.clear(**on_lamp)
    await receiver.wait_for(2)
    await alarms.raise_alarm(originator_type="pole", originator_id=pole, type="pole_tilt", **raised)
    entities = await receiver.wait_for(3)
    assert [e["status"] for e in entities] == ["defectiveLamp", "ok", "columnIssue"]
    assert {e["id"] for e in entities} == {"urn:ngsi-ld:Streetlight:smartpole:FU-ST-0002-lamp"}
    await asyncio.sleep(0.3)
    assert len(receiver.entities()) == 3  # none for the telecom's subscription


async def test_a_receiver_that_is_down_holds_up_no_other_subscription(
    client: httpx.AsyncClient, city: City, receiver: Receiver
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    dead = f"http://127.0.0.1:{free_port()}/nobody"  # nothing listens there
    for sub_id, url in (("dead", dead), ("live", receiver.url)):
        body = subscription(url, id=f"urn:ngsi-ld:Subscription:{sub_id}")
        r = await client.post(f"{BASE}/subscriptions", json=body, headers=auth)
        assert r.status_code == 201, r.text
    car = {"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": 10}
    assert (await client.post(f"{BASE}/entities", json=car, headers=auth)).status_code == 201
    for speed in range(51, 71):
        await set_speed(client, auth, 1, speed)
    await receiver.wait_for(20)
    assert [e["speed"]["value"] for e in receiver.entities()] == list(range(51, 71))
    dead_status = (
        await client.get(f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:dead", headers=auth)
    ).json()["notification"]
    assert dead_status["status"] == "failed"
    assert dead_status["timesSent"] == 0


async def test_a_time_interval_subscription_sends_the_state_and_stops_when_it_expires(
    client: httpx.AsyncClient, city: City, receiver: Receiver
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    car = {"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": 33}
    assert (await client.post(f"{BASE}/entities", json=car, headers=auth)).status_code == 201
    expires = datetime.now(UTC) + timedelta(seconds=3)
    body = {
        "type": "Subscription",
        "entities": [{"type": "Car"}],
        "timeInterval": 1,
        "expiresAt": expires.isoformat().replace("+00:00", "Z"),
        "notification": {"endpoint": {"uri": receiver.url}, "format": "keyValues"},
    }
    r = await client.post(f"{BASE}/subscriptions", json=body, headers=auth)
    assert r.status_code == 201, r.text
    [state, *_] = await receiver.wait_for(1)
    assert state["speed"] == 33
    await asyncio.sleep(4)  # it expires after 3 s
    count = len(receiver.entities())
    assert 1 <= count <= 5
    await asyncio.sleep(2)
    assert len(receiver.entities()) == count  # nothing after it expired


async def test_a_change_and_its_notification_commit_together(
    client: httpx.AsyncClient, city: City, receiver: Receiver, platform: Platform
) -> None:
    """The outbox row is written in the change's own transaction: a write that fails after
    the row was added leaves neither the change nor a notification of it."""
    auth = city.auth("city", Role.OPERATOR)
    r = await client.post(f"{BASE}/subscriptions", json=subscription(receiver.url), headers=auth)
    assert r.status_code == 201, r.text
    car = {"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": 10}
    assert (await client.post(f"{BASE}/entities", json=car, headers=auth)).status_code == 201

    def failing(*_: Any) -> None:  # a fault after the notifier's journal, before the commit
        raise OSError("disk gone")

    journals = platform.open_data.broker.store.journals
    journals.append(failing)
    r = await client.patch(
        f"{BASE}/entities/urn:ngsi-ld:Car:1/attrs", json={"speed": 90}, headers=auth
    )
    assert r.status_code == 500
    assert r.headers["content-type"].startswith("application/")
    batch = [{"id": "urn:ngsi-ld:Car:1", "speed": 95}, {"id": "urn:ngsi-ld:Car:2", "speed": 99}]
    r = await client.post(f"{BASE}/entityOperations/update", json=batch, headers=auth)
    assert r.status_code == 500
    journals.remove(failing)
    got = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:1", headers=auth)).json()
    assert got["speed"]["value"] == 10  # the change was not kept
    await set_speed(client, auth, 1, 60)
    await receiver.wait_for(1)
    await asyncio.sleep(0.5)  # nothing else comes: the failed changes were never notified
    assert [e["speed"]["value"] for e in receiver.entities()] == [60]


async def test_concurrent_batch_updates_lose_no_attribute(
    client: httpx.AsyncClient, city: City
) -> None:
    """Two systems updating different attributes of the same entities at once, by batches:
    each batch (and each PATCH) reads and writes its entities in one transaction, so neither
    loses the other's."""
    auth = city.auth("city", Role.OPERATOR)
    first = [{"id": f"urn:ngsi-ld:Car:{i}", "type": "Car", "a": 0, "b": 0} for i in range(50)]
    r = await client.post(f"{BASE}/entityOperations/create", json=first, headers=auth)
    assert r.status_code == 201, r.text

    async def writer(attr: str) -> None:
        for step in range(1, 11):
            body = [{"id": f"urn:ngsi-ld:Car:{i}", attr: step} for i in range(50)]
            r = await client.post(f"{BASE}/entityOperations/update", json=body, headers=auth)
            assert r.status_code == 204, r.text

    async def patcher(attr: str) -> None:  # one entity at a time, the same read-then-write
        for step in range(11, 21):
            r = await client.patch(
                f"{BASE}/entities/urn:ngsi-ld:Car:0/attrs", json={attr: step}, headers=auth
            )
            assert r.status_code == 204, r.text

    await asyncio.gather(writer("a"), writer("b"))
    r = await client.get(f"{BASE}/entities", params={"type": "Car", "limit": 100}, headers=auth)
    assert {(e["a"]["value"], e["b"]["value"]) for e in r.json()} == {(10, 10)}
    await asyncio.gather(patcher("a"), patcher("b"))
    car = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:0", headers=auth)).json()
    assert (car["a"]["value"], car["b"]["value"]) == (20, 20)


async def test_a_subscription_made_on_one_node_is_matched_on_another(
    database: Database, tmp_path: Path, receiver: Receiver
) -> None:
    """Broker mode: two nodes on one database. A subscription created through node A
    notifies a change written through node B (which learns of it within seconds), and stops
    when deleted through A."""
    other = Database(database.url)  # node B's own engine on the same database
    async with (
        started(database, tmp_path / "a", node_id="node-a") as a,
        started(other, tmp_path / "b", node_id="node-b") as b,
    ):
        tenant = a.tenants.create("city", "City", is_operator=True)
        auth = {"Authorization": f"Bearer {a.tenants.create_key(tenant['id'], Role.OPERATOR)[1]}"}
        apps = [httpx.ASGITransport(app=create_app(p.api_services())) for p in (a, b)]
        async with (
            httpx.AsyncClient(transport=apps[0], base_url="http://a") as via_a,
            httpx.AsyncClient(transport=apps[1], base_url="http://b") as via_b,
        ):
            car = {"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": 10}
            assert (await via_b.post(f"{BASE}/entities", json=car, headers=auth)).is_success
            made = await via_a.post(
                f"{BASE}/subscriptions", json=subscription(receiver.url), headers=auth
            )
            assert made.status_code == 201, made.text
            async with asyncio.timeout(10):  # node B reloads on its own
                while not b.open_data.notifier.watching:  # noqa: ASYNC110 - polling the node, as an operator would
                    await asyncio.sleep(0.1)
            await set_speed(via_b, auth, 1, 80)
            await receiver.wait_for(1)
            assert [e["speed"]["value"] for e in receiver.entities()] == [80]
            gone = await via_a.delete(
                f"{BASE}/subscriptions/urn:ngsi-ld:Subscription:speeding", headers=auth
            )
            assert gone.status_code == 204
            async with asyncio.timeout(10):
                while b.open_data.notifier.watching:  # noqa: ASYNC110 - polling the node
                    await asyncio.sleep(0.1)
            await set_speed(via_b, auth, 1, 90)
            await asyncio.sleep(0.5)
            assert [e["speed"]["value"] for e in receiver.entities()] == [80]


async def test_notification_triggers_choose_what_is_notified_deletions_included(
    client: httpx.AsyncClient, city: City, receiver: Receiver
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    deletions = {
        "id": "urn:ngsi-ld:Subscription:gone",
        "type": "Subscription",
        "entities": [{"type": "Car"}],
        "notificationTrigger": ["entityDeleted"],
        "notification": {"endpoint": {"uri": receiver.url}},
    }
    r = await client.post(f"{BASE}/subscriptions", json=deletions, headers=auth)
    assert r.status_code == 201, r.text
    shown = (await client.get(f"{BASE}/subscriptions/{deletions['id']}", headers=auth)).json()
    assert shown["notificationTrigger"] == ["entityDeleted"]
    cars = [{"id": f"urn:ngsi-ld:Car:{n}", "type": "Car", "speed": 10} for n in range(3)]
    r = await client.post(f"{BASE}/entityOperations/create", json=cars, headers=auth)
    assert r.status_code == 201, r.text
    await set_speed(client, auth, 0, 70)  # neither the creates nor this update are notified
    r = await client.delete(f"{BASE}/entities/urn:ngsi-ld:Car:0", headers=auth)
    assert r.status_code == 204
    ids = ["urn:ngsi-ld:Car:1", "urn:ngsi-ld:Car:2"]
    r = await client.post(f"{BASE}/entityOperations/delete", json=ids, headers=auth)
    assert r.status_code == 204, r.text
    got = await receiver.wait_for(3)
    await asyncio.sleep(0.5)
    assert [(e["id"], e["type"]) for e in receiver.entities()] == [
        ("urn:ngsi-ld:Car:0", "Car"),
        ("urn:ngsi-ld:Car:1", "Car"),
        ("urn:ngsi-ld:Car:2", "Car"),
    ]
    assert all(set(e) == {"id", "type", "deletedAt"} for e in got)


async def test_attribute_triggers_and_scope_q_narrow_a_subscription(
    client: httpx.AsyncClient, city: City, receiver: Receiver
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    sub = {
        "id": "urn:ngsi-ld:Subscription:new-attributes-in-futian",
        "type": "Subscription",
        "entities": [{"type": "Car"}],
        "scopeQ": "/Shenzhen/Futian/#",
        "notificationTrigger": ["attributeCreated"],
        "notification": {"endpoint": {"uri": receiver.url}, "attributes": ["colour"]},
    }
    r = await client.post(f"{BASE}/subscriptions", json=sub, headers=auth)
    assert r.status_code == 201, r.text
    futian = {"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": 1, "scope": "/Shenzhen/Futian"}
    nanshan = {"id": "urn:ngsi-ld:Car:2", "type": "Car", "speed": 1, "scope": "/Shenzhen/Nanshan"}
    for car in (futian, nanshan):
        assert (await client.post(f"{BASE}/entities", json=car, headers=auth)).status_code == 201
    created = await receiver.wait_for(1)  # Car:1's create (its attributes were created)
    assert [e["id"] for e in created] == ["urn:ngsi-ld:Car:1"]
    receiver.bodies.clear()
    await set_speed(client, auth, 1, 50)  # an update: not notified
    for n in (1, 2):
        r = await client.post(
            f"{BASE}/entities/urn:ngsi-ld:Car:{n}/attrs", json={"colour": "red"}, headers=auth
        )
        assert r.status_code == 204, r.text
    await receiver.wait_for(1)
    await asyncio.sleep(0.5)
    assert [(e["id"], e["colour"]["value"]) for e in receiver.entities()] == [
        ("urn:ngsi-ld:Car:1", "red")
    ]


@pytest.mark.parametrize(
    ("member", "value"),
    [
        ("notificationTrigger", ["attributeDeleted"]),
        ("notificationTrigger", ["somethingHappened"]),
        ("notificationTrigger", []),
        ("scopeQ", "Shenzhen"),
        ("scopeQ", 5),
    ],
)
async def test_a_bad_trigger_or_scope_is_refused(
    client: httpx.AsyncClient, city: City, member: str, value: Any
) -> None:
    auth = city.auth("city", Role.OPERATOR)
    body = {**subscription("http://203.0.113.5/n"), member: value}
    r = await client.post(f"{BASE}/subscriptions", json=body, headers=auth)
    assert r.status_code == 400, r.text
    assert member in r.json()["detail"]


async def test_a_subscription_deleted_elsewhere_fails_no_write(
    client: httpx.AsyncClient, city: City, receiver: Receiver, platform: Platform
) -> None:
    """Deleted through another node and not reloaded here yet, a subscription still matches
    here: its outbox rows are left out, and the write goes through."""
    auth = city.auth("city", Role.OPERATOR)
    r = await client.post(f"{BASE}/subscriptions", json=subscription(receiver.url), headers=auth)
    assert r.status_code == 201, r.text
    car = {"id": "urn:ngsi-ld:Car:1", "type": "Car", "speed": 10}
    assert (await client.post(f"{BASE}/entities", json=car, headers=auth)).status_code == 201
    tenant = city.ids["city"]
    platform.open_data.subscriptions.delete(tenant, "urn:ngsi-ld:Subscription:speeding")
    assert platform.open_data.notifier.watching  # this node has not reloaded
    await set_speed(client, auth, 1, 80)
    got = (await client.get(f"{BASE}/entities/urn:ngsi-ld:Car:1", headers=auth)).json()
    assert got["speed"]["value"] == 80
