"""Keys as ThingsBoard takes them: spaces, any script, punctuation, up to 255 characters.

Devices send them over MQTT (paho, 3.1.1 and 5) and HTTP; they come back through the REST API
(latest, time series, aggregates, attributes, retention) and rules read them, on both engines.
Control characters, blank and over-long keys are refused with an error that names the key
escaped and where it was. The ThingsBoard SDK and gateway clients are in test_mqtt_sdk.py,
broker mode in test_keys_broker.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from fixtures_api import City, make_device, make_pole
from helpers import add_rule, alarms_of, settle
from mqtt_client import V5, V311, Device
from smartpole.app import Platform
from smartpole.model.types import MAX_KEY_LENGTH, key_label, key_problem, split_keys

T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC
# What ThingsBoard devices send: spaced names, Chinese names, the IoT Gateway's connector name.
ROOM = "room temp"
WENDU = "温度"
CONNECTOR = "MQTT Broker Connector"
COMMA = "flow, l/min"  # a key holding a comma: named with key=, never in a keys= list
LONGEST = "长" * MAX_KEY_LENGTH


# -- the rule ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key",
    [
        pytest.param(ROOM, id="space"),
        pytest.param(WENDU, id="chinese"),
        pytest.param(CONNECTOR, id="gateway-connector-name"),
        pytest.param("température/°C", id="accents-and-slash"),
        pytest.param("*", id="star"),
        pytest.param(" padded ", id="surrounding-spaces"),
        pytest.param("🌡️", id="emoji"),
        pytest.param(LONGEST, id="255-characters"),
    ],
)
def test_any_key_thingsboard_takes_is_a_key(key: str) -> None:
    assert key_problem(key) is None


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        pytest.param("", "is empty", id="empty"),
        pytest.param("   ", "is blank", id="blank"),
        pytest.param("\u3000", "is blank", id="ideographic-space"),
        pytest.param("x" * 256, "is longer than 255 characters", id="256-characters"),
        pytest.param("a\tb", "holds the control character U+0009 at character 2", id="tab"),
        pytest.param("a\nb", "holds the control character U+000A at character 2", id="newline"),
        pytest.param("\x00", "holds the control character U+0000 at character 1", id="nul"),
        pytest.param("a\x85", "holds the control character U+0085 at character 2", id="c1"),
        pytest.param("t\ud800", "is not UTF-8: a lone surrogate U+D800 at character 2", id="lone"),
        pytest.param(5, "is not a string", id="not-a-string"),
    ],
)
def test_refused_keys_say_why(key: object, problem: str) -> None:
    assert key_problem(key) == problem


def test_a_label_escapes_and_shortens() -> None:
    assert key_label(WENDU) == "'温度'"
    assert key_label("a\x07b") == "'a\\x07b'"
    assert key_label("x\ud800").encode() == b"'x\\ud800'"  # printable, encodable
    assert key_label("k" * 300) == repr("k" * 40) + "… (300 characters)"


@pytest.mark.parametrize(
    ("text", "keys"),
    [
        pytest.param("a,b", ["a", "b"], id="plain"),
        pytest.param("room temp, 温度 ,", [ROOM, WENDU], id="spaces-around-and-empty"),
        pytest.param("", [], id="empty"),
    ],
)
def test_comma_separated_lists_split_as_thingsboard_does(text: str, keys: list[str]) -> None:
    assert split_keys(text) == keys


# -- devices send them --------------------------------------------------------------------------
@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    pole = await make_pole(client, city, "FT-KEY-0001")
    return await make_device(client, city, "lighting", "lamp", pole, name="lamp-keys")


@pytest.fixture(params=[pytest.param(V5, id="mqtt5"), pytest.param(V311, id="mqtt311")])
async def mqtt(
    request: pytest.FixtureRequest, platform: Platform, lamp: dict[str, Any]
) -> AsyncIterator[Device]:
    dev = Device(platform.mqtt[0].mqtt_port, lamp["token"], request.param, client_id="lamp-keys")
    assert await dev.connect() == 0
    yield dev
    await dev.close()


async def get(client: httpx.AsyncClient, city: City, path: str, **params: Any) -> Any:
    r = await client.get(path, params=params, headers=city.auth("lighting"))
    assert r.status_code == 200, r.text
    return r.json()


async def test_mqtt_telemetry_and_attributes_with_any_keys_come_back(
    mqtt: Device, platform: Platform, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    values = {ROOM: 21.5, WENDU: 22.0, COMMA: 3, LONGEST: "long"}
    assert await mqtt.publish("v1/devices/me/telemetry", {"ts": T0, "values": values}) == 0
    assert await mqtt.publish("v1/devices/me/attributes", {CONNECTOR: "ok", WENDU: "°C"}) == 0
    await settle(platform)
    device = f"/api/devices/{lamp['id']}"
    got = await get(client, city, f"{device}/latest")
    assert {k: v["value"] for k, v in got.items() if k != "online"} == values
    # a comma list, and key= for a key that holds a comma
    series = await get(
        client, city, f"{device}/timeseries", keys=f"{ROOM},{WENDU}", key=COMMA, end=T0 + 1
    )
    assert series == {
        ROOM: [{"ts": T0, "value": 21.5}],
        WENDU: [{"ts": T0, "value": 22.0}],
        COMMA: [{"ts": T0, "value": 3}],
    }
    attrs = await get(client, city, f"{device}/attributes", scope="client", keys=CONNECTOR)
    assert {k: v["value"] for k, v in attrs["client"].items()} == {CONNECTOR: "ok"}

    await mqtt.subscribe("v1/devices/me/attributes/response/+")
    ask = {"clientKeys": f"{CONNECTOR}, {WENDU}", "sharedKeys": ""}
    await mqtt.publish("v1/devices/me/attributes/request/7", ask)
    assert await mqtt.receive() == (
        "v1/devices/me/attributes/response/7",
        {"client": {CONNECTOR: "ok", WENDU: "°C"}, "shared": {}},
    )


async def test_http_telemetry_and_attributes_with_any_keys_come_back(
    platform: Platform, client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    api = f"/api/v1/{lamp['token']}"
    r = await client.post(f"{api}/telemetry", json=[{"ts": T0, "values": {WENDU: 20}}, {ROOM: 1}])
    assert r.json() == {"accepted": 2, "quarantined": 0}
    r = await client.post(f"{api}/attributes", json={CONNECTOR: "ok", "固件": "2.1"})
    assert r.status_code == 200, r.text
    r = await client.get(f"{api}/attributes", params={"clientKeys": f"{CONNECTOR},固件"})
    assert r.json() == {"client": {CONNECTOR: "ok", "固件": "2.1"}, "shared": {}}
    await settle(platform)
    fleet = await get(client, city, "/api/telemetry/latest", keys=f"{WENDU},{ROOM}")
    assert {k: v["value"] for k, v in fleet[str(lamp["id"])].items()} == {WENDU: 20, ROOM: 1}
    hours = await get(
        client, city, "/api/telemetry/aggregate", key=WENDU, agg="max", start=T0, end=T0 + 3_600_000
    )
    assert hours["series"] == {WENDU: [{"ts": T0, "value": 20.0}]}


async def test_shared_attributes_and_retention_take_any_key(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    device = f"/api/devices/{lamp['id']}"
    r = await client.post(
        f"{device}/attributes/shared",
        json={"调光 计划": "夜间", COMMA: 1},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 200, r.text
    r = await client.delete(
        f"{device}/attributes/shared", params={"key": COMMA}, headers=city.auth("lighting")
    )
    assert r.json() == {"deleted": 1}
    attrs = await get(client, city, f"{device}/attributes", scope="shared")
    assert list(attrs["shared"]) == ["调光 计划"]
    # a key in the path: percent-encoded, and it may hold a slash
    for key in (WENDU, "température/°C"):
        r = await client.put(
            f"/api/telemetry/retention/{quote(key, safe='')}",
            json={"days": 30},
            headers=city.auth("city"),
        )
        assert r.status_code == 200, r.text
    assert r.json()["keys"] == {"température/°C": 30, WENDU: 30}


# -- refusals -----------------------------------------------------------------------------------
REFUSED = [
    pytest.param("bad\x07key", "holds the control character U+0007 at character 4", id="control"),
    pytest.param("  ", "is blank", id="blank"),
    pytest.param("", "is empty", id="empty"),
    pytest.param("k" * 256, "is longer than 255 characters", id="256-characters"),
]


def located(where: str, key: str, problem: str) -> dict[str, Any]:
    """The error a refused key gets: located by its escaped label, which the message names."""
    label = key_label(key)
    return {"loc": [where, label], "msg": f"key {label} {problem}"}


@pytest.mark.parametrize(("key", "problem"), REFUSED)
async def test_a_refused_key_is_a_located_422_over_http_and_nothing_is_stored(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], key: str, problem: str
) -> None:
    api = f"/api/v1/{lamp['token']}"
    r = await client.post(f"{api}/telemetry", json=[{"ts": T0, "values": {"ok": 1, key: 2}}])
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [located("[0].values", key, problem)]
    r = await client.post(f"{api}/attributes", json={"ok": 1, key: 2})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [located("body", key, problem)]
    r = await client.post(
        f"/api/devices/{lamp['id']}/attributes/server", json={key: 1}, headers=city.auth("city")
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [located("body", key, problem)]
    assert await get(client, city, f"/api/devices/{lamp['id']}/latest") == {}
    assert await get(client, city, f"/api/devices/{lamp['id']}/attributes") == {}


@pytest.mark.parametrize(("key", "problem"), [p for p in REFUSED if p.id != "empty"])
async def test_a_refused_key_in_a_query_or_a_path_is_a_located_422(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], key: str, problem: str
) -> None:
    r = await client.get(
        f"/api/devices/{lamp['id']}/timeseries", params={"key": key}, headers=city.auth("city")
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [located("query", key, problem)]
    r = await client.put(
        f"/api/telemetry/retention/{quote(key, safe='')}",
        json={"days": 1},
        headers=city.auth("city"),
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [located("path", key, problem)]


async def test_a_lone_surrogate_in_a_rest_body_is_a_422_not_a_500(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    r = await client.post(
        f"/api/devices/{lamp['id']}/attributes/server",
        content=b'{"t\\ud800": 1}',
        headers={"Content-Type": "application/json", **city.auth("city")},
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {
            "loc": ["body", "'t\\ud800'"],
            "msg": "key 't\\ud800' is not UTF-8: a lone surrogate U+D800 at character 2",
        }
    ]


async def test_a_refused_key_over_mqtt5_is_refused_in_the_puback_and_logged(
    platform: Platform,
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    dev = Device(platform.mqtt[0].mqtt_port, lamp["token"], V5, client_id="lamp-keys")
    assert await dev.connect() == 0
    try:
        assert await dev.publish("v1/devices/me/telemetry", {"ok": 1, "a\nb": 2}) == 0x99
    finally:
        await dev.close()
    assert f"device {lamp['id']} (lamp-keys) rejected" in caplog.text
    assert "key 'a\\nb' holds the control character U+000A" in caplog.text
    assert "ok" not in await get(client, city, f"/api/devices/{lamp['id']}/latest")


# -- rules ----------------------------------------------------------------------------------------
HOT = {
    "name": "hot",
    "scope": {"kinds": ["weather"]},
    "condition": {"key": WENDU, "op": ">", "value": 40},
    "actions": [{"alarm": {"type": "高温", "severity": "major"}}],
}


async def test_a_rule_on_a_chinese_key_raises_its_alarm(
    platform: Platform, client: httpx.AsyncClient, city: City
) -> None:
    await add_rule(client, city, "city", HOT)
    pole = await make_pole(client, city, "FT-KEY-0002")
    station = await make_device(client, city, "city", "weather", pole, name="station-1")
    for ts, value in ((T0, 30.0), (T0 + 1000, 41.5)):
        r = await client.post(
            f"/api/v1/{station['token']}/telemetry", json={"ts": ts, "values": {WENDU: value}}
        )
        assert r.status_code == 200, r.text
    await settle(platform)
    [alarm] = await alarms_of(client, city, "city", active="true")
    assert (alarm["type"], alarm["originator_id"]) == ("高温", station["id"])
    assert alarm["details"]["values"] == {WENDU: 41.5}


@pytest.mark.parametrize(
    ("condition", "keys", "any_key"),
    [
        pytest.param({"key": "*", "op": ">", "value": 1}, ["*"], False, id="a-key-named-star"),
        pytest.param({"missing": {"after": "10m"}}, [], True, id="missing-any-key"),
        pytest.param(
            {
                "all": [
                    {"key": ROOM, "op": ">", "value": 1},
                    {"missing": {"key": WENDU, "after": "1m"}},
                ]
            },
            [ROOM, WENDU],
            False,
            id="spaced-and-chinese",
        ),
    ],
)
async def test_a_rule_says_which_keys_it_reads(
    client: httpx.AsyncClient, city: City, condition: dict[str, Any], keys: list[str], any_key: bool
) -> None:
    body = {**HOT, "condition": condition}
    r = await client.post("/api/rules/check", json=body, headers=city.auth("city"))
    assert r.status_code == 200, r.text
    assert (sorted(r.json()["keys"]), r.json()["any_key"]) == (sorted(keys), any_key)


async def test_a_rule_on_a_refused_key_is_a_located_422(
    client: httpx.AsyncClient, city: City
) -> None:
    body = {**HOT, "condition": {"rate": {"key": "a\tb", "op": ">", "value": 1}}}
    r = await client.post("/api/rules", json=body, headers=city.auth("city"))
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {
            "loc": ["condition", "rate", "key"],
            "msg": "must be a telemetry key: 'a\\tb' holds the control character U+0009"
            " at character 2",
        }
    ]
