"""The simulator's connections: every pole on one event loop, paced, speaking MQTT or HTTP.

Three ways to reach the platform, as real devices do:

- ``gateway`` (default): one MQTT connection per pole gateway, ThingsBoard's gateway API
  (``v1/gateway/connect``, ``telemetry``, ``rpc``, ``attributes``);
- ``device``: one MQTT connection per device, the device API (``v1/devices/me/...``);
- ``http``: ``POST /api/v1/{token}/telemetry`` per device (no commands: HTTP devices poll).

Each pole reports every ``interval`` wall seconds at a fixed phase; its readings carry the
simulated time of that slot (``start + elapsed x speed``), so a seed and a start time replay the
same values. QoS 1 messages count as acknowledged when the platform's PUBACK (sent after the
commit) arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import orjson

from smartpole.model.gateway_plan import PLAN_ATTRIBUTE
from smartpole.sim.environment import District
from smartpole.sim.faults import FaultRates
from smartpole.sim.fleet import Entry, Fleet, PoleSim
from smartpole.sim.scenario import HISTORY, Cue, Event, Step, by_time, cast, play, play_history
from smartpole.transport.mqtt import codec
from smartpole.transport.mqtt.client import ConnectRefused, MqttClient, PublishRefused

__all__ = ["Mode", "SimOptions", "Simulator", "Stats", "payloads"]

log = logging.getLogger(__name__)
Mode = Literal["gateway", "device", "http"]
GW = "v1/gateway/"
ME = "v1/devices/me/"
MAX_PAYLOAD = 48_000  # under the platform's default 64 KiB PUBLISH limit
SEND_ERRORS = (ConnectionError, PublishRefused, OSError, TimeoutError)


@dataclass(slots=True)
class SimOptions:
    """How the simulator reaches the platform and paces the fleet."""

    mode: Mode = "gateway"
    host: str = "127.0.0.1"
    mqtt_port: int = 1883
    url: str = "http://127.0.0.1:8080"
    interval: float = 10.0  # wall seconds between a pole's reports
    speed: float = 1.0  # simulated seconds per wall second
    duration: float | None = None  # wall seconds; None runs until stopped
    start: float | None = None  # simulated Unix time of the first report; None = now
    qos: int = 1
    connect_rate: float = 500.0  # new connections per second, fleet-wide
    wait_s: float = 60.0  # how long to wait for the platform to listen


@dataclass(slots=True)
class Stats:
    """Counters of a run; the runner updates them, the progress line reads them."""

    poles: int = 0
    devices: int = 0
    connected: int = 0
    sent: int = 0
    acked: int = 0
    failed: int = 0
    readings: int = 0
    commands: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=50_000))
    started: float = field(default_factory=time.monotonic)
    sim_time: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Totals, rates and acknowledgement latency percentiles (ms)."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        lat = sorted(self.latencies)

        def pct(q: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 1) if lat else None

        return {
            "poles": self.poles,
            "devices": self.devices,
            "connected": self.connected,
            "seconds": round(elapsed, 1),
            "sent": self.sent,
            "acked": self.acked,
            "failed": self.failed,
            "readings": self.readings,
            "messages_per_s": round(self.acked / elapsed, 1),
            "readings_per_s": round(self.readings / elapsed, 1),
            "ack_ms_p50": pct(0.5),
            "ack_ms_p99": pct(0.99),
            "commands": self.commands,
            "faults": dict(self.faults),
        }


def payloads(
    telemetry: dict[str, list[Entry]], limit: int = MAX_PAYLOAD
) -> list[tuple[bytes, int]]:
    """Gateway telemetry bodies ``{"device": [entries]}`` with their reading counts, split to
    stay under ``limit`` bytes."""
    body = orjson.dumps(telemetry)
    if len(body) <= limit:
        return [(body, _count(telemetry))]
    out: list[tuple[bytes, int]] = []
    part: dict[str, list[Entry]] = {}
    size = 2
    for name, entries in telemetry.items():
        for entry in entries:
            n = len(orjson.dumps(entry)) + len(name) + 8
            if part and size + n > limit:
                out.append((orjson.dumps(part), _count(part)))
                part, size = {}, 2
            part.setdefault(name, []).append(entry)
            size += n
    if part:
        out.append((orjson.dumps(part), _count(part)))
    return out


class Simulator:
    """Runs a fleet against a platform until the duration ends or ``stop()``."""

    def __init__(
        self,
        fleet: Fleet,
        options: SimOptions,
        faults: FaultRates | None = None,
        scenario: Sequence[Step] = (),
        announce: Callable[[str], None] | None = None,
    ):
        self.fleet = fleet
        self.options = options
        self.faults = faults or FaultRates()
        centre = fleet.poles[0] if fleet.poles else None
        self.district = District(
            fleet.seed, centre.lat if centre else 22.54, centre.lon if centre else 114.05
        )
        self.poles = [PoleSim(p, fleet.seed, self.district, self.faults) for p in fleet.poles]
        self._by_code = {ps.pole.code: ps for ps in self.poles}
        self.stats = Stats(poles=len(self.poles), devices=fleet.devices)
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._clients: set[MqttClient] = set()
        self._next_connect = 0.0
        self._http: httpx.AsyncClient | None = None
        self._t0 = 0.0
        self._sim0 = 0.0
        self.cues, self.left_out = cast(scenario, fleet)
        self._announce = announce or (lambda line: log.info("scenario: %s", line))
        self._links: dict[str, _PoleLink] = {}

    # -- the clock ----------------------------------------------------------------------------
    def sim_time(self, loop_time: float) -> float:
        """Simulated Unix time at event-loop time ``loop_time``."""
        return self._sim0 + (loop_time - self._t0) * self.options.speed

    def stop(self) -> None:
        """Ask the run to end (safe from a signal handler)."""
        self._stop.set()

    async def run(self) -> Stats:
        """Connect the fleet, report on schedule, answer commands; return the counters."""
        o = self.options
        loop = asyncio.get_running_loop()
        await self._wait_for_platform()
        self._t0 = loop.time()
        self._sim0 = o.start if o.start is not None else time.time()
        self.stats.started = time.monotonic()
        if o.mode == "http":
            limits = httpx.Limits(max_connections=100)
            self._http = httpx.AsyncClient(base_url=o.url, timeout=30, limits=limits)
        phases = random.Random(self.fleet.seed)  # noqa: S311 - a simulation
        self._play_history()
        poles = [
            loop.create_task(self._pole(ps, phases.uniform(0, o.interval))) for ps in self.poles
        ]
        poles.append(loop.create_task(self._play(by_time(self.cues))))
        try:
            if o.duration is None:
                await self._stop.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), o.duration)
        finally:
            for task in poles:
                task.cancel()
            await asyncio.gather(*poles, return_exceptions=True)
            await self._close()
        return self.stats

    async def _wait_for_platform(self) -> None:
        o = self.options
        host, port = (o.host, o.mqtt_port) if o.mode != "http" else _host_port(o.url)
        deadline = time.monotonic() + o.wait_s
        while True:
            try:
                _, writer = await asyncio.open_connection(host, port)
            except OSError:
                if time.monotonic() > deadline or self._stop.is_set():
                    raise
                await asyncio.sleep(0.25)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(c.close() for c in list(self._clients)), return_exceptions=True)
        self._clients.clear()
        if self._http is not None:
            await self._http.aclose()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the scenario -------------------------------------------------------------------------
    def _play_history(self) -> None:
        """Hold the readings of the scenario's past events for their poles' first reports."""
        for cue in self.cues:
            if cue.step.event in HISTORY:
                play_history(self._by_code[cue.pole], cue, self._sim0)
                self._count(cue)

    async def _play(self, cues: list[Cue]) -> None:
        """Make the scenario's live events happen on time, each on its own."""
        outcomes = await asyncio.gather(
            *(self._play_one(cue) for cue in cues), return_exceptions=True
        )
        for cue, outcome in zip(cues, outcomes, strict=True):
            if isinstance(outcome, Exception):
                log.error("scenario step %s failed: %s", cue.describe(), outcome)
        if cues:
            self._announce("played; the fault rates take over")

    async def _play_one(self, cue: Cue) -> None:
        loop = asyncio.get_running_loop()
        delay = self._t0 + cue.step.at_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        link = self._links.get(cue.pole)
        if cue.step.event is Event.GATEWAY_OFFLINE and link is not None and link.mode == "gateway":
            # A gateway cut off before its first report never said which devices it carries:
            # the platform would see one device go offline, not a pole. (A pole that cannot
            # report at all is cut off after three of its intervals.)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(link.reported.wait(), 3 * self.options.interval)
        t = self.now()
        self._count(cue)
        if play(self._by_code[cue.pole], cue, t):
            if link is not None:
                await link.report(cue.device, t)
        elif cue.step.event is Event.GATEWAY_OFFLINE and link is not None:
            await link.drop(clean=False)

    def _count(self, cue: Cue) -> None:
        event = str(cue.step.event)
        self.stats.faults[event] = self.stats.faults.get(event, 0) + 1
        self._announce(cue.describe())

    # -- one pole -----------------------------------------------------------------------------
    async def _pole(self, ps: PoleSim, phase: float) -> None:
        loop = asyncio.get_running_loop()
        link = self._links[ps.pole.code] = _PoleLink(self, ps)
        k = 0
        try:
            await link.connect(self.now())  # online at once; reports follow at the pole's phase
            while True:
                due = self._t0 + phase + k * self.options.interval
                k += 1
                delay = due - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                t = self.sim_time(due)
                self.stats.sim_time = max(self.stats.sim_time, t)
                tick = ps.tick(t)
                for _, fault in tick.faults:
                    self.stats.faults[fault] = self.stats.faults.get(fault, 0) + 1
                await link.deliver(tick, t)
        finally:
            await link.drop()

    # -- shared helpers for links -------------------------------------------------------------
    async def connect(
        self, client_id: str, token: str, on_message: Callable[[codec.Publish], None]
    ) -> MqttClient | None:
        """Open one MQTT connection at the fleet's connect rate; None if it failed."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._next_connect = max(self._next_connect, now) + 1 / self.options.connect_rate
        if self._next_connect - now > 1 / self.options.connect_rate:
            await asyncio.sleep(self._next_connect - now)
        client = MqttClient(
            self.options.host,
            self.options.mqtt_port,
            client_id=client_id,
            username=token,
            on_message=on_message,
            keep_alive=60,
        )
        try:
            await client.connect()
        except (ConnectRefused, OSError, TimeoutError) as err:
            log.debug("%s: connect failed: %s", client_id, err)
            client.abort()  # nothing to say DISCONNECT to
            return None
        self._clients.add(client)
        self.stats.connected += 1
        return client

    async def disconnect(self, client: MqttClient, clean: bool = True) -> None:
        """Close a connection (``clean=False``: drop it, as a power cut would)."""
        if client in self._clients:
            self._clients.discard(client)
            self.stats.connected -= 1
        if not clean:
            client.abort()
        await client.close()

    async def publish(self, client: MqttClient, topic: str, body: bytes, readings: int) -> bool:
        """Send telemetry and count it; True when acknowledged."""
        self.stats.sent += 1
        started = time.monotonic()
        try:
            await client.publish(topic, body, qos=self.options.qos)
        except SEND_ERRORS as err:
            self.stats.failed += 1
            log.debug("publish on %s failed: %s", topic, err)
            return False
        if self.options.qos:
            self.stats.latencies.append(time.monotonic() - started)
        self.stats.acked += 1
        self.stats.readings += readings
        return True

    async def post(self, token: str, entries: list[Entry]) -> bool:
        """Send one device's telemetry over HTTP; True when the platform accepted it."""
        assert self._http is not None
        self.stats.sent += 1
        started = time.monotonic()
        try:
            r = await self._http.post(f"/api/v1/{token}/telemetry", content=orjson.dumps(entries))
        except httpx.HTTPError as err:
            self.stats.failed += 1
            log.debug("HTTP telemetry failed: %s", err)
            return False
        if r.status_code != 200:
            self.stats.failed += 1
            return False
        self.stats.latencies.append(time.monotonic() - started)
        self.stats.acked += 1
        self.stats.readings += sum(len(e["values"]) for e in entries)
        return True

    def now(self) -> float:
        """Simulated time now."""
        return self.sim_time(asyncio.get_running_loop().time())


