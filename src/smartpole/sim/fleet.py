"""The fleet: which poles and devices the simulator plays, with their tokens, and one pole's
behaviour from report to report.

The fleet file (JSON, ``sim-fleet.json`` in the data dir, mode 0600 because it holds device
tokens) is the hand-over between whoever registered the district (``smartpole demo`` in-process,
or ``smartpole sim`` through the REST API) and the simulator, which only ever talks to the
platform over MQTT or HTTP. ``PoleSim`` is pure: the runner asks it for a tick at a simulated
instant and sends what it returns.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from smartpole.model.types import DeviceKind
from smartpole.sim import FLEET_FILE
from smartpole.sim.district import PlannedPole
from smartpole.sim.environment import District
from smartpole.sim.equipment import Gateway, Meter
from smartpole.sim.faults import FaultRates
from smartpole.sim.models import model_for
from smartpole.sim.physics import Model, Site, UnknownMethod
from smartpole.store.files import write_private

__all__ = ["FLEET_FILE", "Fleet", "FleetDevice", "FleetPole", "PoleSim", "Tick", "fleet_from_plan"]

MAX_HELD = 360  # reports a device's readings may wait for while the pole is cut off
Entry = dict[str, Any]  # {"ts": ms, "values": {...}}


@dataclass(slots=True)
class FleetDevice:
    """A device the simulator plays: its registered name, kind, gateway port and token."""

    name: str
    kind: str
    port: int | None
    token: str


@dataclass(slots=True)
class FleetPole:
    """A pole and its devices (the gateway among them)."""

    code: str
    lat: float
    lon: float
    height_m: float
    devices: list[FleetDevice] = field(default_factory=list)

    @property
    def gateway(self) -> FleetDevice | None:
        """The pole's gateway, if it has one."""
        return next((d for d in self.devices if d.kind == DeviceKind.GATEWAY), None)


