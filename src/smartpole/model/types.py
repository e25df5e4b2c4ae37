"""Value objects of the domain: tenants, poles, devices, readings."""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeAlias

Value: TypeAlias = float | int | bool | str | dict[str, Any] | list[Any]
"""A reading's value: number, boolean, string or a JSON object/array."""

MAX_KEY_LENGTH = 255
"""The longest telemetry or attribute key, in characters (as ThingsBoard's key columns)."""
# Control characters (Unicode category Cc: C0, DEL, C1) and lone surrogates (no UTF-8 form).
_REFUSED_IN_KEY = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_LABEL_CHARS = 40
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
            raise ValueError(f"telemetry key {key_label(self.key)} {key_problem(self.key)}")
        ts = self.ts
        if type(ts) is not int:
            raise ValueError(f"timestamp must be integer milliseconds, got {ts!r}")
        if not MIN_TS <= ts < MAX_TS:
            raise ValueError(f"timestamp {ts} is not milliseconds between 2000 and 2100")
        if type(self.value) is float and not math.isfinite(self.value):
            raise ValueError(f"value of {key_label(self.key)} is not a finite number")


def key_problem(key: object) -> str | None:
    """Why ``key`` cannot name a telemetry key or an attribute, or None when it can.

    A key is any string ThingsBoard takes: 1 to :data:`MAX_KEY_LENGTH` characters of UTF-8
    (spaces, punctuation, any script: ``room temp``, ``温度``, ``MQTT Broker Connector``), not
    blank, without control characters. The answer completes "key <label> ..." in messages.
    """
    if not isinstance(key, str):
        return "is not a string"
    if not key:
        return "is empty"
    if len(key) > MAX_KEY_LENGTH:
        return f"is longer than {MAX_KEY_LENGTH} characters"
    found = _REFUSED_IN_KEY.search(key)
    if found is not None:
        char, at = ord(found.group()), found.start()
        if 0xD800 <= char <= 0xDFFF:
            return f"is not UTF-8: a lone surrogate U+{char:04X} at character {at + 1}"
        return f"holds the control character U+{char:04X} at character {at + 1}"
    if key.isspace():
        return "is blank"
    return None


def good_key(key: str) -> bool:
    """Whether ``key`` is a valid key (remembered: devices repeat their keys)."""
    if key in _GOOD_KEYS:
        return True
    if key_problem(key) is not None:
        return False
    if len(_GOOD_KEYS) < 100_000:
        _GOOD_KEYS.add(key)
    return True


def key_label(key: object) -> str:
    """``key`` quoted and escaped for a message or a log line, as ``repr`` writes it (control
    characters and lone surrogates as escapes), a long one cut short with its length."""
    if isinstance(key, str) and len(key) > _LABEL_CHARS + 5:
        return f"{key[:_LABEL_CHARS]!r}… ({len(key)} characters)"
    return repr(key)


def key_errors(keys: Iterable[object], where: str) -> list[dict[str, Any]]:
    """The refused keys among ``keys``, as problem+json errors located ``[where, label]``
    (the escaped label, since a refused key may not even be encodable)."""
    out: list[dict[str, Any]] = []
    for key in keys:
        if isinstance(key, str) and key in _GOOD_KEYS:
            continue
        problem = key_problem(key)
        if problem is not None:
            label = key_label(key)
            out.append({"loc": [where, label], "msg": f"key {label} {problem}"})
    return out


def split_keys(text: str) -> list[str]:
    """The keys of a ThingsBoard comma-separated list (``clientKeys=a,b``, ``keys=room temp,温度``):
    each stripped of surrounding spaces, empty ones dropped. A key holding a comma cannot be
    named in such a list; the JSON list forms and the REST API's repeatable ``key=`` can."""
    return [k for k in (part.strip() for part in text.split(",")) if k]


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
class DeviceRef:
    """What ingest and the transports need to know about an authenticated device."""

    id: int
    name: str
    kind: DeviceKind
    owner_id: int
    pole_id: int | None = None


@dataclass(frozen=True, slots=True)
class Attribute:
    """One attribute of a device in one scope."""

    scope: Scope
    key: str
    value: Any
    updated: int
