"""REST endpoints of firmware updates (OTA): packages, assignment to devices, progress."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import (
    AssetsDep,
    Caller,
    ConnectionsDep,
    FirmwareDep,
    SeriesDep,
    SettingsDep,
    TenantsDep,
)
from smartpole.api.schemas import Id
from smartpole.errors import PayloadTooLarge
from smartpole.model.types import DeviceKind
from smartpole.registry.access import Tenants
from smartpole.registry.firmware import FW_KEYS, REPORTED_KEYS, Firmware
from smartpole.store import SeriesStore

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["firmware"])
Algorithm = Literal["SHA256", "SHA384", "SHA512", "MD5", "CRC32"]


class FirmwareOut(BaseModel):
    """A firmware package, without its bytes."""

    id: int
    tenant_id: int
    owner: str
    title: str
    version: str
    kind: DeviceKind
    size: int = Field(description="bytes")
    checksum_algorithm: Algorithm
    checksum: str = Field(description="lowercase hex, as in the fw_checksum attribute")
    created: int


class AssignIn(BaseModel):
    """The package to assign to a device."""

    model_config = ConfigDict(extra="forbid")
    firmware_id: Id


class Reported(BaseModel):
    """What the device last reported (telemetry ``current_fw_title``, ``fw_state``, …)."""

    title: str | None = None
    version: str | None = None
    state: str | None = Field(
        None, description="DOWNLOADING, DOWNLOADED, VERIFIED, UPDATING, UPDATED or FAILED"
    )
    error: str | None = None
    ts: int | None = Field(None, description="when fw_state was reported (ms)")


class FirmwareStatus(BaseModel):
    """A device's assigned firmware against the one it reports."""

    device_id: int
    assigned: FirmwareOut | None
    assigned_at: int | None
    reported: Reported
    up_to_date: bool = Field(description="the reported title and version are the assigned ones")


@router.post(
    "/firmware",
    status_code=201,
    summary="Upload a firmware package",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        }
    },
)
async def upload_firmware(
    request: Request,
    firmware: FirmwareDep,
    settings: SettingsDep,
    who: Caller,
    title: Annotated[str, Query(min_length=1, max_length=200, examples=["lamp-fw"])],
    version: Annotated[str, Query(min_length=1, max_length=100, examples=["2.1.0"])],
    kind: DeviceKind,
    checksum_algorithm: Algorithm = "SHA256",
    checksum: Annotated[
        str | None, Query(max_length=128, description="verify the upload against this")
    ] = None,
) -> FirmwareOut:
    """Store a package (operator): the body is the file's bytes.

    The checksum is computed with ``checksum_algorithm``; when ``checksum`` is given the upload
    must match it (422 otherwise). At most ``firmware_max_bytes`` (413).
    """
    limit = settings.firmware_max_bytes
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"firmware exceeds the {limit}-byte limit", limit=limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"firmware exceeds the {limit}-byte limit", limit=limit)
        chunks.append(chunk)
    row = await run_in_threadpool(
        lambda: firmware.upload(
            who,
            title=title,
            version=version,
            kind=kind,
            data=b"".join(chunks),
            algorithm=checksum_algorithm,
            expected=checksum,
        )
    )
    return FirmwareOut(**row)


@router.get("/firmware", summary="List firmware packages")
def list_firmware(
    firmware: FirmwareDep, who: Caller, kind: DeviceKind | None = None
) -> list[FirmwareOut]:
    """The caller's tenant's packages (every tenant's for the city operator), newest first."""
    return [FirmwareOut(**r) for r in firmware.list(who, str(kind) if kind else None)]


@router.get("/firmware/{firmware_id}", summary="Get a firmware package")
def get_firmware(firmware: FirmwareDep, who: Caller, firmware_id: Id) -> FirmwareOut:
    """One package, without its bytes."""
    return FirmwareOut(**firmware.get(who, firmware_id))


