"""No route of the REST API, and no gateway topic, lets one tenant reach another's objects.

Tenant B (``telecom``) has one of every kind of object: a pole it holds, devices (a gateway
among them) with attributes, readings and a queued command, a device on a pole it shares with
A, an API key, a provision profile, a team, a work order, a webhook, a gateway binding and a
mount grant. Tenant A (``lighting``, with its admin key) then calls every operation of the
OpenAPI document, with path, query and body values drawn from B's ids and names (a route added
later is tried without changing this test), and its pole gateway publishes every gateway topic
naming B's devices. Nothing of B's may change (its rows in every table, before == after) and
no answer to A may hold B's objects (B's names all carry the marker ``b-secret``) or secrets.

``FUZZ_EXAMPLES`` (default 60) scales the search: an example tries every operation once, and
there are ``FUZZ_EXAMPLES // 30`` of them (2 by default, about 8 s each).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from random import Random
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import or_, select

from fixtures_api import City, grant_mount, make_device, make_pole
from mqtt_client import V5, Device
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.store.schema import metadata

MARKER = "b-secret"
RC_NOT_AUTHORIZED = 0x87
T0 = 1_764_000_000_000
# Tables that change on their own: the hub's model snapshots, the writer's bookkeeping, and
# latest values and rollups (derived from the readings, which are compared, and written late).
UNOWNED = {"derived_pending", "hub_snapshots", "latest", "rollups"}


@dataclass
class Victim:
    """B's objects: ids by the name of the parameter that takes them, names, secrets."""

    tenant_id: int
    pole_id: int
    devices: list[int]
    ids: dict[str, list[int]]
    names: list[str]
    secrets: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


async def created(r: httpx.Response) -> dict[str, Any]:
    """The body of a successful creation."""
    assert r.status_code in (200, 201, 202), r.text
    return dict(r.json())


@pytest.fixture
async def victim(client: httpx.AsyncClient, city: City, platform: Platform) -> Victim:
    b = city.auth("telecom")
    pole = await make_pole(client, city, "B-SECRET-0001")
    shared = await make_pole(client, city, "SHARED-0001")
    cell = await make_device(client, city, "telecom", "small_cell", pole, name="b-secret-cell")
    gw = await make_device(client, city, "telecom", "gateway", pole, name="b-secret-gw", port=1)
    cell2 = await make_device(client, city, "telecom", "air", shared, name="b-secret-air", port=2)
    # A shares the pole (by B's grant) with a gateway and a lamp of its own
    await grant_mount(client, city, shared, "telecom", "lighting")
    a_gw = await make_device(client, city, "lighting", "gateway", shared, name="a-gw", port=1)
    await make_device(client, city, "lighting", "lamp", shared, name="a-lamp", port=3)
    platform.tenants.create("police", "Police")
    grant = await grant_mount(client, city, pole, "telecom", "police")
    for dev in (cell, cell2):
        r = await client.post(
            f"/api/v1/{dev['token']}/telemetry", json={"ts": T0, "values": {"pm25": 12}}
        )
        assert r.status_code == 200, r.text
        r = await client.post(f"/api/v1/{dev['token']}/attributes", json={"fw": "b-secret-fw"})
        assert r.status_code == 200, r.text
    for scope in ("shared", "server"):
        path = f"/api/devices/{cell['id']}/attributes/{scope}"
        await created(await client.post(path, json={"note": "b-secret-note"}, headers=b))
    command = await created(
        await client.post(
            f"/api/devices/{cell['id']}/rpc",
            json={"method": "b-secret-reboot", "persistent": True, "oneway": True},
            headers=b,
        )
    )
    binding = await created(
        await client.post(
            f"/api/devices/{cell['id']}/bindings", json={"gateway": "b-secret-gw"}, headers=b
        )
    )
    profile = await created(
        await client.post(
            "/api/provision-profiles",
            json={"name": "b-secret-profile", "kind": "small_cell", "pole": "B-SECRET-0001"},
            headers=b,
        )
    )
    team = await created(await client.post("/api/teams", json={"name": "b-secret-team"}, headers=b))
    order = await created(
        await client.post(
            "/api/work-orders",
            json={"device_id": cell["id"], "title": "b-secret-order", "team_id": team["id"]},
            headers=b,
        )
    )
    hook = await created(
        await client.post(
            "/api/webhooks",
            json={"name": "b-secret-hook", "url": "http://127.0.0.1:9/b-secret"},
            headers=b,
        )
    )
    lighting = {
        "programs": [{"name": "b-secret-program", "steps": [{"at": "sunset", "level": 70}]}],
        "groups": [{"name": "b-secret-group"}],
        "calendar": [
            {
                "name": "b-secret-entry",
                "program": "b-secret-program",
                "group": "b-secret-group",
                "weekdays": ["mon"],
            }
        ],
    }
    r = await client.put("/api/lighting/document", json=lighting, headers=b)
    assert r.status_code == 200, r.text
    override = await created(
        await client.post(
            "/api/lighting/overrides",
            json={"group": "b-secret-group", "level": 5, "duration_s": 3600},
            headers=b,
        )
    )
    key = platform.tenants.list_keys(city.ids["telecom"])[0]
    devices = [cell["id"], gw["id"], cell2["id"]]
    ids = {
        "device_id": devices,
        "originator_id": devices,
        "gateway_id": [gw["id"]],
        "pole_id": [pole, shared],
        "tenant_id": [city.ids["telecom"]],
        "key_id": [key["id"]],
        "profile_id": [profile["id"]],
        "binding_id": [binding["id"]],
        "grant_id": [grant],
        "team_id": [team["id"]],
        "work_order_id": [order["id"]],
        "webhook_id": [hook["id"]],
        "command_id": [command["id"]],
        "request_id": [command.get("request_id", 1)],
        "override_id": [override["id"]],
    }
    names = ["b-secret-cell", "b-secret-gw", "b-secret-air", "telecom", "B-SECRET-0001"]
    names += ["b-secret-program", "b-secret-group", "b-secret-entry"]
    secrets = [cell["token"], gw["token"], cell2["token"], profile["secret"], profile["key"]]
    secrets += [city.keys[(t, r)] for (t, r) in city.keys if t == "telecom"]
    return Victim(
        city.ids["telecom"], pole, devices, ids, names, secrets, {"a_gw_token": a_gw["token"]}
    )


