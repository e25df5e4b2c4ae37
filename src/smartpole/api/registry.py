"""REST endpoints of the registry: tenants, API keys, poles, devices, credentials, attributes."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import NOT_A_CHANGE, AssetsDep, Caller, ConnectionsDep, TenantsDep
from smartpole.api.keys import KeyList, OneKey, asked_keys
from smartpole.api.schemas import (
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    Credentials,
    DeviceCreated,
    DeviceIn,
    DeviceOut,
    DevicePatch,
    Id,
    Limit,
    Offset,
    Page,
    PoleIn,
    PoleOut,
    PolePatch,
    TenantIn,
    TenantOut,
    TenantPatch,
    TokenIn,
)
from smartpole.api.services import Connections
from smartpole.errors import Forbidden, InvalidInput
from smartpole.model.devices import Device, fields_of
from smartpole.model.poles import Pole
from smartpole.model.types import Role, Scope
from smartpole.registry.access import Principal
from smartpole.registry.assets import PoleFilter
from smartpole.registry.geo import Geo
from smartpole.registry.inventory import export_poles, import_poles

router = APIRouter(prefix="/api")


def _own_tenant(who: Principal, tenant_id: int, role: Role) -> None:
    if who.is_operator:
        who.require(role)
    elif tenant_id != who.tenant_id:
        raise Forbidden("a tenant may manage only itself")
    else:
        who.require(role)


# -- tenants ------------------------------------------------------------------------------
@router.get("/me", tags=["tenants"], summary="Who the API key belongs to")
def me(who: Caller) -> dict[str, Any]:
    """The tenant and role of the calling API key."""
    return {
        "tenant_id": who.tenant_id,
        "tenant": who.tenant,
        "role": who.role,
        "is_operator": who.is_operator,
    }


@router.get("/tenants", tags=["tenants"], summary="List tenants")
def list_tenants(tenants: TenantsDep, who: Caller) -> list[TenantOut]:
    """Every tenant for the city operator; one's own tenant for others."""
    return [TenantOut(**t) for t in tenants.list(who)]


@router.post("/tenants", tags=["tenants"], status_code=201, summary="Create a tenant")
def create_tenant(tenants: TenantsDep, who: Caller, body: TenantIn) -> TenantOut:
    """Add a tenant (city operator admin)."""
    who.require_city(Role.ADMIN)
    return TenantOut(**tenants.create(body.name, body.title, body.is_operator, body.timezone))


@router.get("/tenants/{tenant_id}", tags=["tenants"], summary="Get a tenant")
def get_tenant(tenants: TenantsDep, who: Caller, tenant_id: Id) -> TenantOut:
    """One tenant: the caller's own, or any for the city operator."""
    _own_tenant(who, tenant_id, Role.VIEWER)
    return TenantOut(**tenants.get(tenant_id))


@router.patch("/tenants/{tenant_id}", tags=["tenants"], summary="Change a tenant")
def update_tenant(tenants: TenantsDep, who: Caller, tenant_id: Id, body: TenantPatch) -> TenantOut:
    """Rename or retitle a tenant, or set its time zone (its admin, or the city operator
    admin)."""
    _own_tenant(who, tenant_id, Role.ADMIN)
    return TenantOut(**tenants.update(tenant_id, **body.model_dump(exclude_none=True)))


@router.delete("/tenants/{tenant_id}", tags=["tenants"], status_code=204, summary="Delete")
def delete_tenant(tenants: TenantsDep, who: Caller, tenant_id: Id) -> Response:
    """Remove a tenant that owns no devices (city operator admin)."""
    who.require_city(Role.ADMIN)
    tenants.delete(tenant_id)
    return Response(status_code=204)


@router.get("/tenants/{tenant_id}/apikeys", tags=["tenants"], summary="List API keys")
def list_keys(tenants: TenantsDep, who: Caller, tenant_id: Id) -> list[ApiKeyOut]:
    """A tenant's API keys, without secrets (its admin, or the city operator admin)."""
    _own_tenant(who, tenant_id, Role.ADMIN)
    return [ApiKeyOut(**k) for k in tenants.list_keys(tenant_id)]


