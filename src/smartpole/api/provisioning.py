"""REST endpoints of onboarding: provision profiles, device provisioning over HTTP, device
credentials (access token or MQTT Basic), and claiming."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import (
    AssetsDep,
    Caller,
    ClaimsDep,
    ConnectionsDep,
    CredentialsDep,
    DevicesDep,
    ProvisioningDep,
)
from smartpole.api.registry import device_out
from smartpole.api.schemas import DeviceOut, Id
from smartpole.errors import InvalidInput, PayloadTooLarge
from smartpole.ingest.payload import decode_json
from smartpole.model.types import DeviceKind

__all__ = ["router"]

router = APIRouter(prefix="/api")
log = logging.getLogger(__name__)
PROVISION_BODY_BYTES = 4096


# -- provision profiles -------------------------------------------------------------------
class ProfileIn(BaseModel):
    """A new provision profile."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["lamps of Futian"])
    kind: DeviceKind = Field(description="the kind of every device it provisions")
    create_new: bool = Field(True, description="a device with a new name is created")
    pre_registered: bool = Field(
        False, description="a registered device of the tenant (by name) may fetch credentials once"
    )
    pole: str | None = Field(None, description="code of the pole new devices are mounted on")
    key: str | None = Field(
        None, min_length=8, max_length=128, description="provisionDeviceKey; default random"
    )
    secret: str | None = Field(
        None, min_length=8, max_length=128, description="provisionDeviceSecret; default random"
    )
    owner: str | None = Field(None, description="owner tenant name (city operator only)")


