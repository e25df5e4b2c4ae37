"""The rest of a pole's equipment: camera, small cell, screen, speaker, SOS, charger, Wi-Fi,
tilt, flood and manhole sensors, the pole's meter and its gateway (see ``physics``)."""

from __future__ import annotations

import bisect
import math
from typing import Any

from smartpole.model.gateway_plan import (
    PLAN_ATTRIBUTE,
    GatewayPlan,
    plan_level,
    read_plan_attribute,
)
from smartpole.model.types import DeviceKind
from smartpole.sim.environment import Ambient
from smartpole.sim.physics import (
    MAINS_V,
    Lamp,
    Model,
    Report,
    Site,
    clamp,
    count,
    flag,
    level_of,
    settle,
)

__all__ = [
    "Camera",
    "Charger",
    "Display",
    "Flood",
    "Gateway",
    "Manhole",
    "Meter",
    "SmallCell",
    "Sos",
    "Speaker",
    "Tilt",
    "Wifi",
]


class Camera(Model):
    """A traffic/safety camera: counts people and vehicles; infrared lights draw more at night."""

    kind = DeviceKind.CAMERA

    def step(self, dt: float, amb: Ambient) -> Report:
        minutes = dt / 60
        night = amb.is_dark
        self._power = (9.0 + (4.5 if night else 0.0)) * (1 + self.rng.gauss(0, 0.02))
        return {
            "recording": True,
            "bitrate": round(4096 * (1.25 if night else 1.0) * (1 + self.rng.gauss(0, 0.05))),
            "people": count(self.rng, 25 * amb.activity * self.site.busy * minutes),
            "vehicles": count(self.rng, 40 * amb.traffic * self.site.busy * minutes),
            "power": round(self._power, 1),
        }

    def draw_w(self) -> float:
        return getattr(self, "_power", 9.0)


class SmallCell(Model):
    """A 5G small cell: users follow where people are; throughput and power follow users."""

    kind = DeviceKind.SMALL_CELL

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.capacity = self.rng.choice((200, 300, 400))
        self.temperature = 30.0
        self._power = 150.0

    def step(self, dt: float, amb: Ambient) -> Report:
        load = clamp(0.05 + 0.9 * amb.activity * self.site.busy, 0, 1)
        users = count(self.rng, self.capacity * load)
        per_user = self.rng.uniform(3, 9)  # Mbit/s
        dl = min(4000.0, users * per_user)
        self._power = 140 + 0.09 * dl + 0.4 * users
        self.temperature = settle(
            self.temperature, amb.temperature + 6 + self._power / 40, dt, 1200
        )
        return {
            "users": users,
            "throughput_dl": round(dl, 1),
            "throughput_ul": round(dl * self.rng.uniform(0.08, 0.16), 1),
            "power": round(self._power, 1),
            "temperature": round(self.temperature, 1),
        }

    def draw_w(self) -> float:
        return self._power


class Display(Model):
    """An LED screen: on 06:00-24:00, brightness follows daylight, shows what it is told."""

    kind = DeviceKind.DISPLAY

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.on: bool | None = None  # None: on its daily timer
        self.brightness: float | None = None  # None: follows daylight
        self.content = "城市服务 City services"
        self._power = 0.0

    def step(self, dt: float, amb: Ambient) -> Report:
        on = amb.hour >= 6 if self.on is None else self.on
        daylight = clamp(amb.lux / 50_000, 0, 1)
        level = 25 + 75 * daylight if self.brightness is None else self.brightness
        self._power = (30 + 6.5 * level) if on else 4.0
        return {
            "on": on,
            "brightness": round(level),
            "content": self.content,
            "power": round(self._power * (1 + self.rng.gauss(0, 0.01)), 1),
        }

    def draw_w(self) -> float:
        return self._power

    def command(self, method: str, params: Any, amb: Ambient) -> dict[str, Any]:
        if method == "showContent":
            content = params.get("content") if isinstance(params, dict) else params
            if not isinstance(content, str):
                raise ValueError('showContent needs {"content": "text or URL"}')
            self.content = content[:500]
        elif method == "setOn":
            self.on = flag(params, "on", "value", "state")
        elif method in ("setBrightness", "setDim"):
            self.brightness = level_of(params, "brightness", "level", "value")
        else:
            return super().command(method, params, amb)
        return {"on": self.on, "brightness": self.brightness, "content": self.content}

    def update(self, values: dict[str, Any], amb: Ambient) -> None:
        for key, method in (("content", "showContent"), ("brightness", "setBrightness")):
            if key in values:
                self.command(method, values[key], amb)
        if "on" in values:
            self.command("setOn", values["on"], amb)


