"""What the city map shows of a pole: its worst state, as one small number, and a change of it.

A pole's state is seen per tenant: the worst of the active alarms that tenant sees on the pole
or its devices, else offline when one of its devices there is offline, else ok. The city
operator sees every alarm and every device, so one *view* serves every operator tenant.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from smartpole.model.lifecycle import Severity
from smartpole.model.types import DeviceKind

__all__ = ["CITY_VIEW", "KINDS", "MapPoles", "PoleState", "StateChange", "state_of"]

KINDS: tuple[DeviceKind, ...] = tuple(DeviceKind)
"""The device kinds in the order of the map's kind bitmask (bit ``i`` is ``KINDS[i]``)."""

CITY_VIEW = 0
"""The view of the city operator's tenants (every alarm, every device); tenant ids start at 1."""


class PoleState(enum.IntEnum):
    """A pole's state on the map; higher is worse (a cluster shows its poles' maximum)."""

    OK = 0
    OFFLINE = 1
    WARNING = 2
    MINOR = 3
    MAJOR = 4
    CRITICAL = 5


_OF_SEVERITY = {
    Severity.CRITICAL: PoleState.CRITICAL,
    Severity.MAJOR: PoleState.MAJOR,
    Severity.MINOR: PoleState.MINOR,
    Severity.WARNING: PoleState.WARNING,
    Severity.INDETERMINATE: PoleState.WARNING,  # known to be wrong, not how badly
}


def state_of(severity: Severity) -> PoleState:
    """The map state of an active alarm of this severity."""
    return _OF_SEVERITY[Severity(severity)]


@dataclass(frozen=True, slots=True)
class StateChange:
    """The state of a pole changed in one view (a tenant id, or ``CITY_VIEW``)."""

    view: int
    pole_id: int
    state: PoleState


@dataclass(frozen=True, slots=True)
class MapPoles:
    """The poles a caller may see, as columns (row ``i`` of each list is one pole, by id).

    ``lon``/``lat`` are integers of 1e-6 degrees (about 0.1 m); ``district``/``road`` index
    ``districts``/``roads``; ``kinds`` is a bitmask over :data:`KINDS` of the devices the
    caller sees on the pole; ``owners`` indexes ``owner_sets``, each a list of indexes into
    ``owners`` (tenant names) of the devices the caller sees there.
    """

    districts: list[str] = field(default_factory=list)
    roads: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    owner_sets: list[list[int]] = field(default_factory=list)
    id: list[int] = field(default_factory=list)
    code: list[str] = field(default_factory=list)
    lon: list[int] = field(default_factory=list)
    lat: list[int] = field(default_factory=list)
    district: list[int] = field(default_factory=list)
    road: list[int] = field(default_factory=list)
    kinds: list[int] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)
