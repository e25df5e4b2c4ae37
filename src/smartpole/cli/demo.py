"""``demo``: a sample district, served and streamed by the simulator, with a first-minute scenario.

Heavy modules (the platform, the store, the simulator, uvicorn) are imported inside the command,
so that ``smartpole --help`` does not pay for them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from smartpole.cli.common import DataDir, Db
from smartpole.cli.ports import Host, HttpPort, MqttPort, ensure_free

if TYPE_CHECKING:
    from smartpole.app import Platform
    from smartpole.sim.fleet import Fleet

__all__ = ["DEMO_OFFLINE_AFTER", "demo", "demo_rules", "register"]

# The default device-offline rule waits 10 minutes; the scenario takes a pole's gateway off the
# air for 90 s, so the demo adds a copy of the rule for that pole alone that waits 20 s (for every
# pole it would raise hundreds of alarms each time the demo restarts after a pause).
DEMO_OFFLINE_AFTER = "20s"


def demo_rules(fleet: Fleet) -> list[dict[str, Any]]:
    """The city's default rules, and the demo's quick offline rule for the scenario's pole."""
    from smartpole.hub.rules.documents import default_rules
    from smartpole.sim.scenario import DEMO, Event, cast

    rules = default_rules()
    cues, _ = cast(DEMO, fleet)
    for cue in cues:
        if cue.step.event is Event.GATEWAY_OFFLINE:
            offline = next(r for r in rules if r["name"] == "device-offline")
            rules.append(
                {
                    **offline,
                    "name": "demo-pole-offline",
                    "description": f"The demo's scenario pole {cue.pole}: any device offline "
                    f"for {DEMO_OFFLINE_AFTER} (the default rule waits 10 minutes)",
                    "scope": {"poles": [cue.pole]},
                    "condition": {**offline["condition"], "for": DEMO_OFFLINE_AFTER},
                }
            )
    return rules


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
    scenario: Annotated[
        bool,
        typer.Option(
            "--scenario/--no-scenario",
            help="Play the first-minute scenario (a lamp failure, a flood, an SOS, a gateway "
            "offline, a day burner), then the normal fault rates.",
        ),
    ] = True,
) -> None:
    """Seed a sample district (first run only), serve it and stream it from the simulator."""
    import orjson

    from smartpole.cli.common import console, open_platform, settings
    from smartpole.cli.server import run_server
    from smartpole.cli.sim import free_port, spawn_simulator, stop_simulator
    from smartpole.sim.fleet import FLEET_FILE, fleet_from_plan
    from smartpole.sim.seed import city_principal, demo_lighting, lighting_principal, seed_district
    from smartpole.store.files import write_private

    wanted = settings(data_dir, db, host=host, http_port=http_port, mqtt_port=mqtt_port)
    ensure_free(wanted)
    if wanted.mqtt_port == 0:  # the simulator must know the port before the platform binds
        mqtt_port = free_port(wanted.host)
    p = open_platform(data_dir, db, host=host, http_port=http_port, mqtt_port=mqtt_port)
    creds = p.settings.data_dir / "demo-credentials.json"
    seeded = seed_district(p.tenants, p.assets, poles, users=p.users)
    if seeded.poles:
        write_private(
            creds,
            orjson.dumps({"keys": seeded.keys, "users": seeded.users, "tokens": seeded.tokens}),
        )
        fleet = fleet_from_plan(seeded.plan, seeded.tokens, 1, "Futian")
        fleet.save(p.settings.data_dir / FLEET_FILE)
        # The city's default rules, so that the simulator's faults and events become alarms.
        rules = demo_rules(fleet)
        operator = city_principal(p.tenants)
        for rule in rules:
            p.hub.rules.put(operator, rule)
        # The lighting department's programs, so that the lamps run them from the first night.
        p.lighting.import_document(
            lighting_principal(p.tenants), demo_lighting(), "application/yaml", replace=True
        )
        console.print(
            f"seeded {seeded.poles} poles, {seeded.devices} devices, {len(rules)} rules and "
            "the lighting programs"
        )
    _print_banner(p, creds)
    s = p.settings
    child = None
    if simulate:
        child = spawn_simulator(s.data_dir, s.host, s.http_port, s.mqtt_port, poles, scenario)
    try:
        run_server(p)
    finally:
        stop_simulator(child)


def banner(base: str, creds: Path) -> list[str]:
    """The demo's banner: the console's URL and logins, keys, a token, and curl commands each on
    one line, to paste as is."""
    import orjson

    if not creds.exists():
        return [f"API docs: {base}/docs"]
    data = orjson.loads(creds.read_bytes())
    viewer = data["keys"]["city"]["viewer"]
    device, token = next(iter(data["tokens"].items()))
    auth = f"-H 'Authorization: Bearer {viewer}'"
    users = data.get("users") or {}  # none in a data dir seeded before the console
    logins = [f"{u['name']} / {u['password']}" for t, u in users.items() if t != "city"]
    console = []
    if "city" in users:
        city = users["city"]
        console.append(f"console: {base}/   log in as {city['name']} / {city['password']} (admin)")
    if logins:
        console.append(f"  other tenants (operators): {', '.join(logins)}")
    return [
        "",
        *console,
        f"smartpole demo — API docs: {base}/docs   (credentials in {creds})",
        f"  city admin key:  {data['keys']['city']['admin']}",
        f"  city viewer key: {viewer}",
        f"  device {device} token: {token}",
        "",
        "# a device posts telemetry (ThingsBoard HTTP API):",
        f"curl -s -X POST {base}/api/v1/{token}/telemetry -H 'Content-Type: application/json' "
        """-d '{"cpu": 12.5, "temperature": 41}'""",
        "# read it back:",
        f"curl -s {auth} '{base}/api/telemetry/latest?kind=gateway&keys=cpu'",
        "# within a minute, the scenario's alarms and the work orders they opened:",
        f"curl -s {auth} '{base}/api/alarms?active=true'",
        f"curl -s {auth} '{base}/api/work-orders'",
        "Ctrl-C stops.",
    ]


def _print_banner(p: Platform, creds: Path) -> None:
    # Plain lines, never wrapped: a command wrapped inside its quotes cannot be pasted.
    from smartpole.cli.common import console

    base = f"http://{p.settings.host}:{p.settings.http_port}"
    for line in banner(base, creds):
        console.print(line, soft_wrap=True, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``demo`` to the main app."""
    app.command()(demo)
