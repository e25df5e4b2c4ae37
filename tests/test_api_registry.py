"""CRUD of the registry through the REST API: tenants, keys, poles, devices, attributes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from fixtures_api import City, grant_mount, make_device, make_pole
from smartpole.api import create_app
from smartpole.app import Platform
from smartpole.model.types import Role
from smartpole.registry.access import token_hint

POLE = {
    "code": "FT-SN-0001",
    "name": "Shennan 1",
    "lat": 22.5431,
    "lon": 114.0579,
    "height_m": 12.5,
    "district": "Futian",
    "road": "Shennan Blvd",
    "installed": "2024-03-01",
}


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """The response is a problem+json document of ``status``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = dict(r.json())
    assert body["status"] == status
    return body


# -- tenants ----------------------------------------------------------------------------------
async def test_city_admin_creates_tenant(client: httpx.AsyncClient, city: City) -> None:
    r = await client.post(
        "/api/tenants", json={"name": "water", "title": "Water board"}, headers=city.auth("city")
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["name"], body["title"], body["is_operator"]) == ("water", "Water board", False)
    got = await client.get(f"/api/tenants/{body['id']}", headers=city.auth("city"))
    assert got.json() == body


async def test_duplicate_tenant_name_is_409(client: httpx.AsyncClient, city: City) -> None:
    r = await client.post("/api/tenants", json={"name": "telecom"}, headers=city.auth("city"))
    assert_problem(r, 409)


async def test_tenant_name_must_be_a_slug(client: httpx.AsyncClient, city: City) -> None:
    r = await client.post("/api/tenants", json={"name": "Tele Com"}, headers=city.auth("city"))
    assert assert_problem(r, 422)["errors"][0]["loc"] == ["body", "name"]


async def test_city_lists_every_tenant(client: httpx.AsyncClient, city: City) -> None:
    r = await client.get("/api/tenants", headers=city.auth("city", Role.VIEWER))
    assert {t["name"]: t["id"] for t in r.json()} == city.ids


async def test_tenant_admin_retitles_own_tenant(client: httpx.AsyncClient, city: City) -> None:
    tid = city.ids["telecom"]
    r = await client.patch(
        f"/api/tenants/{tid}", json={"title": "China Mobile"}, headers=city.auth("telecom")
    )
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["title"]) == ("telecom", "China Mobile")


async def test_empty_tenant_patch_changes_nothing(client: httpx.AsyncClient, city: City) -> None:
    tid = city.ids["telecom"]
    before = (await client.get(f"/api/tenants/{tid}", headers=city.auth("city"))).json()
    r = await client.patch(f"/api/tenants/{tid}", json={}, headers=city.auth("city"))
    assert r.status_code == 200, r.text
    assert r.json() == before


async def test_renaming_tenant_to_taken_name_is_409(client: httpx.AsyncClient, city: City) -> None:
    r = await client.patch(
        f"/api/tenants/{city.ids['telecom']}", json={"name": "lighting"}, headers=city.auth("city")
    )
    assert_problem(r, 409)


async def test_tenant_owning_devices_cannot_be_deleted(
    client: httpx.AsyncClient, city: City
) -> None:
    dev = await make_device(client, city, "telecom", "small_cell")
    path = f"/api/tenants/{city.ids['telecom']}"
    assert assert_problem(await client.delete(path, headers=city.auth("city")), 409)["owned"] == 1
    await client.delete(f"/api/devices/{dev['id']}", headers=city.auth("telecom"))
    assert (await client.delete(path, headers=city.auth("city"))).status_code == 204
    assert_problem(await client.get(path, headers=city.auth("city")), 404)


async def test_deleted_tenants_keys_stop_working(client: httpx.AsyncClient, city: City) -> None:
    r = await client.delete(f"/api/tenants/{city.ids['telecom']}", headers=city.auth("city"))
    assert r.status_code == 204
    assert_problem(await client.get("/api/me", headers=city.auth("telecom")), 401)


async def test_deleting_unknown_tenant_is_404(client: httpx.AsyncClient, city: City) -> None:
    assert_problem(await client.delete("/api/tenants/9999", headers=city.auth("city")), 404)


