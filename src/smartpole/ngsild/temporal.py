"""The temporal evolution of entities (ETSI GS CIM 009, clauses 4.5.9 and 6.18-6.22).

smartpole's own devices answer from their readings (``readings``) and, for the aggregations
the store keeps (count, sum, avg, min, max), from its hourly rollups; the entities other systems
create answer from ``ngsi_history``, which every change writes. A window is ``timerel``
(``before``, ``after``, ``between``) with ``timeAt`` and ``endTimeAt``; ``lastN`` keeps the newest
instances; aggregations (``aggrMethods``) come per ``aggrPeriodDuration`` bucket (aligned to the
clock: whole hours and days), or over the whole window without one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from smartpole.model.clock import now_ms
from smartpole.ngsild.context import Context
from smartpole.ngsild.entities import KINDS, Attribute, Entity, iso, parse_time, render_attribute
from smartpole.ngsild.errors import NgsiLdError
from smartpole.registry.access import Principal
from smartpole.store.protocol import Aggregation

__all__ = [
    "AGGREGATIONS",
    "MAX_INSTANCES",
    "STORE_KEPT",
    "Aggregated",
    "OwnHistory",
    "TemporalQuery",
    "TemporalSeries",
    "aggregate",
    "from_shown",
    "instance_json",
    "parse_duration",
    "parse_window",
    "render_temporal",
]

AGGREGATIONS = ("totalCount", "distinctCount", "sum", "avg", "min", "max", "stddev", "sumsq")
# The aggregations the store answers itself (from its hourly rollups for whole hours).
STORE_KEPT: dict[str, Aggregation] = {
    "totalCount": "count",
    "sum": "sum",
    "avg": "avg",
    "min": "min",
    "max": "max",
}
MAX_INSTANCES = 1000  # per attribute and entity in one answer
INSTANCE_PREFIX = "urn:ngsi-ld:attribute:instance:"
NORMALIZED = "normalized"
TEMPORAL_VALUES = "temporalValues"
AGGREGATED_VALUES = "aggregatedValues"
_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_END_OF_TIME = 4_102_444_800_000  # 2100-01-01
MAX_PERIOD_MS = 100 * 365 * 86_400_000


def parse_duration(text: str) -> int:
    """An ISO 8601 duration in milliseconds (weeks, days, hours, minutes, seconds: a month
    or a year has no fixed length and is refused)."""
    match = _DURATION.match(text)
    if match is None or text in ("P", "PT"):
        raise NgsiLdError.bad_data(
            f"aggrPeriodDuration {text!r} is not a duration of weeks, days, hours, minutes or "
            "seconds (PT1H, P1D)"
        )
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    ms = (
        parts.get("w", 0) * 604_800_000
        + parts.get("d", 0) * 86_400_000
        + parts.get("h", 0) * 3_600_000
        + parts.get("m", 0) * 60_000
        + parts.get("s", 0) * 1000
    )
    if not 1000 <= ms <= MAX_PERIOD_MS:
        raise NgsiLdError.bad_data("aggrPeriodDuration must be between a second and 100 years")
    return int(ms)


def parse_window(
    timerel: str | None, time_at: str | None, end_time_at: str | None
) -> tuple[int, int] | None:
    """``[start, end)`` of a ``timerel`` query (None when none is given)."""
    if timerel is None:
        if time_at is not None or end_time_at is not None:
            raise NgsiLdError.bad_data("timeAt needs timerel")
        return None
    if time_at is None:
        raise NgsiLdError.bad_data("timerel needs timeAt")
    at = parse_time(time_at, "timeAt")
    if timerel == "before":
        return 0, at
    if timerel == "after":
        return at, _END_OF_TIME
    if timerel == "between":
        if end_time_at is None:
            raise NgsiLdError.bad_data("timerel=between needs endTimeAt")
        end = parse_time(end_time_at, "endTimeAt")
        if end <= at:
            raise NgsiLdError.bad_data("endTimeAt must be after timeAt")
        return at, end
    raise NgsiLdError.bad_data(f"timerel must be before, after or between, not {timerel!r}")


@dataclass(frozen=True, slots=True)
class TemporalQuery:
    """The temporal part of a query: the window, lastN and the aggregation asked for."""

    start: int = 0
    end: int = _END_OF_TIME
    last_n: int | None = None
    attrs: frozenset[str] | None = None
    aggr_methods: tuple[str, ...] | None = None
    aggr_period: int | None = None
    representation: str = NORMALIZED

    @classmethod
    def of(
        cls,
        window: tuple[int, int] | None,
        last_n: int | None,
        attrs: frozenset[str] | None,
        aggr_methods: Sequence[str] | None,
        aggr_period: str | None,
        representation: str = "normalized",
    ) -> TemporalQuery:
        """Checked parameters."""
        if last_n is not None and not 1 <= last_n <= MAX_INSTANCES:
            raise NgsiLdError.bad_data(f"lastN must be between 1 and {MAX_INSTANCES}")
        methods = None
        if aggr_methods is not None:
            unknown = [m for m in aggr_methods if m not in AGGREGATIONS]
            if unknown or not aggr_methods:
                raise NgsiLdError.bad_data(f"aggrMethods are some of {', '.join(AGGREGATIONS)}")
            if window is None:
                raise NgsiLdError.bad_data("an aggregated query needs timerel and timeAt")
            methods = tuple(dict.fromkeys(aggr_methods))
        period = parse_duration(aggr_period) if aggr_period is not None else None
        if period is not None and methods is None:
            raise NgsiLdError.bad_data("aggrPeriodDuration needs aggrMethods")
        start, end = window if window is not None else (0, now_ms() + 1)
        return cls(start, end, last_n, attrs, methods, period, representation)


@dataclass(slots=True)
class TemporalSeries:
    """One entity's history: per attribute IRI, its instances oldest first (instance id, or
    None for a reading of smartpole's own, and the instance)."""

    entity: Entity
    instances: dict[str, list[tuple[int | None, Attribute]]] = field(default_factory=dict)
    aggregated: dict[str, Aggregated] = field(default_factory=dict)
    # instances already in their normalized JSON (the history keeps it), one array per
    # attribute: spliced, not rebuilt
    fragments: dict[str, orjson.Fragment] = field(default_factory=dict)


