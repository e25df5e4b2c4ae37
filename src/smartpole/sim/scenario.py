"""A scenario: a short timeline of events the simulator plays over its real device connections.

The fault rates give a 500-pole district a few events an hour; a newcomer watching ``smartpole
demo`` wants to see rules fire in the first minute. :data:`DEMO` is that minute: a lamp that
failed last evening and a lamp burning since dawn (both delivered from their gateway's buffer at
its first report, so that the rules' durations and time windows are met by the readings' own
times), a pole gateway that drops off the air for 90 s, an SOS press and a flood. Then the
fault rates take over.

Every step is something a device does and reports; nothing is written to the store. A step is
bound to a pole of the fleet that carries the device it needs (:func:`cast`), a different pole
for each step, so that every event raises its own alarm.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from astral import LocationInfo
from astral.sun import sun

from smartpole.model.types import DeviceKind
from smartpole.sim.equipment import Flood
from smartpole.sim.fleet import Fleet, PoleSim

__all__ = [
    "DEMO",
    "HISTORY",
    "KIND",
    "Cue",
    "Event",
    "Step",
    "by_time",
    "cast",
    "episode",
    "play",
    "play_history",
]


class Event(StrEnum):
    """What a step makes happen."""

    LAMP_FAILURE = "lamp_failure"  # the driver dies (seen at night: on, next to no power)
    DAY_BURNER = "day_burner"  # the relay sticks: full power in daylight
    SOS = "sos"  # someone presses the emergency button
    FLOOD = "flood"  # a burst main: the water stands 35 cm at once
    GATEWAY_OFFLINE = "gateway_offline"  # the pole's gateway drops its connection


KIND: dict[Event, DeviceKind] = {
    Event.LAMP_FAILURE: DeviceKind.LAMP,
    Event.DAY_BURNER: DeviceKind.LAMP,
    Event.SOS: DeviceKind.SOS,
    Event.FLOOD: DeviceKind.FLOOD,
    Event.GATEWAY_OFFLINE: DeviceKind.GATEWAY,
}


@dataclass(frozen=True, slots=True)
class History:
    """Readings a gateway held back: from a sun event plus an offset, for ``minutes``."""

    sun: str  # "sunrise" | "sunset"
    offset_min: int
    minutes: int


# Events that need past readings: their lamp diagnoses count a duration inside a time window
# (lamp_failure: on, under 5 W, for 5 minutes; day_burner: on in daylight, from sunrise + 30 min,
# for 15 minutes), met by readings from the last evening or dawn, well inside the windows.
HISTORY: dict[Event, History] = {
    Event.LAMP_FAILURE: History("sunset", 45, 7),
    Event.DAY_BURNER: History("sunrise", 60, 17),
}
HISTORY_EVERY_S = 20.0  # seconds between held-back readings
FLOOD_CM = 35.0


@dataclass(frozen=True, slots=True)
class Step:
    """At ``at_s`` wall seconds after the fleet connects, ``event`` happens (for ``for_s``).

    Events with a history play at the pole's first report whatever ``at_s`` says: the readings
    they carry must reach the platform before the device's live ones. A gateway goes off the air
    at ``at_s`` or after its first report, whichever is later: until it has reported, the
    platform does not know which devices it carries.
    """

    at_s: float
    event: Event
    for_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Cue:
    """A step bound to a device of the fleet."""

    step: Step
    pole: str  # pole code
    device: str  # device name

    def describe(self) -> str:
        """One line for the operator watching the simulator."""
        e, where = self.step.event, f"pole {self.pole}"
        if e is Event.LAMP_FAILURE:
            return f"{where}: its lamp failed last evening (the gateway's buffer shows it)"
        if e is Event.DAY_BURNER:
            return f"{where}: its lamp's relay stuck at dawn, burning in daylight"
        if e is Event.SOS:
            return f"{where}: SOS button pressed"
        if e is Event.FLOOD:
            return f"{where}: a burst main, {FLOOD_CM:g} cm of water at the flood sensor"
        return f"{where}: the gateway drops off the air for {self.step.for_s:g} s"


DEMO: tuple[Step, ...] = (
    Step(0, Event.LAMP_FAILURE),
    Step(0, Event.DAY_BURNER),
    Step(1, Event.GATEWAY_OFFLINE, for_s=90),  # first: the offline rule waits 20 s in the demo
    Step(10, Event.SOS),
    Step(15, Event.FLOOD),
)


def cast(steps: Iterable[Step], fleet: Fleet) -> tuple[list[Cue], list[Step]]:
    """Bind each step to the first pole (in fleet order) that carries its kind of device and
    no other step yet; return the cues and the steps no pole could take."""
    used: set[str] = set()
    cues, left = [], []
    for step in steps:
        kind = KIND[step.event]
        found = next(
            (
                (pole.code, d.name)
                for pole in fleet.poles
                if pole.code not in used and pole.gateway is not None
                for d in pole.devices
                if d.kind == kind
            ),
            None,
        )
        if found is None:
            left.append(step)
            continue
        used.add(found[0])
        cues.append(Cue(step, *found))
    return cues, left


def episode(event: Event, lat: float, lon: float, now: float) -> tuple[float, float]:
    """The stretch (Unix seconds) of held-back readings for ``event``: the latest one, at its
    sun event and offset, that ends by ``now``."""
    h = HISTORY[event]
    observer = LocationInfo(latitude=lat, longitude=lon).observer
    today = datetime.fromtimestamp(now, UTC).date()
    starts = []
    for back in range(-1, 4):
        try:
            moment = sun(observer, date=today - timedelta(days=back))[h.sun]
        except ValueError:  # polar day or night: no such sun event that day
            continue
        starts.append((moment + timedelta(minutes=h.offset_min)).timestamp())
    fits = [s for s in starts if s + h.minutes * 60 <= now]
    start = max(fits) if fits else now - h.minutes * 60
    return start, start + h.minutes * 60


def play_history(ps: PoleSim, cue: Cue, now: float) -> None:
    """Start a fault in the past and hold the readings since then for the pole's first report
    (the device must not have reported yet)."""
    model = ps.models[cue.device]
    pole = ps.pole
    start, end = episode(cue.step.event, pole.lat, pole.lon, now)
    t = start
    model.inject(str(cue.step.event), ps.district.at(t))
    entries = []
    while t <= end:
        entries.append({"ts": int(t * 1000), "values": model.report(ps.district.at(t))})
        t += HISTORY_EVERY_S
    ps.put_back({cue.device: entries})


def play(ps: PoleSim, cue: Cue, t: float) -> bool:
    """Make a live event happen on the pole at simulated time ``t``; True when the device should
    report at once (the gateway's own outage is the runner's to carry out)."""
    e, amb = cue.step.event, ps.district.at(t)
    model = ps.models[cue.device]
    if e is Event.GATEWAY_OFFLINE:
        ps.pole_away_until = t + cue.step.for_s
        return False
    if e is Event.FLOOD and isinstance(model, Flood):
        model.burst(FLOOD_CM)
        return True
    return model.inject(str(e), amb)


def by_time(cues: Sequence[Cue]) -> list[Cue]:
    """The live cues (no history) in the order they play."""
    return sorted((c for c in cues if c.step.event not in HISTORY), key=lambda c: c.step.at_s)
