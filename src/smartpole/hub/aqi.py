"""China's individual air quality index (IAQI), HJ 633-2012, and its six levels.

Breakpoints are the standard's table 1 for hourly concentrations (PM2.5 and PM10 have only
24-hour breakpoints; the standard's real-time reporting uses those for hourly values too).
Concentrations are µg/m³, except CO in mg/m³.
"""

from __future__ import annotations

import bisect

__all__ = ["AQI_LEVELS", "BREAKPOINTS", "IAQI_STEPS", "iaqi", "level"]

IAQI_STEPS = (0, 50, 100, 150, 200, 300, 400, 500)
BREAKPOINTS: dict[str, tuple[float, ...]] = {
    "pm25": (0, 35, 75, 115, 150, 250, 350, 500),
    "pm10": (0, 50, 150, 250, 350, 420, 500, 600),
    "so2": (0, 150, 500, 650, 800, 1600, 2100, 2620),
    "no2": (0, 100, 200, 700, 1200, 2340, 3090, 3840),
    "co": (0, 5, 10, 35, 60, 90, 120, 150),
    "o3": (0, 160, 200, 300, 400, 800, 1000, 1200),
}
# (upper AQI bound, level, Chinese name, English name)
AQI_LEVELS = (
    (50, 1, "优", "excellent"),
    (100, 2, "良", "good"),
    (150, 3, "轻度污染", "lightly polluted"),
    (200, 4, "中度污染", "moderately polluted"),
    (300, 5, "重度污染", "heavily polluted"),
    (10**9, 6, "严重污染", "severely polluted"),
)


def iaqi(pollutant: str, concentration: float) -> float:
    """The individual AQI of one pollutant's concentration, linear between breakpoints.

    Above the last breakpoint the standard gives no value; it is capped at 500.
    """
    bp = BREAKPOINTS.get(pollutant)
    if bp is None:
        raise ValueError(f"no HJ 633-2012 breakpoints for {pollutant!r}")
    c = max(0.0, concentration)
    if c >= bp[-1]:
        return 500.0
    i = bisect.bisect_right(bp, c) - 1
    lo, hi = bp[i], bp[i + 1]
    return IAQI_STEPS[i] + (IAQI_STEPS[i + 1] - IAQI_STEPS[i]) * (c - lo) / (hi - lo)


def level(aqi: float) -> int:
    """The AQI level, 1 (excellent) to 6 (severely polluted)."""
    for upper, lvl, _, _ in AQI_LEVELS:
        if aqi <= upper:
            return lvl
    return 6
