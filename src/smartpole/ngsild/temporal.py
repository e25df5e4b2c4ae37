"""The temporal evolution of entities (ETSI GS CIM 009, clauses 4.5.9 and 6.18-6.22).

smartpole's own devices answer from their readings (``readings``) and, for the aggregations
the store keeps (count, sum, avg, min, max), from its hourly rollups; the entities other systems
create answer from ``ngsi_history``, which every change writes. A window is ``timerel``
(``before``, ``after``, ``between``) with ``timeAt`` and ``endTimeAt``; ``lastN`` keeps the newest
instances; aggregations (``aggrMethods``) come per ``aggrPeriodDuration`` period (counted
from the window's start, else from the first instance), or over the whole window without one.
An answer holds at most a configured number of instances of an attribute: a longer history is
answered in part, paged by time (:func:`page_instances`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson

from smartpole.model.clock import now_ms
from smartpole.ngsild.context import Context
from smartpole.ngsild.entities import (
    KINDS,
    NULL,
    Attribute,
    Entity,
    iso,
    parse_time,
    render_attribute,
)
from smartpole.ngsild.errors import NgsiLdError
from smartpole.store.protocol import Aggregation

__all__ = [
    "AGGREGATIONS",
    "DELETED_AT",
    "MAX_AGGREGATED",
    "MAX_INSTANCES",
    "MAX_LAST_N",
    "OBSERVED_AT",
    "STORE_KEPT",
    "Aggregated",
    "InstanceRange",
    "TemporalQuery",
    "TemporalSeries",
    "aggregate",
    "deletion_json",
    "from_shown",
    "instance_json",
    "page_instances",
    "parse_duration",
    "parse_window",
    "render_temporal",
    "time_of",
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
MAX_INSTANCES = 1000  # per attribute and entity in one answer, unless configured otherwise
MAX_AGGREGATED = 100 * MAX_INSTANCES  # instances of an attribute an aggregation reads, at most
MAX_LAST_N = 1_000_000  # more than an answer holds: the answer is partial (206), paged by time
INSTANCE_PREFIX = "urn:ngsi-ld:attribute:instance:"
NORMALIZED = "normalized"
OBSERVED_AT = "observedAt"
DELETED_AT = "deletedAt"
TEMPORAL_VALUES = "temporalValues"
AGGREGATED_VALUES = "aggregatedValues"
_DURATION = re.compile(
    r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_T = TypeVar("_T")
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
    timerel: str | None = None
    timeproperty: str = OBSERVED_AT
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
        timerel: str | None = None,
        timeproperty: str = OBSERVED_AT,
    ) -> TemporalQuery:
        """Checked parameters (``window`` from :func:`parse_window` of ``timerel``; the times
        of ``timeproperty``: ``observedAt``, or ``deletedAt`` for the deletions)."""
        if timeproperty not in (OBSERVED_AT, DELETED_AT):
            raise NgsiLdError.bad_data(
                f"timeproperty {timeproperty!r}: the history is kept by observedAt and deletedAt"
            )
        if last_n is not None and not 1 <= last_n <= MAX_LAST_N:
            raise NgsiLdError.bad_data(f"lastN must be between 1 and {MAX_LAST_N}")
        methods = None
        if aggr_methods is not None:
            unknown = [m for m in aggr_methods if m not in AGGREGATIONS]
            if unknown or not aggr_methods:
                raise NgsiLdError.bad_data(f"aggrMethods are some of {', '.join(AGGREGATIONS)}")
            methods = tuple(dict.fromkeys(aggr_methods))
        period = parse_duration(aggr_period) if aggr_period is not None else None
        if period is not None and methods is None:
            raise NgsiLdError.bad_data("aggrPeriodDuration needs aggrMethods")
        start, end = window if window is not None else (0, now_ms() + 1)
        timerel = timerel if window is not None else None
        return cls(
            start, end, last_n, timerel, timeproperty, attrs, methods, period, representation
        )

    @property
    def origin(self) -> int | None:
        """Where aggregation periods are counted from: the window's start when the query
        gives one (``after``, ``between``), else None (from the first instance)."""
        return self.start if self.timerel in ("after", "between") else None

    @property
    def deletions(self) -> bool:
        """Whether the query asks for the deletions (``timeproperty=deletedAt``)."""
        return self.timeproperty == DELETED_AT

    def fetch_size(self, limit: int) -> int:
        """How many instances of an attribute to read for an answer of at most ``limit`` of
        them: one more than it holds tells that the answer is partial."""
        return self.last_n if self.last_n is not None and self.last_n <= limit else limit + 1


@dataclass(frozen=True, slots=True)
class InstanceRange:
    """The time range a partial temporal answer covers (clause 6.3.10): from ``first`` to
    ``last`` (newest to oldest for a ``lastN`` query), of ``size`` instances asked (``lastN``;
    None: not known)."""

    first: int
    last: int
    size: int | None

    def header(self) -> str:
        """The ``Content-Range`` header of a 206 answer."""
        size = "*" if self.size is None else str(self.size)
        return f"date-time {iso(self.first)}-{iso(self.last)}/{size}"


def page_instances(
    histories: Sequence[list[_T]], time_of: Callable[[_T], int], query: TemporalQuery, limit: int
) -> InstanceRange | None:
    """Cut every attribute's instances (each list oldest first, read with
    :meth:`TemporalQuery.fetch_size`) to one time range that no list holds more than ``limit``
    of, in place; the range, or None when every list was whole.

    Oldest first (no ``lastN``), the range ends where the earliest long list is cut, so the
    next page, ``timerel=after`` the range's end, misses nothing; with ``lastN`` it runs from
    the newest back to the latest such cut, and the next page is ``timerel=before`` its end.
    Every attribute is cut at the same time: an answer never shows one attribute further on
    than another. A cut never splits instances of the same time: they go to the next page
    together (only more than ``limit`` of one attribute at one instant are cut among)."""
    long = [items for items in histories if len(items) > limit]
    if not long:
        return None
    newest_first = query.last_n is not None
    if newest_first:
        # the oldest instance kept, or just after it when the next older has the same time
        cut = max(_newest_cut(items, time_of, limit, split=False) for items in long)
        if all(time_of(items[-1]) < cut for items in histories if items):  # one instant
            cut = max(_newest_cut(items, time_of, limit, split=True) for items in long)
        for items in histories:
            items[:] = [x for x in items[-limit:] if time_of(x) >= cut]
    else:
        cut = min(_oldest_cut(items, time_of, limit, split=False) for items in long)
        if all(time_of(items[0]) > cut for items in histories if items):  # one instant
            cut = min(_oldest_cut(items, time_of, limit, split=True) for items in long)
        for items in histories:
            items[:] = [x for x in items[:limit] if time_of(x) <= cut]
    times = [time_of(x) for items in histories for x in items]
    if newest_first:
        bounded = query.timerel in ("before", "between")
        return InstanceRange(query.end if bounded else max(times), cut, query.last_n)
    bounded = query.timerel in ("after", "between")
    return InstanceRange(query.start if bounded else min(times), cut, None)


def _oldest_cut(items: Sequence[_T], time_of: Callable[[_T], int], limit: int, split: bool) -> int:
    """The last time a page of ``items`` (oldest first) may hold: that of its ``limit``-th
    instance, or a millisecond before it when the next instance has the same time."""
    last = time_of(items[limit - 1])
    return last - 1 if not split and time_of(items[limit]) == last else last


def _newest_cut(items: Sequence[_T], time_of: Callable[[_T], int], limit: int, split: bool) -> int:
    """The first time a newest-first page of ``items`` may hold: that of the ``limit``-th
    newest instance, or a millisecond after it when the next older has the same time."""
    first = time_of(items[-limit])
    return first + 1 if not split and time_of(items[-limit - 1]) == first else first


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
    # attributes a partial answer has no instance of (cut away: on a later page), by kind
    emptied: dict[str, str] = field(default_factory=dict)


Aggregated = dict[str, list[tuple[Any, int, int]]]
"""Per method, ``(value, bucket start, bucket end)``."""


def aggregate(instances: Sequence[Attribute], query: TemporalQuery) -> Aggregated:
    """The asked aggregations of instances (numbers for the arithmetic ones), per bucket:
    ``aggrPeriodDuration`` periods counted from the window's start (``timeAt`` of ``after``
    and ``between``), else from the first instance; without a period, the whole window."""
    buckets: dict[tuple[int, int], list[Any]] = {}
    if not instances:
        return {method: [] for method in query.aggr_methods or ()}
    origin = query.origin
    if origin is None:
        origin = min(time_of(item) for item in instances)
    period = query.aggr_period
    for item in instances:
        if period is None:
            bucket = (origin, query.end)
        else:
            start = origin + (time_of(item) - origin) // period * period
            bucket = (start, start + period)
        buckets.setdefault(bucket, []).append(item.value)
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
                simplified_member(kind): [[_simple(a), iso(time_of(a))] for _, a in instances],
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
    for name, kind in series.emptied.items():
        simple = representation == TEMPORAL_VALUES
        empty: Any = {"type": kind, simplified_member(kind): []} if simple else []
        out[ctx.compact(name)] = empty
    return out


def simplified_member(kind: str) -> str:
    """The member of an attribute's ``temporalValues`` (clause 4.5.9): ``values`` of a
    Property, ``objects`` of a Relationship, ``languageMaps``, ``vocabs``, ``jsons``…"""
    return KINDS[kind] + "s"


_WRAPPED = frozenset({"LanguageProperty", "JsonProperty", "VocabProperty"})


def _simple(a: Attribute) -> Any:
    """An instance's value in ``temporalValues``: a LanguageProperty's, JsonProperty's or
    VocabProperty's in an object naming its member (``{"languageMap": {…}}``), as the
    conformance suite reads clause 4.5.9; the others' as they are."""
    return {KINDS[a.kind]: a.value} if a.kind in _WRAPPED else a.value


