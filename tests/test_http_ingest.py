"""Devices upload over the ThingsBoard HTTP API; readings come back through the REST API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from fixtures_api import City, make_device, make_pole
from smartpole.model.clock import now_ms

T0 = 1_764_000_000_000 - 1_764_000_000_000 % 3_600_000  # an hour boundary


@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    """A lamp of the lighting department on a pole."""
    pole = await make_pole(client, city, "FT-SN-0001")
    return await make_device(client, city, "lighting", "lamp", pole, name="lamp-1")


async def latest(client: httpx.AsyncClient, city: City, device_id: int) -> dict[str, Any]:
    r = await client.get(f"/api/devices/{device_id}/latest", headers=city.auth("lighting"))
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        pytest.param({"power": 42.5, "on": True}, {"power": 42.5, "on": True}, id="flat"),
        pytest.param(
            {"ts": T0, "values": {"dim": 80, "mode": "night"}},
            {"dim": 80, "mode": "night"},
            id="ts-values",
        ),
        pytest.param(
            [{"ts": T0, "values": {"dim": 10}}, {"ts": T0 + 1000, "values": {"dim": 20}}],
            {"dim": 20},
            id="array",
        ),
        pytest.param(
            {"ts": T0, "values": {"fault": {"code": 7, "text": "driver"}}},
            {"fault": {"code": 7, "text": "driver"}},
            id="json-value",
        ),
    ],
)
async def test_every_thingsboard_payload_form_is_stored(
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    payload: Any,
    expected: dict[str, Any],
) -> None:
    r = await client.post(f"/api/v1/{lamp['token']}/telemetry", json=payload)
    assert r.status_code == 200, r.text
    got = await latest(client, city, lamp["id"])
    assert {k: got[k]["value"] for k in expected} == expected


async def test_flat_payload_is_stamped_with_server_time(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    before = now_ms()
    await client.post(f"/api/v1/{lamp['token']}/telemetry", json={"power": 10})
    ts = (await latest(client, city, lamp["id"]))["power"]["ts"]
    assert before <= ts <= now_ms()


async def test_unknown_token_is_401_problem(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/not-a-token/telemetry", json={"power": 1})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "Unauthenticated"


async def test_malformed_json_is_400_with_position(
    client: httpx.AsyncClient, lamp: dict[str, Any]
) -> None:
    r = await client.post(
        f"/api/v1/{lamp['token']}/telemetry",
        content=b'{"power": 1,\n "dim": }',
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400
    body = r.json()
    assert body["line"] == 2
    assert body["column"] == 9
    assert "line 2 column 9" in body["detail"]


async def test_oversized_body_is_413(client: httpx.AsyncClient, lamp: dict[str, Any]) -> None:
    big = b'{"blob": "' + b"x" * 1_100_000 + b'"}'
    r = await client.post(f"/api/v1/{lamp['token']}/telemetry", content=big)
    assert r.status_code == 413
    assert r.json()["limit"] == 1_048_576


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"power": None}, id="null-value"),
        pytest.param([{"power": 1}, 5], id="non-object-entry"),
        pytest.param({"ts": 1_764_000_000, "values": {"power": 1}}, id="ts-in-seconds"),
        pytest.param({"ts": "yesterday", "values": {"power": 1}}, id="ts-not-a-number"),
        pytest.param([], id="empty-array"),
        pytest.param({"bad\u0007key": 1}, id="control-character-in-key"),
        pytest.param({"k" * 256: 1}, id="key-too-long"),
        pytest.param("power=1", id="not-an-object"),
        pytest.param({"note": "a\u0000b"}, id="nul-in-text"),
    ],
)
async def test_wrong_shape_is_422_and_stores_nothing(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any], payload: Any
) -> None:
    good_then_bad = [{"ts": T0, "values": {"dim": 55}}, payload]
    for body in (payload, good_then_bad):
        r = await client.post(f"/api/v1/{lamp['token']}/telemetry", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["errors"]
    assert await latest(client, city, lamp["id"]) == {}


async def test_out_of_range_value_is_quarantined_not_stored(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    r = await client.post(
        f"/api/v1/{lamp['token']}/telemetry",
        json={"ts": T0, "values": {"dim": 140, "power": "high", "voltage": 229.5, "custom": 1e9}},
    )
    assert r.json() == {"accepted": 2, "quarantined": 2}
    got = await latest(client, city, lamp["id"])
    assert set(got) == {"voltage", "custom"}  # keys outside the catalog come in as they are
    q = await client.get(f"/api/devices/{lamp['id']}/quarantine", headers=city.auth("lighting"))
    body = q.json()
    assert body["total"] == 2
    assert {(i["key"], i["quality"]) for i in body["items"]} == {
        ("dim", "out_of_range"),
        ("power", "wrong_type"),
    }


async def test_duplicate_upload_is_idempotent(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    payload = [{"ts": T0 + i * 60_000, "values": {"power": 10 + i}} for i in range(30)]
    for _ in range(3):
        assert (await client.post(f"/api/v1/{lamp['token']}/telemetry", json=payload)).is_success
    r = await client.get(
        f"/api/devices/{lamp['id']}/timeseries",
        params={
            "keys": "power",
            "start": T0,
            "end": T0 + 3_600_000,
            "agg": "sum",
            "interval": 3_600_000,
        },
        headers=city.auth("lighting"),
    )
    assert r.json()["power"] == [{"ts": T0, "value": sum(10 + i for i in range(30))}]


async def test_posted_readings_read_back_aggregated(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    payload = [{"ts": T0 + i * 600_000, "values": {"power": float(i)}} for i in range(18)]
    await client.post(f"/api/v1/{lamp['token']}/telemetry", json=payload)
    params = {"keys": "power", "start": T0, "end": T0 + 3 * 3_600_000, "interval": 3_600_000}
    auth = city.auth("lighting")
    url = f"/api/devices/{lamp['id']}/timeseries"
    avg = (await client.get(url, params={**params, "agg": "avg"}, headers=auth)).json()
    assert [p["value"] for p in avg["power"]] == [2.5, 8.5, 14.5]
    mx = (await client.get(url, params={**params, "agg": "max"}, headers=auth)).json()
    assert [p["value"] for p in mx["power"]] == [5, 11, 17]
    raw = (
        await client.get(
            url, params={"keys": "power", "start": T0, "end": T0 + 1_800_000}, headers=auth
        )
    ).json()
    assert [p["value"] for p in raw["power"]] == [0, 1, 2]


async def test_upload_marks_device_online(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    auth = city.auth("lighting")
    assert (await client.get(f"/api/devices/{lamp['id']}", headers=auth)).json()["online"] is False
    await client.post(f"/api/v1/{lamp['token']}/telemetry", json={"power": 3})
    body = (await client.get(f"/api/devices/{lamp['id']}", headers=auth)).json()
    assert body["online"] is True
    assert body["last_seen"] > now_ms() - 60_000


async def test_client_attributes_upload_and_read(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    token = lamp["token"]
    r = await client.post(f"/api/v1/{token}/attributes", json={"firmware": "1.4.2", "ports": 4})
    assert r.json() == {"updated": 2}
    r = await client.post(
        f"/api/devices/{lamp['id']}/attributes/shared",
        json={"dim_profile": "night"},
        headers=city.auth("lighting", "operator"),  # type: ignore[arg-type]
    )
    assert r.status_code == 200, r.text
    dev = (await client.get(f"/api/v1/{token}/attributes")).json()
    assert dev == {"client": {"firmware": "1.4.2", "ports": 4}, "shared": {"dim_profile": "night"}}
    only = (await client.get(f"/api/v1/{token}/attributes", params={"sharedKeys": "x"})).json()
    assert only["shared"] == {}
    # as an MQTT attribute request: a scope not named, when the other one is, comes back empty
    client_only = await client.get(f"/api/v1/{token}/attributes", params={"clientKeys": "ports"})
    assert client_only.json() == {"client": {"ports": 4}, "shared": {}}


async def test_rotated_token_stops_working(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    r = await client.post(f"/api/devices/{lamp['id']}/credentials", headers=city.auth("lighting"))
    new = r.json()["token"]
    assert (
        await client.post(f"/api/v1/{lamp['token']}/telemetry", json={"a": 1})
    ).status_code == 401
    assert (await client.post(f"/api/v1/{new}/telemetry", json={"a": 1})).status_code == 200
