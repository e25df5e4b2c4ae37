"""A device as the registry lists it: what it is, whose, where it is mounted, when it was
heard from. Its access token is a secret the registry keeps only hashed: a device carries the
token's hint, never the token."""

from __future__ import annotations

from dataclasses import dataclass

from smartpole.model.types import DeviceKind

__all__ = ["Device"]


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
