"""Forecasts of the next hours per district: air quality and street-lamp load.

A forecast is fitted when asked, on the hourly rollups of the last ``window_days`` (the store
keeps them exact, so this reads a few hundred rows, never raw readings): the district's hourly
series is the mean over its sensors (air quality) or the total over its lamps (power, energy).
Candidates are river's ``time_series.HoltWinters`` (additive, daily seasonality) on a small
grid of smoothing parameters and, as the yardstick, the seasonal mean (the same hour over the
last seven days). Each is scored by its one-step-ahead mean absolute error over the second half
of the window, and the best one forecasts. The answer names the model, its parameters, the
window it was fitted on and both errors, so a reader can judge the forecast.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from smartpole.errors import Conflict, InvalidInput
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceKind
from smartpole.registry.access import Principal
from smartpole.registry.assets import Assets
from smartpole.store.series import HOUR_MS, TimeSeries

__all__ = ["KEYS", "ForecastKey", "Forecasts", "fit"]

SEASON = 24
MIN_HOURS = 2 * SEASON
# beta 0 would mean "no trend", which river's additive season update cannot handle.
GRID = list(itertools.product((0.1, 0.3, 0.5), (0.01, 0.1), (0.1, 0.3, 0.5)))


@dataclass(frozen=True, slots=True)
class ForecastKey:
    """What a forecast key is made of: a device kind's key, combined over the district."""

    kind: DeviceKind
    key: str
    combine: str  # "mean" over devices, or "sum"
    unit: str
    scale: float = 1.0  # energy: mean W over an hour, summed, is Wh; / 1000 is kWh


KEYS: dict[str, ForecastKey] = {
    "pm25": ForecastKey(DeviceKind.AIR, "pm25", "mean", "µg/m³"),
    "pm10": ForecastKey(DeviceKind.AIR, "pm10", "mean", "µg/m³"),
    "no2": ForecastKey(DeviceKind.AIR, "no2", "mean", "µg/m³"),
    "aqi": ForecastKey(DeviceKind.AIR, "aqi", "mean", ""),
    "power": ForecastKey(DeviceKind.LAMP, "power", "sum", "W"),
    "energy": ForecastKey(DeviceKind.LAMP, "power", "sum", "kWh", 0.001),
}


def _seasonal_mean(history: Sequence[float], t: int) -> float:
    """The mean of the same hour of the day over up to the last seven days before ``t``."""
    same = [history[t - k * SEASON] for k in range(1, 8) if t - k * SEASON >= 0]
    return statistics.fmean(same) if same else history[t - 1]


def _fix_additive_start(model: Any, first: Sequence[float]) -> None:
    """Start the season as differences from the level, as the additive model needs.

    river 0.26 starts every Holt-Winters season as ratios ``y / level`` (right only for the
    multiplicative model), which an additive model takes weeks of data to unlearn.
    """
    level = model.level[-1]
    model.season.clear()
    model.season.extend(y - level for y in first)


def fit(values: Sequence[float], hours: int) -> dict[str, Any]:
    """Choose and fit a model on an hourly series; forecast ``hours`` ahead.

    Returns the model's name and parameters, its one-step MAE on the second half of the
    series, the seasonal mean's MAE there, and the forecast.
    """
    if len(values) < MIN_HOURS:
        raise ValueError(f"need {MIN_HOURS} hours, have {len(values)}")
    half = len(values) // 2
    baseline = statistics.fmean(
        abs(values[t] - _seasonal_mean(values, t)) for t in range(half, len(values))
    )
    # Imported here: river (and SciPy under it) takes seconds to import, which every CLI command
    # and server start would pay. Its estimators are untyped: called through Any.
    from river import time_series

    holt_winters: Any = time_series.HoltWinters
    best: tuple[float, Any, dict[str, float]] | None = None
    for alpha, beta, gamma in GRID:
        model = holt_winters(alpha=alpha, beta=beta, gamma=gamma, seasonality=SEASON)
        errors = []
        for t, y in enumerate(values):
            if t >= max(half, SEASON):
                errors.append(abs(y - model.forecast(horizon=1)[0]))
            model.learn_one(y)
            if t == SEASON - 1:
                _fix_additive_start(model, values[:SEASON])
        mae = statistics.fmean(errors)
        if math.isfinite(mae) and (best is None or mae < best[0]):
            best = (mae, model, {"alpha": alpha, "beta": beta, "gamma": gamma})
    assert best is not None
    mae, model, params = best
    if baseline <= mae:
        # The yardstick wins: forecast each hour as the mean of that hour over the last week.
        extended = list(values)
        for _ in range(hours):
            extended.append(_seasonal_mean(extended, len(extended)))
        return {
            "model": "seasonal mean (same hour, last 7 days)",
            "params": {},
            "mae": baseline,
            "baseline_mae": baseline,
            "forecast": extended[len(values) :],
        }
    return {
        "model": "river.time_series.HoltWinters (additive, seasonality 24 h)",
        "params": {**params, "seasonality": SEASON},
        "mae": mae,
        "baseline_mae": baseline,
        "forecast": [float(v) for v in model.forecast(horizon=hours)],
    }


