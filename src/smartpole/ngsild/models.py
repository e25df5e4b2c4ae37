"""smartpole's data as Smart Data Models: one table of what each catalog key becomes.

A device is an entity of the type its kind names in the catalog (``Streetlight``,
``AirQualityObserved``, ``WeatherObserved``, ``NoiseLevelObserved``, ``EVChargingStation``, else
``Device``); each latest reading is a Property named as the Smart Data Model names it, its value
converted where the model's scale differs (``dim`` 0-100 % → ``illuminanceLevel`` 0-1,
``on`` → ``powerState`` ``"on"``/``"off"``), with the UN/CEFACT code of its unit and the reading's
time as ``observedAt``. A key no model names keeps its name in camelCase, under smartpole's own
namespace. smartpole's own ``@context`` (served at
``/ngsi-ld/v1/jsonldContexts/smartpole-context.jsonld``) is built from this table, so that the
names and the IRIs never disagree. ``docs/ngsi-ld.md`` prints the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smartpole.model.catalog import CATALOG
from smartpole.model.types import DeviceKind, Value

__all__ = [
    "CONTEXT_TERMS",
    "OWN_NAMESPACE",
    "POLE_TYPE",
    "SDM",
    "Mapped",
    "attribute_of",
    "context_document",
    "type_of",
    "unit_code",
]

SDM = "https://smartdatamodels.org/"
OWN_NAMESPACE = "https://smartpole.dev/ontology/"
POLE_TYPE = "Pole"

# Unit symbols of the catalog and their UN/CEFACT Common Codes (Recommendation 20).
UNIT_CODES: dict[str, str] = {
    "V": "VLT",
    "A": "AMP",
    "W": "WTT",
    "kW": "KWT",
    "kWh": "KWH",
    "h": "HUR",
    "s": "SEC",
    "°C": "CEL",
    "lx": "LUX",
    "%": "P1",
    "µg/m³": "GQ",
    "mg/m³": "GP",
    "hPa": "A97",
    "m/s": "MTS",
    "°": "DD",
    "mm/h": "H67",
    "dB(A)": "2N",
    "kbit/s": "C74",
    "Mbit/s": "E20",
    "MB": "4L",
    "cm": "CMT",
    "g": "K40",
    "Hz": "HTZ",
}

# Each model's namespace under smartdatamodels.org (its context's IRIs).
_MODEL_NS = {
    "Streetlight": "dataModel.Streetlighting/",
    "AirQualityObserved": "dataModel.Environment/",
    "NoiseLevelObserved": "dataModel.Environment/",
    "WeatherObserved": "dataModel.Weather/",
    "EVChargingStation": "dataModel.Transportation/",
    "Device": "dataModel.Device/",
}

_CHARGER_STATUS = {
    "Available": "available",
    "Preparing": "full",
    "Charging": "full",
    "SuspendedEV": "full",
    "SuspendedEVSE": "full",
    "Finishing": "full",
    "Reserved": "full",
    "Unavailable": "outOfService",
    "Faulted": "withIncidence",
}


def _percent_to_ratio(value: Value) -> Value:
    return round(float(value) / 100, 4) if isinstance(value, int | float) else value


def _on_off(value: Value) -> Value:
    return ("on" if value else "off") if isinstance(value, bool | int) else value


def _charger_status(value: Value) -> Value:
    return _CHARGER_STATUS.get(value, value) if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class Mapped:
    """What one catalog key becomes: the attribute's name, whether the name is a Smart Data
    Models one, the unit's code (ratios have none) and how a value is converted."""

    name: str
    sdm: bool
    unit: str | None = None
    convert: Callable[[Value], Value] | None = None