class Speaker(Model):
    """A public-address speaker: plays announcements on command."""

    kind = DeviceKind.SPEAKER

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.volume = 60.0
        self.until = 0.0

    def step(self, dt: float, amb: Ambient) -> Report:
        return {"playing": amb.t < self.until, "volume": round(self.volume)}

    def draw_w(self) -> float:
        return 3.0 + (0.6 * self.volume if self.t is not None and self.t < self.until else 0.0)

    def command(self, method: str, params: Any, amb: Ambient) -> dict[str, Any]:
        if method == "play":
            seconds = params.get("seconds", 60) if isinstance(params, dict) else 60
            if isinstance(params, dict) and "volume" in params:
                self.volume = level_of(params, "volume")
            self.until = amb.t + float(seconds)
        elif method == "stop":
            self.until = 0.0
        elif method == "setVolume":
            self.volume = level_of(params, "volume", "level", "value")
        else:
            return super().command(method, params, amb)
        return {"playing": amb.t < self.until, "volume": round(self.volume)}

    def update(self, values: dict[str, Any], amb: Ambient) -> None:
        if "volume" in values:
            self.command("setVolume", values["volume"], amb)


class Sos(Model):
    """An emergency call point: a press opens a call that lasts a few minutes."""

    kind = DeviceKind.SOS
    faults = ("sos",)

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.pressed = False
        self.call_until = 0.0

    def step(self, dt: float, amb: Ambient) -> Report:
        pressed, self.pressed = self.pressed, False  # reported once per press
        return {"pressed": pressed, "call_active": amb.t < self.call_until}

    def draw_w(self) -> float:
        return 2.5

    def command(self, method: str, params: Any, amb: Ambient) -> dict[str, Any]:
        if method == "hangUp":
            self.call_until = 0.0
            return {"call_active": False}
        return super().command(method, params, amb)

    def inject(self, fault: str, amb: Ambient) -> bool:
        if fault != "sos":
            return False
        self.pressed = True
        self.call_until = amb.t + self.rng.uniform(60, 300)
        return True


class Charger(Model):
    """An AC EV charger (7 or 11 kW): cars arrive more by day, charge, leave."""

    kind = DeviceKind.CHARGER

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.max_kw = self.rng.choice((7.0, 11.0))
        self.energy = self.rng.uniform(500, 20_000)
        self.session = 0.0
        self.want = 0.0  # the car's remaining appetite (kWh); 0 = no car
        self.status = "Available"
        self.kw = 0.0

    def step(self, dt: float, amb: Ambient) -> Report:
        hours = dt / 3600
        if self.status == "Finishing":
            self.status, self.session = "Available", 0.0
        if self.status == "Available":
            arrivals = (0.05 + 0.5 * amb.activity) * hours
            if self.rng.random() < min(1.0, arrivals):
                self.status, self.want = "Charging", self.rng.uniform(6, 40)
        if self.status == "Charging":
            self.kw = self.max_kw * self.rng.uniform(0.9, 1.0)
            delivered = min(self.want, self.kw * hours)
            self.session += delivered
            self.energy += delivered
            self.want -= delivered
            if self.want <= 1e-6:
                self.status, self.kw = "Finishing", 0.0
        else:
            self.kw = 0.0
        return {
            "occupied": self.status != "Available",
            "status": self.status,
            "power": round(self.kw, 2),
            "energy": round(self.energy, 3),
            "session_energy": round(self.session, 3),
        }

    def draw_w(self) -> float:
        return 5.0 + self.kw * 1000 / 0.96  # the charger's own loss

    def command(self, method: str, params: Any, amb: Ambient) -> dict[str, Any]:
        if method == "stopCharging":
            if self.status == "Charging":
                self.status, self.want, self.kw = "Finishing", 0.0, 0.0
            return {"status": self.status}
        return super().command(method, params, amb)


class Wifi(Model):
    """A public Wi-Fi access point: clients follow people; the traffic counter only grows."""

    kind = DeviceKind.WIFI

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.traffic = self.rng.uniform(1e4, 1e6)

    def step(self, dt: float, amb: Ambient) -> Report:
        clients = count(self.rng, 60 * amb.activity * self.site.busy)
        self.traffic += clients * self.rng.uniform(0.02, 0.08) * dt  # MB
        return {"clients": clients, "traffic": round(self.traffic, 1)}

    def draw_w(self) -> float:
        return 8.0


