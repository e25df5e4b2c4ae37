"""The operations overview as values: what the console's overview page shows in one answer.

Built by :mod:`smartpole.hub.analytics.overview` from what one tenant may see; ``to_dict``
gives the JSON the API answers with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smartpole.model.lifecycle import Severity

__all__ = ["DistrictAir", "KindCount", "Overview"]


@dataclass(frozen=True, slots=True)
class KindCount:
    """How many devices of a kind are online and offline."""

    kind: str
    online: int
    offline: int


@dataclass(frozen=True, slots=True)
class DistrictAir:
    """A district's air quality now: the mean of its air sensors' latest AQI."""

    district: str
    aqi: float
    level: int  # HJ 633-2012: 1 excellent .. 6 severely polluted
    devices: int


@dataclass(frozen=True, slots=True)
class Overview:
    """Devices by kind, active alarms by severity, today's lamp energy, districts' air."""

    devices: tuple[KindCount, ...]
    alarms: tuple[tuple[Severity, int], ...]  # every severity, worst first
    lamp_energy_kwh: float
    day_start: int  # ms: midnight in the tenant's time zone, where "today" starts
    timezone: str  # that zone's IANA name
    air: tuple[DistrictAir, ...]

    def to_dict(self) -> dict[str, Any]:
        """The overview as JSON-ready values."""
        return {
            "devices": [
                {"kind": k.kind, "online": k.online, "offline": k.offline} for k in self.devices
            ],
            "alarms": {s.value: n for s, n in self.alarms},
            "lamp_energy_kwh": self.lamp_energy_kwh,
            "day_start": self.day_start,
            "timezone": self.timezone,
            "air": [
                {"district": a.district, "aqi": a.aqi, "level": a.level, "devices": a.devices}
                for a in self.air
            ],
        }