class ProfilePatch(BaseModel):
    """Changes to a provision profile."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    kind: DeviceKind | None = None
    create_new: bool | None = None
    pre_registered: bool | None = None
    pole: str | None = Field(None, description='pole code; "" for none')


class ProfileOut(BaseModel):
    """A provision profile, without its secret."""

    id: int
    tenant_id: int
    owner: str
    name: str
    kind: DeviceKind
    key: str = Field(description="provisionDeviceKey")
    secret_hint: str = Field(
        description="First 6 hex digits of the SHA-256 of provisionDeviceSecret (none of it)."
    )
    create_new: bool
    pre_registered: bool
    pole_id: int | None
    pole: str | None
    created: int


class ProfileCreated(ProfileOut):
    """A new provision profile; ``secret`` is shown this once only."""

    secret: str = Field(description="provisionDeviceSecret")


@router.post(
    "/provision-profiles",
    tags=["provisioning"],
    status_code=201,
    summary="Create a provision profile",
)
def create_profile(provisioning: ProvisioningDep, who: Caller, body: ProfileIn) -> ProfileCreated:
    """Add a profile (admin); the response holds its secret, shown once."""
    row, secret = provisioning.create(who, **body.model_dump())
    return ProfileCreated(**row, secret=secret)


@router.get("/provision-profiles", tags=["provisioning"], summary="List provision profiles")
def list_profiles(provisioning: ProvisioningDep, who: Caller) -> list[ProfileOut]:
    """The caller's tenant's profiles (admin; every tenant's for the city operator)."""
    return [ProfileOut(**r) for r in provisioning.list(who)]


@router.get(
    "/provision-profiles/{profile_id}", tags=["provisioning"], summary="Get a provision profile"
)
def get_profile(provisioning: ProvisioningDep, who: Caller, profile_id: Id) -> ProfileOut:
    """One profile, without its secret."""
    return ProfileOut(**provisioning.get(who, profile_id))


@router.patch(
    "/provision-profiles/{profile_id}",
    tags=["provisioning"],
    summary="Change a provision profile",
)
def update_profile(
    provisioning: ProvisioningDep, who: Caller, profile_id: Id, body: ProfilePatch
) -> ProfileOut:
    """Change a profile's name, kind, what it may do, or its pole."""
    values = body.model_dump(exclude_unset=True)
    return ProfileOut(**provisioning.update(who, profile_id, **values))


@router.delete(
    "/provision-profiles/{profile_id}",
    tags=["provisioning"],
    status_code=204,
    summary="Delete a provision profile",
)
def delete_profile(provisioning: ProvisioningDep, who: Caller, profile_id: Id) -> Response:
    """Remove a profile; devices it provisioned keep their credentials."""
    provisioning.delete(who, profile_id)
    return Response(status_code=204)


# -- provisioning over HTTP (ThingsBoard's device API) ------------------------------------
PROVISION_EXAMPLE = {
    "deviceName": "FT-SN-0001-lamp",
    "provisionDeviceKey": "u7Qk2...",
    "provisionDeviceSecret": "p9Xz4...",
}


@router.post(
    "/v1/provision",
    tags=["device API (HTTP)"],
    summary="Provision a device",
    openapi_extra={
        "requestBody": {"content": {"application/json": {"example": PROVISION_EXAMPLE}}}
    },
)
async def provision(request: Request, devices: DevicesDep) -> dict[str, Any]:
    """ThingsBoard's provision request; always 200, the outcome is the body's ``status``.

    ``SUCCESS`` with ``credentialsType`` and ``credentialsValue``; ``NOT_FOUND`` for an unknown
    key or a wrong secret; ``FAILURE`` otherwise (name taken, not pre-registered, …).
    """
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > PROVISION_BODY_BYTES:
            raise PayloadTooLarge(
                f"a provision request is at most {PROVISION_BODY_BYTES} bytes",
                limit=PROVISION_BODY_BYTES,
            )
    try:
        data = decode_json(body)
    except InvalidInput:
        data = None
    return await devices.provision(data)


# -- credentials --------------------------------------------------------------------------
class CredentialsIn(BaseModel):
    """The credentials a device should use: an access token, or MQTT Basic."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["access_token", "mqtt_basic"]
    token: str | None = Field(
        None, min_length=8, max_length=128, description="access_token: the token; default random"
    )
    client_id: str | None = Field(None, min_length=1, max_length=128)
    username: str | None = Field(None, min_length=1, max_length=128)
    password: str | None = Field(None, min_length=1, max_length=128)


@router.get(
    "/devices/{device_id}/credentials", tags=["devices"], summary="Get the credentials type"
)
def get_credentials(credentials: CredentialsDep, who: Caller, device_id: Id) -> dict[str, Any]:
    """How the device authenticates, without any secret."""
    return credentials.describe(who, device_id)


@router.put("/devices/{device_id}/credentials", tags=["devices"], summary="Set the credentials")
def set_credentials(
    credentials: CredentialsDep,
    who: Caller,
    device_id: Id,
    body: Annotated[
        CredentialsIn,
        Body(
            examples=[
                {"type": "access_token"},
                {"type": "mqtt_basic", "client_id": "lamp-0001", "username": "u", "password": "p"},
            ]
        ),
    ],
) -> dict[str, Any]:
    """Switch a device to an access token (returned, shown once) or MQTT Basic credentials.

    MQTT Basic: a client id alone, a user name (with or without a password), or all three. The
    password is kept hashed. The device's access token stops working.
    """
    if body.type == "access_token":
        if body.client_id or body.username or body.password:
            raise InvalidInput("an access token has no client id, user name or password")
        token = credentials.use_access_token(who, device_id, body.token)
        return {"device_id": device_id, "type": "access_token", "token": token}
    if body.token:
        raise InvalidInput("MQTT Basic credentials have no token")
    return credentials.use_mqtt_basic(who, device_id, body.client_id, body.username, body.password)


# -- claiming -----------------------------------------------------------------------------
class ClaimIn(BaseModel):
    """A claim of a device by name with the secret key the device published."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, examples=["FT-SN-0001-camera"])
    secret_key: str = Field("", max_length=256, examples=["6Hk3qP"])


@router.post("/devices/claim", tags=["devices"], summary="Claim a device")
async def claim_device(
    claims: ClaimsDep,
    credentials: CredentialsDep,
    assets: AssetsDep,
    connections: ConnectionsDep,
    who: Caller,
    body: ClaimIn,
) -> DeviceOut:
    """Become the owner of a device that opened a claim window with this secret key (operator).

    404 when no device of that name awaits a claim with that key (whether the name exists is
    not told); 409 ``claim-expired`` when the window closed. A claim can be used once; the
    device stays on its pole.
    """
    device_id = await run_in_threadpool(claims.claim, who, body.name, body.secret_key)
    credentials.forget(device_id)
    row = await run_in_threadpool(assets.get_device, who, device_id)
    return DeviceOut(**device_out(connections, row))