# -- API keys ---------------------------------------------------------------------------------
async def new_key(client: httpx.AsyncClient, city: City, role: str = "viewer") -> dict[str, Any]:
    r = await client.post(
        f"/api/tenants/{city.ids['telecom']}/apikeys",
        json={"role": role, "name": "dashboard"},
        headers=city.auth("telecom"),
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_created_key_carries_its_secret(client: httpx.AsyncClient, city: City) -> None:
    key = await new_key(client, city, "operator")
    assert (key["role"], key["name"], key["revoked"]) == ("operator", "dashboard", None)
    assert key["key"].startswith(f"sp_{key['prefix']}_")
    me = await client.get("/api/me", headers={"Authorization": f"Bearer {key['key']}"})
    assert (me.json()["tenant"], me.json()["role"]) == ("telecom", "operator")


async def test_key_list_never_shows_secrets(client: httpx.AsyncClient, city: City) -> None:
    key = await new_key(client, city)
    r = await client.get(
        f"/api/tenants/{city.ids['telecom']}/apikeys", headers=city.auth("telecom")
    )
    assert r.status_code == 200, r.text
    listed = {k["id"]: k for k in r.json()}
    assert listed[key["id"]] == {k: v for k, v in key.items() if k != "key"}
    assert len(listed) == len(Role) + 1
    assert all("key" not in k for k in listed.values())
    assert key["key"] not in r.text
    assert city.keys[("telecom", Role.ADMIN)] not in r.text


async def test_revoked_key_is_listed_as_revoked(client: httpx.AsyncClient, city: City) -> None:
    key = await new_key(client, city)
    base = f"/api/tenants/{city.ids['telecom']}/apikeys"
    r = await client.delete(f"{base}/{key['id']}", headers=city.auth("telecom"))
    assert r.status_code == 204
    listed = {k["id"]: k for k in (await client.get(base, headers=city.auth("telecom"))).json()}
    assert listed[key["id"]]["revoked"] is not None
    assert_problem(await client.get("/api/me", headers={"X-API-Key": key["key"]}), 401)


async def test_key_cannot_be_revoked_through_another_tenant(
    client: httpx.AsyncClient, city: City
) -> None:
    key = await new_key(client, city)
    r = await client.delete(
        f"/api/tenants/{city.ids['lighting']}/apikeys/{key['id']}", headers=city.auth("lighting")
    )
    assert_problem(r, 404)
    assert (await client.get("/api/me", headers={"X-API-Key": key["key"]})).status_code == 200


async def test_unknown_role_is_422(client: httpx.AsyncClient, city: City) -> None:
    r = await client.post(
        f"/api/tenants/{city.ids['telecom']}/apikeys",
        json={"role": "root"},
        headers=city.auth("telecom"),
    )
    assert_problem(r, 422)


# -- poles ------------------------------------------------------------------------------------
async def create_pole(client: httpx.AsyncClient, city: City, **extra: Any) -> dict[str, Any]:
    r = await client.post("/api/poles", json={**POLE, **extra}, headers=city.auth("city"))
    assert r.status_code == 201, r.text
    return dict(r.json())


async def test_create_pole_returns_every_field(client: httpx.AsyncClient, city: City) -> None:
    pole = await create_pole(client, city)
    assert {k: pole[k] for k in POLE} == POLE
    assert pole["devices"] == []
    assert isinstance(pole["id"], int)


async def test_duplicate_pole_code_is_409(client: httpx.AsyncClient, city: City) -> None:
    await create_pole(client, city)
    r = await client.post("/api/poles", json=POLE, headers=city.auth("city"))
    assert assert_problem(r, 409)["code"] == POLE["code"]


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        pytest.param({"lat": 91}, "lat", id="lat-91"),
        pytest.param({"lon": -180.5}, "lon", id="lon"),
        pytest.param({"height_m": 0}, "height_m", id="height-0"),
        pytest.param({"installed": "2024-13-01"}, "installed", id="date"),
        pytest.param({"code": "bad code!"}, "code", id="code"),
    ],
)
async def test_invalid_pole_is_422_with_errors(
    client: httpx.AsyncClient, city: City, change: dict[str, Any], loc: str
) -> None:
    r = await client.post("/api/poles", json={**POLE, **change}, headers=city.auth("city"))
    body = assert_problem(r, 422)
    assert loc in [e["loc"][-1] for e in body["errors"]]


