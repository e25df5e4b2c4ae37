"""Work-order commands: list, show, create and move work orders (as the city operator)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from smartpole.cli.common import (
    DataDir,
    Db,
    JsonOut,
    city,
    command_platform,
    console,
    counted,
    moment,
    print_json,
    print_record,
    print_table,
)
from smartpole.errors import InvalidInput
from smartpole.model.lifecycle import Severity, WorkOrderStatus

if TYPE_CHECKING:
    from smartpole.model.workorders import WorkOrder

__all__ = ["register"]

workorder_app = typer.Typer(help="Work orders (工单): maintenance jobs.", no_args_is_help=True)
ACTOR = "cli"


COLUMNS = ("id", "status", "severity", "team", "title", "deadline", "overdue")


def _cells(r: WorkOrder) -> tuple[Any, ...]:
    return (r.id, r.status, r.severity, r.team, r.title, moment(r.deadline), r.overdue)


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
    from smartpole.hub.workorders.store import WorkOrderFilter

    with command_platform(data_dir, db) as p:
        f = WorkOrderFilter(status=status or None, team_id=team, overdue=overdue)
        rows, total = p.work_orders.find(city(p.tenants), f, limit=limit)
    if json:
        print_json({"items": [r.to_dict() for r in rows], "total": total})
        return
    print_table(counted(len(rows), total, "work order"), COLUMNS, map(_cells, rows))


@workorder_app.command("show")
def workorder_show(
    work_order_id: Annotated[int, typer.Argument(help="Work order id.")],
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Show a work order and its history."""
    with command_platform(data_dir, db) as p:
        row = p.work_orders.get(city(p.tenants), work_order_id)
    if json:
        print_json(row.to_dict())
        return
    print_record(
        f"work order {work_order_id}",
        {k: v for k, v in zip(COLUMNS, _cells(row), strict=True) if k != "id"},
    )
    print_table(
        "history",
        ("when", "who", "action", "from", "to", "comment"),
        (
            (moment(h.ts), h.actor, h.action, h.from_status, h.to_status, h.comment)
            for h in row.history or ()
        ),
    )


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
        who = city(p.tenants)
        found = p.hub.alarms.get_visible(who, alarm) if alarm is not None else None
        tenant_id = who.tenant_id
        pole_id = p.assets.pole_by_code(who, pole).id if pole else None
        if found is not None:
            tenant_id = found.tenant_id
        elif device is not None:
            tenant_id = p.assets.get_device(who, device).owner_id
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
        print_json(row.to_dict())
    else:
        console.print(f"work order {wo_id} {row.status}, deadline {moment(row.deadline)}")


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
    import asyncio

    with command_platform(data_dir, db) as p:
        row = asyncio.run(p.work_orders.transition(city(p.tenants), work_order_id, to, comment))
    if json:
        print_json(row.to_dict())
    else:
        console.print(f"work order {work_order_id} is {row.status}")


def register(app: typer.Typer) -> None:
    """Add the ``workorder`` command group to the CLI."""
    app.add_typer(workorder_app, name="workorder")