class Forecasts:
    """District forecasts from the store's hourly rollups."""

    def __init__(
        self,
        series: TimeSeries,
        assets: Assets,
        *,
        window_days: int = 14,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.series = series
        self.assets = assets
        self.window_days = window_days
        self.clock = clock

    def hourly(
        self, who: Principal, district: str, fk: ForecastKey, end: int
    ) -> tuple[list[int], list[float], int]:
        """The district's hourly series up to ``end`` (hour-aligned): hours, values, devices.

        Hours without any reading are filled from the same hour a day before (else the
        previous hour); a sum over lamps is scaled up by how many lamps reported that hour,
        so a silent lamp does not look like a dark street.
        """
        ids = self.assets.device_ids(who, kind=fk.kind.value, district=district)
        start = end - self.window_days * 24 * HOUR_MS
        points = self.series.aggregate(ids, [fk.key], start, end, HOUR_MS, "avg")
        per_hour: dict[int, list[float]] = {}
        reporting: set[int] = set()
        for device_id, keys in points.items():
            for hour, value in keys.get(fk.key, []):
                per_hour.setdefault(hour, []).append(value)
                reporting.add(device_id)
        if not per_hour:
            return [], [], 0
        first = min(per_hour)
        hours = list(range(first, end, HOUR_MS))
        values: list[float] = []
        for i, hour in enumerate(hours):
            got = per_hour.get(hour)
            if got:
                if fk.combine == "sum":
                    value = sum(got) * len(reporting) / len(got)
                else:
                    value = statistics.fmean(got)
                values.append(value * fk.scale)
            else:
                values.append(values[i - SEASON] if i >= SEASON else values[-1])
        return hours, values, len(reporting)

    def forecast(self, who: Principal, district: str, key: str, hours: int) -> dict[str, Any]:
        """Forecast ``key`` in ``district`` for the next ``hours`` hours (visible devices)."""
        fk = KEYS.get(key)
        if fk is None:
            raise InvalidInput(f"no forecast for {key!r}; one of {', '.join(KEYS)}", key=key)
        now = self.clock()
        end = now - now % HOUR_MS  # the current hour is not complete: fit on whole hours
        stamps, values, devices = self.hourly(who, district, fk, end)
        if len(values) < MIN_HOURS:
            raise Conflict(
                f"{district}: {len(values)} hours of {fk.kind} {fk.key} data; a forecast needs"
                f" {MIN_HOURS}",
                district=district,
                key=key,
                hours_available=len(values),
                hours_needed=MIN_HOURS,
            )
        out = fit(values, hours)
        return {
            "district": district,
            "key": key,
            "unit": fk.unit,
            "source": f"{fk.combine} of {fk.kind}.{fk.key} over {devices} devices",
            "model": out["model"],
            "library": f"river {version('river')}",
            "params": out["params"],
            "fitted_on": {"start": stamps[0], "end": end, "hours": len(values)},
            "mae": round(out["mae"], 4),
            "baseline_mae": round(out["baseline_mae"], 4),
            "forecast": [
                {"ts": end + h * HOUR_MS, "value": round(max(0.0, v), 4)}
                for h, v in enumerate(out["forecast"])
            ],
        }