async def test_pole_by_id_and_by_code_agree(client: httpx.AsyncClient, city: City) -> None:
    pole = await create_pole(client, city)
    await make_device(client, city, "lighting", "lamp", pole["id"], port=1)
    by_id = await client.get(f"/api/poles/{pole['id']}", headers=city.auth("city"))
    by_code = await client.get(f"/api/poles/by-code/{POLE['code']}", headers=city.auth("city"))
    assert by_id.status_code == by_code.status_code == 200
    assert by_id.json() == by_code.json()
    assert [d["kind"] for d in by_id.json()["devices"]] == ["lamp"]


@pytest.mark.parametrize("path", ["/api/poles/9999", "/api/poles/by-code/NOPE-1"])
async def test_unknown_pole_is_404(client: httpx.AsyncClient, city: City, path: str) -> None:
    assert_problem(await client.get(path, headers=city.auth("city")), 404)


async def test_patch_pole_changes_only_given_fields(client: httpx.AsyncClient, city: City) -> None:
    pole = await create_pole(client, city)
    r = await client.patch(
        f"/api/poles/{pole['id']}",
        json={"name": "renamed", "height_m": None},
        headers=city.auth("city", Role.OPERATOR),
    )
    assert r.status_code == 200, r.text
    assert r.json() == {**pole, "name": "renamed", "height_m": None}
    again = await client.get(f"/api/poles/{pole['id']}", headers=city.auth("city"))
    assert again.json() == r.json()


async def test_empty_pole_patch_changes_nothing(client: httpx.AsyncClient, city: City) -> None:
    pole = await create_pole(client, city)
    r = await client.patch(f"/api/poles/{pole['id']}", json={}, headers=city.auth("city"))
    assert r.status_code == 200, r.text
    assert r.json() == pole


@pytest.mark.parametrize(
    ("change", "status"),
    [
        pytest.param({"lat": None}, 422, id="lat-null"),
        pytest.param({"code": None}, 422, id="code-null"),
        pytest.param({"lat": 91}, 422, id="lat-91"),
        pytest.param({"code": "FT-SN-0002"}, 409, id="code-taken"),
    ],
)
async def test_bad_pole_patch_is_refused(
    client: httpx.AsyncClient, city: City, change: dict[str, Any], status: int
) -> None:
    pole = await create_pole(client, city)
    await create_pole(client, city, code="FT-SN-0002")
    r = await client.patch(f"/api/poles/{pole['id']}", json=change, headers=city.auth("city"))
    assert_problem(r, status)
    assert (await client.get(f"/api/poles/{pole['id']}", headers=city.auth("city"))).json() == pole


async def test_deleting_pole_leaves_its_devices_unmounted(
    client: httpx.AsyncClient, city: City
) -> None:
    pole = await create_pole(client, city)
    dev = await make_device(client, city, "lighting", "lamp", pole["id"], port=3)
    r = await client.delete(f"/api/poles/{pole['id']}", headers=city.auth("city"))
    assert r.status_code == 204
    assert_problem(await client.get(f"/api/poles/{pole['id']}", headers=city.auth("city")), 404)
    got = (await client.get(f"/api/devices/{dev['id']}", headers=city.auth("lighting"))).json()
    assert (got["pole_id"], got["pole"], got["port"]) == (None, None, 3)


async def test_deleting_unknown_pole_is_404(client: httpx.AsyncClient, city: City) -> None:
    assert_problem(await client.delete("/api/poles/9999", headers=city.auth("city")), 404)


# -- devices ----------------------------------------------------------------------------------
@pytest.mark.parametrize("ref", ["pole", "pole_id"])
async def test_device_is_mounted_by_pole_code_or_id(
    client: httpx.AsyncClient, city: City, ref: str
) -> None:
    pole_id = await make_pole(client, city, "FT-SN-0001")
    body = {"kind": "camera", ref: "FT-SN-0001" if ref == "pole" else pole_id, "port": 4}
    r = await client.post("/api/devices", json=body, headers=city.auth("lighting"))
    assert r.status_code == 201, r.text
    dev = r.json()
    assert (dev["pole_id"], dev["pole"], dev["port"]) == (pole_id, "FT-SN-0001", 4)
    assert (dev["owner"], dev["owner_id"]) == ("lighting", city.ids["lighting"])
    assert dev["token_hint"] == token_hint(dev["token"])
    assert dev["online"] is False


