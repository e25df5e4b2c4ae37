"""A tenant's lamps as lighting sees them, built from the registry: the devices of kind ``lamp``
the tenant owns that are mounted on a pole, with the pole's position, district and road, the
pole's gateway, the tenant's time zone, and what the lamp's attributes say of it.

The lamp's ratings are attributes (each optional; a missing or unusable value takes its
default); a server attribute (set by the city) wins over a shared or a client one (reported by
the lamp's controller). Plans, energy and the diagnostics all read them here:

================  =========================================================  ===============
key               meaning                                                    default
================  =========================================================  ===============
``rated_power``   rated power, W (the energy baseline; ``low_power``)         100 W for energy;
                                                                             unknown: no
                                                                             ``low_power``
``min_power``     the driver's minimum power, W                              0
``rated_life``    rated life (L70), h (CLO; the replacement forecast)        50,000
``clo_start``     constant light output: the share driven when new, (0, 1]   1 (no CLO)
``maintenance``   maintenance factor, (0, 1]                                 1
``tags``          a list of tags groups can select                           none
================  =========================================================  ===============

Burn hours come from the lamp's latest ``hours`` reading (the catalog's operating hours).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection, Engine, and_, select

from smartpole.lighting.diagnostics import DEFAULT_RATED_LIFE_H
from smartpole.model.energy import LampPlace
from smartpole.model.lighting import Cap, Lamp
from smartpole.model.types import DeviceKind, Scope
from smartpole.store.schema import attributes, devices, latest, poles

__all__ = ["RATED_POWER_W", "RATING_KEYS", "LampInventory", "LampRecord", "Ratings"]

RATED_POWER_W = 100.0  # the energy baseline of a lamp whose rating nobody gave
RATING_KEYS = ("rated_power", "min_power", "rated_life", "clo_start", "maintenance", "tags")
# which attribute scope wins when a key is in several: the city's server attribute
_SCOPE_RANK = {str(Scope.CLIENT): 0, str(Scope.SHARED): 1, str(Scope.SERVER): 2}
BURN_HOURS_KEY = "hours"


@dataclass(frozen=True, slots=True)
class LampRecord:
    """A lamp for plans (``lamp``: ids are the device's and pole's names) and for energy
    (``place``: by numeric ids), with its rated and minimum power."""

    lamp: Lamp
    device_id: int
    pole_id: int
    rated_w: float
    min_w: float
    gateway_id: int | None = None  # the device id of ``lamp.gateway``

    @property
    def place(self) -> LampPlace:
        """Where the energy functions count it."""
        return LampPlace(
            self.device_id,
            self.pole_id,
            self.lamp.road,
            self.lamp.district,
            self.rated_w,
            self.lamp.lat,
            self.lamp.lon,
        )


def _number(value: Any, default: float | None, low: float, high: float) -> float | None:
    """A finite number within [low, high], or the default."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    if not math.isfinite(value) or not low <= value <= high:
        return default
    return float(value)


@dataclass(frozen=True, slots=True)
class Ratings:
    """A lamp's ratings from its attributes (see the module's table)."""

    rated_power: float | None = None  # W; None: nobody said
    min_power: float = 0.0
    rated_life: float = DEFAULT_RATED_LIFE_H
    clo_start: float = 1.0
    maintenance: float = 1.0
    tags: frozenset[str] = frozenset()

    @classmethod
    def of(cls, attrs: Mapping[str, Any]) -> Ratings:
        """From the lamp's attribute values by key (decoded JSON); bad values are ignored."""
        rated = _number(attrs.get("rated_power"), None, 1e-3, 1e5)
        tags = attrs.get("tags")

        def within(key: str, default: float, low: float, high: float) -> float:
            value = _number(attrs.get(key), default, low, high)
            return default if value is None else value

        return cls(
            rated_power=rated,
            min_power=within("min_power", 0.0, 0, rated or 1e5),
            rated_life=within("rated_life", DEFAULT_RATED_LIFE_H, 1, 1e7),
            clo_start=within("clo_start", 1.0, 1e-3, 1.0),
            maintenance=within("maintenance", 1.0, 1e-3, 1.0),
            tags=frozenset(t for t in tags if isinstance(t, str))
            if isinstance(tags, list)
            else frozenset(),
        )