Aggregated = dict[str, list[tuple[Any, int, int]]]
"""Per method, ``(value, bucket start, bucket end)``."""


class OwnHistory(Protocol):
    """The readings of smartpole's own devices, as attribute instances (``ngsild.own``)."""

    def history(
        self, who: Principal, entities: Sequence[Entity], query: TemporalQuery
    ) -> dict[str, dict[str, list[Attribute]]]:
        """Per entity id and attribute IRI, the instances in the window, oldest first."""
        ...

    def aggregated(
        self, who: Principal, entities: Sequence[Entity], query: TemporalQuery
    ) -> dict[str, dict[str, Aggregated]]:
        """Per entity id and attribute IRI, the aggregations per bucket."""
        ...


def _bucket_of(ts: int, query: TemporalQuery) -> tuple[int, int]:
    if query.aggr_period is None:
        return query.start, query.end
    start = ts - ts % query.aggr_period
    return start, start + query.aggr_period


def aggregate(instances: Sequence[Attribute], query: TemporalQuery) -> Aggregated:
    """The asked aggregations of instances (numbers for the arithmetic ones), per bucket."""
    buckets: dict[tuple[int, int], list[Any]] = {}
    for item in instances:
        ts = item.observed_at if item.observed_at is not None else item.modified_at
        buckets.setdefault(_bucket_of(ts, query), []).append(item.value)
    out: Aggregated = {}
    for method in query.aggr_methods or ():
        rows: list[tuple[Any, int, int]] = []
        for (start, end), values in sorted(buckets.items()):
            numbers = [
                float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)
            ]
            rows.append((_apply(method, values, numbers), start, end))
        out[method] = rows
    return out


def _apply(method: str, values: list[Any], numbers: list[float]) -> Any:
    if method == "totalCount":
        return len(values)
    if method == "distinctCount":
        return len({repr(v) for v in values})
    if not numbers:
        return None
    if method == "sum":
        return sum(numbers)
    if method == "avg":
        return sum(numbers) / len(numbers)
    if method == "min":
        return min(numbers)
    if method == "max":
        return max(numbers)
    if method == "sumsq":
        return sum(n * n for n in numbers)
    mean = sum(numbers) / len(numbers)
    return math.sqrt(sum((n - mean) ** 2 for n in numbers) / len(numbers))  # stddev


def render_temporal(series: TemporalSeries, ctx: Context, representation: str) -> dict[str, Any]:
    """An entity's history in the caller's terms: ``normalized`` (each instance whole, with
    its ``instanceId``), ``temporalValues`` (``[value, time]`` pairs) or ``aggregatedValues``
    (per method, ``[value, start, end]``)."""
    entity = series.entity
    types = [ctx.compact(t) for t in entity.types]
    out: dict[str, Any] = {"id": entity.id, "type": types[0] if len(types) == 1 else types}
    if series.aggregated:
        for name, methods in series.aggregated.items():
            out[ctx.compact(name)] = {
                "type": "Property",
                **{m: [[v, iso(s), iso(e)] for v, s, e in rows] for m, rows in methods.items()},
            }
        return out
    for name, instances in series.instances.items():
        if not instances:
            continue
        kind = instances[-1][1].kind
        if representation == TEMPORAL_VALUES:
            out[ctx.compact(name)] = {
                "type": kind,
                "values": [[a.value, iso(_time_of(a))] for _, a in instances],
            }
            continue
        shown = []
        for instance_id, a in instances:
            item = _instance_item(a)
            for sub_name, sub in a.sub.items():
                item[ctx.compact(sub_name)] = render_attribute(sub, ctx, NORMALIZED, False)
            if instance_id is not None:
                item["instanceId"] = f"{INSTANCE_PREFIX}{instance_id}"
            shown.append(item)
        out[ctx.compact(name)] = shown
    for name, fragments in series.fragments.items():
        out[ctx.compact(name)] = fragments
    return out


def _instance_item(a: Attribute) -> dict[str, Any]:
    item: dict[str, Any] = {"type": a.kind, KINDS[a.kind]: a.value}
    item["observedAt"] = iso(_time_of(a))
    if a.unit_code is not None:
        item["unitCode"] = a.unit_code
    if a.dataset_id is not None:
        item["datasetId"] = a.dataset_id
    return item


def instance_json(a: Attribute) -> str | None:
    """An instance as the temporal API shows it (normalized, without its ``instanceId``), kept
    with the history so that a query splices it instead of rebuilding it; None when it has
    sub-attributes (their names depend on the caller's @context)."""
    if a.sub:
        return None
    return orjson.dumps(_instance_item(a)).decode()


def from_shown(shown: dict[str, Any]) -> Attribute:
    """An instance back from its shown form (:func:`instance_json`)."""
    kind = shown["type"]
    observed = parse_time(shown["observedAt"], "observedAt")
    return Attribute(
        kind,
        shown[KINDS[kind]],
        shown.get("datasetId"),
        observed,
        shown.get("unitCode"),
        {},
        observed,
        observed,
    )


def _time_of(attribute: Attribute) -> int:
    return attribute.observed_at if attribute.observed_at is not None else attribute.modified_at
