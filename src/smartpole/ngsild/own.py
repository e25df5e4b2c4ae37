"""smartpole's own poles and devices as NGSI-LD entities, read as they are from the registry
and the latest values: nothing is copied, so a reading that arrives over MQTT is visible at
once. They are read-only through NGSI-LD (they are changed through smartpole's registry).

Ids: ``urn:ngsi-ld:<Type>:smartpole:<device name>`` for a device (``Streetlight``,
``AirQualityObserved``, … see :mod:`smartpole.ngsild.models`) and
``urn:ngsi-ld:Pole:smartpole:<pole code>`` for a pole, which links its devices (``hasDevice``);
a device links its pole (``refPole``) and stands at its position (``location``). A
Streetlight's ``status`` comes from the alarms active now: ``defectiveLamp`` while the lamp
diagnostics hold a lamp or control-gear failure on it, ``columnIssue`` while its pole is tilted,
else ``ok``. A caller sees
the poles and devices its tenant sees in smartpole (a telecom its own small cells and the poles
they are on).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import quote, unquote

from sqlalchemy import and_, select

from smartpole.errors import InvalidInput
from smartpole.model.alarms import Alarm
from smartpole.model.catalog import CATALOG
from smartpole.model.clock import now_ms
from smartpole.model.devices import Device
from smartpole.model.poles import Pole
from smartpole.model.types import DeviceKind, Value
from smartpole.ngsild.context import CORE, CORE_TERMS
from smartpole.ngsild.entities import Attribute, Entity, iso
from smartpole.ngsild.models import (
    CONTEXT_TERMS,
    OWN_NAMESPACE,
    POLE_TYPE,
    Mapped,
    attribute_of,
    type_of,
)
from smartpole.ngsild.store import EntityFilter
from smartpole.ngsild.temporal import (
    MAX_AGGREGATED,
    STORE_KEPT,
    Aggregated,
    TemporalQuery,
    aggregate,
)
from smartpole.registry.access import Principal
from smartpole.registry.assets import Assets, PoleFilter, pole_of
from smartpole.store.buckets import Buckets
from smartpole.store.protocol import TimeSeries
from smartpole.store.schema import devices, poles

__all__ = ["STATUS", "ActiveAlarms", "OwnEntities", "is_own"]

MARK = "smartpole"
LOCATION = "https://uri.etsi.org/ngsi-ld/location"
_OBSERVED = frozenset(
    {"AirQualityObserved", "WeatherObserved", "NoiseLevelObserved"}
)  # models with a dateObserved
# A Streetlight's status (the model's enum) from the alarms active on the lamp and its pole.
DEFECTIVE_LAMP = frozenset({"lamp_failure", "control_gear_failure"})  # the lamp diagnostics'
COLUMN_ISSUE = frozenset({"pole_tilt"})  # the default rules' tilt alarm
_TYPE_BY_IRI = {CONTEXT_TERMS[name]: name for name in CONTEXT_TERMS if name[:1].isupper()}


def _term(name: str) -> str:
    """The IRI a name is published under: the core context's when it defines the name (it
    wins in every reader's context), else the Smart Data Models' or smartpole's own."""
    if name in CORE_TERMS:
        return CORE.expand(name)
    return CONTEXT_TERMS.get(name) or OWN_NAMESPACE + quote(name, safe="")


STATUS = frozenset({_term("status")})  # a Streetlight's status, as an attribute IRI


def device_id(device: Device) -> str:
    """The entity id of a device."""
    return f"urn:ngsi-ld:{type_of(device.kind)}:{MARK}:{quote(device.name, safe='-._~')}"


def pole_id(code: str) -> str:
    """The entity id of a pole."""
    return f"urn:ngsi-ld:{POLE_TYPE}:{MARK}:{quote(code, safe='-._~')}"


@dataclass(frozen=True, slots=True)
class _OwnId:
    entity_type: str
    local: str  # a device's name or a pole's code


def _parse(entity_id: str) -> _OwnId | None:
    parts = entity_id.split(":", 4)
    if len(parts) != 5 or parts[:2] != ["urn", "ngsi-ld"] or parts[3] != MARK:
        return None
    return _OwnId(parts[2], unquote(parts[4]))


def is_own(entity_id: str) -> bool:
    """Whether an id is in smartpole's own namespace (``urn:ngsi-ld:<Type>:smartpole:…``)."""
    return _parse(entity_id) is not None