NO_RATINGS = Ratings()


def _cap(rated: Ratings, burn_hours: float) -> Cap:
    """What limits the lamp's levels: maintenance and CLO at its burn hours."""
    try:
        return Cap(rated.maintenance, rated.clo_start, max(0.0, burn_hours), rated.rated_life)
    except ValueError:
        return Cap()


def read_ratings(conn: Connection, devices_q: Any) -> dict[int, Ratings]:
    """The ratings of the devices ``devices_q`` selects (a select of device ids), by device."""
    q = select(attributes.c.device_id, attributes.c.scope, attributes.c.key, attributes.c.value)
    q = q.where(attributes.c.device_id.in_(devices_q), attributes.c.key.in_(RATING_KEYS))
    found: dict[int, dict[str, tuple[int, Any]]] = {}
    for device_id, scope, key, value in conn.execute(q):
        rank = _SCOPE_RANK.get(scope, 0)
        mine = found.setdefault(device_id, {})
        if key not in mine or mine[key][0] <= rank:
            try:
                mine[key] = (rank, orjson.loads(value))
            except orjson.JSONDecodeError:
                continue
    return {d: Ratings.of({k: v for k, (_r, v) in kv.items()}) for d, kv in found.items()}


class LampInventory:
    """Reads a tenant's lamps from the registry's tables (one query per kind of fact)."""

    def __init__(self, engine: Engine, zone: Callable[[int], ZoneInfo]) -> None:
        self.engine = engine
        self.zone = zone  # the tenant's time zone (registry.access.Tenants.zone)

    def lamps(self, tenant_id: int) -> list[LampRecord]:
        """The tenant's lamps mounted on poles, by device id."""
        own = and_(
            devices.c.owner_id == tenant_id,
            devices.c.kind == DeviceKind.LAMP.value,
            devices.c.pole_id.is_not(None),
        )
        base = (
            select(
                devices.c.id,
                devices.c.name,
                poles.c.id.label("pole_id"),
                poles.c.code,
                poles.c.lat,
                poles.c.lon,
                poles.c.district,
                poles.c.road,
            )
            .join(poles, poles.c.id == devices.c.pole_id)
            .where(own)
            .order_by(devices.c.id)
        )
        # the gateway of a pole, whoever owns it (the lamp is its sub-device: it carries the
        # lamp's readings and commands already): the first one mounted if there are several
        gw = select(devices.c.pole_id, devices.c.name, devices.c.id).where(
            devices.c.kind == DeviceKind.GATEWAY.value,
            devices.c.pole_id.in_(select(devices.c.pole_id).where(own)),
        )
        hours_q = (
            select(latest.c.device_id, latest.c.num)
            .join(devices, devices.c.id == latest.c.device_id)
            .where(own, latest.c.key == BURN_HOURS_KEY)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(base).all()
            gateways: dict[int, tuple[str, int]] = {}
            for pole_id, name, gateway_id in conn.execute(gw.order_by(devices.c.id)):
                gateways.setdefault(pole_id, (name, gateway_id))
            ratings = read_ratings(conn, select(devices.c.id).where(own))
            hours = {d: float(n) for d, n in conn.execute(hours_q) if n is not None}
        tz = str(self.zone(tenant_id))
        out = []
        for r in rows:
            rated = ratings.get(r.id, NO_RATINGS)
            lamp = Lamp(
                id=r.name,
                pole=r.code,
                gateway=gateways.get(r.pole_id, ("", 0))[0],
                lat=r.lat,
                lon=r.lon,
                tz=tz,
                district=r.district,
                road=r.road,
                tags=rated.tags,
                cap=_cap(rated, hours.get(r.id, 0.0)),
            )
            power = rated.rated_power or RATED_POWER_W
            gateway_id = gateways.get(r.pole_id, ("", None))[1]
            minimum = min(rated.min_power, power)
            out.append(LampRecord(lamp, r.id, r.pole_id, power, minimum, gateway_id))
        return out
