"""Lighting commands: list programs, groups and calendar entries, import and export the document,
overrides, a night's plan, energy and the lamp replacements forecast. They work on the database
directly, as a tenant's admin; a running server sees the change at its next read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from smartpole.cli.common import (
    DataDir,
    Db,
    JsonOut,
    city,
    command_platform,
    console,
    moment,
    print_json,
    print_table,
)

if TYPE_CHECKING:
    from smartpole.app import Platform
    from smartpole.registry.access import Principal

__all__ = ["register"]

lighting_app = typer.Typer(
    help="Lighting: programs, groups, calendar, overrides, plans, energy and replacements.",
    no_args_is_help=True,
)
Tenant = Annotated[
    str, typer.Option("--tenant", help="Act as this tenant's admin (default: the city operator).")
]
ByOption = Annotated[Literal["hour", "day", "month"], typer.Option("--by", help="Bucket size.")]


def _who(p: Platform, tenant: str) -> Principal:
    from smartpole.sim.seed import city_principal

    if tenant == "city":
        return city(p.tenants)
    return city_principal(p.tenants, p.tenants.by_name(tenant)["name"])


def _items(part: str, tenant: str, data_dir: Path | None, db: str | None, json: bool) -> None:
    with command_platform(data_dir, db) as p:
        items = p.lighting.items(_who(p, tenant), part)
    if json:
        print_json(items)
        return
    rows = ((x["name"], ", ".join(f"{k}={v}" for k, v in x.items() if k != "name")) for x in items)
    print_table(f"{len(items)} {part}", ("name", "definition"), rows)


@lighting_app.command("programs")
def programs(
    tenant: Tenant = "city", data_dir: DataDir = None, db: Db = None, json: JsonOut = False
) -> None:
    """List the tenant's programs."""
    _items("programs", tenant, data_dir, db, json)


@lighting_app.command("groups")
def groups(
    tenant: Tenant = "city", data_dir: DataDir = None, db: Db = None, json: JsonOut = False
) -> None:
    """List the tenant's groups."""
    _items("groups", tenant, data_dir, db, json)


@lighting_app.command("calendar")
def calendar(
    tenant: Tenant = "city", data_dir: DataDir = None, db: Db = None, json: JsonOut = False
) -> None:
    """List the tenant's calendar entries."""
    _items("calendar", tenant, data_dir, db, json)


