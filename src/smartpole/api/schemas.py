"""Request and response bodies of the REST API."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Generic, TypeVar

from annotated_types import Ge, Le
from fastapi import Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from smartpole.errors import InvalidInput
from smartpole.model.types import DeviceKind, Role
from smartpole.store.buckets import time_zone

T = TypeVar("T")

# Ids are INTEGER columns: 32 bits on PostgreSQL. A larger number is a 422 in the schema, not an
# overflow in the database driver (a plain-text 500).
ID_MAX = 2**31 - 1
Id = Annotated[int, Ge(1), Le(ID_MAX)]
"""The id of any stored object (tenant, pole, device, alarm, …), in a path, query or body."""
# Milliseconds since the epoch up to the end of year 9999 (BIGINT columns; datetime's range).
MS_MAX = 253_402_300_799_999
Millis = Annotated[int, Ge(0), Le(MS_MAX)]
"""A point in time: milliseconds since 1970-01-01 UTC."""
Limit = Annotated[int, Query(ge=1, le=10_000)]
"""How many items one page holds."""
Offset = Annotated[int, Query(ge=0, le=ID_MAX)]
"""How many items to skip (no listing holds more than there are ids)."""


class Page(BaseModel, Generic[T]):
    """One page of a listing."""

    items: list[T]
    total: int
    limit: int
    offset: int


def _known_zone(name: str) -> str:
    try:
        time_zone(name)
    except InvalidInput as err:
        raise ValueError(str(err)) from err
    return name


TimeZoneName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="IANA time zone where the tenant's days start (daily buckets of its time"
        " series end at its midnight); default the hub's `hub_timezone` setting",
        examples=["Asia/Shanghai", "Europe/Berlin"],
    ),
    AfterValidator(_known_zone),
]


class TenantIn(BaseModel):
    """A new tenant."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$", examples=["telecom-a"])
    title: str = Field("", max_length=200, examples=["中国移动 China Mobile"])
    is_operator: bool = False
    timezone: TimeZoneName | None = None


class TenantPatch(BaseModel):
    """Changes to a tenant."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")
    title: str | None = Field(None, max_length=200)
    timezone: TimeZoneName | None = None


class TenantOut(BaseModel):
    """A tenant."""

    id: int
    name: str
    title: str
    is_operator: bool
    created: int
    timezone: str = Field(description="IANA time zone where the tenant's days start")


class ApiKeyIn(BaseModel):
    """A new API key for a tenant."""

    model_config = ConfigDict(extra="forbid")
    role: Role
    name: str = Field("", max_length=200)


class ApiKeyOut(BaseModel):
    """An API key, without its secret."""

    id: int
    tenant_id: int
    role: Role
    name: str
    prefix: str
    created: int
    revoked: int | None


class ApiKeyCreated(ApiKeyOut):
    """A new API key; ``key`` is shown this once only."""

    key: str


class PoleIn(BaseModel):
    """A new pole."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(examples=["FT-SHENNAN-0001"])
    name: str = Field("", max_length=200)
    lat: float = Field(ge=-90, le=90, examples=[22.5431])
    lon: float = Field(ge=-180, le=180, examples=[114.0579])
    height_m: float | None = Field(None, gt=0, le=100)
    district: str = Field("", max_length=100, examples=["Futian"])
    road: str = Field("", max_length=200, examples=["Shennan Blvd"])
    installed: date | None = None


class PolePatch(BaseModel):
    """Changes to a pole."""

    model_config = ConfigDict(extra="forbid")
    code: str | None = None
    name: str | None = Field(None, max_length=200)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    height_m: float | None = Field(None, gt=0, le=100)
    district: str | None = Field(None, max_length=100)
    road: str | None = Field(None, max_length=200)
    installed: date | None = None


class PoleDevice(BaseModel):
    """A device as listed on its pole."""

    id: int
    name: str
    kind: DeviceKind
    port: int | None


class PoleOut(BaseModel):
    """A pole."""

    id: int
    code: str
    name: str
    lat: float
    lon: float
    height_m: float | None
    district: str
    road: str
    installed: date | None
    created: int
    devices: list[PoleDevice] | None = None
    distance_m: float | None = None


class DeviceIn(BaseModel):
    """A new device."""

    model_config = ConfigDict(extra="forbid")
    kind: DeviceKind
    name: str | None = Field(None, min_length=1, max_length=200)
    pole_id: Id | None = None
    pole: str | None = Field(None, description="Pole code; alternative to pole_id.")
    owner: str | None = Field(None, description="Owner tenant name; default the caller's.")
    model: str = Field("", max_length=200)
    port: int | None = Field(None, ge=0, le=255)
    token: str | None = Field(
        None, min_length=8, max_length=128, description="Access token to use; default random."
    )


class DevicePatch(BaseModel):
    """Changes to a device."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    model: str | None = Field(None, max_length=200)
    pole_id: Id | None = None
    port: int | None = Field(None, ge=0, le=255)
    owner: str | None = None
    kind: DeviceKind | None = Field(
        None,
        description="The real kind of a generic device (one a gateway created); admins only. "
        "A device of another kind keeps it (409).",
    )


class DeviceOut(BaseModel):
    """A device."""

    id: int
    name: str
    kind: DeviceKind
    model: str
    profile: str | None = Field(
        None,
        description="The ThingsBoard device type (profile) a gateway created it with, "
        "such as `default` or `Thermometer`; null for a device registered here.",
    )
    owner_id: int
    owner: str
    pole_id: int | None
    pole: str | None
    port: int | None
    token_hint: str = Field(
        description="First 6 hex digits of the access token's SHA-256 (none of its characters)."
    )
    last_seen: int | None
    online: bool
    created: int


class DeviceCreated(DeviceOut):
    """A new device; ``token`` is shown this once only."""

    token: str


class Credentials(BaseModel):
    """A device's new access token (shown once)."""

    device_id: int
    token: str


class TokenIn(BaseModel):
    """An access token to set, or none for a random one."""

    model_config = ConfigDict(extra="forbid")
    token: str | None = Field(None, min_length=8, max_length=128)


class Point(BaseModel):
    """One timestamped value."""

    ts: int
    value: Any


class RetentionIn(BaseModel):
    """Retention of one key."""

    model_config = ConfigDict(extra="forbid")
    days: int | None = Field(
        ge=0, le=36_525, description="Days to keep (at most a century); 0 forever; null = default."
    )
