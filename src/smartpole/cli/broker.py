"""``broker``: what an external MQTT broker needs from the registry (scale-out mode)."""

from __future__ import annotations

import grp
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from smartpole.cli.common import DataDir, Db, JsonOut, console, open_platform, print_json

if TYPE_CHECKING:
    from smartpole.transport.broker.mosquitto import MosquittoFiles

broker_app = typer.Typer(
    help="An external MQTT broker in front of smartpole (scale-out mode).", no_args_is_help=True
)


def _hup(pid_file: Path) -> None:
    """Ask the broker whose PID is in ``pid_file`` to re-read its files (SIGHUP)."""
    try:
        os.kill(int(pid_file.read_text().strip()), signal.SIGHUP)
    except (OSError, ValueError) as err:
        console.print(f"[yellow]warning:[/yellow] could not signal the broker ({pid_file}): {err}")


def _report(files: MosquittoFiles, changed: list[str], json: bool) -> None:
    if json:
        skipped = [asdict(s) for s in files.skipped]
        print_json({"devices": files.devices, "skipped": skipped, "changed": changed})
        return
    what = ", ".join(changed) if changed else "nothing changed"
    console.print(f"{files.devices} device accounts and the service user; {what}")
    for s in files.skipped[:20]:
        console.print(f"  skipped device {s.device_id} ({s.name}): {s.reason}")
    if len(files.skipped) > 20:
        console.print(f"  … and {len(files.skipped) - 20} more skipped (--json lists all)")


@broker_app.command("mosquitto")
def mosquitto(
    passwd: Annotated[Path, typer.Option("--passwd", help="Mosquitto password_file to write.")],
    acl: Annotated[Path, typer.Option("--acl", help="Mosquitto acl_file to write.")],
    watch: Annotated[
        float | None,
        typer.Option("--watch", help="Keep running: regenerate every this many seconds."),
    ] = None,
    hup: Annotated[
        Path | None,
        typer.Option("--hup", help="Mosquitto's PID file: send it SIGHUP when a file changed."),
    ] = None,
    group: Annotated[
        str | None, typer.Option("--group", help="Group to own the files (e.g. mosquitto).")
    ] = None,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Write Mosquitto's password and ACL files from the registry.

    Devices log in with their name and access token and may use only sp/v1/<name>/...;
    smartpole's user (broker_username, broker_password) reads sp/v1/# and sends commands.
    A file is replaced, atomically, only when its content changes.
    """
    from smartpole.registry.broker import BrokerAccounts
    from smartpole.transport.broker.mosquitto import generate, write_if_changed

    p = open_platform(data_dir, db)
    s = p.settings
    if not s.broker_password:
        console.print("[red]error:[/red] set SMARTPOLE_BROKER_PASSWORD: smartpole's broker user")
        raise typer.Exit(1)
    gid = grp.getgrnam(group).gr_gid if group else None
    accounts = BrokerAccounts(p.assets)
    first = True
    try:
        while True:
            previous = passwd.read_text(encoding="utf-8") if passwd.exists() else None
            files = generate(accounts, (s.broker_username, s.broker_password), previous)
            changed = [
                str(path)
                for path, text in ((passwd, files.passwd), (acl, files.acl))
                if write_if_changed(path, text, group=gid)
            ]
            if changed and hup is not None:
                _hup(hup)
            if first or changed:
                _report(files, changed, json)
            if watch is None:
                return
            first = False
            time.sleep(watch)
    except KeyboardInterrupt:
        return
    finally:
        p.db.dispose()


def register(app: typer.Typer) -> None:
    """Add the ``broker`` group to the main app."""
    app.add_typer(broker_app, name="broker")
