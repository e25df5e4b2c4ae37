"""Tenant isolation and roles, through every endpoint of the REST API.

The estate: a shared pole carrying a lighting lamp and a telecom small cell, a pole with a
second lighting lamp only, and an empty pole. Telecom must not see lighting's devices, nor the
poles that carry none of its own; a device it may not see answers exactly as one that does
not exist (404), so its existence is not leaked. The city operator sees everything.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from fixtures_api import City, grant_mount, make_device, make_pole
from smartpole.app import Platform
from smartpole.model.types import Role

T0 = 1_764_000_000_000 - 1_764_000_000_000 % 3_600_000  # an hour boundary
HOUR = 3_600_000
SHARED, LAMP_ONLY, EMPTY = "FT-SHARED-0001", "FT-LAMP-0002", "FT-EMPTY-0003"
NEW_POLE = {"code": "FT-NEW-0009", "lat": 22.55, "lon": 114.06}
AROUND = {
    "type": "Polygon",
    "coordinates": [[[114.0, 22.5], [114.1, 22.5], [114.1, 22.6], [114.0, 22.6], [114.0, 22.5]]],
}


@dataclass
class Estate:
    """Ids of the poles and devices, and the lamp's access token."""

    poles: dict[str, int]
    lamp: int
    lamp2: int
    cell: int
    lamp_token: str
    lighting_key: int

    def fill(self, template: str, city: City) -> str:
        """A path template with ``{lamp}``, ``{cell}``, ``{shared}``, tenant ids and so on."""
        return template.format(
            lamp=self.lamp,
            cell=self.cell,
            shared=self.poles[SHARED],
            empty=self.poles[EMPTY],
            lighting_key=self.lighting_key,
            **city.ids,
        )


@pytest.fixture
async def estate(client: httpx.AsyncClient, city: City, platform: Platform) -> Estate:
    """Three poles, three devices with a reading each, and a shared attribute on the lamp."""
    poles = {
        SHARED: await make_pole(client, city, SHARED, lat=22.540, lon=114.050),
        LAMP_ONLY: await make_pole(client, city, LAMP_ONLY, lat=22.541, lon=114.051),
        EMPTY: await make_pole(client, city, EMPTY, lat=22.542, lon=114.052),
    }
    lamp = await make_device(client, city, "lighting", "lamp", poles[SHARED], port=1)
    await grant_mount(client, city, poles[SHARED], "lighting", "telecom")
    cell = await make_device(client, city, "telecom", "small_cell", poles[SHARED], port=2)
    lamp2 = await make_device(client, city, "lighting", "lamp", poles[LAMP_ONLY])
    for i, dev in enumerate((lamp, cell, lamp2)):
        r = await client.post(
            f"/api/v1/{dev['token']}/telemetry", json={"ts": T0, "values": {"power": 10 + i}}
        )
        assert r.status_code == 200, r.text
    r = await client.post(
        f"/api/devices/{lamp['id']}/attributes/shared",
        json={"profile": "night"},
        headers=city.auth("lighting"),
    )
    assert r.status_code == 200, r.text
    return Estate(
        poles=poles,
        lamp=lamp["id"],
        lamp2=lamp2["id"],
        cell=cell["id"],
        lamp_token=lamp["token"],
        lighting_key=platform.tenants.list_keys(city.ids["lighting"])[0]["id"],
    )


