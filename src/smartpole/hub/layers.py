"""The map's value layers: one number per pole from its devices' latest readings.

- ``aqi``: China's AQI (HJ 633-2012) of the pole's air sensors: the worst individual index of
  the pollutants they report (the sensor's own ``aqi`` when it reports none); the worst sensor.
- ``noise``: the equivalent sound level ``laeq`` in dB(A) of its noise sensors; the loudest.
- ``lamp``: the dim level in % of its lamps (0 when switched off); their mean.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from smartpole.hub.aqi import BREAKPOINTS, iaqi
from smartpole.model.types import DeviceKind, Value
from smartpole.store.series import TimeSeries

__all__ = ["Layer", "LayerValues", "kind_of", "layer_values"]

Latest = dict[str, tuple[int, Value]]


class Layer(enum.StrEnum):
    """A value layer of the map."""

    AQI = "aqi"
    NOISE = "noise"
    LAMP = "lamp"


def _number(latest: Latest, key: str) -> float | None:
    got = latest.get(key)
    if got is None or isinstance(got[1], bool) or not isinstance(got[1], int | float):
        return None
    return float(got[1])


def _aqi(latest: Latest) -> float | None:
    worst = None
    for pollutant in BREAKPOINTS:
        c = _number(latest, pollutant)
        if c is not None:
            worst = max(worst or 0.0, iaqi(pollutant, c))
    return worst if worst is not None else _number(latest, "aqi")


def _lamp(latest: Latest) -> float | None:
    on = latest.get("on")
    if on is not None and on[1] is False:
        return 0.0
    return _number(latest, "dim")


@dataclass(frozen=True, slots=True)
class _Spec:
    kind: DeviceKind
    keys: tuple[str, ...]
    value: Callable[[Latest], float | None]
    combine: Callable[[list[float]], float]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


_SPECS = {
    Layer.AQI: _Spec(DeviceKind.AIR, (*BREAKPOINTS, "aqi"), _aqi, max),
    Layer.NOISE: _Spec(DeviceKind.NOISE, ("laeq",), lambda v: _number(v, "laeq"), max),
    Layer.LAMP: _Spec(DeviceKind.LAMP, ("on", "dim"), _lamp, _mean),
}


@dataclass(frozen=True, slots=True)
class LayerValues:
    """A layer's value per pole (only poles with one), and the newest reading's time."""

    pole_ids: list[int]
    values: list[float]
    version: int  # ms of the newest reading used (0: none)


def kind_of(layer: Layer) -> DeviceKind:
    """The device kind a layer is read from."""
    return _SPECS[layer].kind


def layer_values(
    layer: Layer, mounted: Sequence[tuple[int, int]], series: TimeSeries
) -> LayerValues:
    """The layer's values for the poles of ``mounted`` (device id, pole id) pairs, from their
    devices' latest readings (blocking: one query)."""
    spec = _SPECS[layer]
    latest = series.latest([d for d, _ in mounted], list(spec.keys))
    per_pole: dict[int, list[float]] = {}
    newest = 0
    for device_id, pole_id in mounted:
        values = latest.get(device_id)
        if not values:
            continue
        value = spec.value(values)
        if value is None:
            continue
        per_pole.setdefault(pole_id, []).append(value)
        newest = max(newest, *(ts for ts, _ in values.values()))
    ids = sorted(per_pole)
    return LayerValues(ids, [round(spec.combine(per_pole[p]), 1) for p in ids], newest)
