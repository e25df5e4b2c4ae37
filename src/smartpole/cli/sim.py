"""``sim``: the fleet simulator, a client of a running platform like any real device."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smartpole.cli.common import DataDir, JsonOut, console, print_json, settings
from smartpole.sim import FLEET_FILE
from smartpole.sim.faults import FAULTS, FaultRates

if TYPE_CHECKING:
    from smartpole.sim.district import BBox
    from smartpole.sim.fleet import Fleet
    from smartpole.sim.runner import Mode, SimOptions, Simulator, Stats
    from smartpole.sim.scenario import Step

__all__ = ["free_port", "register", "run_simulator", "sim", "spawn_simulator", "stop_simulator"]


def _bbox(text: str | None) -> BBox | None:
    if text is None:
        return None
    try:
        south, west, north, east = (float(x) for x in text.split(","))
    except ValueError as err:
        raise typer.BadParameter("expected SOUTH,WEST,NORTH,EAST in degrees") from err
    if not (south < north and west < east):
        raise typer.BadParameter("expected SOUTH < NORTH and WEST < EAST")
    return south, west, north, east


def _start(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise typer.BadParameter("expected Unix seconds or an ISO 8601 time") from err
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def raise_fd_limit() -> None:
    """Allow as many open sockets as the hard limit does (a connection per pole)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class _Progress:
    """The progress line: connections, messages/s sent and acknowledged, readings/s, events."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.last = (time.monotonic(), 0, 0, 0)

    def line(self) -> str:
        s = self.stats
        now = time.monotonic()
        t0, sent0, acked0, readings0 = self.last
        dt = max(now - t0, 1e-9)
        self.last = (now, s.sent, s.acked, s.readings)
        when = datetime.fromtimestamp(s.sim_time, UTC).astimezone() if s.sim_time else None
        faults = sum(s.faults.values())
        return (
            f"sim: {s.connected:,}/{s.poles:,} poles connected · "
            f"{(s.sent - sent0) / dt:,.0f} msg/s sent · {(s.acked - acked0) / dt:,.0f} acked · "
            f"{(s.readings - readings0) / dt:,.0f} readings/s · {s.failed:,} failed · "
            f"{s.commands:,} commands · {faults:,} faults"
            + (f" · {when:%Y-%m-%d %H:%M}" if when else "")
        )


async def _show(progress: _Progress, every: float) -> None:
    from rich.live import Live
    from rich.text import Text

    if every <= 0 and console.is_terminal:
        with Live(console=console, refresh_per_second=2, transient=True) as live:
            while True:
                await asyncio.sleep(1)
                live.update(Text(progress.line()))
    while True:
        await asyncio.sleep(every if every > 0 else 10)
        console.print(progress.line(), highlight=False, soft_wrap=True)


async def _watch_parent(sim: Simulator, parent: int) -> None:
    while os.getppid() == parent:  # noqa: ASYNC110 - no event tells us the parent died
        await asyncio.sleep(1)
    sim.stop()  # the demo that started us is gone


async def run_simulator(
    fleet: Fleet,
    options: SimOptions,
    faults: FaultRates,
    progress_every: float = 0,
    exit_with_parent: bool = False,
    scenario: Sequence[Step] = (),
) -> Stats:
    """Run the fleet until the duration ends, SIGINT/SIGTERM, or (optionally) the parent ends."""
    from smartpole.sim.runner import Simulator
    from smartpole.sim.scenario import KIND

    def announce(line: str) -> None:
        console.print(f"scenario: {line}", soft_wrap=True, markup=False, highlight=False)

    sim = Simulator(fleet, options, faults, scenario, announce)
    for step in sim.left_out:
        announce(f"no pole of the fleet has a {KIND[step.event]} for the {step.event} step")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, sim.stop)
    helpers = [loop.create_task(_show(_Progress(sim.stats), progress_every))]
    if exit_with_parent:
        helpers.append(loop.create_task(_watch_parent(sim, os.getppid())))
    try:
        return await sim.run()
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def sim(
    data_dir: DataDir = None,
    fleet_file: Annotated[
        Path | None,
        typer.Option("--fleet", help=f"Fleet file (default <data dir>/{FLEET_FILE})."),
    ] = None,
    url: Annotated[
        str, typer.Option("--url", help="The platform's HTTP base URL.")
    ] = "http://127.0.0.1:8080",
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="SMARTPOLE_API_KEY",
            help="City operator admin key: registers the district when there is no fleet file.",
            show_default=False,
        ),
    ] = None,
    mqtt_host: Annotated[
        str | None, typer.Option("--mqtt-host", help="MQTT host (default: the --url host).")
    ] = None,
    mqtt_port: Annotated[int, typer.Option("--mqtt-port", help="MQTT port.")] = 1883,
    poles: Annotated[int, typer.Option("--poles", min=1, help="Poles to simulate.")] = 500,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed, same district.")] = 1,
    district: Annotated[str, typer.Option("--district", help="District name.")] = "Futian",
    bbox: Annotated[
        str | None,
        typer.Option("--bbox", help="Street grid over SOUTH,WEST,NORTH,EAST instead of Futian."),
    ] = None,
    roads: Annotated[
        Path | None, typer.Option("--roads", help="GeoJSON file of roads (LineStrings).")
    ] = None,
    per_device: Annotated[
        bool, typer.Option("--per-device", help="One MQTT connection per device (device API).")
    ] = False,
    http: Annotated[
        bool, typer.Option("--http", help="Send telemetry over HTTP (no commands).")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, help="Seconds between a pole's reports.")
    ] = 10.0,
    speed: Annotated[
        float, typer.Option("--speed", min=0.001, help="Simulated seconds per wall second.")
    ] = 1.0,
    duration: Annotated[
        float | None, typer.Option("--duration", help="Stop after this many seconds.")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--start", help="Simulated start (ISO 8601 or Unix seconds; default now)."),
    ] = None,
    qos: Annotated[int, typer.Option("--qos", min=0, max=1, help="MQTT QoS (0 or 1).")] = 1,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            help=f"NAME=RATE per device-hour (repeatable; 'none', 'all=R'). {', '.join(FAULTS)}.",
        ),
    ] = None,
    connect_rate: Annotated[
        float, typer.Option("--connect-rate", min=1, help="New connections per second.")
    ] = 500.0,
    progress_every: Annotated[
        float,
        typer.Option("--progress-every", help="Print progress every N s (0: a live line)."),
    ] = 0.0,
    scenario: Annotated[
        bool,
        typer.Option(
            "--scenario",
            help="Play the demo's first-minute scenario (a lamp failure, a day burner, an SOS, "
            "a flood, a gateway offline), then the fault rates.",
        ),
    ] = False,
    exit_with_parent: Annotated[bool, typer.Option(hidden=True)] = False,
    json: JsonOut = False,
) -> None:
    """Simulate a district of smart poles streaming to a running platform over MQTT or HTTP."""
    import httpx
    import uvloop

    from smartpole.sim.district import plan_district, roads_from_geojson
    from smartpole.sim.fleet import Fleet
    from smartpole.sim.provision import ProvisionError, provision
    from smartpole.sim.runner import SimOptions
    from smartpole.sim.scenario import DEMO

    try:
        rates = FaultRates.parse(fault or [])
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--fault") from err
    path = fleet_file or settings(data_dir, None).data_dir / FLEET_FILE
    if path.exists():
        fleet = Fleet.load(path)
        if len(fleet.poles) < poles:
            console.print(f"{path} has {len(fleet.poles):,} poles; simulating those")
        fleet = fleet.take(poles)
    else:
        if not api_key:
            console.print(f"[red]error:[/red] no fleet file {path}; give --api-key to create one")
            raise typer.Exit(1)
        plan = plan_district(
            poles, seed, district, roads_from_geojson(roads) if roads else None, _bbox(bbox)
        )
        console.print(f"registering {len(plan):,} poles at {url} ...")
        try:
            fleet = asyncio.run(provision(url, api_key, plan, seed, district))
        except (ProvisionError, httpx.HTTPError) as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(1) from err
        fleet.save(path)
        console.print(f"{fleet.devices:,} devices registered; fleet saved to {path}")
    mode: Mode = "http" if http else "device" if per_device else "gateway"
    options = SimOptions(
        mode=mode,
        host=mqtt_host or httpx.URL(url).host or "127.0.0.1",
        mqtt_port=mqtt_port,
        url=url,
        interval=interval,
        speed=speed,
        duration=duration,
        start=_start(start),
        qos=qos,
        connect_rate=connect_rate,
    )
    raise_fd_limit()
    console.print(
        f"simulating {len(fleet.poles):,} poles, {fleet.devices:,} devices ({mode} mode) "
        f"every {interval:g} s at {speed:g}x; Ctrl-C stops"
    )
    # uvloop: ten thousand connections in one process want the faster loop.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        stats: Stats = runner.run(
            run_simulator(
                fleet, options, rates, progress_every, exit_with_parent, DEMO if scenario else ()
            )
        )
    summary = stats.summary()
    if json:
        print_json(summary)
    else:
        console.print(
            f"sent {summary['sent']:,} messages, {summary['acked']:,} acknowledged, "
            f"{summary['readings']:,} readings in {summary['seconds']} s "
            f"({summary['messages_per_s']:,} msg/s); ack p50 {summary['ack_ms_p50']} ms, "
            f"p99 {summary['ack_ms_p99']} ms",
            soft_wrap=True,
        )


def register(app: typer.Typer) -> None:
    """Add ``sim`` to the main app."""
    app.command()(sim)


def spawn_simulator(
    data_dir: Path, host: str, http_port: int, mqtt_port: int, poles: int, scenario: bool = False
) -> subprocess.Popen[bytes] | None:
    """Start ``smartpole sim`` on the demo's fleet file as a child process (None if there is
    no fleet file). It waits for the platform to listen and ends when its parent does."""
    path = data_dir / FLEET_FILE
    if not path.exists():
        console.print(f"no fleet file {path}: no simulator (a fresh --data-dir seeds one)")
        return None
    client_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    args = ["--fleet", str(path), "--poles", str(poles), "--url"]
    args += [f"http://{client_host}:{http_port}", "--mqtt-host", client_host]
    args += ["--http"] if mqtt_port < 0 else ["--mqtt-port", str(mqtt_port)]
    args += ["--progress-every", "30", "--exit-with-parent"] + (["--scenario"] if scenario else [])
    entry = "from smartpole.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", entry, "sim", *args])


def stop_simulator(child: subprocess.Popen[bytes] | None) -> None:
    """Stop the demo's simulator (SIGTERM: it closes its connections) and wait for it."""
    if child is None or child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(15)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free at the moment (for a demo asked to pick its MQTT port)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