@router.post(
    "/tenants/{tenant_id}/apikeys", tags=["tenants"], status_code=201, summary="Create an API key"
)
def create_key(tenants: TenantsDep, who: Caller, tenant_id: Id, body: ApiKeyIn) -> ApiKeyCreated:
    """Issue an API key; the secret is in the response and never again."""
    _own_tenant(who, tenant_id, Role.ADMIN)
    row, secret = tenants.create_key(tenant_id, body.role, body.name)
    return ApiKeyCreated(**row, key=secret)


@router.delete(
    "/tenants/{tenant_id}/apikeys/{key_id}",
    tags=["tenants"],
    status_code=204,
    summary="Revoke an API key",
)
def revoke_key(tenants: TenantsDep, who: Caller, tenant_id: Id, key_id: Id) -> Response:
    """Stop an API key from working."""
    _own_tenant(who, tenant_id, Role.ADMIN)
    tenants.revoke_key(tenant_id, key_id)
    return Response(status_code=204)


# -- poles --------------------------------------------------------------------------------
def _filter(district: str | None, road: str | None, code_prefix: str | None) -> PoleFilter:
    return PoleFilter(district=district, road=road, code_prefix=code_prefix)


def pole_out(pole: Pole, distance_m: float | None = None) -> PoleOut:
    """The answer for a pole (and its distance, for a search near a point)."""
    out = PoleOut.model_validate(pole, from_attributes=True)
    out.distance_m = distance_m
    return out


@router.get("/poles", tags=["poles"], summary="List poles")
def list_poles(
    assets: AssetsDep,
    who: Caller,
    district: str | None = None,
    road: str | None = None,
    code_prefix: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[PoleOut]:
    """Poles the caller may see (the city sees all; others the poles carrying their devices)."""
    rows, total = assets.list_poles(who, _filter(district, road, code_prefix), limit, offset)
    return Page(items=[pole_out(r) for r in rows], total=total, limit=limit, offset=offset)


@router.post("/poles", tags=["poles"], status_code=201, summary="Create a pole")
def create_pole(assets: AssetsDep, who: Caller, body: PoleIn) -> PoleOut:
    """Add a pole (city operator)."""
    return pole_out(assets.create_pole(who, **body.model_dump()))


@router.get("/poles/near", tags=["geo"], summary="Poles near a point")
def poles_near(
    assets: AssetsDep,
    who: Caller,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=180)],
    radius: Annotated[float, Query(gt=0, le=50_000, description="metres")] = 500,
    district: str | None = None,
    road: str | None = None,
    limit: Limit = 1000,
) -> list[PoleOut]:
    """Visible poles within ``radius`` metres, nearest first, with ``distance_m``."""
    rows = Geo(assets).near(who, lat, lon, radius, _filter(district, road, None), limit)
    return [pole_out(r, distance_m) for r, distance_m in rows]


@router.get("/poles/bbox", tags=["geo"], summary="Poles in a bounding box")
def poles_bbox(
    assets: AssetsDep,
    who: Caller,
    bbox: Annotated[
        str,
        Query(
            description="min_lon,min_lat,max_lon,max_lat", examples=["114.04,22.53,114.07,22.55"]
        ),
    ],
    district: str | None = None,
    road: str | None = None,
    limit: Limit = 10_000,
) -> list[PoleOut]:
    """Visible poles inside a lon/lat bounding box."""
    try:
        a, b, c, d = (float(x) for x in bbox.split(","))
    except ValueError as err:
        raise InvalidInput("bbox must be four numbers: min_lon,min_lat,max_lon,max_lat") from err
    rows = Geo(assets).bbox(who, a, b, c, d, _filter(district, road, None), limit)
    return [pole_out(r) for r in rows]


