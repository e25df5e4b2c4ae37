"""Lamp energy by hour, day and month in the tenant's time zone, and savings against full power.

**Counters** (telemetry ``energy``, kWh, cumulative). A lamp's readings are walked in time
order keeping the counter's last known level:

- the counter at or above the level: the increase counts, in the bucket where it was seen
  (after a gap, everything since the last reading lands in the first bucket with a reading);
- the counter below the level (a new meter, a firmware reset): only the increase after the
  drop counts; what was used between the last reading before the drop and the first after is
  unknown and not counted.

Nothing is counted twice and nothing is negative. The walk is not done reading by reading: the
counter is read at each bucket boundary (its last reading before it: one index seek), and a
bucket's energy is the difference. A bucket read raw instead: the lamp's first, one where the
counter ends lower than it began, and one of a *young* counter (under ``YOUNG`` buckets' worth
of its fastest rise, so it could have reset and climbed back past its old value inside the
bucket) whose lowest hourly rollup value is under the level.

**Power** (``power``, W) for a lamp with no counter: trapezoids between readings, nothing
assumed across a gap longer than ``max_gap_ms``; over spans longer than ``raw_power_ms``, the
hourly mean power x the hour's time in the window (an approximation: an hour with a few
readings counts as a whole one, a silent hour as none).

**Savings**: the baseline is the same lamps at rated power from dusk to dawn (``night``);
cost with a time-of-use tariff (the actual energy is priced at the mean price of the lamp's
night, the baseline exactly); CO2 with a :class:`GridFactor`.
"""

from __future__ import annotations

import bisect
import csv
import functools
import io
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import Literal

from smartpole.lighting.astro import NightKind, night_of, position_key
from smartpole.lighting.tariffs import PricedTime, TariffClock
from smartpole.model.energy import GridFactor, LampPlace, Level, Tariff
from smartpole.store.buckets import DAY_MS, HOUR_MS, Buckets
from smartpole.store.marks import Mark
from smartpole.store.series import TimeSeries

__all__ = [
    "HEADER",
    "By",
    "Energy",
    "Metered",
    "Night",
    "Savings",
    "Span",
    "astral_night",
    "bounds",
    "counter_energy",
    "energy_csv",
    "group_energy",
    "group_of",
    "label_text",
    "metered",
    "monthly_report",
    "pieces",
    "power_energy",
    "read_energy",
    "savings",
]

By = Literal["hour", "day", "month"]
Energy = dict[int, dict[int, float]]  # lamp -> bucket start (ms) -> kWh
Night = Callable[[float, float, tzinfo, date], tuple[int, int] | None]
WH_MS = 3_600_000_000.0  # W x ms in one kWh
RAW_LIMIT = 10_000_000
COUNTER = "energy"  # the cumulative kWh key of model/catalog.py
# a counter under this many buckets' worth of its fastest rise may have reset and climbed back
# past its old value inside one bucket: such buckets are read raw
YOUNG = 3.0


@dataclass(frozen=True, slots=True)
class Span:
    """A counter's lowest and highest value in one bucket (a reading: both the same)."""

    bucket: int
    low: float
    high: float


def counter_energy(
    spans: Iterable[Span], level: float | None = None
) -> tuple[dict[int, float], float | None]:
    """kWh per bucket of one counter's spans (oldest first) after ``level``, and the new level
    (see the module for the rule)."""
    out: dict[int, float] = defaultdict(float)
    for s in spans:
        if level is None or s.high < level:
            used = s.high - s.low  # the first span, or one after a drop: only its own rise
        else:
            used = s.high - level
        out[s.bucket] += used
        level = s.high
    return dict(out), level