class Tilt(Model):
    """A pole tilt sensor: a fixed lean, wind and traffic vibration, a slow drift once it starts."""

    kind = DeviceKind.TILT
    faults = ("tilt_drift",)

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.x = self.rng.gauss(0, 0.25)
        self.y = self.rng.gauss(0, 0.25)
        self.drift: tuple[float, float] | None = None  # degrees per hour on x, y

    def step(self, dt: float, amb: Ambient) -> Report:
        if self.drift is not None:
            self.x = clamp(self.x + self.drift[0] * dt / 3600, -60, 60)
            self.y = clamp(self.y + self.drift[1] * dt / 3600, -60, 60)
        sway = 0.004 * amb.wind_speed**1.5
        x = self.x + self.rng.gauss(0, 0.01 + sway)
        y = self.y + self.rng.gauss(0, 0.01 + sway)
        vibration = 0.01 + 0.004 * amb.wind_speed + 0.05 * amb.traffic
        return {
            "tilt": round(math.hypot(x, y), 3),
            "tilt_x": round(x, 3),
            "tilt_y": round(y, 3),
            "vibration": round(vibration * (1 + abs(self.rng.gauss(0, 0.3))), 4),
        }

    def inject(self, fault: str, amb: Ambient) -> bool:
        if fault != "tilt_drift" or self.drift is not None:
            return False
        angle = self.rng.uniform(0, 2 * math.pi)
        rate = self.rng.uniform(0.2, 1.0)  # a failing foundation: a degree in hours, not years
        self.drift = (rate * math.cos(angle), rate * math.sin(angle))
        return True


class Flood(Model):
    """Standing water at a low spot: heavy rain fills it, drains empty it."""

    kind = DeviceKind.FLOOD
    faults = ("flood",)

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.level = 0.0
        self.surge = 0.0  # cm still to come from a blocked drain or a burst main

    def step(self, dt: float, amb: Ambient) -> Report:
        hours = dt / 3600
        inflow = max(0.0, amb.rain - 15) * 0.8 * hours  # drains cope with light rain
        burst = min(self.surge, 80 * hours)
        self.surge -= burst
        self.level = max(0.0, self.level + inflow + burst - 6 * hours)
        level = self.level + abs(self.rng.gauss(0, 0.2))
        return {"water_level": round(min(level, 500.0), 1), "flooded": level > 15}

    def burst(self, cm: float) -> None:
        """A burst main or a blocked culvert: the water stands ``cm`` higher at once."""
        self.level += cm

    def inject(self, fault: str, amb: Ambient) -> bool:
        if fault != "flood" or self.surge > 0:
            return False
        self.surge = self.rng.uniform(20, 60)
        return True


class Manhole(Model):
    """A manhole cover: closed and flat, until it is lifted."""

    kind = DeviceKind.MANHOLE
    faults = ("manhole_open",)

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.open_until = 0.0
        self.angle = 0.0
        self.water = self.rng.uniform(20, 80)

    def step(self, dt: float, amb: Ambient) -> Report:
        is_open = amb.t < self.open_until
        self.water = settle(self.water, 40 + 10 * amb.rain, dt, 3600)
        tilt = self.angle if is_open else abs(self.rng.gauss(0.3, 0.1))
        return {
            "open": is_open,
            "tilt": round(tilt, 1),
            "water_level": round(clamp(self.water, 0, 1000), 1),
        }

    def inject(self, fault: str, amb: Ambient) -> bool:
        if fault != "manhole_open" or (self.t is not None and self.t < self.open_until):
            return False
        self.open_until = amb.t + self.rng.expovariate(1 / 7200)
        self.angle = self.rng.uniform(60, 90)
        return True


class Meter(Model):
    """The pole's mains energy meter: what the gateway's ports draw, plus its own."""

    kind = DeviceKind.METER

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.energy = self.rng.uniform(100, 10_000)
        self.load_w = 0.0  # set by the pole each step

    def step(self, dt: float, amb: Ambient) -> Report:
        power = self.load_w + 2.0
        self.energy += power * dt / 3.6e6
        volts = MAINS_V + self.rng.gauss(0, 1.5)
        pf = 0.95 if power > 100 else 0.85
        return {
            "voltage": round(volts, 1),
            "current": round(power / (volts * pf), 3),
            "power": round(power, 1),
            "energy": round(self.energy, 4),
            "power_factor": pf,
            "frequency": round(50 + self.rng.gauss(0, 0.015), 3),
        }


