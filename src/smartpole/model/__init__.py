"""Domain types shared by every layer. No I/O lives here."""

from smartpole.model.catalog import CATALOG, KeySpec, KindSpec, ValueType
from smartpole.model.devices import Device
from smartpole.model.poles import Pole
from smartpole.model.types import (
    Attribute,
    DeviceKind,
    Quality,
    Reading,
    Role,
    Scope,
    Tenant,
    Value,
)

__all__ = [
    "CATALOG",
    "Attribute",
    "Device",
    "DeviceKind",
    "KeySpec",
    "KindSpec",
    "Pole",
    "Quality",
    "Reading",
    "Role",
    "Scope",
    "Tenant",
    "Value",
    "ValueType",
]
