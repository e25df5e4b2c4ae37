"""Value objects of the domain: tenants, poles, devices, readings."""

from __future__ import annotations

import enum
import math
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeAlias

Value: TypeAlias = float | int | bool | str | dict[str, Any] | list[Any]
"""A reading's value: number, boolean, string or a JSON object/array."""

KEY_RE = re.compile(r"^[A-Za-z0-9_.:\-]{1,128}$")
POLE_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")
# Readings outside these bounds are taken to be a unit error (seconds instead of ms).
MIN_TS = 946_684_800_000  # 2000-01-01
MAX_TS = 4_102_444_800_000  # 2100-01-01


class DeviceKind(enum.StrEnum):
    """What a device mounted on a pole is."""

    LAMP = "lamp"
    CAMERA = "camera"
    SMALL_CELL = "small_cell"
    AIR = "air"
    WEATHER = "weather"
    NOISE = "noise"
    DISPLAY = "display"
    SPEAKER = "speaker"
    SOS = "sos"
    CHARGER = "charger"
    WIFI = "wifi"
    TILT = "tilt"
    FLOOD = "flood"
    MANHOLE = "manhole"
    GATEWAY = "gateway"
    METER = "meter"
    GENERIC = "generic"  # created by a gateway for a type smartpole does not know


def kind_of_type(type_name: str | None) -> tuple[DeviceKind, str | None]:
    """``(kind, profile)`` of a device a ThingsBoard gateway names with ``type``: one of
    smartpole's kinds (no profile), or GENERIC keeping the type as the device's profile name
    (the SDK's ``default``, a gateway's ``Thermometer``); no type at all is ``default``, as in
    ThingsBoard."""
    name = type_name or "default"
    try:
        return DeviceKind(name), None
    except ValueError:
        return DeviceKind.GENERIC, name


class Scope(enum.StrEnum):
    """Attribute scopes, as ThingsBoard names them."""

    CLIENT = "client"
    SHARED = "shared"
    SERVER = "server"


class Role(enum.StrEnum):
    """What an API key may do inside its tenant."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"

    def at_least(self, other: Role) -> bool:
        """True when this role includes every right of ``other``."""
        order = [Role.VIEWER, Role.OPERATOR, Role.ADMIN]
        return order.index(self) >= order.index(other)


class Quality(enum.IntEnum):
    """Why a reading was kept apart from good data."""

    GOOD = 0
    WRONG_TYPE = 1
    OUT_OF_RANGE = 2


_GOOD_KEYS: set[str] = set()


@dataclass(frozen=True, slots=True)
class Reading:
    """One (device, key, ts, value); ``ts`` is milliseconds since the Unix epoch."""

    device_id: int
    key: str
    ts: int
    value: Value

    def __post_init__(self) -> None:
        # Every reading built from outside data passes here: good_key remembers keys already
        # checked, and ``type() is`` checks are cheaper than isinstance (and keep bool out of int).
        if not isinstance(self.key, str) or not good_key(self.key):
            raise ValueError(f"invalid telemetry key {self.key!r}")
        ts = self.ts
        if type(ts) is not int:
            raise ValueError(f"timestamp must be integer milliseconds, got {ts!r}")
        if not MIN_TS <= ts < MAX_TS:
            raise ValueError(f"timestamp {ts} is not milliseconds between 2000 and 2100")
        if type(self.value) is float and not math.isfinite(self.value):
            raise ValueError(f"value of {self.key!r} is not a finite number")


def good_key(key: str) -> bool:
    """Whether ``key`` is a valid telemetry key (remembered: devices repeat their keys)."""
    if key in _GOOD_KEYS:
        return True
    if not KEY_RE.match(key):
        return False
    if len(_GOOD_KEYS) < 100_000:
        _GOOD_KEYS.add(key)
    return True


_new = object.__new__
_set_device, _set_key, _set_ts, _set_value = (
    getattr(Reading, name).__set__ for name in ("device_id", "key", "ts", "value")
)


def checked_reading(device_id: int, key: str, ts: int, value: Value) -> Reading:
    """A Reading whose key, timestamp and value the caller has already checked (a payload
    parser): built without ``__post_init__``, at a third of the cost, for the ingest path."""
    reading: Reading = _new(Reading)
    _set_device(reading, device_id)
    _set_key(reading, key)
    _set_ts(reading, ts)
    _set_value(reading, value)
    return reading


@dataclass(frozen=True, slots=True)
class Tenant:
    """A party that owns devices or uses data; ``is_operator`` sees the whole city."""

    id: int
    name: str
    title: str = ""
    is_operator: bool = False


@dataclass(frozen=True, slots=True)
class Pole:
    """A located asset that carries devices."""

    id: int
    code: str
    lat: float
    lon: float
    name: str = ""
    height_m: float | None = None
    district: str = ""
    road: str = ""
    installed: date | None = None


@dataclass(frozen=True, slots=True)
class Device:
    """A thing mounted on a pole, owned by one tenant."""

    id: int
    name: str
    kind: DeviceKind
    owner_id: int
    pole_id: int | None = None
    model: str = ""
    port: int | None = None
    last_seen: int | None = None
    tags: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute of a device in one scope."""

    scope: Scope
    key: str
    value: Any
    updated: int