def _prop(value: Any, at: int, unit: str | None = None, *, observed: bool = False) -> Attribute:
    return Attribute("Property", value, None, at if observed else None, unit, {}, at, at)


class ActiveAlarms(Protocol):
    """The alarms active now (the hub's alarm store)."""

    def active_types(self, originator_type: str, ids: Sequence[int]) -> dict[int, set[str]]:
        """The types of the alarms active on each of these devices or poles."""
        ...


class OwnEntities:
    """Poles and devices of the registry as entities, with their devices' latest readings."""

    def __init__(self, assets: Assets, readings: TimeSeries, alarms: ActiveAlarms) -> None:
        self.assets = assets
        self.readings = readings
        self.alarms = alarms

    # -- one entity ---------------------------------------------------------------------------

    def owns(self, entity_id: str) -> bool:
        """Whether the id is in smartpole's own namespace."""
        return is_own(entity_id)

    # -- queries -------------------------------------------------------------------------------

    def scan(self, who: Principal, f: EntityFilter) -> list[Entity]:
        """The caller's own-namespace entities that may match ``f``, in id order."""
        wanted = None
        if f.types is not None:
            wanted = {_TYPE_BY_IRI[t] for t in f.types if t in _TYPE_BY_IRI}
            if not wanted:
                return []
        ids = [p for p in (_parse(i) for i in f.ids or ()) if p is not None]
        if f.ids is not None and not ids:
            return []
        found: list[Entity] = []
        if wanted is None or POLE_TYPE in wanted:
            codes = [i.local for i in ids if i.entity_type == POLE_TYPE] if f.ids else None
            if codes is None or codes:
                found += self._poles(who, codes=codes, box=f.box)
        if wanted is None or wanted - {POLE_TYPE}:
            names = [i.local for i in ids if i.entity_type != POLE_TYPE] if f.ids else None
            if names is None or names:
                kinds = None if wanted is None else _kinds_of(wanted)
                found += self._devices(who, names=names, kinds=kinds, box=f.box)
        if f.id_pattern is not None:
            found = [e for e in found if f.id_pattern.fullmatch(e.id)]
        if wanted is not None:
            iris = {CONTEXT_TERMS[t] for t in wanted}
            found = [e for e in found if iris & set(e.types)]
        return sorted(found, key=lambda e: e.id)

    def types(self, who: Principal) -> dict[str, set[str]]:
        """The entity types the caller's poles and devices have, with their attributes."""
        out: dict[str, set[str]] = {}
        for entity in self.scan(who, EntityFilter()):
            for type_iri in entity.types:
                out.setdefault(type_iri, set()).update(entity.attrs)
        return out

    def changed(
        self,
        who: Principal,
        keys: dict[int, set[str]],
        types: set[str] | None = None,
        *,
        also: frozenset[str] = frozenset(),
    ) -> list[tuple[Entity, set[str]]]:
        """The entities of devices whose ``keys`` just got readings (those the caller sees;
        ``types``: only devices of these entity types' IRIs), each with the attributes those
        keys are, and the attribute IRIs in ``also``."""
        kinds = None
        if types is not None:
            kinds = _kinds_of({_TYPE_BY_IRI[t] for t in types if t in _TYPE_BY_IRI})
            if not kinds:
                return []
        return [
            (entity, {_term(attribute_of(device.kind, k).name) for k in keys[device.id]} | also)
            for device, entity in self._device_entities(who, ids=list(keys), kinds=kinds)
        ]

    def lamps_for(self, alarm: Alarm) -> list[int]:
        """The devices whose Streetlight ``status`` an alarm sets: the lamp a lamp alarm is on,
        the lamps of a pole a column alarm is on (none for other alarms)."""
        if alarm.originator_type == "device" and alarm.type in DEFECTIVE_LAMP:
            return [alarm.originator_id]
        if alarm.originator_type == "pole" and alarm.type in COLUMN_ISSUE:
            kinds = [k.value for k in _kinds_of({"Streetlight"})]
            query = select(devices.c.id).where(
                devices.c.pole_id == alarm.originator_id, devices.c.kind.in_(kinds)
            )
            with self.assets.engine.connect() as conn:
                return sorted(conn.execute(query).scalars())
        return []

    # -- history ---------------------------------------------------------------------------------

    def _series_of(
        self, who: Principal, entities: Sequence[Entity], attrs: frozenset[str] | None
    ) -> tuple[dict[int, Device], dict[int, dict[str, tuple[str, Mapped]]]]:
        """The devices behind entities, and per device each key's (attribute IRI, mapping)
        among the attributes asked for."""
        names = [own.local for own in map(_parse, (e.id for e in entities)) if own]
        if not names:
            return {}, {}
        query = self.assets.device_query(who).where(devices.c.name.in_(names))
        with self.assets.engine.connect() as conn:
            found = {r.id: _as_device(r) for r in conn.execute(query)}
        keys: dict[int, dict[str, tuple[str, Mapped]]] = {}
        for device_id_, by_key in self.readings.latest(list(found)).items():
            device = found[device_id_]
            for key in by_key:
                mapped = attribute_of(device.kind, key)
                iri = _term(mapped.name)
                if attrs is None or iri in attrs:
                    keys.setdefault(device_id_, {})[key] = (iri, mapped)
        return found, keys

    def having_history(
        self, who: Principal, entities: Sequence[Entity], query: TemporalQuery
    ) -> set[str]:
        """The ids of the entities with a reading in the query's window (of the attributes it
        asks for): one query per set of keys (per kind of device)."""
        found, keys = self._series_of(who, entities, query.attrs)
        by_keys: dict[tuple[str, ...], list[int]] = {}
        for device, by_key in keys.items():
            by_keys.setdefault(tuple(sorted(by_key)), []).append(device)
        out: set[str] = set()
        rolled_up = query.aggr_methods is not None  # aggregations read the rollups too
        for wanted, device_ids in by_keys.items():
            having = self.readings.having(
                device_ids, wanted, query.start, query.end, rolled_up=rolled_up
            )
            out.update(device_id(found[d]) for d in having)
        return out

    def history(
        self, who: Principal, entities: Sequence[Entity], query: TemporalQuery, n: int
    ) -> dict[str, dict[str, list[Attribute]]]:
        """Per entity id and attribute IRI, ``n`` readings in the window (the newest with
        ``lastN``, else the oldest) as instances, oldest first."""
        found, keys = self._series_of(who, entities, query.attrs)
        rows: dict[int, dict[str, list[tuple[int, Value]]]]
        if query.last_n is not None:
            wanted = sorted({k for by_key in keys.values() for k in by_key})
            rows = self.readings.recent(list(keys), wanted, query.start, query.end, n)
        else:  # a seek per device and key (a window function would rank the whole window)
            rows = {
                device: self.readings.history(device, list(by_key), query.start, query.end, n)
                for device, by_key in keys.items()
            }
        out: dict[str, dict[str, list[Attribute]]] = {}
        for device_id_, by_key in rows.items():
            device = found[device_id_]
            series = out.setdefault(device_id(device), {})
            for key, points in by_key.items():
                if key not in keys[device_id_]:
                    continue
                iri, mapped = keys[device_id_][key]
                series[iri] = [
                    _prop(
                        mapped.convert(v) if mapped.convert else v, ts, mapped.unit, observed=True
                    )
                    for ts, v in points
                ]
        return out

    def aggregated(
        self, who: Principal, entities: Sequence[Entity], query: TemporalQuery
    ) -> dict[str, dict[str, Aggregated]]:
        """Per entity id and attribute IRI, the aggregations per bucket: count, sum, avg, min
        and max from the store (its hourly rollups for whole hours) when the periods fall on
        the store's (the window starts on a period boundary of the clock), the others, and
        periods counted from elsewhere, from the raw readings."""
        found, keys = self._series_of(who, entities, query.attrs)
        wanted = sorted({k for by_key in keys.values() for k in by_key})
        out: dict[str, dict[str, Aggregated]] = {}
        methods = query.aggr_methods or ()
        period = query.aggr_period
        end = min(query.end, now_ms() + 1)  # no reading is newer ("after" reaches 2100)
        on_clock = any(m in STORE_KEPT for m in methods) and _on_store_buckets(query, end)
        raw_methods = [m for m in methods if m not in STORE_KEPT or not on_clock]
        if raw_methods:
            rows = self.readings.recent(list(keys), wanted, query.start, end, MAX_AGGREGATED)
            raw_query = replace(query, aggr_methods=tuple(raw_methods))
            for device_id_, by_key in rows.items():
                for key, points in by_key.items():
                    if key not in keys[device_id_]:
                        continue
                    iri, mapped = keys[device_id_][key]
                    instances = [
                        _prop(mapped.convert(v) if mapped.convert else v, ts, None, observed=True)
                        for ts, v in points
                    ]
                    entity = out.setdefault(device_id(found[device_id_]), {})
                    entity.setdefault(iri, {}).update(aggregate(instances, raw_query))
        if period is not None and on_clock:
            for method in (m for m in methods if m in STORE_KEPT):
                buckets = self.readings.aggregate(
                    list(keys), wanted, query.start, end, period, STORE_KEPT[method]
                )
                for device_id_, by_bucket in buckets.items():
                    for key, cells in by_bucket.items():
                        if key not in keys[device_id_]:
                            continue
                        iri, mapped = keys[device_id_][key]
                        scale = mapped.convert if method != "totalCount" else None
                        entity = out.setdefault(device_id(found[device_id_]), {})
                        entity.setdefault(iri, {})[method] = [
                            (_scaled(value, scale), start, start + period) for start, value in cells
                        ]
        return out

    # -- building entities ---------------------------------------------------------------------

    def _poles(
        self,
        who: Principal,
        *,
        codes: Sequence[str] | None = None,
        box: tuple[float, float, float, float] | None = None,
    ) -> list[Entity]:
        query = self.assets.pole_query(who, PoleFilter())
        if codes is not None:
            query = query.where(poles.c.code.in_(codes))
        if box is not None:
            query = query.where(_inside(poles.c.lon, poles.c.lat, box))
        with self.assets.engine.connect() as conn:
            rows = [pole_of(r) for r in conn.execute(query)]
        if not rows:
            return []
        mounted: dict[int, list[str]] = {}
        device_query = self.assets.device_query(who).where(
            devices.c.pole_id.in_([p.id for p in rows])
        )
        with self.assets.engine.connect() as conn:
            for device in conn.execute(device_query):
                mounted.setdefault(device.pole_id, []).append(device_id(_as_device(device)))
        return [_pole_entity(p, sorted(mounted.get(p.id, []))) for p in rows]

    def _devices(
        self,
        who: Principal,
        *,
        names: Sequence[str] | None = None,
        kinds: Iterable[DeviceKind] | None = None,
        box: tuple[float, float, float, float] | None = None,
    ) -> list[Entity]:
        return [e for _, e in self._device_entities(who, names=names, kinds=kinds, box=box)]

    def _device_entities(
        self,
        who: Principal,
        *,
        names: Sequence[str] | None = None,
        kinds: Iterable[DeviceKind] | None = None,
        box: tuple[float, float, float, float] | None = None,
        ids: Sequence[int] | None = None,
    ) -> list[tuple[Device, Entity]]:
        """The visible devices matching the filters, each with its entity (one query for the
        devices, one for their latest readings)."""
        query = self.assets.device_query(who).add_columns(poles.c.lat, poles.c.lon)
        if names is not None:
            query = query.where(devices.c.name.in_(names))
        if ids is not None:
            query = query.where(devices.c.id.in_(ids))
        if kinds is not None:
            query = query.where(devices.c.kind.in_([k.value for k in kinds]))
        if box is not None:
            query = query.where(_inside(poles.c.lon, poles.c.lat, box))
        with self.assets.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return []
        latest = self.readings.latest([r.id for r in rows])
        found = [(_as_device(r), r) for r in rows]
        out = [(d, _device_entity(d, r.lat, r.lon, latest.get(d.id, {}))) for d, r in found]
        lamps = [(d, e) for d, e in out if type_of(d.kind) == "Streetlight"]
        if lamps:
            self._lamp_status(lamps)
        return out

    def _lamp_status(self, lamps: list[tuple[Device, Entity]]) -> None:
        on_lamp = self.alarms.active_types("device", [d.id for d, _ in lamps])
        poles_ = sorted({d.pole_id for d, _ in lamps if d.pole_id is not None})
        on_pole = self.alarms.active_types("pole", poles_)
        for device, entity in lamps:
            if on_lamp.get(device.id, set()) & DEFECTIVE_LAMP:
                status = "defectiveLamp"
            elif device.pole_id is not None and on_pole.get(device.pole_id, set()) & COLUMN_ISSUE:
                status = "columnIssue"
            else:
                status = "ok"
            entity.attrs[_term("status")] = [_prop(status, entity.modified_at)]


