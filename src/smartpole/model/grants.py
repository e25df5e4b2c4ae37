"""Consents between tenants that share a pole: gateway bindings and mount grants."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Binding", "MountGrant", "Stamp"]


@dataclass(frozen=True, slots=True)
class Stamp:
    """Who did something and when: the tenant, the API key (None: the command line) and the
    time in milliseconds."""

    tenant_id: int
    tenant: str
    key_id: int | None
    at: int


@dataclass(frozen=True, slots=True)
class Binding:
    """A device's owner lets another tenant's gateway speak for the device (telemetry,
    attributes, claims, command replies), as if the gateway were the owner's."""

    id: int
    gateway_id: int
    gateway: str
    gateway_owner: str
    device_id: int
    device: str
    device_owner: str
    granted: Stamp
    revoked: Stamp | None = None

    @property
    def active(self) -> bool:
        """Whether the binding is still in force."""
        return self.revoked is None


@dataclass(frozen=True, slots=True)
class MountGrant:
    """A tenant holding a pole lets another tenant mount its devices on it."""

    id: int
    pole_id: int
    pole: str
    tenant_id: int
    tenant: str
    granted: Stamp
    revoked: Stamp | None = None

    @property
    def active(self) -> bool:
        """Whether the grant is still in force."""
        return self.revoked is None