# (kind, key) -> the Smart Data Model's name for it. Keys not listed keep their own name.
_NAMES: dict[tuple[DeviceKind, str], Mapped] = {
    (DeviceKind.LAMP, "on"): Mapped("powerState", True, None, _on_off),
    (DeviceKind.LAMP, "dim"): Mapped("illuminanceLevel", True, None, _percent_to_ratio),
    (DeviceKind.AIR, "aqi"): Mapped("airQualityIndex", True),
    (DeviceKind.WEATHER, "humidity"): Mapped("relativeHumidity", True, None, _percent_to_ratio),
    (DeviceKind.WEATHER, "pressure"): Mapped("atmosphericPressure", True, "A97"),
    (DeviceKind.WEATHER, "wind_speed"): Mapped("windSpeed", True, "MTS"),
    (DeviceKind.WEATHER, "wind_direction"): Mapped("windDirection", True, "DD"),
    (DeviceKind.WEATHER, "rain"): Mapped("precipitation", True, "H67"),
    (DeviceKind.NOISE, "laeq"): Mapped("LAeq", True, "2N"),
    (DeviceKind.NOISE, "lamax"): Mapped("LAmax", True, "2N"),
    (DeviceKind.CHARGER, "status"): Mapped("status", True, None, _charger_status),
}
# Keys whose own name is already the model's (same meaning, same scale).
_SAME: dict[DeviceKind, frozenset[str]] = {
    DeviceKind.AIR: frozenset({"pm25", "pm10", "no2", "o3", "co", "so2"}),
    DeviceKind.WEATHER: frozenset({"temperature", "illuminance"}),
}


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def unit_code(unit: str) -> str | None:
    """The UN/CEFACT code of a catalog unit symbol, or None."""
    return UNIT_CODES.get(unit)


def type_of(kind: DeviceKind) -> str:
    """The entity type of a device kind."""
    spec = CATALOG.get(kind)
    return spec.sdm if spec is not None and spec.sdm else "Device"


def attribute_of(kind: DeviceKind, key: str) -> Mapped:
    """What a reading's key becomes in the entity of a device of ``kind``."""
    mapped = _NAMES.get((kind, key))
    if mapped is not None:
        return mapped
    spec = CATALOG.get(kind)
    unit = spec.keys[key].unit if spec is not None and key in spec.keys else ""
    code = unit_code(unit)
    return Mapped(
        key if key in _SAME.get(kind, ()) else _camel(key), key in _SAME.get(kind, ()), code
    )


def _iri(entity_type: str, name: str, sdm: bool) -> str:
    return SDM + _MODEL_NS.get(entity_type, "") + name if sdm else OWN_NAMESPACE + name


def context_document() -> dict[str, Any]:
    """smartpole's own ``@context``: every type and attribute name it publishes."""
    terms: dict[str, Any] = {
        "sdm": SDM,
        "smartpole": OWN_NAMESPACE,
        POLE_TYPE: OWN_NAMESPACE + POLE_TYPE,
        "name": SDM + "name",
        "description": SDM + "description",
        "address": SDM + "address",
        "dateObserved": SDM + "dateObserved",
        "deviceCategory": SDM + "dataModel.Device/deviceCategory",
        "controlledProperty": SDM + "dataModel.Device/controlledProperty",
        "refDevice": SDM + "dataModel.Device/refDevice",
        "refPole": OWN_NAMESPACE + "refPole",
        "hasDevice": OWN_NAMESPACE + "hasDevice",
        "height": SDM + "height",
        "dateInstalled": SDM + "dateInstalled",
        "owner": SDM + "owner",
        "online": OWN_NAMESPACE + "online",  # the platform's connectivity reading
    }
    for kind in CATALOG:
        entity_type = type_of(kind)
        terms.setdefault(entity_type, SDM + _MODEL_NS.get(entity_type, "") + entity_type)
    # One IRI per name: a model's name first (weather's temperature is the Smart Data Models'
    # one; a lamp driver's temperature, published under the same name, means the same).
    for sdm_first in (True, False):
        for kind, spec in CATALOG.items():
            for key in spec.keys:
                mapped = attribute_of(kind, key)
                if mapped.sdm == sdm_first:
                    terms.setdefault(mapped.name, _iri(type_of(kind), mapped.name, mapped.sdm))
    return {"@context": terms}


CONTEXT_TERMS: dict[str, str] = context_document()["@context"]
"""Each name smartpole publishes and its IRI."""