def snapshot(platform: Platform, v: Victim) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table that is B's or points at B's objects."""
    owned: dict[str, list[int]] = {
        "tenant_id": [v.tenant_id],
        "owner_id": [v.tenant_id],
        "granted_by": [v.tenant_id],
        "device_id": v.devices,
        "gateway_id": v.devices,
        "originator_id": v.devices,
        "pole_id": [v.pole_id],
        **{k: ids for k, ids in v.ids.items() if k.endswith("_id") and k != "pole_id"},
    }
    out: dict[str, list[tuple[Any, ...]]] = {}
    with platform.db.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table.name in UNOWNED:
                continue
            where = [table.c[col].in_(ids) for col, ids in owned.items() if col in table.c]
            if table.name == "mount_grants":
                # B's grants are those it gave and those on its pole; a grant another tenant
                # gives B on a pole of its own (A shares one with B) is the giver's to give
                where = [table.c.granted_by == v.tenant_id, table.c.pole_id == v.pole_id]
            if table.name == "tenants":
                where.append(table.c.id == v.tenant_id)
            q = select(table)
            if table.name not in ("poles", "retention"):  # those: every row (city-only)
                if not where:
                    continue
                q = q.where(or_(*where))
            rows = conn.execute(q).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def changes(
    before: dict[str, list[tuple[Any, ...]]], after: dict[str, list[tuple[Any, ...]]]
) -> dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """The rows of each table that went (first) and came (second)."""
    out = {}
    for name in before.keys() | after.keys():
        old, new = before.get(name, []), after.get(name, [])
        if old != new:
            out[name] = ([r for r in old if r not in new], [r for r in new if r not in old])
    return out


def leaks(answer: str, asked: str, v: Victim) -> list[str]:
    """B's secrets, and B's names that A did not send itself (an answer may repeat what was
    asked: "pole 'B-SECRET-0001' not found"), found in an answer to A."""
    found = [s for s in v.secrets if s in answer]
    for line in re.findall(rf"[^\s\"']*{MARKER}[^\s\"']*", answer, flags=re.IGNORECASE):
        if line not in asked:
            found.append(line)
    return found


# -- values drawn from the OpenAPI document -------------------------------------------------
def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its ``$ref`` followed."""
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].split("/")[-1]]
    return schema