def _host_port(url: str) -> tuple[str, int]:
    parsed = httpx.URL(url)
    return parsed.host, parsed.port or (443 if parsed.scheme == "https" else 80)


def _count(telemetry: dict[str, list[Entry]]) -> int:
    return sum(len(e["values"]) for es in telemetry.values() for e in es)


class _PoleLink:
    """One pole's connection(s) to the platform in the chosen mode."""

    def __init__(self, sim: Simulator, ps: PoleSim) -> None:
        self.sim = sim
        self.ps = ps
        self.mode = sim.options.mode
        self.clients: dict[str, MqttClient] = {}  # by device name (gateway mode: the gateway)
        self.reported = asyncio.Event()  # set once the platform acknowledged a report (gateway)

    # -- delivery -----------------------------------------------------------------------------
    async def deliver(self, tick: Any, t: float) -> None:
        """Send one tick's readings and presence changes; keep what could not be sent."""
        ps = self.ps
        if ps.pole_away(t):
            await self.drop(clean=False)
            return
        if self.mode == "http":
            for name, entries in tick.telemetry.items():
                if not await self.sim.post(ps.devices[name].token, entries):
                    ps.put_back({name: entries})
            return
        if self.mode == "device":
            await self._deliver_per_device(tick, t)
            return
        gw = ps.gateway_name
        if gw is None:
            return
        client = await self._ensure(gw, t)
        if client is None:
            ps.put_back(tick.telemetry)
            return
        try:
            for name in tick.went_offline:
                await client.publish(GW + "disconnect", orjson.dumps({"device": name}), qos=1)
            for name in tick.came_back:
                back = {"device": name, "type": ps.devices[name].kind}
                await client.publish(GW + "connect", orjson.dumps(back), qos=1)
        except SEND_ERRORS:
            ps.put_back(tick.telemetry)
            await self.drop(clean=False)
            return
        telemetry = dict(tick.telemetry)
        own = telemetry.pop(gw, None)
        pending = [(GW + "telemetry", *part) for part in payloads(telemetry)] if telemetry else []
        if own:
            pending.append((ME + "telemetry", orjson.dumps(own), _count({gw: own})))
        for i, (topic, body, readings) in enumerate(pending):
            if not await self.sim.publish(client, topic, body, readings):
                for topic_left, body_left, _ in pending[i:]:
                    left = orjson.loads(body_left)
                    ps.put_back(left if topic_left.startswith(GW) else {gw: left})
                await self.drop(clean=False)
                return
        if pending:
            self.reported.set()  # the platform has heard of the devices the gateway carries

    async def _deliver_per_device(self, tick: Any, t: float) -> None:
        ps = self.ps
        for name in tick.went_offline:
            client = self.clients.pop(name, None)
            if client is not None:
                await self.sim.disconnect(client, clean=False)
        for name, entries in tick.telemetry.items():
            client = await self._ensure(name, t)
            if client is None:
                ps.put_back({name: entries})
                continue
            body = orjson.dumps(entries)
            if not await self.sim.publish(client, ME + "telemetry", body, _count({name: entries})):
                ps.put_back({name: entries})
                await self._drop_one(name)

    async def connect(self, t: float) -> None:
        """Open the pole's connection(s) now rather than at its first report."""
        if self.mode == "gateway" and self.ps.gateway_name:
            await self._ensure(self.ps.gateway_name, t)
        elif self.mode == "device":
            for name in self.ps.devices:
                await self._ensure(name, t)

    async def _ensure(self, name: str, t: float) -> MqttClient | None:
        client = self.clients.get(name)
        if client is not None and client.is_connected:
            return client
        if client is not None:
            await self._drop_one(name)
        device = self.ps.devices[name]
        client = await self.sim.connect(name, device.token, lambda p: self._on_message(name, p))
        if client is None:
            return None
        self.clients[name] = client
        try:
            filters = [(ME + "rpc/request/+", 1), (ME + "attributes", 1)]
            if self.mode == "gateway":
                filters += [(GW + "rpc", 1), (GW + "attributes", 1)]
            if name == self.ps.gateway_name:
                filters.append((ME + "attributes/response/+", 1))
            await client.subscribe(filters)
            if name == self.ps.gateway_name:  # a plan pushed while it was away
                asked = orjson.dumps({"sharedKeys": PLAN_ATTRIBUTE})
                await client.publish(ME + "attributes/request/1", asked, qos=1)
            if self.mode == "gateway":
                for sub in self.ps.subs:
                    if self.ps.online(sub, t):
                        body = {"device": sub, "type": self.ps.devices[sub].kind}
                        await client.publish(GW + "connect", orjson.dumps(body), qos=1)
        except SEND_ERRORS:
            await self._drop_one(name)
            return None
        return client

    async def _drop_one(self, name: str, clean: bool = True) -> None:
        client = self.clients.pop(name, None)
        if client is not None:
            await self.sim.disconnect(client, clean)

    async def drop(self, clean: bool = True) -> None:
        """Close every connection of the pole."""
        for name in list(self.clients):
            await self._drop_one(name, clean)

    # -- downlink: commands and shared attributes ---------------------------------------------
    def _on_message(self, via: str, packet: codec.Publish) -> None:
        try:
            body = orjson.loads(packet.payload)
        except orjson.JSONDecodeError:
            log.warning("%s: undecodable message on %s", via, packet.topic)
            return
        self.sim._spawn(self._handle(via, packet.topic, body))

    async def _handle(self, via: str, topic: str, body: Any) -> None:
        ps, t = self.ps, self.sim.now()
        client = self.clients.get(via)
        if client is None or not isinstance(body, dict):
            return
        try:
            if topic == GW + "rpc":
                name, data = body.get("device"), body.get("data") or {}
                reply = ps.command(str(name), str(data.get("method")), data.get("params"), t)
                out = {"device": name, "id": data.get("id"), "data": reply}
                await client.publish(GW + "rpc", orjson.dumps(out), qos=1)
                self.sim.stats.commands += 1
                await self._report(client, str(name), t)
            elif topic.startswith(ME + "rpc/request/"):
                request_id = topic.rsplit("/", 1)[1]
                reply = ps.command(via, str(body.get("method")), body.get("params"), t)
                await client.publish(ME + f"rpc/response/{request_id}", orjson.dumps(reply), qos=1)
                self.sim.stats.commands += 1
                await self._report(client, via, t)
            elif topic == GW + "attributes":
                name = str(body.get("device"))
                ps.update(name, body.get("data") or {}, t)
                await self._report(client, name, t)
            elif topic == ME + "attributes":
                ps.update(via, body, t)
                await self._report(client, via, t)
            elif topic.startswith(ME + "attributes/response/"):
                ps.update(via, body.get("shared") or {}, t)
        except SEND_ERRORS as err:
            log.debug("%s: reply failed: %s", via, err)

    async def report(self, name: str, t: float) -> None:
        """Report a device at once if its connection is up (else its next report carries it)."""
        via = self.ps.gateway_name if self.mode == "gateway" else name
        client = self.clients.get(via) if via else None
        if client is None or not client.is_connected:
            return
        with contextlib.suppress(*SEND_ERRORS):
            await self._report(client, name, t)

    async def _report(self, client: MqttClient, name: str, t: float) -> None:
        """Report a device at once after a command, so the platform sees the change."""
        if name not in self.ps.models or not self.ps.online(name, t):
            return
        entries = self.ps.report_now(name, t)
        readings = _count({name: entries})
        if self.mode == "gateway" and name != self.ps.gateway_name:
            body = orjson.dumps({name: entries})
            await self.sim.publish(client, GW + "telemetry", body, readings)
        else:
            await self.sim.publish(client, ME + "telemetry", orjson.dumps(entries), readings)