class Gateway(Model):
    """The pole gateway: its own health, and a meter and switch on every port.

    ``ports`` maps a port number to the model powered from it; each port reports voltage,
    current, power and energy as ``port<N>_voltage`` and so on, and the totals go under the
    catalog's keys.
    """

    kind = DeviceKind.GATEWAY
    faults = ("lost_plan",)

    def __init__(self, name: str, seed: int, site: Site | None = None) -> None:
        super().__init__(name, seed, site)
        self.ports: dict[int, Model] = {}
        self.plan: GatewayPlan | None = None  # the ``lightingPlan`` pushed last
        self.steps: dict[str, int] = {}  # lamp name -> start of the plan step it was given
        self.switched_off: set[int] = set()
        self.port_energy: dict[int, float] = {}
        self.energy = self.rng.uniform(100, 10_000)
        self.temperature = 35.0
        self.volts = MAINS_V + self.rng.gauss(0, 2)

    def step(self, dt: float, amb: Ambient) -> Report:
        out: Report = {}
        total = 6.0  # the gateway's own draw
        volts = self.volts + self.rng.gauss(0, 0.8)
        for port, model in sorted(self.ports.items()):
            w = 0.0 if port in self.switched_off else model.draw_w()
            energy = self.port_energy.get(port, 0.0) + w * dt / 3.6e6
            self.port_energy[port] = energy
            total += w
            out[f"port{port}_voltage"] = round(volts, 1) if port not in self.switched_off else 0.0
            out[f"port{port}_current"] = round(w / volts, 3)
            out[f"port{port}_power"] = round(w, 1)
            out[f"port{port}_energy"] = round(energy, 4)
        self.energy += total * dt / 3.6e6
        self.temperature = settle(self.temperature, amb.temperature + 12, dt, 1800)
        out.update(
            cpu=round(clamp(6 + 2.5 * len(self.ports) + self.rng.gauss(0, 2), 0, 100), 1),
            memory=round(clamp(34 + 1.5 * len(self.ports) + self.rng.gauss(0, 0.5), 0, 100), 1),
            temperature=round(self.temperature, 1),
            uptime=self.uptime,
            voltage=round(volts, 1),
            current=round(total / volts, 3),
            power=round(total, 1),
            energy=round(self.energy, 4),
        )
        return out

    def draw_w(self) -> float:
        return 6.0

    def command(self, method: str, params: Any, amb: Ambient) -> dict[str, Any]:
        if method == "switchPort":
            if not isinstance(params, dict) or not isinstance(params.get("port"), int):
                raise ValueError('switchPort needs {"port": n, "on": true|false}')
            port = params["port"]
            if port not in self.ports:
                raise ValueError(f"nothing is connected to port {port}")
            on = flag(params, "on", "value", "state")
            (self.switched_off.discard if on else self.switched_off.add)(port)
            return {"port": port, "on": on}
        return super().command(method, params, amb)

    def update(self, values: dict[str, Any], amb: Ambient) -> None:
        if PLAN_ATTRIBUTE in values:
            plan = read_plan_attribute(values[PLAN_ATTRIBUTE], self.name)
            if self.plan is None or plan.hash != self.plan.hash:  # the same again: keep commands
                self.plan, self.steps = plan, {}
            else:
                self.plan = plan

    def inject(self, fault: str, amb: Ambient) -> bool:
        if fault == "lost_plan" and self.plan is not None:
            self.plan, self.steps = None, {}  # the lamps stay at the level they were given
            return True
        return False

    def follow_plan(self, t: float) -> None:
        """Set each lamp on a port to its plan's level at ``t`` (the gateway's own clock,
        link or no link)."""
        if self.plan is None:
            return
        ts = int(t * 1000)
        if ts > self.plan.valid_until_ms:
            for model in self.ports.values():
                if isinstance(model, Lamp):
                    model.planned = False  # a plan run out: the photocell takes over again
            self.plan, self.steps = None, {}
            return
        for model in self.ports.values():
            steps = self.plan.lamps.get(model.name)
            if not steps or not isinstance(model, Lamp):
                continue
            i = bisect.bisect_right(steps, ts, key=lambda step: step[0])
            start = steps[i - 1][0] if i else 0  # before the first step: off, as planned
            model.follow(plan_level(steps, ts), step=self.steps.get(model.name) != start)
            self.steps[model.name] = start