async def test_device_name_defaults_to_kind_and_id(client: httpx.AsyncClient, city: City) -> None:
    dev = await make_device(client, city, "lighting", "air")
    assert dev["name"] == f"air-{dev['id']}"


async def test_city_registers_device_for_a_tenant(client: httpx.AsyncClient, city: City) -> None:
    dev = await make_device(client, city, "city", "lamp", owner="lighting")
    assert dev["owner"] == "lighting"
    r = await client.get(f"/api/devices/{dev['id']}", headers=city.auth("lighting"))
    assert r.status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"kind": "lamp", "owner": "nobody"}, id="owner"),
        pytest.param({"kind": "toaster"}, id="kind"),
        pytest.param({"kind": "lamp", "port": 256}, id="port"),
        pytest.param({"kind": "lamp", "token": "short"}, id="token"),
    ],
)
async def test_device_with_bad_reference_is_422(
    client: httpx.AsyncClient, city: City, body: dict[str, Any]
) -> None:
    r = await client.post("/api/devices", json=body, headers=city.auth("city"))
    assert_problem(r, 422)
    assert (await client.get("/api/devices", headers=city.auth("city"))).json()["total"] == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"kind": "lamp", "pole": "NOPE-1"}, id="pole-code"),
        pytest.param({"kind": "lamp", "pole_id": 9999}, id="pole-id"),
    ],
)
async def test_device_on_an_unknown_pole_is_404(
    client: httpx.AsyncClient, city: City, body: dict[str, Any]
) -> None:
    r = await client.post("/api/devices", json=body, headers=city.auth("city"))
    assert_problem(r, 404)
    assert (await client.get("/api/devices", headers=city.auth("city"))).json()["total"] == 0


async def test_same_pole_and_port_is_409(client: httpx.AsyncClient, city: City) -> None:
    pole = await make_pole(client, city, "FT-SN-0001")
    await make_device(client, city, "lighting", "lamp", pole, port=1)
    await grant_mount(client, city, pole, "lighting", "telecom")
    r = await client.post(
        "/api/devices",
        json={"kind": "small_cell", "pole_id": pole, "port": 1},
        headers=city.auth("telecom"),
    )
    problem = assert_problem(r, 409)
    assert (problem["field"], problem["detail"]) == ("port", "port 1 of that pole is already taken")


async def test_same_port_on_other_pole_or_no_port_is_fine(
    client: httpx.AsyncClient, city: City
) -> None:
    a = await make_pole(client, city, "FT-SN-0001")
    b = await make_pole(client, city, "FT-SN-0002")
    await make_device(client, city, "lighting", "lamp", a, port=1)
    await make_device(client, city, "lighting", "lamp", b, port=1)
    await make_device(client, city, "lighting", "air", a)
    await make_device(client, city, "lighting", "noise", a)


async def test_duplicate_device_name_is_409(client: httpx.AsyncClient, city: City) -> None:
    await make_device(client, city, "lighting", "lamp", name="lamp-x")
    r = await client.post(
        "/api/devices", json={"kind": "lamp", "name": "lamp-x"}, headers=city.auth("telecom")
    )
    problem = assert_problem(r, 409)
    assert problem["field"] == "name"
    assert problem["detail"] == "device name 'lamp-x' is already taken"