@router.post(
    "/poles/within",
    tags=["geo"],
    summary="Poles within a polygon",
    dependencies=[NOT_A_CHANGE],
)
def poles_within(
    assets: AssetsDep,
    who: Caller,
    geometry: Annotated[dict[str, Any], Body(description="GeoJSON Polygon or MultiPolygon")],
    district: str | None = None,
    road: str | None = None,
    limit: Limit = 10_000,
) -> list[PoleOut]:
    """Visible poles inside a GeoJSON polygon."""
    rows = Geo(assets).within(who, geometry, _filter(district, road, None), limit)
    return [pole_out(r) for r in rows]


@router.get(
    "/poles/export",
    tags=["poles"],
    summary="Export the inventory",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}, "application/geo+json": {}}}},
)
def poles_export(
    assets: AssetsDep,
    who: Caller,
    format: Literal["csv", "geojson"] = "geojson",
    district: str | None = None,
    road: str | None = None,
) -> Response:
    """The visible poles as CSV or GeoJSON (re-importable as is)."""
    text = export_poles(assets, who, format, _filter(district, road, None))
    media = "text/csv; charset=utf-8" if format == "csv" else "application/geo+json"
    return Response(text, media_type=media)


@router.post("/poles/import", name="pole.import", tags=["poles"], summary="Import an inventory")
async def poles_import(
    request: Request,
    assets: AssetsDep,
    who: Caller,
    format: Literal["csv", "geojson"] = "csv",
    skip_invalid: bool = False,
) -> dict[str, Any]:
    """Idempotent bulk upsert by pole code: all rows in one transaction, or none.

    The body is the CSV or GeoJSON file. Rejected rows are reported with their line numbers;
    unless ``skip_invalid``, one rejected row means nothing is applied (``applied: false``).
    """
    body = await request.body()
    report = await run_in_threadpool(
        import_poles, assets, who, body, format, skip_invalid=skip_invalid
    )
    return asdict(report)


@router.get("/poles/by-code/{code}", tags=["poles"], summary="Get a pole by code")
def pole_by_code(assets: AssetsDep, who: Caller, code: str) -> PoleOut:
    """One visible pole by its code, with its visible devices."""
    return pole_out(assets.pole_by_code(who, code))


@router.get("/poles/{pole_id}", tags=["poles"], summary="Get a pole")
def get_pole(assets: AssetsDep, who: Caller, pole_id: Id) -> PoleOut:
    """One visible pole with its visible devices."""
    return pole_out(assets.get_pole(who, pole_id))


@router.patch("/poles/{pole_id}", tags=["poles"], summary="Change a pole")
def update_pole(assets: AssetsDep, who: Caller, pole_id: Id, body: PolePatch) -> PoleOut:
    """Change a pole's fields (city operator)."""
    return pole_out(assets.update_pole(who, pole_id, **body.model_dump(exclude_unset=True)))


@router.delete("/poles/{pole_id}", tags=["poles"], status_code=204, summary="Delete a pole")
def delete_pole(assets: AssetsDep, who: Caller, pole_id: Id) -> Response:
    """Remove a pole (city operator admin); its devices stay registered, unmounted."""
    assets.delete_pole(who, pole_id, force=True)
    return Response(status_code=204)


# -- devices ------------------------------------------------------------------------------
def device_out(connections: Connections, device: Device) -> dict[str, Any]:
    """A device's fields with its computed online state."""
    return {**fields_of(device), "online": connections.is_online(device.id, device.last_seen)}