def _instance_item(a: Attribute) -> dict[str, Any]:
    item: dict[str, Any] = {"type": a.kind, KINDS[a.kind]: a.value}
    item["observedAt"] = iso(time_of(a))
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


def deletion_json(kind: str, dataset_id: str | None, at: int) -> str:
    """The instance recording the deletion of an attribute's instance, as the temporal API
    shows it: NGSI-LD Null as its value, ``deletedAt`` its time (clause 4.5.9)."""
    null: Any = NULL
    if kind == "LanguageProperty":
        null = {"@none": NULL}
    elif kind in ("ListProperty", "ListRelationship"):
        null = [NULL]
    item: dict[str, Any] = {"type": kind, KINDS[kind]: null}
    if dataset_id is not None:
        item["datasetId"] = dataset_id
    item["deletedAt"] = iso(at)
    return orjson.dumps(item).decode()


def from_shown(shown: dict[str, Any]) -> Attribute:
    """An instance back from its shown form (:func:`instance_json`, :func:`deletion_json`)."""
    kind = shown["type"]
    if "deletedAt" in shown:
        observed = parse_time(shown["deletedAt"], "deletedAt")
    else:
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


def time_of(attribute: Attribute) -> int:
    """When an instance was observed (when it was written, for one that does not say)."""
    return attribute.observed_at if attribute.observed_at is not None else attribute.modified_at