def bounds(start: int, end: int, zone: tzinfo, by: By) -> list[int]:
    """Bucket boundaries covering ``[start, end)``: clock hours, local midnights, or local
    midnights of each month's first (from the one at or before start to one at or after end)."""
    if by == "hour":
        first = start - start % HOUR_MS
        return [first + i * HOUR_MS for i in range(-(-(end - first) // HOUR_MS) + 1)]
    days = Buckets.of(start, end, DAY_MS, zone)
    out = [r.first + r.step * i for r in days.runs for i in range(r.count)]
    out.append(days.runs[-1].end)
    if by == "day":
        return out
    month = datetime.fromtimestamp(start / 1000, zone).date().replace(day=1)
    months = [_midnight(month, zone)]
    while months[-1] < end:
        month = (month + timedelta(days=32)).replace(day=1)
        months.append(_midnight(month, zone))
    return months


def _midnight(day: date, zone: tzinfo) -> int:
    return round(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp() * 1000)


def pieces(edges: Sequence[int], start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """``[start, end)`` cut at ``edges`` (as from :func:`bounds`), within them: ``(bucket,
    piece start, piece end)``. The one walk energy, power and baseline all split time with."""
    a, b = max(start, edges[0]), min(end, edges[-1])
    i = bisect.bisect_right(edges, a) - 1
    while a < b:
        stop = min(b, edges[i + 1])
        yield edges[i], a, stop
        a, i = stop, i + 1


def power_energy(
    points: Sequence[tuple[int, float]], edges: Sequence[int], max_gap_ms: int
) -> dict[int, float]:
    """kWh per bucket (``edges`` as from :func:`bounds`) from power readings (ms, W) by
    trapezoids; a gap longer than ``max_gap_ms`` adds nothing."""
    out: dict[int, float] = defaultdict(float)
    for (t0, p0), (t1, p1) in itertools.pairwise(points):
        if t1 <= t0 or t1 - t0 > max_gap_ms:
            continue
        for bucket, a, b in pieces(edges, t0, t1):
            pa = p0 + (p1 - p0) * (a - t0) / (t1 - t0)
            pb = p0 + (p1 - p0) * (b - t0) / (t1 - t0)
            out[bucket] += (pa + pb) / 2 * (b - a) / WH_MS
    return dict(out)


@dataclass(frozen=True, slots=True)
class Metered:
    """kWh per lamp and bucket, and the time each lamp was metered in the window: from its
    first reading to its last, to the hour (outward), so that a lamp installed, or a platform
    started, mid-month is held against the nights it was metered only."""

    energy: Energy
    spans: Mapping[int, tuple[int, int]]


def read_energy(
    series: TimeSeries,
    lamps: Sequence[int],
    start: int,
    end: int,
    zone: tzinfo,
    by: By,
    *,
    lookback_ms: int = 7 * DAY_MS,
    max_gap_ms: int = 15 * 60_000,
    raw_power_ms: int = 7 * DAY_MS,
) -> Energy:
    """kWh per lamp and bucket in ``[start, end)`` (:func:`metered`'s energy)."""
    return metered(
        series,
        lamps,
        start,
        end,
        zone,
        by,
        lookback_ms=lookback_ms,
        max_gap_ms=max_gap_ms,
        raw_power_ms=raw_power_ms,
    ).energy


def _hour_span(first: int, last: int) -> tuple[int, int]:
    return first - first % HOUR_MS, last - last % HOUR_MS + HOUR_MS


def metered(
    series: TimeSeries,
    lamps: Sequence[int],
    start: int,
    end: int,
    zone: tzinfo,
    by: By,
    *,
    lookback_ms: int = 7 * DAY_MS,
    max_gap_ms: int = 15 * 60_000,
    raw_power_ms: int = 7 * DAY_MS,
) -> Metered:
    """kWh per lamp and bucket in ``[start, end)`` (see the module for the rules), and the
    span each lamp was metered.

    A counter is read at the bucket boundaries (its last reading before each: one index seek
    per lamp and boundary, the first one looking back ``lookback_ms`` before ``start``); a
    bucket where it ends lower than it began, or the lamp's first, is re-read raw. Lamps
    without a counter integrate ``power``: raw over spans up to ``raw_power_ms``, from the
    hourly means beyond (an approximation, see the module)."""
    edges = bounds(start, end, zone, by)
    marks = [start, *edges[1:-1], end]
    found = series.values_before(lamps, COUNTER, marks, start - lookback_ms)
    walks = {lamp: _walk(values, marks) for lamp, values in found.items()}
    # a young counter's buckets are checked against their lowest value: one query for all
    young = [(lamp, s[0]) for lamp, walk in walks.items() for s in walk if s[3]]
    lows = series.lowest(COUNTER, [(lamp, marks[i], marks[i + 1]) for lamp, i in young])
    dips = {
        (lamp, i)
        for (lamp, i), low in zip(young, lows, strict=True)
        if low is not None and low < _level(walks[lamp], i)
    }
    out: Energy = {}
    spans: dict[int, tuple[int, int]] = {}
    for lamp, walk in walks.items():
        out[lamp], first = _counter_buckets(series, lamp, walk, dips, marks, edges)
        if walk:
            spans[lamp] = _hour_span(first, walk[-1][2][0])
    rest = [lamp for lamp in lamps if lamp not in found]
    power, seen = _power(series, rest, start, end, zone, edges, max_gap_ms, raw_power_ms)
    out.update(power)
    spans.update(seen)
    return Metered(out, spans)


# one measured bucket of a counter: its index, the last readings before and at its end, and
# whether the counter is young enough to have reset and climbed back inside it
_Step = tuple[int, Mark, tuple[int, float], bool]


def _walk(values: Sequence[Mark], marks: Sequence[int]) -> list[_Step]:
    """The buckets where a counter has a reading, from its last reading before each boundary."""
    steps: list[_Step] = []
    rate = 0.0  # the fastest it rose: a reset it could climb back from within a bucket
    for i in range(len(values) - 1):
        prev, cur = values[i], values[i + 1]
        if cur is None or cur[0] < marks[i]:
            continue  # no reading in this bucket: nothing measured, not even a 0
        if prev is not None and cur[1] >= prev[1]:
            rate = max(rate, (cur[1] - prev[1]) / (cur[0] - prev[0]))
        steps.append((i, prev, cur, False))
    return [
        (i, prev, cur, cur[1] >= prev[1] and prev[1] <= YOUNG * rate * (marks[i + 1] - marks[i]))
        if prev is not None
        else (i, prev, cur, False)
        for i, prev, cur, _ in steps
    ]


def _level(walk: Sequence[_Step], i: int) -> float:
    """The counter's level at the start of bucket ``i`` of ``walk``."""
    prev = next(s[1] for s in walk if s[0] == i)
    return prev[1] if prev is not None else float("inf")


def _counter_buckets(
    series: TimeSeries,
    lamp: int,
    walk: Sequence[_Step],
    dips: set[tuple[int, int]],
    marks: Sequence[int],
    edges: Sequence[int],
) -> tuple[dict[int, float], int]:
    """kWh per bucket of one counter, and when it was first read in the window; the first
    bucket and those with a drop are read raw."""
    used: dict[int, float] = {}
    first = walk[0][2][0] if walk else marks[0]
    if walk and walk[0][1] is not None:
        first = marks[walk[0][0]]  # read before the bucket: metered from its start
    for i, prev, cur, _ in walk:
        if prev is not None and cur[1] >= prev[1] and (lamp, i) not in dips:
            used[edges[i]] = cur[1] - prev[1]
            continue
        # the lamp's first bucket, or the counter dropped in it: its raw readings say where
        raw = series.history(lamp, [COUNTER], marks[i], marks[i + 1], RAW_LIMIT)[COUNTER]
        numbers = [(t, float(v)) for t, v in raw if isinstance(v, int | float)]
        spans = [Span(edges[i], v, v) for _, v in numbers]
        part, _ = counter_energy(spans, None if prev is None else prev[1])
        used[edges[i]] = part.get(edges[i], 0.0)
        if prev is None and numbers:
            first = numbers[0][0]
    return used, first


def _power(
    series: TimeSeries,
    lamps: Sequence[int],
    start: int,
    end: int,
    zone: tzinfo,
    edges: Sequence[int],
    max_gap_ms: int,
    raw_power_ms: int,
) -> tuple[Energy, dict[int, tuple[int, int]]]:
    """kWh per lamp and bucket from ``power``, and each lamp's metered span: trapezoids over
    short spans, hourly means x the hour's time in the window over long ones (a year of raw
    readings is too many to walk)."""
    out: Energy = {}
    spans: dict[int, tuple[int, int]] = {}
    if not lamps:
        return out, spans
    if end - start > raw_power_ms:
        means = series.aggregate(lamps, ["power"], start, end, HOUR_MS, "avg", zone=zone)
        for lamp, keys in means.items():
            hours = {
                h: w * (min(h + HOUR_MS, end) - max(h, start)) / WH_MS for h, w in keys["power"]
            }
            out[lamp] = _fold(hours, edges)
            if keys["power"]:
                spans[lamp] = _hour_span(keys["power"][0][0], keys["power"][-1][0])
        return out, spans
    for lamp in lamps:
        points = series.history(lamp, ["power"], start - max_gap_ms, end, RAW_LIMIT)["power"]
        watts = [(t, float(v)) for t, v in points if isinstance(v, int | float)]
        if watts:
            out[lamp] = _fold(power_energy(watts, edges, max_gap_ms), edges)
            spans[lamp] = _hour_span(max(watts[0][0], start), watts[-1][0])
    return out, spans


def _fold(per_bucket: Mapping[int, float], edges: Sequence[int]) -> dict[int, float]:
    """Buckets (hours or days) summed into the buckets starting at ``edges``."""
    out: dict[int, float] = defaultdict(float)
    for b, kwh in per_bucket.items():
        out[edges[max(0, bisect.bisect_right(edges, b) - 1)]] += kwh
    return dict(out)


def group_of(place: LampPlace, level: Level) -> str:
    """The name of the group a lamp belongs to at ``level``."""
    if level == "lamp":
        return str(place.device_id)
    if level == "pole":
        return str(place.pole_id)
    if level == "road":
        return f"{place.district}/{place.road}"
    if level == "district":
        return place.district
    return "tenant"


def group_energy(
    energy: Energy, places: Iterable[LampPlace], level: Level
) -> dict[str, dict[int, float]]:
    """kWh per group (lamp, pole, ``district/road``, district or the tenant) and bucket."""
    out: dict[str, dict[int, float]] = defaultdict(lambda: defaultdict(float))
    for place in places:
        for b, kwh in energy.get(place.device_id, {}).items():
            out[group_of(place, level)][b] += kwh
    return {g: dict(v) for g, v in out.items()}


def astral_night(lat: float, lon: float, zone: tzinfo, day: date) -> tuple[int, int] | None:
    """Sunset of ``day`` to sunrise of the next at (lat, lon), ms, as the lighting programs see
    the night (``lighting.astro.night_of``: a polar night runs from solar noon to solar noon);
    None under the midnight sun (no night)."""
    night = night_of(*position_key(lat, lon), str(zone), day)
    if night.kind is NightKind.EMPTY:
        return None
    return night.sunset, night.sunrise


@dataclass(frozen=True, slots=True)
class Savings:
    """One group's energy in one bucket against its baseline (kWh, cost, kg CO2)."""

    group: str
    bucket: int
    actual_kwh: float
    baseline_kwh: float
    actual_cost: float
    baseline_cost: float
    saved_co2_kg: float

    @property
    def saved_kwh(self) -> float:
        """Baseline minus actual."""
        return self.baseline_kwh - self.actual_kwh

    @property
    def saved_pct(self) -> float:
        """Saved energy as a percentage of the baseline (0 without a baseline)."""
        return 100 * self.saved_kwh / self.baseline_kwh if self.baseline_kwh else 0.0

    @property
    def saved_cost(self) -> float:
        """Baseline cost minus actual cost."""
        return self.baseline_cost - self.actual_cost


@functools.lru_cache(maxsize=64)
def _clock(tariff: Tariff, zone: tzinfo) -> TariffClock:
    """One clock per tariff and zone: its running totals serve every report."""
    return TariffClock(tariff, zone)


@functools.lru_cache(maxsize=4096)
def _night_time(
    lat: float,
    lon: float,
    window: tuple[int, int],
    zone: tzinfo,
    by: By,
    tariff: Tariff,
    night: Night,
    lo: int,
    hi: int,
) -> Mapping[int, tuple[int, float]]:
    """Night time (dusk to dawn) inside ``[lo, hi)`` per bucket of ``window``: ms and ms x
    price (cached per night-cache cell and span: a city's year is a few dozen cells x 366
    nights; metered spans are whole hours, so lamps started together share them)."""
    edges, clock = bounds(*window, zone, by), _clock(tariff, zone)
    out: dict[int, PricedTime] = defaultdict(PricedTime)
    day = datetime.fromtimestamp(lo / 1000, zone).date() - timedelta(days=1)
    last = datetime.fromtimestamp(hi / 1000, zone).date()
    while day <= last:
        dark = night(lat, lon, zone, day)
        day += timedelta(days=1)
        if dark is None:
            continue
        for bucket, a, b in pieces(edges, max(dark[0], lo), min(dark[1], hi)):
            out[bucket].add(clock.split(a, b))
    return MappingProxyType({b: (t.total_ms, t.priced) for b, t in out.items()})


def savings(
    actual: Energy,
    places: Sequence[LampPlace],
    start: int,
    end: int,
    zone: tzinfo,
    by: By,
    tariff: Tariff,
    grid: GridFactor,
    level: Level,
    night: Night = astral_night,
    spans: Mapping[int, tuple[int, int]] | None = None,
) -> list[Savings]:
    """Actual energy against the baseline (rated power dusk to dawn) per group and bucket.

    A lamp counts, baseline and actual alike, only in the buckets where ``actual`` has a value
    for it (0 included), so a lamp that reported nothing is not counted as a saving; with
    ``spans`` (:class:`Metered`), its baseline covers only the time it was metered."""
    edges = bounds(start, end, zone, by)
    clock = _clock(tariff, zone)
    daylight: dict[int, float] = {}
    rows: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0] * 4)
    for place in places:
        # lamps in one cell of the nights' cache (0.05 degree: sun times within 15 s) share them
        lo, hi = start, end
        if spans is not None and place.device_id in spans:
            first, last = spans[place.device_id]
            lo, hi = max(start, first), min(end, last)
        cell = position_key(place.lat, place.lon)
        window = (start, end)
        dark = _night_time(*cell, window, zone, by, tariff, night, lo, hi) if lo < hi else {}
        used = actual.get(place.device_id, {})
        group = group_of(place, level)
        for i, b in enumerate(edges[:-1]):
            if b not in used:
                continue  # no measurement: an offline lamp must not look like a saving
            ms, priced = dark.get(b, (0, 0.0))
            kwh = used[b]
            row = rows[group, b]
            row[0] += kwh
            if ms:
                row[2] += kwh * priced / ms
            elif kwh:  # burning outside the night: priced at the bucket's own mean price
                if b not in daylight:
                    daylight[b] = clock.split(max(b, start), min(edges[i + 1], end)).price()
                row[2] += kwh * daylight[b]
            row[1] += place.rated_w * ms / WH_MS
            row[3] += place.rated_w * priced / WH_MS
    return [
        Savings(g, b, a, base, cost, base_cost, (base - a) * grid.kg_per_kwh)
        for (g, b), (a, base, cost, base_cost) in sorted(rows.items())
    ]


def label_text(bucket: int, zone: tzinfo, by: By) -> str:
    """A bucket's start as the report prints it: ``2026-03``, ``2026-03-29``, or the local hour."""
    local = datetime.fromtimestamp(bucket / 1000, zone)
    if by == "month":
        return local.strftime("%Y-%m")
    if by == "day":
        return local.date().isoformat()
    return local.isoformat(timespec="minutes")


HEADER = (
    "group",
    "period",
    "actual_kwh",
    "baseline_kwh",
    "saved_kwh",
    "saved_pct",
    "actual_cost",
    "baseline_cost",
    "saved_cost",
    "saved_co2_kg",
)


def energy_csv(rows: Iterable[Savings], zone: tzinfo, by: By) -> str:
    """The rows as CSV text, one line per group and period."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(HEADER)
    for r in rows:
        out.writerow(
            (
                r.group,
                label_text(r.bucket, zone, by),
                f"{r.actual_kwh:.3f}",
                f"{r.baseline_kwh:.3f}",
                f"{r.saved_kwh:.3f}",
                f"{r.saved_pct:.1f}",
                f"{r.actual_cost:.2f}",
                f"{r.baseline_cost:.2f}",
                f"{r.saved_cost:.2f}",
                f"{r.saved_co2_kg:.1f}",
            )
        )
    return buf.getvalue()


def monthly_report(
    actual: Energy,
    places: Sequence[LampPlace],
    month: date,
    zone: tzinfo,
    tariff: Tariff,
    grid: GridFactor,
    night: Night = astral_night,
    spans: Mapping[int, tuple[int, int]] | None = None,
) -> str:
    """A tenant's month as CSV: a row per district, per road, and the tenant's total."""
    start = _midnight(month.replace(day=1), zone)
    end = _midnight((month.replace(day=1) + timedelta(days=32)).replace(day=1), zone)
    rows: list[Savings] = []
    for level in ("district", "road", "tenant"):
        rows += savings(
            actual, places, start, end, zone, "month", tariff, grid, level, night, spans
        )
    return energy_csv(rows, zone, "month")