@pytest.fixture
async def fleet(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    """Devices of two tenants on poles of two districts, and one unmounted."""
    futian = await make_pole(client, city, "FT-SN-0001", district="Futian")
    nanshan = await make_pole(client, city, "NS-KJ-0001", district="Nanshan")
    ids = {"ft-lamp": (await make_device(client, city, "lighting", "lamp", futian))["id"]}
    await grant_mount(client, city, futian, "lighting", "telecom")  # a shared pole
    ids["ft-cell"] = (await make_device(client, city, "telecom", "small_cell", futian))["id"]
    ids["ns-lamp"] = (await make_device(client, city, "lighting", "lamp", nanshan))["id"]
    ids["ns-air"] = (await make_device(client, city, "city", "air", nanshan))["id"]
    ids["loose"] = (await make_device(client, city, "lighting", "lamp"))["id"]
    return {"ids": ids, "futian": futian, "nanshan": nanshan}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param({"kind": "lamp"}, {"ft-lamp", "ns-lamp", "loose"}, id="kind"),
        pytest.param({"owner": "lighting"}, {"ft-lamp", "ns-lamp", "loose"}, id="owner"),
        pytest.param({"owner": "telecom"}, {"ft-cell"}, id="owner-telecom"),
        pytest.param({"district": "Nanshan"}, {"ns-lamp", "ns-air"}, id="district"),
        pytest.param({"pole_id": "futian"}, {"ft-lamp", "ft-cell"}, id="pole_id"),
        pytest.param({"kind": "lamp", "district": "Futian"}, {"ft-lamp"}, id="kind+district"),
        pytest.param({"kind": "wifi"}, set(), id="nothing"),
    ],
)
async def test_device_filters(
    client: httpx.AsyncClient,
    city: City,
    fleet: dict[str, Any],
    query: dict[str, Any],
    expected: set[str],
) -> None:
    params = {k: fleet[v] if k == "pole_id" else v for k, v in query.items()}
    r = await client.get("/api/devices", params=params, headers=city.auth("city", Role.VIEWER))
    assert r.status_code == 200, r.text
    names = {v: k for k, v in fleet["ids"].items()}
    assert {names[d["id"]] for d in r.json()["items"]} == expected
    assert r.json()["total"] == len(expected)


async def test_device_pages_are_stable_and_complete(
    client: httpx.AsyncClient, city: City, fleet: dict[str, Any]
) -> None:
    auth = city.auth("city")
    everything = (await client.get("/api/devices", headers=auth)).json()
    seen: list[int] = []
    for offset in (0, 2, 4, 6):
        r = await client.get("/api/devices", params={"limit": 2, "offset": offset}, headers=auth)
        page = r.json()
        assert (page["total"], page["limit"], page["offset"]) == (5, 2, offset)
        seen += [d["id"] for d in page["items"]]
    assert seen == [d["id"] for d in everything["items"]] == sorted(fleet["ids"].values())


@pytest.mark.parametrize("query", ["limit=0", "limit=10001", "offset=-1"])
async def test_bad_page_is_422(client: httpx.AsyncClient, city: City, query: str) -> None:
    assert_problem(await client.get(f"/api/devices?{query}", headers=city.auth("city")), 422)


async def test_pole_pages_are_ordered_by_code(client: httpx.AsyncClient, city: City) -> None:
    for code in ("C-3", "A-1", "B-2"):
        await make_pole(client, city, code)
    r = await client.get("/api/poles", params={"limit": 2, "offset": 1}, headers=city.auth("city"))
    body = r.json()
    assert [p["code"] for p in body["items"]] == ["B-2", "C-3"]
    assert body["total"] == 3


async def test_patch_device_moves_and_unmounts(
    client: httpx.AsyncClient, city: City, fleet: dict[str, Any]
) -> None:
    dev, auth = fleet["ids"]["ft-lamp"], city.auth("lighting", Role.OPERATOR)
    r = await client.patch(
        f"/api/devices/{dev}", json={"pole_id": fleet["nanshan"], "port": 7}, headers=auth
    )
    assert (r.json()["pole"], r.json()["port"]) == ("NS-KJ-0001", 7)
    r = await client.patch(f"/api/devices/{dev}", json={"pole_id": None}, headers=auth)
    assert (r.json()["pole_id"], r.json()["pole"]) == (None, None)


@pytest.mark.parametrize(
    ("change", "status"),
    [
        pytest.param({"pole_id": 9999}, 404, id="unknown-pole"),
        pytest.param({"name": None}, 422, id="name-null"),
        pytest.param({"owner": None}, 422, id="owner-null"),
        pytest.param({"owner": "nobody"}, 422, id="unknown-owner"),
    ],
)
async def test_bad_device_patch_is_refused(
    client: httpx.AsyncClient,
    city: City,
    fleet: dict[str, Any],
    change: dict[str, Any],
    status: int,
) -> None:
    dev = fleet["ids"]["ft-lamp"]
    before = (await client.get(f"/api/devices/{dev}", headers=city.auth("city"))).json()
    r = await client.patch(f"/api/devices/{dev}", json=change, headers=city.auth("city"))
    assert_problem(r, status)
    assert (await client.get(f"/api/devices/{dev}", headers=city.auth("city"))).json() == before


