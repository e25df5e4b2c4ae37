"""Work-order commands: list, show, create and move work orders (as the city operator)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer
from rich.table import Table

from smartpole.cli.common import DataDir, Db, JsonOut, command_platform, console, print_json
from smartpole.errors import InvalidInput
from smartpole.hub.alarms import Severity
from smartpole.hub.workorders import WorkOrderFilter, WorkOrderStatus
from smartpole.sim.seed import city_principal

__all__ = ["register"]

workorder_app = typer.Typer(help="Work orders (工单): maintenance jobs.", no_args_is_help=True)
ACTOR = "cli"


def _table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table("id", "status", "severity", "team", "title", "deadline", "overdue", title=title)
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["status"],
            r["severity"],
            r["team"] or "",
            r["title"],
            str(r["deadline"]),
            "yes" if r["overdue"] else "",
        )
    return table


@workorder_app.command("list")
def workorder_list(
    status: Annotated[list[WorkOrderStatus] | None, typer.Option(help="Repeatable.")] = None,
    team: Annotated[int | None, typer.Option(help="Team id.")] = None,
    overdue: Annotated[
        bool | None, typer.Option("--overdue/--on-time", help="Only late (or on-time) ones.")
    ] = None,
    limit: Annotated[int, typer.Option()] = 100,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """List work orders, newest first."""
    with command_platform(data_dir, db) as p:
        f = WorkOrderFilter(status=status or None, team_id=team, overdue=overdue)
        rows, total = p.work_orders.list(city_principal(p.tenants), f, limit=limit)
    if json:
        print_json({"items": rows, "total": total})
        return
    console.print(_table(rows, f"{total} work orders"))


@workorder_app.command("show")
def workorder_show(
    work_order_id: Annotated[int, typer.Argument(help="Work order id.")],
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Show a work order and its history."""
    with command_platform(data_dir, db) as p:
        row = p.work_orders.get(city_principal(p.tenants), work_order_id)
    if json:
        print_json(row)
        return
    console.print(_table([row], f"work order {work_order_id}"))
    history = Table("when", "who", "action", "from", "to", "comment")
    for h in row["history"]:
        history.add_row(
            str(h["ts"]),
            h["actor"],
            h["action"],
            h["from_status"] or "",
            h["to_status"] or "",
            h["comment"],
        )
    console.print(history)


@workorder_app.command("create")
def workorder_create(
    alarm: Annotated[int | None, typer.Option(help="Alarm id it comes from.")] = None,
    device: Annotated[int | None, typer.Option(help="Device id (without an alarm).")] = None,
    pole: Annotated[str | None, typer.Option(help="Pole code (without an alarm).")] = None,
    title: Annotated[str | None, typer.Option(help="Required without an alarm.")] = None,
    description: Annotated[str, typer.Option()] = "",
    severity: Annotated[Severity | None, typer.Option(help="Sets the deadline.")] = None,
    team: Annotated[int | None, typer.Option(help="Team id: assign at once.")] = None,
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Open a work order from an alarm, or for a device or a pole."""
    with command_platform(data_dir, db) as p:
        who = city_principal(p.tenants)
        found = p.hub.alarms.get_visible(who, alarm) if alarm is not None else None
        tenant_id = who.tenant_id
        pole_id = p.assets.pole_by_code(who, pole)["id"] if pole else None
        if found is not None:
            tenant_id = found.tenant_id
        elif device is not None:
            tenant_id = p.assets.get_device(who, device)["owner_id"]
        elif pole_id is None:
            raise InvalidInput("give --alarm, --device or --pole")
        wo_id = p.work_orders.create(
            actor=ACTOR,
            tenant_id=tenant_id,
            alarm=found,
            device_id=device,
            pole_id=pole_id,
            title=title,
            description=description,
            severity=severity,
            team_id=team,
        )
        row = p.work_orders.get(who, wo_id)
    if json:
        print_json(row)
    else:
        console.print(f"work order {wo_id} {row['status']}, deadline {row['deadline']}")


@workorder_app.command("transition")
def workorder_transition(
    work_order_id: Annotated[int, typer.Argument(help="Work order id.")],
    to: Annotated[WorkOrderStatus, typer.Argument(help="The status to move it to.")],
    comment: Annotated[str, typer.Option(help="Why, for the history.")] = "",
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Move a work order to another status (open → assigned → in_progress → resolved → closed)."""
    with command_platform(data_dir, db) as p:
        row = asyncio.run(
            p.work_orders.transition(city_principal(p.tenants), work_order_id, to, comment)
        )
    if json:
        print_json(row)
    else:
        console.print(f"work order {work_order_id} is {row['status']}")


def register(app: typer.Typer) -> None:
    """Add the ``workorder`` command group to the CLI."""
    app.add_typer(workorder_app, name="workorder")