def _scaled(value: float, convert: Any) -> Any:
    """An aggregate in the model's scale (a percentage's average as a ratio)."""
    if convert is None or not isinstance(value, int | float):
        return value
    shown = convert(value)
    return shown if isinstance(shown, int | float) and not isinstance(shown, bool) else value


def _as_device(row: Any) -> Device:
    return Device(
        row.id,
        row.name,
        DeviceKind(row.kind),
        row.model,
        row.profile,
        row.owner_id,
        row.owner,
        row.pole_id,
        row.pole,
        row.port,
        row.token_hint,
        row.last_seen,
        row.created,
    )


def _inside(lon: Any, lat: Any, box: tuple[float, float, float, float]) -> Any:
    min_lon, min_lat, max_lon, max_lat = box
    return and_(lon >= min_lon, lon <= max_lon, lat >= min_lat, lat <= max_lat)


def _kinds_of(types: set[str]) -> set[DeviceKind]:
    return {kind for kind in DeviceKind if type_of(kind) in types}


def _point(lat: float, lon: float, at: int) -> Attribute:
    return Attribute(
        "GeoProperty", {"type": "Point", "coordinates": [lon, lat]}, None, None, None, {}, at, at
    )


def _pole_entity(pole: Pole, mounted: list[str]) -> Entity:
    attrs: dict[str, list[Attribute]] = {
        _term("name"): [_prop(pole.name or pole.code, pole.created)],
        LOCATION: [_point(pole.lat, pole.lon, pole.created)],
        _term("address"): [
            _prop({"addressLocality": pole.district, "streetAddress": pole.road}, pole.created)
        ],
    }
    if pole.height_m is not None:
        attrs[_term("height")] = [_prop(pole.height_m, pole.created, "MTR")]
    if pole.installed is not None:
        attrs[_term("dateInstalled")] = [_prop(pole.installed.isoformat(), pole.created)]
    if mounted:
        attrs[_term("hasDevice")] = [
            Attribute("Relationship", mounted, None, None, None, {}, pole.created, pole.created)
        ]
    return Entity(pole_id(pole.code), [_term(POLE_TYPE)], attrs, None, pole.created, pole.created)


