"""``serve`` and ``db``: running the platform and its schema (``demo`` is in ``cli.demo``)."""

from __future__ import annotations

import logging
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
from smartpole.cli.ports import Host, HttpPort, MqttPort, ensure_free
from smartpole.errors import SmartpoleError
from smartpole.runtime import settle_heap, tune_collector

if TYPE_CHECKING:
    from smartpole.app import Platform

Broker = Annotated[
    str | None,
    typer.Option(
        "--broker",
        help="Consume from an external MQTT 5 broker (mqtt://host:1883); the built-in MQTT "
        "endpoint is then off unless --mqtt-port is given.",
        show_default=False,
    ),
]


Workers = Annotated[
    int | None,
    typer.Option(
        "--workers",
        min=1,
        help="Processes to use: 1 ingests, commits, evaluates rules and scores anomalies in"
        " one; 2 or more commit readings, evaluate the rules and score anomalies in worker"
        " processes of their own (SMARTPOLE_STORE_WRITER_PROCESS=true, SMARTPOLE_HUB_WORKERS=1,"
        " SMARTPOLE_ANOMALY_WORKER=true).",
        show_default=False,
    ),
]


def run_server(platform: Platform) -> None:
    """Serve the platform with uvicorn until Ctrl-C (SIGINT) or SIGTERM."""
    import socket

    import uvicorn

    from smartpole.api import create_app

    class Server(uvicorn.Server):
        """uvicorn, which first ends the devices' open HTTP polls when it shuts down (it would
        wait for them, up to a minute each), and settles the heap once the platform started."""

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            platform.polls.stop()
            await super().shutdown(sockets)

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            settle_heap()

    s = platform.settings
    tune_collector()
    logging.basicConfig(level=s.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = uvicorn.Config(
        create_app(platform.api_services(), lifecycle=platform),
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
    workers: Workers = None,
) -> None:
    """Run the platform: REST API, device HTTP and MQTT APIs, ingest pipeline."""
    if broker and mqtt_port is None:
        mqtt_port = -1  # devices use the broker; the built-in endpoint would compete for 1883
    given: dict[str, object] = {
        "host": host,
        "http_port": http_port,
        "mqtt_port": mqtt_port,
        "broker": broker,
    }
    if workers is not None:
        given["hub_workers"] = 1 if workers >= 2 else 0
        given["anomaly_worker"] = workers >= 2
        given["store_writer_process"] = workers >= 2
    ensure_free(settings(data_dir, db, **given))
    try:
        p = open_platform(data_dir, db, **given)
    except SmartpoleError as err:
        raise fail(err) from err
    where = f"broker {p.broker.where}" if p.broker else f"MQTT on port {p.settings.mqtt_port}"
    console.print(
        f"smartpole on {p.db.dialect}; API docs at "
        f"http://{p.settings.host}:{p.settings.http_port}/docs; {where}"
    )
    run_server(p)


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
    app.add_typer(db_app, name="db")
