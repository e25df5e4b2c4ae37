"""A pole as the registry returns it: a located asset with a code, and the devices mounted on
it that the caller may see."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from smartpole.model.types import DeviceKind

__all__ = ["MountedDevice", "Pole"]


@dataclass(frozen=True, slots=True)
class MountedDevice:
    """A device as its pole lists it."""

    id: int
    name: str
    kind: DeviceKind
    port: int | None  # the gateway power output that powers it


@dataclass(frozen=True, slots=True)
class Pole:
    """A pole; ``created`` is ms since the Unix epoch.

    ``devices`` are the visible devices mounted on it, by id, when the pole was read alone;
    None in listings, which do not read them.
    """

    id: int
    code: str  # district-road-number, unique
    name: str
    lat: float
    lon: float
    height_m: float | None
    district: str
    road: str
    installed: date | None
    created: int
    devices: tuple[MountedDevice, ...] | None = None