@lighting_app.command("import")
def import_document(
    file: Annotated[Path, typer.Argument(help="A lighting document, YAML (.yaml/.yml) or JSON.")],
    merge: Annotated[
        bool, typer.Option("--merge", help="Add or replace by name instead of replacing all.")
    ] = False,
    tenant: Tenant = "city",
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Import a lighting document; nothing is saved unless the result is valid."""
    kind = "application/yaml" if file.suffix.lower() in (".yaml", ".yml") else "application/json"
    with command_platform(data_dir, db) as p:
        doc = p.lighting.import_document(_who(p, tenant), file.read_bytes(), kind, not merge)
    console.print(
        f"{len(doc.programs)} programs, {len(doc.groups)} groups, {len(doc.holidays)} holiday"
        f" calendars, {len(doc.calendar)} calendar entries"
    )


@lighting_app.command("export")
def export_document(
    tenant: Tenant = "city", data_dir: DataDir = None, db: Db = None, json: JsonOut = False
) -> None:
    """Print the tenant's lighting document (YAML; JSON with --json)."""
    import yaml

    with command_platform(data_dir, db) as p:
        body = p.lighting.export_body(_who(p, tenant))
    if json:
        print_json(body)
    else:
        typer.echo(yaml.safe_dump(body, sort_keys=False, allow_unicode=True), nl=False)


@lighting_app.command("overrides")
def overrides(
    add: Annotated[str | None, typer.Option("--add", help="Override this group.")] = None,
    level: Annotated[float, typer.Option("--level", help="At this level (%).")] = 100.0,
    duration_s: Annotated[float, typer.Option("--for", help="For so many seconds.")] = 3600.0,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    end: Annotated[int | None, typer.Option("--end", help="End this override now.")] = None,
    tenant: Tenant = "city",
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """List the tenant's overrides; --add GROUP holds a group at --level for --for seconds,
    --end ID ends one now."""
    with command_platform(data_dir, db) as p:
        who = _who(p, tenant)
        if add is not None:
            made = p.lighting.add_override(who, add, level, None, duration_s, reason)
            console.print(f"override {made.id}: {add} at {level:g} % until {moment(made.until_ms)}")
        if end is not None:
            ended = p.lighting.end_override(who, end)
            console.print(f"override {ended.id} ended at {moment(ended.until_ms)}")
        if add is not None or end is not None:
            return
        found = p.lighting.overrides(who)
    if json:
        print_json([dataclasses.asdict(o) for o in found])
        return
    print_table(
        f"{len(found)} overrides",
        ("id", "group", "level", "from", "until", "reason", "by"),
        (
            (o.id, o.group, o.level, moment(o.start_ms), moment(o.until_ms), o.reason, o.by)
            for o in found
        ),
    )


@lighting_app.command("plan")
def plan(
    group: Annotated[str | None, typer.Option("--group", help="The lamps of this group.")] = None,
    lamp: Annotated[str | None, typer.Option("--lamp", help="This lamp (its name).")] = None,
    date: Annotated[
        str | None, typer.Option("--date", help="The night of this evening (YYYY-MM-DD).")
    ] = None,
    nights: Annotated[int, typer.Option("--nights", help="How many nights.")] = 1,
    tenant: Tenant = "city",
    data_dir: DataDir = None,
    db: Db = None,
    json: JsonOut = False,
) -> None:
    """Each lamp's steps through the night(s): time, level, fade and why."""
    from smartpole.lighting.service import by_reason

    night = dt.date.fromisoformat(date) if date else None
    with command_platform(data_dir, db) as p:
        plans = p.lighting.plan(_who(p, tenant), group, lamp, night, nights)
    if json:
        print_json(
            {
                name: [
                    {"ts": s.ts_ms, "level": s.level, "fade_s": s.fade_s, **by_reason(s.reason)}
                    for s in steps
                ]
                for name, steps in plans.items()
            }
        )
        return
    print_table(
        f"{len(plans)} lamps",
        ("lamp", "at", "level", "fade_s", "program", "entry", "override"),
        (
            (name, moment(s.ts_ms), s.level, s.fade_s, *by_reason(s.reason).values())
            for name, steps in sorted(plans.items())
            for s in steps
        ),
    )


@lighting_app.command("energy")
def energy(
    start: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD), local.")],
    end: Annotated[str, typer.Option("--to", help="Day after the last (YYYY-MM-DD), local.")],
    group: Annotated[str | None, typer.Option("--group", help="This group's lamps.")] = None,
    by: ByOption = "day",
    tenant: Tenant = "city",
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Energy against the dusk-to-dawn baseline, as CSV."""
    from smartpole.lighting.energy import energy_csv

    with command_platform(data_dir, db) as p:
        who = _who(p, tenant)
        zone = p.lighting.zone(who.tenant_id)

        def ms(day: str) -> int:
            local = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), zone)
            return round(local.timestamp() * 1000)

        rows = p.lighting.energy(who, group, ms(start), ms(end), by)
    typer.echo(energy_csv(rows, zone, by), nl=False)


@lighting_app.command("replacements")
def replacements(
    horizon: Annotated[
        int, typer.Option("--horizon", help="Count lamps due up to so many years ahead (1-30).")
    ] = 10,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV with a column per year.")] = False,
    tenant: Tenant = "city",
    data_dir: DataDir = None,
    db: Db = None,
) -> None:
    """Lamps per road against their rated life (L70): past it now, the next due, due per year."""
    from smartpole.lighting.diagnostics import replacements_csv

    with command_platform(data_dir, db) as p:
        who = _who(p, tenant)
        roads = p.lighting.replacements(who, horizon)
        first = dt.datetime.fromtimestamp(p.lighting.clock() / 1000, p.lighting.zone(who.tenant_id))
    if as_csv:
        typer.echo(replacements_csv(roads, first.year, horizon), nl=False)
        return
    print_table(
        f"{sum(r.lamps for r in roads)} lamps on {len(roads)} roads",
        ("district", "road", "lamps", "past L70", "next due", "due by year", "life used"),
        (
            (
                r.district,
                r.road,
                r.lamps,
                r.due_now,
                r.next_due.isoformat() if r.next_due else "",
                ", ".join(f"{year}: {n}" for year, n in r.by_year),
                f"{r.mean_life_used:.0%}",
            )
            for r in roads
        ),
    )


def register(app: typer.Typer) -> None:
    """Add these commands to the main app."""
    app.add_typer(lighting_app, name="lighting")
