"""Mounting on another tenant's pole needs its grant; grants and bindings are visible to both
sides and record who gave and revoked them.

The estate: pole ``TEL`` holds the telecom operator's small cell on port 6; pole ``FREE``
carries nothing. The lighting department may mount on ``FREE`` (a city pole) but not on
``TEL`` until telecom grants it: without the grant, ``TEL`` answers exactly as a pole that
does not exist, whatever port is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from fixtures_api import City, grant_mount, make_device, make_pole
from smartpole.app import Platform
from smartpole.model.types import Role

TEL, FREE = "FT-TEL-0001", "FT-FREE-0002"


@dataclass
class Estate:
    """Pole ids, telecom's cell and lighting's loose lamp."""

    tel: int
    free: int
    cell: dict[str, Any]
    lamp: dict[str, Any]


@pytest.fixture
async def estate(client: httpx.AsyncClient, city: City) -> Estate:
    tel = await make_pole(client, city, TEL)
    free = await make_pole(client, city, FREE)
    cell = await make_device(client, city, "telecom", "small_cell", tel, name="cell-t", port=6)
    lamp = await make_device(client, city, "lighting", "lamp", name="lamp-l")
    return Estate(tel, free, cell, lamp)


def admin_key_id(platform: Platform, city: City, tenant: str) -> int:
    """The id of the tenant's admin API key (the fixture issues admin first)."""
    keys = platform.tenants.list_keys(city.ids[tenant])
    return int(next(k["id"] for k in keys if k["role"] == Role.ADMIN))


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """The problem+json body of a refusal with ``status``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    return dict(r.json())


MOUNTS = [
    pytest.param({"pole": TEL, "port": 6}, {"pole": "NOPE-0009", "port": 6}, id="code-taken-port"),
    pytest.param({"pole": TEL, "port": 7}, {"pole": "NOPE-0009", "port": 7}, id="code-free-port"),
    pytest.param({"pole_id": "{tel}", "port": 6}, {"pole_id": 999_999, "port": 6}, id="id"),
]


@pytest.mark.parametrize(("foreign", "unknown"), MOUNTS)
@pytest.mark.parametrize("role", [Role.OPERATOR, Role.ADMIN])
async def test_mounting_on_another_tenants_pole_is_404_like_an_unknown_pole(
    client: httpx.AsyncClient,
    city: City,
    estate: Estate,
    role: Role,
    foreign: dict[str, Any],
    unknown: dict[str, Any],
) -> None:
    auth = city.auth("lighting", role)
    if foreign.get("pole_id") == "{tel}":
        foreign = {**foreign, "pole_id": estate.tel}
    got = problem(
        await client.post("/api/devices", json={"kind": "lamp", **foreign}, headers=auth), 404
    )
    absent = problem(
        await client.post("/api/devices", json={"kind": "lamp", **unknown}, headers=auth), 404
    )
    ref = str(foreign.get("pole") or estate.tel)
    other = str(unknown.get("pole") or 999_999)
    assert got["detail"].replace(ref, "P") == absent["detail"].replace(other, "P")
    assert set(got) == set(absent)
    r = await client.get("/api/devices", headers=city.auth("lighting"))
    assert [d["name"] for d in r.json()["items"]] == ["lamp-l"]


async def test_moving_a_device_onto_another_tenants_pole_is_404(
    client: httpx.AsyncClient, city: City, estate: Estate
) -> None:
    auth = city.auth("lighting", Role.OPERATOR)
    path = f"/api/devices/{estate.lamp['id']}"
    problem(await client.patch(path, json={"pole_id": estate.tel, "port": 7}, headers=auth), 404)
    assert (await client.get(path, headers=auth)).json()["pole_id"] is None
    r = await client.patch(path, json={"pole_id": estate.free, "port": 1}, headers=auth)
    assert r.status_code == 200, r.text  # a city pole no tenant holds is free to mount on


async def test_a_provision_profile_on_another_tenants_pole_is_404(
    client: httpx.AsyncClient, city: City, estate: Estate
) -> None:
    auth = city.auth("lighting")
    body = {"name": "lamps", "kind": "lamp", "pole": TEL}
    problem(await client.post("/api/provision-profiles", json=body, headers=auth), 404)
    r = await client.post("/api/provision-profiles", json={**body, "pole": FREE}, headers=auth)
    assert r.status_code == 201, r.text
    path = f"/api/provision-profiles/{r.json()['id']}"
    problem(await client.patch(path, json={"pole": TEL}, headers=auth), 404)
    assert (await client.get(path, headers=auth)).json()["pole"] == FREE


async def test_a_mount_grant_opens_the_pole_and_both_sides_see_who_gave_it(
    client: httpx.AsyncClient, city: City, estate: Estate, platform: Platform
) -> None:
    grant = await grant_mount(client, city, estate.tel, "telecom", "lighting")
    for side in ("telecom", "lighting", "city"):
        r = await client.get("/api/mount-grants", headers=city.auth(side, Role.VIEWER))
        [seen] = r.json()
        assert seen["id"] == grant
        assert (seen["pole"], seen["tenant"], seen["active"]) == (TEL, "lighting", True)
        assert seen["granted"]["tenant"] == "telecom"
        assert seen["granted"]["key_id"] == admin_key_id(platform, city, "telecom")
    # a third tenant sees nothing of it
    outsider = platform.tenants.create("police", "Police")
    key = platform.tenants.create_key(outsider["id"], Role.ADMIN)[1]
    police = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/mount-grants", headers=police)).json() == []
    problem(await client.get(f"/api/mount-grants/{grant}", headers=police), 404)
    problem(await client.delete(f"/api/mount-grants/{grant}", headers=police), 404)

    auth = city.auth("lighting", Role.OPERATOR)
    body = {"kind": "lamp", "pole": TEL, "port": 6}
    problem(await client.post("/api/devices", json=body, headers=auth), 409)  # visible now
    r = await client.post("/api/devices", json={**body, "port": 7}, headers=auth)
    assert r.status_code == 201, r.text
    profile = {"name": "lamps", "kind": "lamp", "pole": TEL}
    r = await client.post("/api/provision-profiles", json=profile, headers=city.auth("lighting"))
    assert r.status_code == 201, r.text


async def test_a_revoked_mount_grant_closes_the_pole_and_keeps_who_revoked_it(
    client: httpx.AsyncClient, city: City, estate: Estate, platform: Platform
) -> None:
    grant = await grant_mount(client, city, estate.tel, "telecom", "lighting")
    r = await client.delete(f"/api/mount-grants/{grant}", headers=city.auth("lighting"))
    assert r.status_code == 200, r.text
    revoked = r.json()["revoked"]
    assert revoked["tenant"] == "lighting"
    assert revoked["key_id"] == admin_key_id(platform, city, "lighting")
    assert r.json()["active"] is False
    problem(await client.delete(f"/api/mount-grants/{grant}", headers=city.auth("telecom")), 409)
    body = {"kind": "lamp", "pole": TEL, "port": 7}
    problem(await client.post("/api/devices", json=body, headers=city.auth("lighting")), 404)
    r = await client.get(
        "/api/mount-grants", params={"active": False}, headers=city.auth("telecom")
    )
    assert [g["id"] for g in r.json()] == [grant]


@pytest.mark.parametrize(
    ("tenant", "pole", "status"),
    [
        pytest.param("lighting", "tel", 404, id="a-pole-it-does-not-hold"),
        pytest.param("lighting", "free", 404, id="a-bare-pole"),
        pytest.param("telecom", "tel", 201, id="its-own-pole"),
    ],
)
async def test_only_a_tenant_holding_the_pole_grants_mounting_on_it(
    client: httpx.AsyncClient, city: City, estate: Estate, tenant: str, pole: str, status: int
) -> None:
    pid = estate.tel if pole == "tel" else estate.free
    r = await client.post(
        f"/api/poles/{pid}/mount-grants", json={"tenant": "city"}, headers=city.auth(tenant)
    )
    assert r.status_code == status, r.text


# -- gateway bindings -------------------------------------------------------------------------
async def test_a_binding_is_given_by_the_devices_owner_and_seen_by_both_sides(
    client: httpx.AsyncClient, city: City, estate: Estate, platform: Platform
) -> None:
    await grant_mount(client, city, estate.tel, "telecom", "lighting")
    gw = await make_device(client, city, "lighting", "gateway", estate.tel, name="gw-l", port=1)
    path = f"/api/devices/{estate.cell['id']}/bindings"
    # the gateway's tenant cannot bind a device it does not own
    problem(await client.post(path, json={"gateway": "gw-l"}, headers=city.auth("lighting")), 404)
    # nor does a gateway of another pole, or no gateway, exist for the device's owner
    problem(await client.post(path, json={"gateway": "lamp-l"}, headers=city.auth("telecom")), 404)
    r = await client.post(path, json={"gateway": "gw-l"}, headers=city.auth("telecom"))
    assert r.status_code == 201, r.text
    binding = r.json()
    assert (binding["gateway_id"], binding["device"], binding["active"]) == (
        gw["id"],
        "cell-t",
        True,
    )
    assert binding["granted"]["tenant"] == "telecom"
    assert binding["granted"]["key_id"] == admin_key_id(platform, city, "telecom")
    problem(await client.post(path, json={"gateway": "gw-l"}, headers=city.auth("telecom")), 409)
    for side in ("telecom", "lighting", "city"):
        r = await client.get("/api/bindings", headers=city.auth(side, Role.VIEWER))
        assert [b["id"] for b in r.json()] == [binding["id"]]
    # the gateway's side may end it too
    r = await client.delete(f"/api/bindings/{binding['id']}", headers=city.auth("lighting"))
    assert r.status_code == 200, r.text
    assert r.json()["revoked"]["tenant"] == "lighting"
    assert r.json()["active"] is False