@dataclass(slots=True)
class Fleet:
    """Every pole the simulator plays."""

    seed: int
    district: str
    poles: list[FleetPole]

    @property
    def devices(self) -> int:
        """How many devices in all."""
        return sum(len(p.devices) for p in self.poles)

    def save(self, path: Path) -> None:
        """Write the fleet file, readable by its owner only (it holds tokens)."""
        write_private(path, orjson.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> Fleet:
        """Read a fleet file written by ``save``."""
        doc = orjson.loads(path.read_bytes())
        poles = [
            FleetPole(
                p["code"],
                p["lat"],
                p["lon"],
                p["height_m"],
                [FleetDevice(**d) for d in p["devices"]],
            )
            for p in doc["poles"]
        ]
        return cls(int(doc["seed"]), str(doc["district"]), poles)

    def take(self, poles: int) -> Fleet:
        """The first ``poles`` poles of the fleet."""
        return Fleet(self.seed, self.district, self.poles[:poles])


def fleet_from_plan(
    plan: list[PlannedPole], tokens: dict[str, str], seed: int, district: str
) -> Fleet:
    """The fleet of a planned district, given the tokens of its devices by device name.

    Device names follow the seeding convention ``<pole code>-<kind>``.
    """
    poles = []
    for p in plan:
        devices = [
            FleetDevice(f"{p.code}-{d.kind}", str(d.kind), d.port, tokens[f"{p.code}-{d.kind}"])
            for d in p.devices
            if f"{p.code}-{d.kind}" in tokens
        ]
        poles.append(FleetPole(p.code, p.lat, p.lon, p.height_m, devices))
    return Fleet(seed, district, poles)


@dataclass(slots=True)
class Tick:
    """What a pole does at one report: readings to send and presence changes."""

    telemetry: dict[str, list[Entry]] = field(default_factory=dict)
    went_offline: list[str] = field(default_factory=list)
    came_back: list[str] = field(default_factory=list)
    pole_offline_s: float = 0.0  # > 0: the gateway drops its connection for this long
    faults: list[tuple[str, str]] = field(default_factory=list)  # (device, fault) started
    readings: int = 0


class PoleSim:
    """One pole's devices from report to report: physics, faults, outages, commands."""

    def __init__(self, pole: FleetPole, seed: int, district: District, faults: FaultRates) -> None:
        self.pole = pole
        self.district = district
        self.faults = faults
        self.rng = random.Random(f"{seed}:{pole.code}")  # noqa: S311 - a simulation
        site = Site(pole.lat, pole.lon, pole.height_m, busy=self.rng.uniform(0.6, 1.4))
        self.models: dict[str, Model] = {
            d.name: model_for(d.kind, d.name, seed, site) for d in pole.devices
        }
        self.devices = {d.name: d for d in pole.devices}
        gw = pole.gateway
        self.gateway_name = gw.name if gw else None
        self.gateway: Gateway | None = None
        if gw is not None:
            model = self.models[gw.name]
            assert isinstance(model, Gateway)
            self.gateway = model
            for d in pole.devices:
                if d.port is not None and d.name != gw.name:
                    self.gateway.ports[d.port] = self.models[d.name]
        self.subs = [d.name for d in pole.devices if d.name != self.gateway_name]
        self.away_until: dict[str, float] = {}  # device name -> simulated end of its outage
        self.hold = 0  # reports still to hold back (a late burst)
        self.held: dict[str, list[Entry]] = {}
        self.last_t: float | None = None
        self.pole_away_until = 0.0  # the gateway's own outage (simulated time)

    def pole_away(self, t: float) -> bool:
        """Whether the whole pole is cut off at ``t`` (its gateway keeps readings meanwhile)."""
        return t < self.pole_away_until

    def put_back(self, telemetry: dict[str, list[Entry]]) -> None:
        """Keep readings that could not be sent for the next report (store and forward),
        the newest ``MAX_HELD`` per device."""
        for name, entries in telemetry.items():
            kept = entries + self.held.get(name, [])
            self.held[name] = kept[-MAX_HELD:]

    def powered(self, name: str) -> bool:
        """Whether the device's gateway port is switched on."""
        port = self.devices[name].port
        return self.gateway is None or port is None or port not in self.gateway.switched_off

    def online(self, name: str, t: float) -> bool:
        """Whether the device is up at ``t``: powered and not in an outage."""
        return self.powered(name) and self.away_until.get(name, 0.0) <= t

    def tick(self, t: float) -> Tick:
        """Advance every device to simulated time ``t`` and report."""
        out = Tick()
        dt = 0.0 if self.last_t is None else max(0.0, t - self.last_t)
        self.last_t = t
        amb = self.district.at(t)
        ts = int(t * 1000)
        if self.gateway is not None:
            self.gateway.follow_plan(t)  # on its own clock: also while the pole is cut off
        load = sum(m.draw_w() for n, m in self.models.items() if self.powered(n))
        for name, model in self.models.items():
            if isinstance(model, Meter):
                model.load_w = load
            was_away = self.away_until.get(name, 0.0)
            if was_away and was_away <= t:
                del self.away_until[name]
                out.came_back.append(name)
            for fault in model.faults:
                if self.faults.starts(fault, dt, model.rng) and model.inject(fault, amb):
                    out.faults.append((name, fault))
            if name != self.gateway_name and name not in self.away_until:
                if self.faults.starts("offline", dt, model.rng):
                    self.away_until[name] = t + self.faults.offline_for(model.rng)
                    out.went_offline.append(name)
                    out.faults.append((name, "offline"))
            values = model.report(amb)
            if self.online(name, t):
                self.held.setdefault(name, []).append({"ts": ts, "values": values})
        for entries in self.held.values():
            del entries[:-MAX_HELD]  # a gateway's buffer is finite: the oldest go first
        if not self.pole_away(t) and self.faults.starts("offline", dt, self.rng):
            out.pole_offline_s = self.faults.offline_for(self.rng)
            self.pole_away_until = t + out.pole_offline_s
            out.faults.append((self.gateway_name or self.pole.code, "offline"))
        if not self.hold and self.faults.starts("late", dt, self.rng):
            self.hold = self.faults.late_reports(self.rng)
            out.faults.append((self.gateway_name or self.pole.code, "late"))
        if self.hold:
            self.hold -= 1
            if self.hold:
                return out
        if self.pole_away(t):
            return out
        out.telemetry, self.held = self.held, {}
        out.readings = sum(len(e["values"]) for es in out.telemetry.values() for e in es)
        return out

    def report_now(self, name: str, t: float) -> list[Entry]:
        """One device's readings now (after a command), outside the schedule."""
        model = self.models[name]
        amb = self.district.at(t)
        if isinstance(model, Meter):
            model.load_w = sum(m.draw_w() for n, m in self.models.items() if self.powered(n))
        return [{"ts": int(t * 1000), "values": model.report(amb)}]

    def command(self, name: str, method: str, params: Any, t: float) -> dict[str, Any]:
        """Apply a server-side RPC to one device; the reply (``{"error": ...}`` on failure)."""
        model = self.models.get(name)
        if model is None:
            return {"error": f"no device {name!r} on pole {self.pole.code}"}
        amb = self.district.at(t)
        model.report(amb)  # bring it up to now before changing it
        try:
            return model.command(method, params, amb)
        except UnknownMethod:
            return {"error": f"{model.kind} does not support method {method!r}"}
        except ValueError as err:
            return {"error": str(err)}

    def update(self, name: str, values: dict[str, Any], t: float) -> None:
        """Apply shared attributes pushed to one device."""
        model = self.models.get(name)
        if model is not None:
            try:
                model.update(values, self.district.at(t))
            except ValueError:
                pass  # a shared attribute the device cannot use stays on the platform only
