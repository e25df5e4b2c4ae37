"""REST endpoints of the consents between tenants that share a pole: gateway bindings (a
device's owner lets another tenant's gateway speak for it) and mount grants (a pole's holder
lets another tenant mount devices on it). See :mod:`smartpole.registry.grants`."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from smartpole.api.deps import Caller, ConnectionsDep, GrantsDep
from smartpole.api.schemas import Id
from smartpole.model.grants import Binding, MountGrant

__all__ = ["router"]

router = APIRouter(prefix="/api")


class StampOut(BaseModel):
    """Who granted or revoked, and when."""

    tenant_id: int
    tenant: str
    key_id: int | None = Field(description="the API key used; null: the command line")
    at: int = Field(description="milliseconds since the Unix epoch")


class BindingIn(BaseModel):
    """A gateway to bind a device to."""

    model_config = ConfigDict(extra="forbid")
    gateway: str = Field(
        min_length=1, max_length=200, description="name of a gateway on the device's pole"
    )


class BindingOut(BaseModel):
    """A device's owner lets a gateway of another tenant speak for the device."""

    id: int
    gateway_id: int
    gateway: str
    gateway_owner: str
    device_id: int
    device: str
    device_owner: str
    granted: StampOut
    revoked: StampOut | None
    active: bool


class MountGrantIn(BaseModel):
    """A tenant to let mount devices on a pole."""

    model_config = ConfigDict(extra="forbid")
    tenant: str = Field(min_length=1, max_length=64, description="the tenant's name")


class MountGrantOut(BaseModel):
    """A pole's holder lets another tenant mount devices on the pole."""

    id: int
    pole_id: int
    pole: str
    tenant_id: int
    tenant: str
    granted: StampOut
    revoked: StampOut | None
    active: bool


def _binding(b: Binding) -> BindingOut:
    return BindingOut(**asdict(b), active=b.active)


def _grant(g: MountGrant) -> MountGrantOut:
    return MountGrantOut(**asdict(g), active=g.active)


# -- gateway bindings ---------------------------------------------------------------------
@router.post(
    "/devices/{device_id}/bindings",
    name="binding.create",  # the audit's action, as binding.revoke undoes it
    tags=["sharing"],
    status_code=201,
    summary="Bind a device to another tenant's gateway",
)
def bind(grants: GrantsDep, who: Caller, device_id: Id, body: BindingIn) -> BindingOut:
    """Let a gateway on the device's pole speak for the device (its owner's admin)."""
    return _binding(grants.bind(who, device_id, body.gateway))


@router.get("/bindings", tags=["sharing"], summary="List gateway bindings")
def list_bindings(
    grants: GrantsDep,
    who: Caller,
    device_id: Id | None = None,
    gateway_id: Id | None = None,
    active: bool | None = None,
) -> list[BindingOut]:
    """Bindings of the caller's devices and to the caller's gateways (all for the city)."""
    found = grants.bindings(who, device_id=device_id, gateway_id=gateway_id, active=active)
    return [_binding(b) for b in found]


@router.get("/bindings/{binding_id}", tags=["sharing"], summary="Get a gateway binding")
def get_binding(grants: GrantsDep, who: Caller, binding_id: Id) -> BindingOut:
    """One binding the caller is a side of."""
    return _binding(grants.binding(who, binding_id))


@router.delete("/bindings/{binding_id}", tags=["sharing"], summary="Revoke a gateway binding")
def revoke_binding(
    grants: GrantsDep, connections: ConnectionsDep, who: Caller, binding_id: Id
) -> BindingOut:
    """Stop the gateway speaking for the device (either side's admin); the revoked binding
    is kept, with who revoked it and when."""
    found = grants.unbind(who, binding_id)
    connections.unbound(found.device_id)
    return _binding(found)


# -- mount grants -------------------------------------------------------------------------
@router.post(
    "/poles/{pole_id}/mount-grants",
    name="mount_grant.create",  # the audit's action, as mount_grant.revoke undoes it
    tags=["sharing"],
    status_code=201,
    summary="Let another tenant mount devices on a pole",
)
def grant_mount(grants: GrantsDep, who: Caller, pole_id: Id, body: MountGrantIn) -> MountGrantOut:
    """Let a tenant mount its devices on a pole the caller holds (its admin)."""
    return _grant(grants.grant_mount(who, pole_id, body.tenant))


@router.get("/mount-grants", tags=["sharing"], summary="List mount grants")
def list_mount_grants(
    grants: GrantsDep, who: Caller, pole_id: Id | None = None, active: bool | None = None
) -> list[MountGrantOut]:
    """Mount grants the caller gave or received (all for the city)."""
    return [_grant(g) for g in grants.mount_grants(who, pole_id=pole_id, active=active)]


@router.get("/mount-grants/{grant_id}", tags=["sharing"], summary="Get a mount grant")
def get_mount_grant(grants: GrantsDep, who: Caller, grant_id: Id) -> MountGrantOut:
    """One mount grant the caller gave or received."""
    return _grant(grants.mount_grant(who, grant_id))


@router.delete("/mount-grants/{grant_id}", tags=["sharing"], summary="Revoke a mount grant")
def revoke_mount_grant(grants: GrantsDep, who: Caller, grant_id: Id) -> MountGrantOut:
    """Stop the tenant mounting more devices on the pole (either side's admin); devices
    mounted already stay. The revoked grant is kept, with who revoked it and when."""
    return _grant(grants.revoke_mount(who, grant_id))