async def test_deleted_device_is_gone_with_its_attributes(
    client: httpx.AsyncClient, city: City, fleet: dict[str, Any]
) -> None:
    dev, auth = fleet["ids"]["loose"], city.auth("lighting")
    await client.post(f"/api/devices/{dev}/attributes/server", json={"a": 1}, headers=auth)
    assert (await client.delete(f"/api/devices/{dev}", headers=auth)).status_code == 204
    assert_problem(await client.get(f"/api/devices/{dev}", headers=auth), 404)
    assert_problem(await client.get(f"/api/devices/{dev}/attributes", headers=auth), 404)


# -- attributes -------------------------------------------------------------------------------
@pytest.fixture
async def lamp(client: httpx.AsyncClient, city: City) -> dict[str, Any]:
    """A lighting lamp with a shared, a server and a client attribute set."""
    dev = await make_device(client, city, "lighting", "lamp")
    auth = city.auth("lighting", Role.OPERATOR)
    base = f"/api/devices/{dev['id']}/attributes"
    r = await client.post(f"{base}/shared", json={"dim": 80, "profile": "night"}, headers=auth)
    assert r.status_code == 200, r.text
    r = await client.post(f"{base}/server", json={"asset_tag": "L-17"}, headers=auth)
    assert r.status_code == 200, r.text
    r = await client.post(f"/api/v1/{dev['token']}/attributes", json={"firmware": "2.1"})
    assert r.status_code == 200, r.text
    return dev