def value_for(
    rnd: Random, spec: dict[str, Any], name: str, schema: dict[str, Any], v: Victim, depth: int
) -> Any:
    """A value for a parameter or property: B's id or name when its name says it takes one,
    else something of the schema's type."""
    schema = resolve(spec, schema)
    if name in v.ids:
        return rnd.choice(v.ids[name])
    if name in ("pole", "code"):
        return rnd.choice(["B-SECRET-0001", "SHARED-0001"])
    if name in ("device", "gateway", "owner", "tenant", "originator"):
        return rnd.choice(v.names)
    options = schema.get("anyOf") or schema.get("oneOf")
    if options:
        return value_for(rnd, spec, name, rnd.choice(options), v, depth)
    if "enum" in schema:
        return rnd.choice(schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        return rnd.choice([1, 2, 3, *v.devices])
    if kind == "number":
        return rnd.choice([0.0, 1.5, 22.54, 114.05])
    if kind == "boolean":
        return rnd.random() < 0.5
    if kind == "null":
        return None
    if kind == "array":
        if depth > 2:
            return []
        item = schema.get("items", {})
        return [value_for(rnd, spec, name, item, v, depth + 1) for _ in range(rnd.randint(0, 2))]
    if kind == "object" or "properties" in schema:
        if depth > 2:
            return {}
        return body_for(rnd, spec, schema, v, depth + 1)
    if kind == "string":
        # no marker here: A may name its own objects so, and read them back
        return rnd.choice(["fz-1", "telecom", "2026-01-01"])
    return rnd.choice([None, 1, "fz", v.devices[0]])


def body_for(
    rnd: Random, spec: dict[str, Any], schema: dict[str, Any], v: Victim, depth: int = 0
) -> Any:
    """A JSON body: the required properties and some of the others."""
    schema = resolve(spec, schema)
    props = schema.get("properties", {})
    if not props:
        return {"device_id": rnd.choice(v.devices)}
    required = set(schema.get("required", []))
    out = {}
    for name, sub in props.items():
        if name in required or rnd.random() < 0.5:
            out[name] = value_for(rnd, spec, name, sub, v, depth)
    return out


@dataclass
class Call:
    """One request: method, path, query and JSON body."""

    method: str
    path: str
    query: dict[str, Any]
    body: Any


def calls(rnd: Random, spec: dict[str, Any], v: Victim) -> list[Call]:
    """One call of every operation of the document."""
    out = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            filled, query = path, {}
            for prm in op.get("parameters", []):
                value = value_for(rnd, spec, prm["name"], prm.get("schema", {}), v, 0)
                if prm["in"] == "path":
                    filled = filled.replace("{" + prm["name"] + "}", str(value))
                elif prm["in"] == "query" and (prm.get("required") or rnd.random() < 0.5):
                    query[prm["name"]] = value
            body = None
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                body = body_for(rnd, spec, content["application/json"].get("schema", {}), v)
            filled = re.sub(r"\{[^}]+\}", "b-secret", filled)  # a parameter of no known kind
            out.append(Call(method.upper(), filled, query, body))
    return out


@pytest.fixture
def spec(platform: Platform) -> dict[str, Any]:
    """The OpenAPI document of the app under test."""
    return create_app(platform.api_services()).openapi()


@settings(
    max_examples=max(1, int(os.environ.get("FUZZ_EXAMPLES", "60")) // 30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    # the store is not reset between examples: a shrunk example would meet another state
    phases=[Phase.explicit, Phase.generate],
    database=None,
    print_blob=False,
)
# An example calls every operation: thousands of values, drawn from one seed. Drawn one by one
# from Hypothesis they outgrew its choice budget, and a second example meeting that limit at
# another place tripped its consistency check (FlakyStrategyDefinition). A failure prints the
# seed, which reproduces it.
@given(rnd=st.randoms(use_true_random=True))
# the failing example is replayed with its fixtures printed: the OpenAPI document is ~450 kB
@pytest.mark.filterwarnings("ignore:Generating overly large repr")
async def test_no_route_reads_or_changes_another_tenants_objects(
    rnd: Random,
    platform: Platform,
    client: httpx.AsyncClient,
    city: City,
    victim: Victim,
    spec: dict[str, Any],
) -> None:
    before = snapshot(platform, victim)
    auth = city.auth("lighting")
    tried = calls(rnd, spec, victim)
    assert len(tried) == sum(len(item) for item in spec["paths"].values())
    for call in tried:
        r = await client.request(
            call.method,
            call.path,
            params=call.query,
            json=call.body,
            headers=auth,
            timeout=10,
        )
        asked = f"{call.path} {call.query} {call.body}"
        assert not leaks(r.text, asked, victim), (call, r.status_code, r.text[:500])
    changed = changes(before, snapshot(platform, victim))
    assert not changed, changed


async def test_no_gateway_topic_reaches_another_tenants_devices(
    platform: Platform, client: httpx.AsyncClient, city: City, victim: Victim
) -> None:
    before = snapshot(platform, victim)
    gw = Device(platform.mqtt[0].mqtt_port, victim.extra["a_gw_token"], V5, client_id="a-gw")
    assert await gw.connect() == 0
    try:
        for name in ("b-secret-air", "b-secret-cell", "b-secret-gw"):
            for topic, body in [
                ("v1/gateway/connect", {"device": name, "type": "air"}),
                ("v1/gateway/telemetry", {name: [{"ts": T0 + 1, "values": {"pm25": 999}}]}),
                ("v1/gateway/attributes", {name: {"fw": "forged"}}),
                ("v1/gateway/attributes/request", {"id": 1, "device": name, "key": "note"}),
                ("v1/gateway/claim", {name: {"secretKey": "x", "durationMs": 60000}}),
                ("v1/gateway/rpc", {"device": name, "id": 1, "data": {"ok": True}}),
                ("v1/gateway/disconnect", {"device": name}),
            ]:
                refused = await gw.publish(topic, body)
                # a disconnect of a device the gateway never connected is nothing to refuse
                assert refused == RC_NOT_AUTHORIZED or topic.endswith("disconnect"), topic
    finally:
        await gw.close()
    changed = changes(before, snapshot(platform, victim))
    assert not changed, changed