def _device_entity(
    device: Device, lat: float | None, lon: float | None, latest: dict[str, tuple[int, Value]]
) -> Entity:
    entity_type = type_of(device.kind)
    created = device.created
    attrs: dict[str, list[Attribute]] = {_term("name"): [_prop(device.name, created)]}
    if entity_type == "Device":
        attrs[_term("deviceCategory")] = [_prop([device.kind.value], created)]
    if device.pole is not None and lat is not None and lon is not None:
        attrs[LOCATION] = [_point(lat, lon, created)]
        attrs[_term("refPole")] = [
            Attribute("Relationship", pole_id(device.pole), None, None, None, {}, created, created)
        ]
    newest = 0
    measured = CATALOG[device.kind].keys if device.kind in CATALOG else {}
    for key, (ts, value) in sorted(latest.items()):
        mapped = attribute_of(device.kind, key)
        shown = mapped.convert(value) if mapped.convert is not None else value
        attrs[_term(mapped.name)] = [_prop(shown, ts, mapped.unit, observed=True)]
        if key in measured:  # not the platform's own keys (online)
            newest = max(newest, ts)
    if entity_type in _OBSERVED and newest:
        attrs[_term("dateObserved")] = [_prop(iso(newest), newest)]
    return Entity(
        device_id(device), [_term(entity_type)], attrs, None, created, max(created, newest)
    )


def _on_store_buckets(query: TemporalQuery, end: int) -> bool:
    """Whether the query's aggregation periods are the store's buckets (counted from the
    window's start, which is on the store's clock for that period), so that its rollups
    answer; not for periods the store does not make (not whole days, too many)."""
    period, origin = query.aggr_period, query.origin
    if period is None or origin is None or end <= origin:
        return False
    try:
        runs = Buckets.of(origin, end, period).runs
    except InvalidInput:  # the raw readings answer
        return False
    return len(runs) == 1 and runs[0].first == origin and runs[0].step == period