def values(body: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Attributes without their update times."""
    return {scope: {k: v["value"] for k, v in attrs.items()} for scope, attrs in body.items()}


async def test_set_attributes_returns_the_scope(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    r = await client.post(
        f"/api/devices/{lamp['id']}/attributes/shared",
        json={"dim": 40, "schedule": {"on": "18:00"}},
        headers=city.auth("lighting", Role.OPERATOR),
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert values(body) == {"shared": {"dim": 40, "profile": "night", "schedule": {"on": "18:00"}}}
    assert all(isinstance(v["updated"], int) for v in body["shared"].values())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param(
            "",
            {
                "shared": {"dim": 80, "profile": "night"},
                "server": {"asset_tag": "L-17"},
                "client": {"firmware": "2.1"},
            },
            id="all",
        ),
        pytest.param("?scope=shared", {"shared": {"dim": 80, "profile": "night"}}, id="shared"),
        pytest.param(
            "?scope=server&scope=client",
            {"server": {"asset_tag": "L-17"}, "client": {"firmware": "2.1"}},
            id="two-scopes",
        ),
        pytest.param(
            "?keys=dim,firmware", {"shared": {"dim": 80}, "client": {"firmware": "2.1"}}, id="keys"
        ),
        pytest.param("?scope=shared&keys=profile", {"shared": {"profile": "night"}}, id="both"),
        pytest.param("?keys=missing", {}, id="none"),
    ],
)
async def test_get_attributes_by_scope_and_keys(
    client: httpx.AsyncClient,
    city: City,
    lamp: dict[str, Any],
    query: str,
    expected: dict[str, Any],
) -> None:
    r = await client.get(
        f"/api/devices/{lamp['id']}/attributes{query}", headers=city.auth("lighting", Role.VIEWER)
    )
    assert r.status_code == 200, r.text
    assert values(r.json()) == expected


async def test_delete_attributes_of_one_scope(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    auth = city.auth("lighting", Role.OPERATOR)
    base = f"/api/devices/{lamp['id']}/attributes"
    r = await client.delete(f"{base}/shared", params={"keys": "dim,asset_tag,nope"}, headers=auth)
    assert r.json() == {"deleted": 1}
    assert values((await client.get(base, headers=auth)).json()) == {
        "shared": {"profile": "night"},
        "server": {"asset_tag": "L-17"},
        "client": {"firmware": "2.1"},
    }


async def test_client_scope_cannot_be_set_by_the_api(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    r = await client.post(
        f"/api/devices/{lamp['id']}/attributes/client", json={"x": 1}, headers=city.auth("city")
    )
    assert_problem(r, 422)


async def test_bad_attribute_key_is_422(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    r = await client.post(
        f"/api/devices/{lamp['id']}/attributes/shared",
        json={"bad\tkey": 1, "ok": 2},
        headers=city.auth("lighting"),
    )
    assert assert_problem(r, 422)["errors"] == [
        {
            "loc": ["body", "'bad\\tkey'"],
            "msg": "key 'bad\\tkey' holds the control character U+0009 at character 4",
        }
    ]
    r = await client.get(f"/api/devices/{lamp['id']}/attributes", headers=city.auth("lighting"))
    assert "ok" not in r.json()["shared"]


# -- credentials ------------------------------------------------------------------------------
async def test_rotate_to_chosen_token(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    chosen = "lamp-17-secret-token"
    r = await client.post(
        f"/api/devices/{lamp['id']}/credentials",
        json={"token": chosen},
        headers=city.auth("lighting", Role.OPERATOR),
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"device_id": lamp["id"], "token": chosen}
    assert (await client.post(f"/api/v1/{chosen}/telemetry", json={"a": 1})).status_code == 200
    old = await client.post(f"/api/v1/{lamp['token']}/telemetry", json={"a": 1})
    assert old.status_code == 401
    dev = await client.get(f"/api/devices/{lamp['id']}", headers=city.auth("lighting"))
    assert dev.json()["token_hint"] == token_hint(chosen)


async def test_rotate_without_body_gives_random_token(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    r = await client.post(f"/api/devices/{lamp['id']}/credentials", headers=city.auth("lighting"))
    token = r.json()["token"]
    assert token != lamp["token"]
    assert len(token) >= 16


async def test_rotate_to_taken_token_is_409(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    other = await make_device(client, city, "lighting", "air")
    r = await client.post(
        f"/api/devices/{other['id']}/credentials",
        json={"token": lamp["token"]},
        headers=city.auth("lighting"),
    )
    assert assert_problem(r, 409)["field"] == "token"


async def test_rotate_to_short_token_is_422(
    client: httpx.AsyncClient, city: City, lamp: dict[str, Any]
) -> None:
    r = await client.post(
        f"/api/devices/{lamp['id']}/credentials", json={"token": "abc"}, headers=city.auth("city")
    )
    assert_problem(r, 422)


# -- service ----------------------------------------------------------------------------------
async def test_me_describes_the_key(client: httpx.AsyncClient, city: City) -> None:
    r = await client.get("/api/me", headers=city.auth("city", Role.VIEWER))
    assert r.json() == {
        "tenant_id": city.ids["city"],
        "tenant": "city",
        "role": "viewer",
        "is_operator": True,
    }


async def test_healthz_needs_no_key(client: httpx.AsyncClient, platform: Platform) -> None:
    r = await client.get("/healthz")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["engine"] == platform.db.dialect
    assert body["revision"] == platform.db.head()
    assert set(body["pipeline"]) == {"pending", "committed", "batches"}
    assert body["hub"] == {"queued": 0}
    assert body["anomaly"] == {
        "enabled": platform.settings.anomaly_enabled,
        "queued": 0,
        "dropped": 0,
        "raised": 0,
    }


def api_routes(routes: list[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, also inside included routers (nested as such by newer FastAPI)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
            continue
        inner = getattr(route, "original_router", route)
        yield from api_routes(getattr(inner, "routes", []))


async def test_openapi_documents_every_api_route(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    spec = (await client.get("/openapi.json")).json()
    app = create_app(platform.api_services())
    routes = {
        (route.path.replace(":path}", "}"), method.lower())  # OpenAPI drops the convertor
        for route in api_routes(app.routes)
        if route.path.startswith("/api")
        for method in route.methods
    }
    assert {("/api/devices", "get"), ("/api/v1/{token}/telemetry", "post")} <= routes
    documented = {
        (path, method)
        for path, operations in spec["paths"].items()
        if path.startswith("/api")
        for method in operations
    }
    assert routes == documented
    missing = [
        f"{method.upper()} {path}"
        for path, method in documented
        if not spec["paths"][path][method].get("summary")
    ]
    assert missing == []
