"""Lighting in broker mode: a pole gateway connected to Mosquitto (not to the built-in endpoint)
gets its ``lightingPlan`` when an override is made through the REST API, and asks for it with
a ThingsBoard attribute request when it was away (on both engines). Fixtures:
``fixtures_broker.py``."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fixtures_api import City, make_device, make_pole
from helpers import Inbox, device, eventually, node_settings, sync_files
from mosquitto import Mosquitto
from smartpole.app import Platform
from smartpole.model.clock import now_ms
from smartpole.model.gateway_plan import PLAN_ATTRIBUTE, plan_level, read_plan_attribute
from smartpole.model.types import Role
from smartpole.store import Database
from smartpole.transport.mqtt.client import MqttClient

SHARED = "sp/v1/gw-1/attributes/shared"
RESPONSE = "sp/v1/gw-1/attributes/response/"
DOCUMENT = {
    "programs": [
        {"name": "night", "steps": [{"at": "sunset", "level": 80}, {"at": "sunrise", "level": 0}]}
    ],
    "groups": [{"name": "street"}],
    "calendar": [
        {
            "name": "every-night",
            "program": "night",
            "group": "street",
            "weekdays": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        }
    ],
}
OVERRIDE = {"group": "street", "level": 37, "duration_s": 600, "reason": "road works"}


@pytest.fixture
async def platform(
    database: Database, tmp_path: Path, broker: Mosquitto
) -> AsyncIterator[Platform]:
    """A platform in broker mode whose lighting pushes every 0.1 s (the default waits 5 s)."""
    settings = node_settings(tmp_path, broker, "test-node").model_copy(
        update={"lighting_tick_s": 0.1}
    )
    p = Platform(settings, db=database)
    await p.start()
    try:
        consumer = p.broker
        assert consumer is not None

        async def up() -> bool:
            return consumer.ready

        await eventually(up)
        yield p
    finally:
        await p.stop()
        gc.collect()


@pytest.fixture
async def pole(
    client: httpx.AsyncClient, city: City, platform: Platform, broker: Mosquitto
) -> dict[str, Any]:
    """The city's gateway ``gw-1`` and the lighting department's ``lamp-1`` on one pole, with
    their broker accounts in Mosquitto's files; the gateway's body."""
    pole_id = await make_pole(client, city, "FT-LB-0001")
    gw = await make_device(client, city, "city", "gateway", pole_id, name="gw-1", port=1)
    await make_device(client, city, "lighting", "lamp", pole_id, name="lamp-1", port=2)
    sync_files(platform, broker)
    return gw


async def connected_gateway(broker: Mosquitto, gw: dict[str, Any], inbox: Inbox) -> MqttClient:
    """The gateway at Mosquitto, subscribed to its own shared attributes and answers."""
    mqtt = await device(broker, "gw-1", gw["token"], on_message=inbox)
    granted = await mqtt.subscribe([(SHARED, 1), (RESPONSE + "+", 1)])
    assert granted == [1, 1]
    return mqtt


async def light(client: httpx.AsyncClient, city: City) -> dict[str, str]:
    """The lighting tenant's document imported; its operator's headers."""
    op = city.auth("lighting", Role.OPERATOR)
    r = await client.put("/api/lighting/document", json=DOCUMENT, headers=op)
    assert r.status_code == 200, r.text
    return op


async def override(client: httpx.AsyncClient, op: dict[str, str]) -> int:
    """The street at 37 % for ten minutes; when it was made (ms)."""
    made = now_ms()
    r = await client.post("/api/lighting/overrides", json=OVERRIDE, headers=op)
    assert r.status_code == 201, r.text
    return made


def level_now(attribute: Any, made: int) -> float:
    """What the plan gives ``lamp-1`` a second after the override was made."""
    plan = read_plan_attribute(attribute, "gw-1")
    return plan_level(plan.lamps["lamp-1"], made + 1000)


async def test_a_gateway_at_the_broker_gets_the_override_in_its_lighting_plan(
    client: httpx.AsyncClient, city: City, broker: Mosquitto, pole: dict[str, Any]
) -> None:
    inbox = Inbox()
    mqtt = await connected_gateway(broker, pole, inbox)
    try:
        op = await light(client, city)
        made = await override(client, op)

        async def overridden() -> bool:
            pushed = [orjson.loads(p.payload) for p in inbox.got if p.topic == SHARED]
            return any(level_now(b[PLAN_ATTRIBUTE], made) == 37 for b in pushed)

        await eventually(overridden)
    finally:
        await mqtt.close()
    last = orjson.loads([p for p in inbox.got if p.topic == SHARED][-1].payload)
    # the city's gateway carries the lighting department's lamp on its pole, and only that one
    assert set(read_plan_attribute(last[PLAN_ATTRIBUTE]).lamps) == {"lamp-1"}
    assert level_now(last[PLAN_ATTRIBUTE], made) == 37


async def test_a_gateway_away_when_the_override_was_made_asks_for_its_plan_when_back(
    client: httpx.AsyncClient,
    city: City,
    broker: Mosquitto,
    pole: dict[str, Any],
    platform: Platform,
) -> None:
    op = await light(client, city)
    made = await override(client, op)  # nobody at the broker listens for the push

    async def kept() -> bool:
        r = await client.get(
            f"/api/devices/{pole['id']}/attributes",
            params={"scope": "shared"},
            headers=city.auth("city"),
        )
        shared = r.json().get("shared", {})
        return PLAN_ATTRIBUTE in shared and level_now(shared[PLAN_ATTRIBUTE]["value"], made) == 37

    async def pushed() -> bool:  # to the broker, before the gateway is back
        assert platform.broker is not None
        return platform.broker.stats.attributes >= 1

    await eventually(kept)
    await eventually(pushed)
    inbox = Inbox()
    mqtt = await connected_gateway(broker, pole, inbox)
    try:
        ask = orjson.dumps({"sharedKeys": PLAN_ATTRIBUTE})
        await mqtt.publish("sp/v1/gw-1/attributes/request/1", ask, qos=1)
        (answer,) = await inbox.on(RESPONSE + "1")
    finally:
        await mqtt.close()
    # the push was not retained (a retained one would have come before the answer): it asked
    assert not [p for p in inbox.got if p.topic == SHARED]
    assert set(answer["shared"]) == {PLAN_ATTRIBUTE}
    assert level_now(answer["shared"][PLAN_ATTRIBUTE], made) == 37