@router.get(
    "/firmware/{firmware_id}/data",
    summary="Download a firmware package",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def download_firmware(firmware: FirmwareDep, who: Caller, firmware_id: Id) -> Response:
    """The package's bytes."""
    fw = firmware.get(who, firmware_id)
    return Response(
        firmware.data(who, firmware_id),
        media_type="application/octet-stream",
        headers={"Content-Disposition": _attachment(f"{fw['title']}-{fw['version']}.bin")},
    )


def _attachment(name: str) -> str:
    # A header holds Latin-1 only: a title in any script goes in RFC 6266's UTF-8 filename*,
    # with a printable-ASCII filename for old clients.
    fallback = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.delete("/firmware/{firmware_id}", status_code=204, summary="Delete a firmware package")
def delete_firmware(firmware: FirmwareDep, who: Caller, firmware_id: Id) -> Response:
    """Remove a package that no device is assigned (409 otherwise)."""
    firmware.delete(who, firmware_id)
    return Response(status_code=204)


def _status(
    firmware: Firmware, series: SeriesStore, tenants: Tenants, device_id: int
) -> FirmwareStatus:
    fw = firmware.assigned(device_id)
    latest = series.latest([device_id], list(REPORTED_KEYS)).get(device_id, {})
    values = {k: v for k, (_, v) in latest.items()}
    reported = Reported(
        title=values.get("current_fw_title"),
        version=values.get("current_fw_version"),
        state=values.get("fw_state"),
        error=values.get("fw_error") or None,
        ts=latest["fw_state"][0] if "fw_state" in latest else None,
    )
    assigned = None
    if fw is not None:
        assigned = FirmwareOut(**{**fw, "owner": tenants.get(fw["tenant_id"])["name"]})
    up_to_date = (
        fw is not None
        and reported.title == fw["title"]
        and reported.version == fw["version"]
        and reported.state in (None, "UPDATED")
    )
    return FirmwareStatus(
        device_id=device_id,
        assigned=assigned,
        assigned_at=fw["assigned"] if fw else None,
        reported=reported,
        up_to_date=up_to_date,
    )


@router.post("/devices/{device_id}/firmware", summary="Assign firmware to a device")
async def assign_firmware(
    firmware: FirmwareDep,
    connections: ConnectionsDep,
    series: SeriesDep,
    tenants: TenantsDep,
    who: Caller,
    device_id: Id,
    body: AssignIn,
) -> FirmwareStatus:
    """Assign a package of the device's kind (operator).

    Writes the shared attributes ``fw_title``, ``fw_version``, ``fw_size``, ``fw_checksum`` and
    ``fw_checksum_algorithm`` and pushes them to the device when it is connected.
    """
    shared = await run_in_threadpool(firmware.assign, who, device_id, body.firmware_id)
    await connections.push_shared(device_id, shared)
    return await run_in_threadpool(_status, firmware, series, tenants, device_id)


@router.get("/devices/{device_id}/firmware", summary="Firmware of a device")
def firmware_status(
    assets: AssetsDep,
    firmware: FirmwareDep,
    series: SeriesDep,
    tenants: TenantsDep,
    who: Caller,
    device_id: Id,
) -> FirmwareStatus:
    """The assigned package against the version and state the device reports."""
    assets.get_device(who, device_id)
    return _status(firmware, series, tenants, device_id)


@router.delete(
    "/devices/{device_id}/firmware", status_code=204, summary="Unassign a device's firmware"
)
async def unassign_firmware(
    firmware: FirmwareDep, connections: ConnectionsDep, who: Caller, device_id: Id
) -> Response:
    """Take the package away; the ``fw_*`` shared attributes are deleted (and the device told)."""
    await run_in_threadpool(firmware.unassign, who, device_id)
    await connections.push_shared(device_id, {"deleted": list(FW_KEYS)})
    return Response(status_code=204)
