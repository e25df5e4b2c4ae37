"""``serve``, ``demo`` and ``db``: running the platform and its schema."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smartpole.cli.common import (
    DataDir,
    Db,
    JsonOut,
    console,
    fail,
    open_platform,
    print_json,
    print_record,
    settings,
)
from smartpole.errors import SmartpoleError

if TYPE_CHECKING:
    from smartpole.app import Platform

Host = Annotated[str | None, typer.Option("--host", help="Listen address (default 127.0.0.1).")]
HttpPort = Annotated[int | None, typer.Option("--http-port", help="HTTP port (default 8080).")]
MqttPort = Annotated[
    int | None,
    typer.Option("--mqtt-port", help="MQTT port (default 1883; 0 picks a free one; -1 off)."),
]
Broker = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Consume from an external MQTT 5 broker (mqtt://host:1883); the built-in MQTT "
        "endpoint is then off unless --mqtt-port is given.",
        show_default=False,
    ),
]


def _serve(platform: Platform) -> None:
    import socket

    import uvicorn

    from smartpole.api import create_app

    class Server(uvicorn.Server):
        """uvicorn, which first ends the devices' open HTTP polls when it shuts down (it would
        wait for them, up to a minute each)."""

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            platform.polls.stop()
            await super().shutdown(sockets)

    s = platform.settings
    logging.basicConfig(level=s.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = uvicorn.Config(
        create_app(platform),
        host=s.host,
        port=s.http_port,
        log_level=s.log_level.lower(),
        access_log=False,
        lifespan="on",
    )
    Server(config).run()  # picks uvloop when installed


def serve(
    data_dir: DataDir = None,
    db: Db = None,
    host: Host = None,
    http_port: HttpPort = None,
    mqtt_port: MqttPort = None,
    broker: Broker = None,
) -> None:
    """Run the platform: REST API, device HTTP and MQTT APIs, ingest pipeline."""
    if broker and mqtt_port is None:
        mqtt_port = -1  # devices use the broker; the built-in endpoint would compete for 1883
    try:
        p = open_platform(
            data_dir, db, host=host, http_port=http_port, mqtt_port=mqtt_port, broker=broker
        )
    except SmartpoleError as err:
        raise fail(err) from err
    where = f"broker {p.broker.where}" if p.broker else f"MQTT on port {p.settings.mqtt_port}"
    console.print(
        f"smartpole on {p.db.dialect}; API docs at "
        f"http://{p.settings.host}:{p.settings.http_port}/docs; {where}"
    )
    _serve(p)


def demo(
    data_dir: DataDir = None,
    db: Db = None,
    host: Host = None,
    http_port: HttpPort = None,
    mqtt_port: MqttPort = None,
    poles: Annotated[int, typer.Option(help="Poles in the sample district.")] = 500,
    simulate: Annotated[
        bool, typer.Option("--sim/--no-sim", help="Run the fleet simulator against it.")
    ] = True,
) -> None:
    """Seed a sample district (first run only), serve it and stream it from the simulator."""
    import orjson

    from smartpole.cli.sim import free_port, spawn_simulator, stop_simulator
    from smartpole.hub.rules import default_rules
    from smartpole.sim.fleet import FLEET_FILE, fleet_from_plan
    from smartpole.sim.seed import city_principal, seed_district
    from smartpole.store.files import write_private

    p = open_platform(data_dir, db, host=host, http_port=http_port, mqtt_port=mqtt_port)
    creds = p.settings.data_dir / "demo-credentials.json"
    seeded = seed_district(p.tenants, p.assets, poles)
    if seeded.poles:
        write_private(creds, orjson.dumps({"keys": seeded.keys, "tokens": seeded.tokens}))
        fleet = fleet_from_plan(seeded.plan, seeded.tokens, 1, "Futian")
        fleet.save(p.settings.data_dir / FLEET_FILE)
        # The city's default rules, so that the simulator's faults and events become alarms.
        rules = default_rules()
        operator = city_principal(p.tenants)
        for rule in rules:
            p.hub.rules.put(operator, rule)
        console.print(
            f"seeded {seeded.poles} poles, {seeded.devices} devices and {len(rules)} rules"
        )
    if p.settings.mqtt_port == 0:  # the simulator must know the port before the platform binds
        p.settings.mqtt_port = free_port(p.settings.host)
    _print_demo(p, creds)
    s = p.settings
    child = None
    if simulate:
        child = spawn_simulator(s.data_dir, s.host, s.http_port, s.mqtt_port, poles)
    try:
        _serve(p)
    finally:
        stop_simulator(child)


def _print_demo(p: Platform, creds: Path) -> None:
    import orjson

    base = f"http://{p.settings.host}:{p.settings.http_port}"
    if not creds.exists():
        console.print(f"API docs: {base}/docs")
        return
    data = orjson.loads(creds.read_bytes())
    viewer = data["keys"]["city"]["viewer"]
    device, token = next(iter(data["tokens"].items()))
    console.print(f"""
[bold]smartpole demo[/bold] — API docs: {base}/docs   (credentials in {creds})
  city admin key:  {data["keys"]["city"]["admin"]}
  city viewer key: {viewer}
  device {device} token: {token}

  # a device posts telemetry (ThingsBoard HTTP API):
  curl -s -X POST {base}/api/v1/{token}/telemetry -H 'Content-Type: application/json' \\
       -d '{{"cpu": 12.5, "temperature": 41}}'
  # read it back:
  curl -s -H 'Authorization: Bearer {viewer}' '{base}/api/devices?kind=gateway&limit=1'
  curl -s -H 'Authorization: Bearer {viewer}' '{base}/api/telemetry/latest?kind=gateway&keys=cpu'
Ctrl-C stops.
""")


db_app = typer.Typer(help="Schema migrations and recovery.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(data_dir: DataDir = None, db: Db = None, json: JsonOut = False) -> None:
    """Apply pending migrations (Alembic) to the store."""
    p = open_platform(data_dir, db)
    info = {"engine": p.db.dialect, "revision": p.db.revision(), "head": p.db.head()}
    print_json(info) if json else console.print(f"{info['engine']} at revision {info['revision']}")


@db_app.command("status")
def db_status(data_dir: DataDir = None, db: Db = None, json: JsonOut = False) -> None:
    """Show the store's schema revision and the newest one this version ships."""
    from smartpole.app import Platform

    p = Platform(settings(data_dir, db))
    info = {"engine": p.db.dialect, "revision": p.db.revision(), "head": p.db.head()}
    print_json(info) if json else print_record("store", info)


@db_app.command("recover")
def db_recover(
    node: Annotated[
        str | None,
        typer.Option("--node", help="The node whose batches to settle (default: this node)."),
    ] = None,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Settle the batches a crashed node left without latest state and rollups.

    A node does it for itself when it starts; run it with ``--node`` for a node that is gone
    for good (safe even if that node still runs: each batch is counted once).
    """
    p = open_platform(data_dir, db)
    try:
        name = node or p.settings.node_id
        settled = p.series.recover(node=name)
        info = {"node": name, "settled": settled, "unsettled": p.series.unsettled()}
    finally:
        p.series.close()
    if json:
        print_json(info)
    else:
        console.print(f"settled {settled} batches of node {name!r}; left: {info['unsettled']}")


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.command()(serve)
    app.command()(demo)
    app.add_typer(db_app, name="db")