@router.get("/devices", tags=["devices"], summary="List devices")
def list_devices(
    assets: AssetsDep,
    connections: ConnectionsDep,
    who: Caller,
    kind: str | None = None,
    owner: str | None = None,
    pole_id: Id | None = None,
    district: str | None = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> Page[DeviceOut]:
    """Devices the caller may see, filtered by kind, owner, pole or district."""
    rows, total = assets.list_devices(
        who, limit, offset, kind=kind, owner=owner, pole_id=pole_id, district=district
    )
    return Page(
        items=[DeviceOut(**device_out(connections, r)) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.post("/devices", tags=["devices"], status_code=201, summary="Register a device")
def create_device(
    assets: AssetsDep, connections: ConnectionsDep, who: Caller, body: DeviceIn
) -> DeviceCreated:
    """Register a device on a pole; the response holds its access token, shown once."""
    pole_id = body.pole_id
    if body.pole is not None:
        pole_id = assets.mount_pole(who, body.pole)
    row, token = assets.create_device(
        who,
        body.kind,
        name=body.name,
        pole_id=pole_id,
        owner=body.owner,
        model=body.model,
        port=body.port,
        token=body.token,
    )
    return DeviceCreated(**device_out(connections, row), token=token)


@router.get("/devices/{device_id}", tags=["devices"], summary="Get a device")
def get_device(
    assets: AssetsDep, connections: ConnectionsDep, who: Caller, device_id: Id
) -> DeviceOut:
    """One visible device."""
    return DeviceOut(**device_out(connections, assets.get_device(who, device_id)))


@router.patch("/devices/{device_id}", tags=["devices"], summary="Change a device")
def update_device(
    assets: AssetsDep, connections: ConnectionsDep, who: Caller, device_id: Id, body: DevicePatch
) -> DeviceOut:
    """Change a visible device's name, model, pole, port or owner; an admin gives a generic
    device (created by a gateway for a type smartpole does not know) its real ``kind``."""
    row = assets.update_device(who, device_id, **body.model_dump(exclude_unset=True))
    return DeviceOut(**device_out(connections, row))


@router.delete("/devices/{device_id}", tags=["devices"], status_code=204, summary="Delete")
def delete_device(assets: AssetsDep, who: Caller, device_id: Id) -> Response:
    """Remove a visible device and its attributes."""
    assets.delete_device(who, device_id)
    return Response(status_code=204)


@router.post(
    "/devices/{device_id}/credentials", tags=["devices"], summary="Rotate the access token"
)
def rotate_credentials(
    assets: AssetsDep, who: Caller, device_id: Id, body: TokenIn | None = None
) -> Credentials:
    """Give the device a new access token (random, or the one given); the old one stops."""
    token = assets.rotate_token(who, device_id, body.token if body else None)
    return Credentials(device_id=device_id, token=token)


@router.get("/devices/{device_id}/attributes", tags=["attributes"], summary="Get attributes")
def get_attributes(
    assets: AssetsDep,
    who: Caller,
    device_id: Id,
    scope: Annotated[list[Scope] | None, Query()] = None,
    keys: KeyList = None,
    key: OneKey = None,
) -> dict[str, dict[str, Any]]:
    """Attributes by scope: ``{"shared": {"key": {"value": v, "updated": ms}}}``."""
    asked = asked_keys(keys, key) or None
    assets.get_device(who, device_id)
    return assets.get_attributes(device_id, scope, asked)


@router.post(
    "/devices/{device_id}/attributes/{scope}",
    tags=["attributes"],
    summary="Set shared or server attributes",
)
async def set_attributes(
    assets: AssetsDep,
    connections: ConnectionsDep,
    who: Caller,
    device_id: Id,
    scope: Literal["shared", "server"],
    values: Annotated[dict[str, Any], Body(examples=[{"dim_schedule": "night", "limit": 80}])],
) -> dict[str, dict[str, Any]]:
    """Upsert shared (pushed to the device when connected) or server (platform-only) attributes."""
    who.require(Role.OPERATOR)
    await run_in_threadpool(assets.get_device, who, device_id)
    await run_in_threadpool(assets.set_attributes, device_id, Scope(scope), values)
    if scope == "shared" and values:
        await connections.push_shared(device_id, values)
    return await run_in_threadpool(assets.get_attributes, device_id, [Scope(scope)])


@router.delete(
    "/devices/{device_id}/attributes/{scope}", tags=["attributes"], summary="Delete attributes"
)
def delete_attributes(
    assets: AssetsDep,
    who: Caller,
    device_id: Id,
    scope: Literal["shared", "server", "client"],
    keys: KeyList = None,
    key: OneKey = None,
) -> dict[str, int]:
    """Remove attributes of one scope."""
    who.require(Role.OPERATOR)
    asked = asked_keys(keys, key, required=True)
    assets.get_device(who, device_id)
    return {"deleted": assets.delete_attributes(device_id, Scope(scope), asked)}
