"""A device as the transports know it (:class:`~smartpole.model.types.DeviceRef`), from a row of
``devices``: the columns to select and the value made of them, for every look-up of the
registry (by id, token, name, or a gateway's names)."""

from __future__ import annotations

from typing import Any

from smartpole.model.types import DeviceKind, DeviceRef
from smartpole.store.schema import devices

__all__ = ["REF_COLUMNS", "ref_of"]

REF_COLUMNS = (devices.c.id, devices.c.name, devices.c.kind, devices.c.owner_id, devices.c.pole_id)


def ref_of(row: Any) -> DeviceRef:
    """The device of a row selected with :data:`REF_COLUMNS`."""
    return DeviceRef(row.id, row.name, DeviceKind(row.kind), row.owner_id, row.pole_id)
