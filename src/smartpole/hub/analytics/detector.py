"""Online anomaly detection: a seasonal baseline per (device, key), learned from every reading.

Each watched series keeps 24 hour-of-day slots. A slot holds an exponentially weighted mean of
the readings in that hour of the day, updated with Finch's incremental formula — the one
``river.stats.EWMean`` implements, so the baseline of one slot equals river's (a test checks
it) — and an exponentially weighted mean of the squared residuals, the scale. The expected value
at a moment is interpolated between the two nearest slot means, so a diurnal curve is followed
within the hour. A reading's score is ``|value - expected| / sqrt(scale + floor²)``, a z-score
against the series' own seasonal behaviour; ``floor`` is a per-key noise level below which
differences do not matter (0.5 dB, 1 µg/m³, ...).

Why not one ``river`` object per slot: two river statistics per slot take about 10 KB per series
(measured with tracemalloc), while 72 float32 values take 288 bytes; a city has 10⁵ series.

A series raises an ``anomaly`` alarm on its device after ``consecutive`` readings in a row score
above ``threshold``, and clears it after as many readings back under ``threshold / 2``. A device
has one ``anomaly`` alarm (alarms are one per originator and type): it names the newest key that
tripped and lists every key anomalous now, and clears when the last one is back to normal.
An anomalous reading moves its slot's mean at a quarter of the usual rate (``adapt``) and
leaves the scale alone, so a fault does not become the baseline in a few readings, while a
lasting change of level is still learned: in about 170 readings of each hour of the day.

Memory is bounded: at most ``max_series`` series, the least recently updated evicted first
(about ``SERIES_BYTES`` each). The baselines dump to compact bytes (:meth:`Detector.dump`),
which the service saves every few minutes and at stop, so a restart does not relearn from zero.

Pure logic, no I/O: the service (``anomaly.py``) runs it in a thread of the platform or in a
process of its own (``anomaly_worker.py``).
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from smartpole.model.columns import Sample
from smartpole.model.types import DeviceKind

__all__ = [
    "SERIES_BYTES",
    "WATCHED",
    "AnomalyEvent",
    "Detector",
    "ew_update",
    "floor_for",
    "score",
]

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
SLOTS = 24
MAGIC = b"SPAD2"
MAD_TO_SIGMA = 1.25  # mean absolute deviation to standard deviation, for normal noise
SERIES_BYTES = 700  # measured (tracemalloc): slots, bookkeeping and the LRU entry

# Watched keys per kind, each with its noise floor (in the key's unit): cumulative counters,
# angles and bursty keys (rain, illuminance) are left out; a seasonal z-score fits them badly.
WATCHED: dict[DeviceKind, dict[str, float]] = {
    DeviceKind.AIR: {
        "pm25": 1.0,
        "pm10": 2.0,
        "no2": 2.0,
        "o3": 2.0,
        "co": 0.05,
        "so2": 1.0,
        "aqi": 2.0,
    },
    DeviceKind.NOISE: {"laeq": 0.5, "lamax": 1.0},
    DeviceKind.WEATHER: {"temperature": 0.3, "humidity": 1.0, "pressure": 0.5, "wind_speed": 0.3},
    DeviceKind.LAMP: {"power": 2.0},
    DeviceKind.GATEWAY: {"power": 5.0, "temperature": 0.5},
    DeviceKind.METER: {"power": 5.0},
}
PORT_POWER = re.compile(r"port\d{1,3}_power")  # a gateway's per-port meters (W)
PORT_POWER_FLOOR = 2.0


def floor_for(kind: DeviceKind, key: str) -> float | None:
    """The noise floor of a watched key of a kind; None when the key is not watched."""
    floor = WATCHED.get(kind, {}).get(key)
    if floor is None and kind is DeviceKind.GATEWAY and PORT_POWER.fullmatch(key):
        return PORT_POWER_FLOOR
    return floor


def ew_update(mean: float, n: float, x: float, alpha: float) -> float:
    """One step of the exponentially weighted mean (``river.stats.EWMean``'s formula).

    ``n`` values were learned before; the first ``1/alpha`` are averaged plainly (weight
    ``1/(n+1)``) so that a new series is not dominated by its first readings.
    """
    a = max(alpha, 1.0 / (n + 1.0))
    return mean + a * (x - mean)


@dataclass(frozen=True, slots=True)
class AnomalyEvent:
    """A series turning anomalous (``raised``) or back to normal (``cleared``)."""

    change: str  # "raised" | "cleared"
    device_id: int
    key: str
    ts: int
    value: float
    expected: float
    score: float


class _Series:
    """The baseline of one series: per slot (count, mean, mean absolute residual)."""

    __slots__ = ("calm", "dt", "first_ts", "flagged", "last_ts", "slots", "streak")

    def __init__(self, first_ts: int) -> None:
        self.slots = array("f", bytes(4 * 3 * SLOTS))
        self.first_ts = self.last_ts = first_ts
        self.dt = 0.0  # the series' usual interval between readings (ms), smoothed
        self.streak = 0
        self.calm = 0
        self.flagged = False


class Detector:
    """Seasonal baselines and scores for many series; pure logic, no I/O, not thread-safe.

    ``day_weight`` is how far one day's readings of an hour move that hour's slot (0.2: the
    baseline remembers about the last five days); it is spread over the readings of the hour,
    whatever the series' reporting interval. ``warmup_ms`` is how long a series learns before
    it is scored: each hour of the day must have been seen more than once.
    """

    def __init__(
        self,
        *,
        threshold: float = 8.0,
        consecutive: int = 3,
        day_weight: float = 0.2,
        warmup_ms: int = 2 * DAY_MS,
        max_series: int = 100_000,
        min_slot_count: int = 3,
        adapt: float = 0.25,
    ) -> None:
        self.threshold = threshold
        self.consecutive = consecutive
        self.day_weight = day_weight
        self.warmup_ms = warmup_ms
        self.max_series = max_series
        self.min_slot_count = min_slot_count
        self.adapt = adapt
        self.series: OrderedDict[tuple[int, str], _Series] = OrderedDict()
        self.scored = 0
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.series)

    def expected(self, s: _Series, ts: int) -> tuple[float, float] | None:
        """The value expected at ``ts`` and the typical deviation; None while learning.

        The mean is interpolated between the two nearest slot centres (a diurnal curve is
        followed within the hour); the deviation is the reading's own slot's, the one its
        residuals are learned into.
        """
        pos = (ts % DAY_MS) / HOUR_MS - 0.5  # slot centres are at half past each hour
        lo = math.floor(pos)
        w = pos - lo
        i0, i1 = lo % SLOTS, (lo + 1) % SLOTS
        own = int((ts % DAY_MS) // HOUR_MS)
        v = s.slots
        if v[3 * own] < self.min_slot_count:
            return None
        if v[3 * i0] < self.min_slot_count:
            w = 1.0
        elif v[3 * i1] < self.min_slot_count:
            w = 0.0
        mean = (1 - w) * v[3 * i0 + 1] + w * v[3 * i1 + 1]
        return mean, MAD_TO_SIGMA * v[3 * own + 2]

    def _z(self, exp: tuple[float, float], value: float, floor: float) -> float:
        return abs(value - exp[0]) / math.sqrt(exp[1] * exp[1] + floor * floor)

    def score(self, device_id: int, key: str, ts: int, value: float, floor: float) -> float | None:
        """Score a reading against its series without learning it (None while learning)."""
        s = self.series.get((device_id, key))
        if s is None or ts - s.first_ts < self.warmup_ms:
            return None
        exp = self.expected(s, ts)
        return None if exp is None else self._z(exp, value, floor)

    def update(
        self, device_id: int, key: str, ts: int, value: float, floor: float
    ) -> AnomalyEvent | None:
        """Score a reading, learn it, and say whether its series turned anomalous or normal."""
        k = (device_id, key)
        s = self.series.get(k)
        if s is None:
            s = self.series[k] = _Series(ts)
            if len(self.series) > self.max_series:
                self.series.popitem(last=False)
                self.evicted += 1
        else:
            self.series.move_to_end(k)
            gap = min(max(ts - s.last_ts, 0), HOUR_MS)  # an outage is not the usual interval
            s.dt = float(gap) if s.dt == 0.0 else s.dt + 0.1 * (gap - s.dt)
            s.last_ts = max(s.last_ts, ts)
        alpha = min(1.0, self.day_weight * s.dt / HOUR_MS)
        exp = self.expected(s, ts)
        event: AnomalyEvent | None = None
        if exp is not None and ts - s.first_ts >= self.warmup_ms:
            self.scored += 1
            z = self._z(exp, value, floor)
            event = self._step(s, device_id, key, ts, value, exp[0], z)
            if z > self.threshold:
                # A fault must not become normal in a few readings: move the mean slowly and
                # leave the deviation alone (learning this residual would widen it at once).
                i = int((ts % DAY_MS) // HOUR_MS)
                s.slots[3 * i + 1] += alpha * self.adapt * (value - s.slots[3 * i + 1])
                return event
        self._learn(s, ts, value, exp[0] if exp is not None else None, alpha)
        return event

    def _step(
        self, s: _Series, device_id: int, key: str, ts: int, value: float, exp: float, z: float
    ) -> AnomalyEvent | None:
        """Count readings in a row above (or back under) the threshold; report a change."""
        if z > self.threshold:
            s.streak += 1
            s.calm = 0
        elif z < self.threshold / 2:
            s.calm += 1
            s.streak = 0
        else:  # between the two: neither anomalous in a row nor calm yet
            s.streak = s.calm = 0
        if not s.flagged and s.streak >= self.consecutive:
            s.flagged = True
            return AnomalyEvent("raised", device_id, key, ts, value, exp, z)
        if s.flagged and s.calm >= self.consecutive:
            s.flagged = False
            return AnomalyEvent("cleared", device_id, key, ts, value, exp, z)
        return None

    @staticmethod
    def _learn(s: _Series, ts: int, x: float, expected: float | None, alpha: float) -> None:
        i = int((ts % DAY_MS) // HOUR_MS)
        v = s.slots
        n, mean = v[3 * i], v[3 * i + 1]
        residual = abs(x - (expected if expected is not None else mean))
        v[3 * i + 2] = ew_update(v[3 * i + 2], n, residual, alpha)
        v[3 * i + 1] = ew_update(mean, n, x, alpha)
        v[3 * i] = min(n + 1.0, 1e6)

    # -- snapshot ---------------------------------------------------------------------------
    # device id, key length, first ts, last ts, interval, streak, calm, flagged
    _HEAD = struct.Struct("<qHqqdii?")

    def dump(self) -> bytes:
        """The baselines as compressed bytes (a plain binary format: no pickle to load)."""
        parts = [MAGIC]
        for (device_id, key), s in self.series.items():
            kb = key.encode()
            parts.append(
                self._HEAD.pack(
                    device_id, len(kb), s.first_ts, s.last_ts, s.dt, s.streak, s.calm, s.flagged
                )
            )
            parts.append(kb)
            parts.append(s.slots.tobytes())
        return zlib.compress(b"".join(parts), 1)

    def load(self, data: bytes) -> int:
        """Replace the baselines with a snapshot from :meth:`dump`; return the series loaded."""
        raw = zlib.decompress(data)
        if not raw.startswith(MAGIC):
            raise ValueError("not an anomaly snapshot of this version")
        self.series.clear()
        pos, head, size = len(MAGIC), self._HEAD, 4 * 3 * SLOTS
        while pos < len(raw):
            device_id, klen, first_ts, last_ts, dt, streak, calm, flagged = head.unpack_from(
                raw, pos
            )
            pos += head.size
            key = raw[pos : pos + klen].decode()
            pos += klen
            s = _Series(first_ts)
            s.slots = array("f", raw[pos : pos + size])
            pos += size
            s.last_ts, s.dt, s.streak, s.calm, s.flagged = last_ts, dt, streak, calm, flagged
            self.series[(device_id, key)] = s
        while len(self.series) > self.max_series:
            self.series.popitem(last=False)
        return len(self.series)

    def flagged(self) -> Iterable[tuple[int, str]]:
        """The series anomalous now."""
        return (k for k, s in self.series.items() if s.flagged)


def score(
    detector: Detector, kinds: Mapping[int, DeviceKind], readings: Iterable[Sample]
) -> list[AnomalyEvent]:
    """Score and learn the watched numeric readings of devices of known kind; return the
    series that turned anomalous or normal, in reading order."""
    events: list[AnomalyEvent] = []
    update = detector.update
    for r in readings:
        kind = kinds.get(r.device_id)
        if kind is None:
            continue
        floor = floor_for(kind, r.key)
        value = r.value
        if floor is None or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        event = update(r.device_id, r.key, r.ts, float(value), floor)
        if event is not None:
            events.append(event)
    return events
