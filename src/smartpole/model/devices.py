"""A device as the registry lists it: what it is, whose, where it is mounted, when it was
heard from. Its access token is a secret the registry keeps only hashed: a device carries the
token's hint, never the token."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from smartpole.model.types import DeviceKind

__all__ = ["Device", "fields_of"]


@dataclass(frozen=True, slots=True)
class Device:
    """A registered device; times are ms since the Unix epoch."""

    id: int
    name: str
    kind: DeviceKind
    model: str
    profile: str | None  # the ThingsBoard device type a gateway created it with, if it did
    owner_id: int
    owner: str  # the owner tenant's name
    pole_id: int | None
    pole: str | None  # the code of the pole it is mounted on
    port: int | None  # the gateway power output that powers it
    token_hint: str  # the first hex digits of the access token's SHA-256
    last_seen: int | None
    created: int


_NAMES = tuple(f.name for f in fields(Device))


def fields_of(device: Device) -> dict[str, Any]:
    """A device's fields by name, in order, for an answer to build on (shallow: a thousand
    devices a page, and ``dataclasses.asdict`` deep-copies each value)."""
    return {name: getattr(device, name) for name in _NAMES}