def assert_problem(r: httpx.Response, status: int) -> dict[str, Any]:
    """The response is a problem+json document of ``status``."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = dict(r.json())
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


async def call(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: Any,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """One request; a ``str`` body is sent as is, anything else as JSON."""
    if isinstance(body, str):
        return await client.request(method, path, content=body, headers=headers)
    return await client.request(method, path, json=body, headers=headers)


# -- a device of another tenant is not there --------------------------------------------------
DEVICE_ENDPOINTS = [
    pytest.param("GET", "/api/devices/{id}", None, id="get"),
    pytest.param("PATCH", "/api/devices/{id}", {"name": "taken-over"}, id="patch"),
    pytest.param("DELETE", "/api/devices/{id}", None, id="delete"),
    pytest.param("GET", "/api/devices/{id}/latest", None, id="latest"),
    pytest.param("GET", "/api/devices/{id}/timeseries?keys=power", None, id="timeseries"),
    pytest.param("GET", "/api/devices/{id}/quarantine", None, id="quarantine"),
    pytest.param("GET", "/api/devices/{id}/attributes", None, id="attributes-get"),
    pytest.param(
        "POST", "/api/devices/{id}/attributes/shared", {"profile": "off"}, id="attributes-set"
    ),
    pytest.param(
        "DELETE", "/api/devices/{id}/attributes/shared?keys=profile", None, id="attributes-delete"
    ),
    pytest.param("POST", "/api/devices/{id}/credentials", None, id="credentials"),
]


@pytest.mark.parametrize(("method", "path", "body"), DEVICE_ENDPOINTS)
async def test_other_tenants_device_is_404_like_a_missing_one(
    client: httpx.AsyncClient, city: City, estate: Estate, method: str, path: str, body: Any
) -> None:
    auth = city.auth("telecom")
    foreign = await call(client, method, path.format(id=estate.lamp), body, auth)
    missing = await call(client, method, path.format(id=999_999), body, auth)
    got, absent = assert_problem(foreign, 404), assert_problem(missing, 404)
    assert str(estate.lamp) in got["detail"]
    assert got["detail"].replace(str(estate.lamp), "N") == absent["detail"].replace("999999", "N")
    assert set(got) == set(absent)


@pytest.mark.parametrize(("method", "path", "body"), DEVICE_ENDPOINTS)
@pytest.mark.parametrize(
    ("tenant", "device"),
    [pytest.param("telecom", "cell", id="owner"), pytest.param("city", "lamp", id="city")],
)
async def test_owner_and_city_reach_the_device_on_every_endpoint(
    client: httpx.AsyncClient,
    city: City,
    estate: Estate,
    tenant: str,
    device: str,
    method: str,
    path: str,
    body: Any,
) -> None:
    r = await call(client, method, path.format(id=getattr(estate, device)), body, city.auth(tenant))
    assert r.is_success, r.text


async def test_refused_writes_leave_the_device_untouched(
    client: httpx.AsyncClient, city: City, estate: Estate
) -> None:
    for param in DEVICE_ENDPOINTS:
        method, path, body = param.values
        await call(client, method, path.format(id=estate.lamp), body, city.auth("telecom"))
    auth = city.auth("lighting")
    lamp = (await client.get(f"/api/devices/{estate.lamp}", headers=auth)).json()
    assert lamp["name"] == f"lamp-{estate.lamp}"
    attrs = (await client.get(f"/api/devices/{estate.lamp}/attributes", headers=auth)).json()
    assert attrs["shared"]["profile"]["value"] == "night"
    r = await client.post(f"/api/v1/{estate.lamp_token}/telemetry", json={"power": 1})
    assert r.status_code == 200  # the token was not rotated


# -- listings show each tenant its own --------------------------------------------------------
def _page_ids(body: Any) -> set[Any]:
    return {d["id"] for d in body["items"]}


def _latest_ids(body: Any) -> set[Any]:
    return {int(k) for k in body}


def _series_ids(body: Any) -> set[Any]:
    return {int(k) for k in body["series"]}


def _page_codes(body: Any) -> set[Any]:
    return {p["code"] for p in body["items"]}


def _list_codes(body: Any) -> set[Any]:
    return {p["code"] for p in body}


def _geojson_codes(body: Any) -> set[Any]:
    return {f["properties"]["code"] for f in body["features"]}


LISTINGS = [
    pytest.param("GET", "/api/devices", None, _page_ids, id="devices"),
    pytest.param("GET", "/api/telemetry/latest", None, _latest_ids, id="telemetry-latest"),
    pytest.param(
        "GET",
        f"/api/telemetry/aggregate?keys=power&agg=count&group=device&start={T0}&end={T0 + HOUR}",
        None,
        _series_ids,
        id="telemetry-aggregate",
    ),
    pytest.param("GET", "/api/poles", None, _page_codes, id="poles"),
    pytest.param(
        "GET", "/api/poles/near?lat=22.541&lon=114.051&radius=5000", None, _list_codes, id="near"
    ),
    pytest.param("GET", "/api/poles/bbox?bbox=114.0,22.5,114.1,22.6", None, _list_codes, id="bbox"),
    pytest.param("POST", "/api/poles/within", AROUND, _list_codes, id="within"),
    pytest.param("GET", "/api/poles/export?format=geojson", None, _geojson_codes, id="export"),
]


def _expected(estate: Estate, tenant: str, extract: Callable[[Any], set[Any]]) -> set[Any]:
    devices = {
        "telecom": {estate.cell},
        "lighting": {estate.lamp, estate.lamp2},
        "city": {estate.lamp, estate.lamp2, estate.cell},
    }
    poles = {
        "telecom": {SHARED},
        "lighting": {SHARED, LAMP_ONLY},
        "city": {SHARED, LAMP_ONLY, EMPTY},
    }
    return devices[tenant] if extract in (_page_ids, _latest_ids, _series_ids) else poles[tenant]


@pytest.mark.parametrize(("method", "path", "body", "extract"), LISTINGS)
@pytest.mark.parametrize("tenant", ["telecom", "lighting", "city"])
async def test_listing_shows_own_devices_and_their_poles(
    client: httpx.AsyncClient,
    city: City,
    estate: Estate,
    tenant: str,
    method: str,
    path: str,
    body: Any,
    extract: Callable[[Any], set[Any]],
) -> None:
    r = await call(client, method, path, body, city.auth(tenant, Role.VIEWER))
    assert r.status_code == 200, r.text
    assert extract(r.json()) == _expected(estate, tenant, extract)


async def test_paged_totals_count_only_visible_rows(
    client: httpx.AsyncClient, city: City, estate: Estate
) -> None:
    auth = city.auth("telecom")
    assert (await client.get("/api/devices", headers=auth)).json()["total"] == 1
    assert (await client.get("/api/poles", headers=auth)).json()["total"] == 1


async def test_fleet_aggregate_counts_only_visible_devices(
    client: httpx.AsyncClient, city: City, estate: Estate
) -> None:
    params = {"keys": "power", "agg": "sum", "start": T0, "end": T0 + HOUR}
    r = await client.get("/api/telemetry/aggregate", params=params, headers=city.auth("telecom"))
    assert r.json() == {"devices": 1, "series": {"power": [{"ts": T0, "value": 11}]}}


async def test_csv_export_lists_only_visible_poles(
    client: httpx.AsyncClient, city: City, estate: Estate
) -> None:
    r = await client.get("/api/poles/export?format=csv", headers=city.auth("telecom"))
    assert [row["code"] for row in csv.DictReader(io.StringIO(r.text))] == [SHARED]


async def test_geojson_export_lists_only_visible_device_kinds(
    client: httpx.AsyncClient, city: City, estate: Estate
) -> None:
    r = await client.get("/api/poles/export", headers=city.auth("telecom"))
    [feature] = r.json()["features"]
    assert feature["properties"]["devices"] == ["small_cell"]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("owner=lighting", id="owner"),
        pytest.param("kind=lamp", id="kind"),
        pytest.param("district=Futian&kind=lamp", id="district"),
    ],
)
@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/api/devices", id="devices"),
        pytest.param("/api/telemetry/latest", id="latest"),
    ],
)
async def test_filters_cannot_reach_other_tenants_devices(
    client: httpx.AsyncClient, city: City, estate: Estate, path: str, query: str
) -> None:
    r = await client.get(f"{path}?{query}", headers=city.auth("telecom"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["items"] if "items" in body else body) in ([], {})


async def test_pole_filter_shows_only_own_device_on_shared_pole(
    client: httpx.AsyncClient, city: City, estate: Estate
) -> None:
    r = await client.get(
        "/api/devices", params={"pole_id": estate.poles[SHARED]}, headers=city.auth("telecom")
    )
    assert _page_ids(r.json()) == {estate.cell}


@pytest.mark.parametrize(
    ("tenant", "kinds"),
    [
        pytest.param("telecom", ["small_cell"], id="telecom"),
        pytest.param("lighting", ["lamp"], id="lighting"),
        pytest.param("city", ["lamp", "small_cell"], id="city"),
    ],
)
@pytest.mark.parametrize("by", ["id", "code"])
async def test_shared_pole_lists_only_the_callers_devices(
    client: httpx.AsyncClient, city: City, estate: Estate, tenant: str, kinds: list[str], by: str
) -> None:
    path = f"/api/poles/{estate.poles[SHARED]}" if by == "id" else f"/api/poles/by-code/{SHARED}"
    r = await client.get(path, headers=city.auth(tenant, Role.VIEWER))
    assert r.status_code == 200, r.text
    assert sorted(d["kind"] for d in r.json()["devices"]) == kinds


@pytest.mark.parametrize("code", [LAMP_ONLY, EMPTY])
async def test_pole_without_own_devices_is_404(
    client: httpx.AsyncClient, city: City, estate: Estate, code: str
) -> None:
    auth = city.auth("telecom")
    assert_problem(await client.get(f"/api/poles/{estate.poles[code]}", headers=auth), 404)
    assert_problem(await client.get(f"/api/poles/by-code/{code}", headers=auth), 404)


async def test_tenant_mounts_device_on_pole_it_cannot_see_yet(
    client: httpx.AsyncClient, city: City, estate: Estate
) -> None:
    r = await client.post(
        "/api/devices", json={"kind": "small_cell", "pole": EMPTY}, headers=city.auth("telecom")
    )
    assert r.status_code == 201, r.text
    assert r.json()["pole_id"] == estate.poles[EMPTY]
    pole = await client.get(f"/api/poles/by-code/{EMPTY}", headers=city.auth("telecom"))
    assert [d["id"] for d in pole.json()["devices"]] == [r.json()["id"]]


async def test_tenant_list_shows_only_itself(
    client: httpx.AsyncClient, city: City, estate: Estate
) -> None:
    r = await client.get("/api/tenants", headers=city.auth("telecom", Role.VIEWER))
    assert [t["name"] for t in r.json()] == ["telecom"]
    r = await client.get("/api/tenants", headers=city.auth("city", Role.VIEWER))
    assert [t["name"] for t in r.json()] == ["city", "lighting", "telecom"]


# -- roles ------------------------------------------------------------------------------------
def case(spec: str, body: Any = None, *, id: str) -> Any:
    """A row of a role table: ``"tenant role METHOD path"`` and the body."""
    tenant, role, method, path = spec.split()
    return pytest.param(tenant, Role(role), method, path, body, id=id)


KEY = {"role": "viewer"}
FORBIDDEN = [
    case("lighting viewer POST /api/devices", {"kind": "lamp"}, id="viewer-adds-device"),
    case("lighting viewer PATCH /api/devices/{lamp}", {"model": "x"}, id="viewer-patches"),
    case("lighting viewer DELETE /api/devices/{lamp}", id="viewer-deletes"),
    case("lighting viewer POST /api/devices/{lamp}/attributes/shared", {"a": 1}, id="viewer-attrs"),
    case(
        "lighting viewer DELETE /api/devices/{lamp}/attributes/shared?keys=profile",
        id="viewer-deletes-attrs",
    ),
    case("lighting viewer POST /api/devices/{lamp}/credentials", id="viewer-rotates-token"),
    case("city viewer POST /api/poles", NEW_POLE, id="city-viewer-adds-pole"),
    case("city operator DELETE /api/poles/{empty}", id="city-operator-deletes-pole"),
    case("city operator POST /api/tenants", {"name": "x"}, id="city-operator-adds-tenant"),
    case("lighting operator POST /api/tenants/{lighting}/apikeys", KEY, id="operator-adds-key"),
    case("lighting operator GET /api/tenants/{lighting}/apikeys", id="operator-lists-keys"),
    case("telecom admin POST /api/poles", NEW_POLE, id="tenant-adds-pole"),
    case("telecom admin PATCH /api/poles/{shared}", {"name": "x"}, id="tenant-patches-pole"),
    case("telecom admin DELETE /api/poles/{shared}", id="tenant-deletes-pole"),
    case("telecom admin POST /api/poles/import", "code,lat,lon\nX-1,1,1\n", id="tenant-imports"),
    case(
        "telecom admin POST /api/devices",
        {"kind": "small_cell", "owner": "lighting"},
        id="device-for-another-tenant",
    ),
    case("telecom admin PATCH /api/devices/{cell}", {"owner": "lighting"}, id="device-given-away"),
    case("telecom admin POST /api/tenants/{lighting}/apikeys", KEY, id="key-for-another-tenant"),
    case("telecom admin GET /api/tenants/{lighting}/apikeys", id="another-tenants-keys"),
    case(
        "telecom admin DELETE /api/tenants/{lighting}/apikeys/{lighting_key}",
        id="revokes-another-tenants-key",
    ),
    case("telecom admin GET /api/tenants/{lighting}", id="reads-another-tenant"),
    case("telecom admin PATCH /api/tenants/{lighting}", {"title": "x"}, id="patches-another"),
    case("telecom admin POST /api/tenants", {"name": "rogue"}, id="tenant-adds-tenant"),
    case("telecom admin DELETE /api/tenants/{telecom}", id="tenant-deletes-itself"),
    case("telecom admin PUT /api/telemetry/retention/power", {"days": 1}, id="sets-retention"),
]


@pytest.mark.parametrize(("tenant", "role", "method", "path", "body"), FORBIDDEN)
async def test_forbidden_is_403(
    client: httpx.AsyncClient,
    city: City,
    estate: Estate,
    tenant: str,
    role: Role,
    method: str,
    path: str,
    body: Any,
) -> None:
    r = await call(client, method, estate.fill(path, city), body, city.auth(tenant, role))
    assert_problem(r, 403)


ALLOWED = [
    case("lighting viewer GET /api/devices/{lamp}", id="viewer-reads-device"),
    case("lighting viewer GET /api/devices/{lamp}/attributes", id="viewer-reads-attrs"),
    case("lighting operator POST /api/devices", {"kind": "lamp"}, id="operator-adds-device"),
    case("lighting operator PATCH /api/devices/{lamp}", {"model": "x"}, id="operator-patches"),
    case(
        "lighting operator POST /api/devices/{lamp}/attributes/server",
        {"a": 1},
        id="operator-sets-attrs",
    ),
    case("lighting operator POST /api/devices/{lamp}/credentials", id="operator-rotates"),
    case("lighting operator DELETE /api/devices/{lamp}", id="operator-deletes"),
    case("lighting admin POST /api/tenants/{lighting}/apikeys", KEY, id="admin-adds-key"),
    case("lighting admin GET /api/tenants/{lighting}/apikeys", id="admin-lists-keys"),
    case("city operator POST /api/poles", NEW_POLE, id="city-operator-adds-pole"),
    case("city admin POST /api/tenants/{telecom}/apikeys", KEY, id="city-adds-any-key"),
    case("city admin GET /api/tenants/{lighting}/apikeys", id="city-lists-any-keys"),
]


@pytest.mark.parametrize(("tenant", "role", "method", "path", "body"), ALLOWED)
async def test_role_allows(
    client: httpx.AsyncClient,
    city: City,
    estate: Estate,
    tenant: str,
    role: Role,
    method: str,
    path: str,
    body: Any,
) -> None:
    r = await call(client, method, estate.fill(path, city), body, city.auth(tenant, role))
    assert r.is_success, r.text


async def test_refused_pole_delete_leaves_the_pole(
    client: httpx.AsyncClient, city: City, estate: Estate
) -> None:
    pole = estate.poles[SHARED]
    assert_problem(await client.delete(f"/api/poles/{pole}", headers=city.auth("telecom")), 403)
    r = await client.get(f"/api/poles/{pole}", headers=city.auth("city"))
    assert len(r.json()["devices"]) == 2


# -- authentication ---------------------------------------------------------------------------
PROTECTED = [
    pytest.param("GET", "/api/me", None, id="me"),
    pytest.param("GET", "/api/devices", None, id="devices"),
    pytest.param("GET", "/api/poles", None, id="poles"),
    pytest.param("POST", "/api/poles", NEW_POLE, id="create-pole"),
    pytest.param("GET", "/api/telemetry/latest", None, id="telemetry"),
    pytest.param("GET", "/api/tenants", None, id="tenants"),
]


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED)
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-key"),
        pytest.param({"Authorization": "Bearer sp_wrong_key"}, id="wrong-bearer"),
        pytest.param({"X-API-Key": "sp_wrong_key"}, id="wrong-x-api-key"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="not-bearer"),
    ],
)
async def test_without_a_valid_key_is_401(
    client: httpx.AsyncClient,
    city: City,
    headers: dict[str, str],
    method: str,
    path: str,
    body: Any,
) -> None:
    r = await call(client, method, path, body, headers)
    assert_problem(r, 401)
    assert r.headers["www-authenticate"] == "Bearer"


async def test_revoked_key_is_401(client: httpx.AsyncClient, city: City) -> None:
    tid = city.ids["telecom"]
    r = await client.post(
        f"/api/tenants/{tid}/apikeys", json={"role": "viewer"}, headers=city.auth("telecom")
    )
    key = r.json()
    assert (await client.get("/api/me", headers={"X-API-Key": key["key"]})).status_code == 200
    r = await client.delete(f"/api/tenants/{tid}/apikeys/{key['id']}", headers=city.auth("telecom"))
    assert r.status_code == 204
    assert_problem(await client.get("/api/me", headers={"X-API-Key": key["key"]}), 401)


@pytest.mark.parametrize("scheme", ["Authorization", "X-API-Key"])
async def test_key_works_in_either_header(
    client: httpx.AsyncClient, city: City, scheme: str
) -> None:
    secret = city.keys[("telecom", Role.OPERATOR)]
    headers = {scheme: f"Bearer {secret}" if scheme == "Authorization" else secret}
    r = await client.get("/api/me", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "tenant_id": city.ids["telecom"],
        "tenant": "telecom",
        "role": "operator",
        "is_operator": False,
    }
