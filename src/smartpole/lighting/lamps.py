"""A tenant's lamps as lighting sees them, built from the registry: the devices of kind ``lamp``
the tenant owns that are mounted on a pole, with the pole's position, district and road, the
pole's gateway, the tenant's time zone, and what the lamp's server attributes say of it.

Server attributes read (each optional; a missing or unusable value takes its default):

==================  =========================================================  ========
key                 meaning                                                    default
==================  =========================================================  ========
``rated_w``         rated power, W (the energy baseline)                       100
``min_w``           the driver's minimum power, W                              0
``rated_hours``     rated life (L70), h                                        100000
``clo_start``       constant light output: the share driven when new, (0, 1]   1 (off)
``maintenance``     maintenance factor, (0, 1]                                 1
``tags``            a list of tags groups can select                           none
==================  =========================================================  ========

Burn hours come from the lamp's latest ``hours`` reading (the catalog's operating hours).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Engine, and_, select

from smartpole.model.energy import LampPlace
from smartpole.model.lighting import Cap, Lamp
from smartpole.model.types import DeviceKind, Scope
from smartpole.store.schema import attributes, devices, latest, poles

__all__ = ["DEFAULTS", "LampInventory", "LampRecord"]

DEFAULTS: dict[str, float] = {
    "rated_w": 100.0,
    "min_w": 0.0,
    "rated_hours": 100_000.0,
    "clo_start": 1.0,
    "maintenance": 1.0,
}
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


def _number(value: Any, default: float, low: float, high: float) -> float:
    """A finite number within [low, high], or the default."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    if not math.isfinite(value) or not low <= value <= high:
        return default
    return float(value)


def _cap(attrs: dict[str, Any], burn_hours: float) -> Cap:
    try:
        return Cap(
            maintenance=_number(attrs.get("maintenance"), 1.0, 1e-3, 1.0),
            clo_start=_number(attrs.get("clo_start"), 1.0, 1e-3, 1.0),
            burn_hours=max(0.0, burn_hours),
            rated_hours=_number(attrs.get("rated_hours"), DEFAULTS["rated_hours"], 0, 1e7),
        )
    except ValueError:
        return Cap()


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
        # the gateway of a pole, whoever owns it: the first one mounted if there are several
        gw = select(devices.c.pole_id, devices.c.name).where(
            devices.c.kind == DeviceKind.GATEWAY.value,
            devices.c.pole_id.in_(select(devices.c.pole_id).where(own)),
        )
        attrs_q = (
            select(attributes.c.device_id, attributes.c.key, attributes.c.value)
            .join(devices, devices.c.id == attributes.c.device_id)
            .where(own, attributes.c.scope == str(Scope.SERVER))
            .where(attributes.c.key.in_([*DEFAULTS, "tags"]))
        )
        hours_q = (
            select(latest.c.device_id, latest.c.num)
            .join(devices, devices.c.id == latest.c.device_id)
            .where(own, latest.c.key == BURN_HOURS_KEY)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(base).all()
            gateways: dict[int, str] = {}
            for pole_id, name in conn.execute(gw.order_by(devices.c.id)):
                gateways.setdefault(pole_id, name)
            attrs: dict[int, dict[str, Any]] = {}
            for device_id, key, value in conn.execute(attrs_q):
                attrs.setdefault(device_id, {})[key] = orjson.loads(value)
            hours = {d: float(n) for d, n in conn.execute(hours_q) if n is not None}
        tz = str(self.zone(tenant_id))
        out = []
        for r in rows:
            mine = attrs.get(r.id, {})
            tags = mine.get("tags")
            lamp = Lamp(
                id=r.name,
                pole=r.code,
                gateway=gateways.get(r.pole_id, ""),
                lat=r.lat,
                lon=r.lon,
                tz=tz,
                district=r.district,
                road=r.road,
                tags=frozenset(t for t in tags if isinstance(t, str))
                if isinstance(tags, list)
                else frozenset(),
                cap=_cap(mine, hours.get(r.id, 0.0)),
            )
            rated = _number(mine.get("rated_w"), DEFAULTS["rated_w"], 0, 1e5)
            minimum = _number(mine.get("min_w"), DEFAULTS["min_w"], 0, rated)
            out.append(LampRecord(lamp, r.id, r.pole_id, rated, minimum))
        return out
