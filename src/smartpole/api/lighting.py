"""REST endpoints of lighting: programs, groups, holiday calendars and calendar entries (one at a
time, or the whole document as YAML or JSON), overrides, plans, energy and its settings, and the
lamp replacements forecast.

Each tenant sees and changes only its own lighting; operators write, viewers read.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal

import yaml
from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import Caller, LightingDep
from smartpole.api.schemas import Id
from smartpole.errors import InvalidInput
from smartpole.lighting.diagnostics import MAX_HORIZON_YEARS, RoadForecast, replacements_csv
from smartpole.lighting.energy import By, Savings, energy_csv, label_text
from smartpole.lighting.plan import Plan
from smartpole.lighting.service import MAX_NIGHTS, by_reason
from smartpole.lighting.store import EnergySettings, StoredOverride
from smartpole.model.documents import is_yaml, parse_document

__all__ = ["OverrideIn", "OverrideOut", "router"]

router = APIRouter(prefix="/api/lighting", tags=["lighting"])
PROBLEM: dict[str, Any] = {"application/problem+json": {}}
FIRST_MS = 946_684_800_000  # 2000-01-01: plans and energy are asked for this century
LAST_MS = 4_102_444_800_000  # 2100-01-01
DAY_MS = 86_400_000
MAX_SPAN_MS = {"hour": 31 * DAY_MS, "day": 366 * DAY_MS, "month": 5 * 366 * DAY_MS}
Since = Annotated[int, Field(ge=FIRST_MS, le=LAST_MS)]
ItemName = Annotated[str, Field(min_length=1, max_length=128)]
LOCATED = (
    "the change would leave the tenant's lighting invalid; `errors` lists why, each at its"
    ' location in the whole document (`loc`: `["calendar", 2, "program"]`) and, in a YAML'
    " document, its line (`line`, from 1)"
)
ITEM_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}
# the path segment of each part of the document, and what one item of it is
PARTS = {
    "programs": ("programs", "program"),
    "groups": ("groups", "group"),
    "holidays": ("holidays", "holiday calendar"),
    "calendars": ("calendar", "calendar entry"),
}


class OverrideIn(BaseModel):
    """Hold a group at a level until a time or for a duration (give one), then back to its
    program."""

    group: str = Field(min_length=1, max_length=128)
    level: float = Field(ge=0, le=100, description="%")
    until: Since | None = Field(None, description="when it ends (ms)")
    duration_s: float | None = Field(None, gt=0, le=366 * 86_400, description="or for how long")
    reason: str = Field("", max_length=500)


class OverrideOut(BaseModel):
    """An override; ``until`` is when it ends or ended (an ended one moved it to that time)."""

    id: int
    group: str = Field(description='the group held; "" for a rule\'s hold of the lamps listed')
    lamps: list[str] = Field(default_factory=list, description="the lamps a rule's hold lists")
    level: float
    start: int
    until: int
    reason: str
    by: str
    created: int
    running: bool

    @classmethod
    def of(cls, o: StoredOverride, now: int) -> OverrideOut:
        """From the stored override."""
        return cls(
            id=o.id,
            group=o.group,
            lamps=list(o.lamps),
            level=o.level,
            start=o.start_ms,
            until=o.until_ms,
            reason=o.reason,
            by=o.by,
            created=o.created,
            running=o.start_ms <= now < o.until_ms,
        )


def _wants(request: Request, fmt: str | None, media: str) -> bool:
    return fmt == media.split("/")[-1] or (
        fmt is None and media in request.headers.get("accept", "")
    )


async def _body(request: Request) -> Any:
    return parse_document(await request.body(), request.headers.get("content-type", ""))


def _item_routes(segment: str, part: str, what: str) -> None:
    """The list, get, create-or-replace, replace and delete routes of one part."""
    single = re.sub(r"s$", "", segment)

    async def list_items(lighting: LightingDep, who: Caller) -> list[dict[str, Any]]:
        return await run_in_threadpool(lighting.items, who, part)

    async def get_item(lighting: LightingDep, who: Caller, name: ItemName) -> dict[str, Any]:
        return await run_in_threadpool(lighting.item, who, part, name)

    async def post_item(
        lighting: LightingDep, who: Caller, request: Request, response: Response
    ) -> dict[str, Any]:
        body = await _body(request)
        item, created = await run_in_threadpool(lighting.put_item, who, part, body)
        response.status_code = 201 if created else 200
        return item

    async def put_item(
        lighting: LightingDep, who: Caller, name: ItemName, request: Request
    ) -> dict[str, Any]:
        body = await _body(request)
        if isinstance(body, dict):
            body.setdefault("name", name)
            if body["name"] != name:
                raise InvalidInput(
                    "the body names another item than the path",
                    errors=[{"loc": ["name"], "msg": f"must be {name!r}, as in the path"}],
                )
        item, _ = await run_in_threadpool(lighting.put_item, who, part, body)
        return item

    async def delete_item(lighting: LightingDep, who: Caller, name: ItemName) -> Response:
        await run_in_threadpool(lighting.delete_item, who, part, name)
        return Response(status_code=204)

    located: dict[int | str, dict[str, Any]] = {422: {"content": PROBLEM, "description": LOCATED}}
    router.add_api_route(
        f"/{segment}",
        list_items,
        methods=["GET"],
        summary=f"List {segment}",
        description=f"The tenant's {what} items, in the order written.",
        name=f"lighting.{single}.list",
    )
    router.add_api_route(
        f"/{segment}",
        post_item,
        methods=["POST"],
        status_code=201,
        summary=f"Create or replace a {what}",
        description=(
            f"Add a {what} (JSON, or YAML with `Content-Type: application/yaml`), or replace the"
            " one of its name (200). Refused (422) if the tenant's whole lighting would not"
            " be valid after it."
        ),
        openapi_extra=ITEM_BODY,
        responses={200: {"description": "replaced"}, **located},
        name=f"lighting.{single}.put",
    )
    router.add_api_route(
        f"/{segment}/{{name}}",
        get_item,
        methods=["GET"],
        summary=f"Get a {what}",
        description=f"One {what} by name.",
        name=f"lighting.{single}.get",
    )
    router.add_api_route(
        f"/{segment}/{{name}}",
        put_item,
        methods=["PUT"],
        summary=f"Replace a {what}",
        description=f"Create or replace the {what} of this name.",
        openapi_extra=ITEM_BODY,
        responses=located,
        name=f"lighting.{single}.replace",
    )
    router.add_api_route(
        f"/{segment}/{{name}}",
        delete_item,
        methods=["DELETE"],
        status_code=204,
        summary=f"Delete a {what}",
        description=f"Delete a {what}; refused (422) while the calendar uses it.",
        responses=located,
        name=f"lighting.{single}.delete",
    )


for _segment, (_part, _what) in PARTS.items():
    _item_routes(_segment, _part, _what)


# -- the document -----------------------------------------------------------------------------
@router.get(
    "/document",
    summary="Export the lighting document",
    response_model=dict[str, Any],
    responses={200: {"content": {"application/yaml": {"schema": {"type": "object"}}}}},
    name="lighting.document.get",
)
async def get_document(
    lighting: LightingDep,
    who: Caller,
    request: Request,
    format: Annotated[Literal["json", "yaml"] | None, Query()] = None,
) -> Any:
    """The tenant's programs, groups, holidays and calendar; YAML with ``format=yaml`` or
    ``Accept: application/yaml`` (what ``PUT /api/lighting/document`` takes back)."""
    body = await run_in_threadpool(lighting.export_body, who)
    if format == "yaml" or (format is None and is_yaml(request.headers.get("accept", ""))):
        text = yaml.safe_dump(body, sort_keys=False, allow_unicode=True)
        return Response(text, media_type="application/yaml")
    return body


@router.put(
    "/document",
    summary="Import a lighting document",
    openapi_extra=ITEM_BODY,
    responses={422: {"content": PROBLEM, "description": LOCATED}},
    name="lighting.document.import",
)
async def put_document(
    lighting: LightingDep,
    who: Caller,
    request: Request,
    replace: Annotated[bool, Query(description="replace the whole (else merge by name)")] = True,
) -> dict[str, Any]:
    """Import programs, groups, holidays and calendar entries (JSON or YAML): the whole
    replaces the tenant's, or with ``replace=false`` each item is added or replaces the one of
    its name. Nothing is saved unless the result is valid; every problem is located."""
    text, content_type = await request.body(), request.headers.get("content-type", "")
    await run_in_threadpool(lighting.import_document, who, text, content_type, replace)
    return await run_in_threadpool(lighting.export_body, who)


# -- overrides --------------------------------------------------------------------------------
@router.get("/overrides", summary="List overrides", name="lighting.override.list")
async def list_overrides(
    lighting: LightingDep,
    who: Caller,
    running: Annotated[bool, Query(description="only those not over yet")] = False,
) -> list[OverrideOut]:
    """The tenant's overrides, oldest first."""
    found = await run_in_threadpool(lighting.overrides, who, running)
    now = lighting.clock()
    return [OverrideOut.of(o, now) for o in found]


@router.post(
    "/overrides",
    status_code=201,
    summary="Override a group's level",
    responses={422: {"content": PROBLEM, "description": "an unknown group, a bad level or end"}},
    name="lighting.override.create",
)
async def create_override(lighting: LightingDep, who: Caller, body: OverrideIn) -> OverrideOut:
    """Hold a group at a level from now until ``until`` or for ``duration_s``; it ends by
    itself and the lamps go back to their program (operator role)."""
    made = await run_in_threadpool(
        lighting.add_override, who, body.group, body.level, body.until, body.duration_s, body.reason
    )
    return OverrideOut.of(made, lighting.clock())


@router.get("/overrides/{override_id}", summary="Get an override", name="lighting.override.get")
async def get_override(lighting: LightingDep, who: Caller, override_id: Id) -> OverrideOut:
    """One of the tenant's overrides."""
    found = await run_in_threadpool(lighting.override, who, override_id)
    return OverrideOut.of(found, lighting.clock())


@router.delete("/overrides/{override_id}", summary="End an override", name="lighting.override.end")
async def end_override(lighting: LightingDep, who: Caller, override_id: Id) -> OverrideOut:
    """End an override now (operator role): its lamps go back to their program."""
    ended = await run_in_threadpool(lighting.end_override, who, override_id)
    return OverrideOut.of(ended, lighting.clock())


# -- plans ------------------------------------------------------------------------------------
def _steps(plan: Plan) -> list[dict[str, Any]]:
    return [
        {"ts": s.ts_ms, "level": s.level, "fade_s": s.fade_s, "reason": by_reason(s.reason)}
        for s in plan
    ]


@router.get("/plan", summary="A night's plan, or a lamp's level now", name="lighting.plan.get")
async def get_plan(
    lighting: LightingDep,
    who: Caller,
    group: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    lamp: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
    date: Annotated[dt.date | None, Query(ge=dt.date(2000, 1, 1), le=dt.date(2099, 12, 31))] = None,
    nights: Annotated[int, Query(ge=1, le=MAX_NIGHTS)] = 1,
    at: Annotated[int | None, Query(ge=FIRST_MS, le=LAST_MS, description="ms")] = None,
) -> dict[str, Any]:
    """With ``group`` or ``lamp``: each lamp's steps (time, level, fade, and the program and
    calendar entry or override behind each) through ``nights`` nights from the evening of
    ``date`` (tonight by default). With ``lamp`` and ``at``: the level the lamp should have then,
    and why."""
    if at is not None:
        if lamp is None:
            raise InvalidInput("at needs a lamp", errors=[{"loc": ["lamp"], "msg": "required"}])
        level, reason = await run_in_threadpool(lighting.at, who, lamp, at)
        return {"lamp": lamp, "at": at, "level": level, "reason": by_reason(reason)}
    if (group is None) == (lamp is None):
        raise InvalidInput(
            "give a group or a lamp", errors=[{"loc": ["group"], "msg": "a group or a lamp"}]
        )
    plans = await run_in_threadpool(lighting.plan, who, group, lamp, date, nights)
    return {
        "date": date.isoformat() if date else None,
        "nights": nights,
        "lamps": [{"lamp": name, "steps": _steps(plan)} for name, plan in sorted(plans.items())],
    }


# -- energy -----------------------------------------------------------------------------------
def _rows(rows: list[Savings], label: Callable[[int], str]) -> list[dict[str, Any]]:
    return [
        {
            "group": r.group,
            "period": label(r.bucket),
            "start": r.bucket,
            "actual_kwh": round(r.actual_kwh, 3),
            "baseline_kwh": round(r.baseline_kwh, 3),
            "saved_kwh": round(r.saved_kwh, 3),
            "saved_pct": round(r.saved_pct, 1),
            "actual_cost": round(r.actual_cost, 2),
            "baseline_cost": round(r.baseline_cost, 2),
            "saved_cost": round(r.saved_cost, 2),
            "saved_co2_kg": round(r.saved_co2_kg, 2),
        }
        for r in rows
    ]


@router.get(
    "/energy",
    summary="Energy and savings",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    name="lighting.energy.get",
)
async def get_energy(
    lighting: LightingDep,
    who: Caller,
    request: Request,
    start: Annotated[int, Query(alias="from", ge=FIRST_MS, le=LAST_MS, description="ms")],
    end: Annotated[int, Query(alias="to", ge=FIRST_MS, le=LAST_MS, description="ms")],
    group: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
    by: Annotated[Literal["hour", "day", "month"], Query()] = "day",
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
) -> Any:
    """A group's lamps (every lamp without one) by hour, day or month in the tenant's time
    zone: used kWh against the dusk-to-dawn baseline, cost with the tenant's tariff, CO2 with
    its grid factor. CSV with ``format=csv`` or ``Accept: text/csv``. An hour's span is at most
    31 days, a day's 366."""
    span: By = by
    if not 0 < end - start <= MAX_SPAN_MS[span]:
        raise InvalidInput(
            "the period is empty or too long",
            errors=[{"loc": ["to"], "msg": f"after from, and at most {MAX_SPAN_MS[span]} ms"}],
        )
    rows = await run_in_threadpool(lighting.energy, who, group, start, end, span)
    zone = lighting.zone(who.tenant_id)
    if _wants(request, format, "text/csv"):
        return Response(energy_csv(rows, zone, span), media_type="text/csv; charset=utf-8")
    return {"group": group, "by": span, "rows": _rows(rows, lambda b: label_text(b, zone, span))}


@router.get(
    "/energy/report",
    summary="A month's energy report (CSV)",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    response_class=Response,
    name="lighting.energy.report",
)
async def get_report(
    lighting: LightingDep,
    who: Caller,
    month: Annotated[str, Query(pattern=r"^20\d\d-(0[1-9]|1[0-2])$", examples=["2026-03"])],
) -> Response:
    """The tenant's month: a row per district, per road, and its total (CSV)."""
    first = dt.date(int(month[:4]), int(month[5:]), 1)
    text = await run_in_threadpool(lighting.report, who, first)
    headers = {"Content-Disposition": f'attachment; filename="lighting-{month}.csv"'}
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)


# -- replacements -----------------------------------------------------------------------------
def _forecast(r: RoadForecast) -> dict[str, Any]:
    return {
        "district": r.district,
        "road": r.road,
        "lamps": r.lamps,
        "past_l70": r.due_now,
        "next_due": r.next_due.isoformat() if r.next_due else None,
        "due": [{"year": year, "lamps": n} for year, n in r.by_year],
        "mean_life_used": r.mean_life_used,
    }


@router.get(
    "/replacements",
    summary="Lamp replacements forecast per road",
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
    name="lighting.replacements.get",
)
async def get_replacements(
    lighting: LightingDep,
    who: Caller,
    request: Request,
    horizon_years: Annotated[int, Query(ge=1, le=MAX_HORIZON_YEARS)] = 10,
    format: Annotated[Literal["json", "csv"] | None, Query()] = None,
) -> Any:
    """The tenant's lamps per district and road against their rated life (L70, the
    ``rated_life`` attribute) by their burn hours (the ``hours`` reading): how many are past it
    now, the next date one is due, how many fall due each year up to ``horizon_years`` ahead,
    and the mean share of rated life used. CSV (a column per year) with ``format=csv`` or
    ``Accept: text/csv``."""
    roads = await run_in_threadpool(lighting.replacements, who, horizon_years)
    first = dt.datetime.fromtimestamp(lighting.clock() / 1000, lighting.zone(who.tenant_id)).year
    if _wants(request, format, "text/csv"):
        text = replacements_csv(roads, first, horizon_years)
        return Response(text, media_type="text/csv; charset=utf-8")
    return {"horizon_years": horizon_years, "roads": [_forecast(r) for r in roads]}


# -- settings ---------------------------------------------------------------------------------
def _settings(s: EnergySettings) -> dict[str, Any]:
    return {
        "tariff": s.tariff_body,
        "grid": {"kg_per_kwh": s.grid.kg_per_kwh, "source": s.grid.source},
        "updated": s.updated,
    }


@router.get("/settings", summary="Energy settings", name="lighting.settings.get")
async def get_settings(lighting: LightingDep, who: Caller) -> dict[str, Any]:
    """The tenant's time-of-use tariff and grid emission factor (with its source)."""
    return _settings(await run_in_threadpool(lighting.settings, who))


@router.put(
    "/settings",
    summary="Set the energy settings",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
    responses={422: {"content": PROBLEM, "description": "a bad tariff or grid factor"}},
    name="lighting.settings.put",
)
async def put_settings(lighting: LightingDep, who: Caller, request: Request) -> dict[str, Any]:
    """Set the tariff (``tariff``: name, currency, periods of kind, start, end, price covering
    the day once) and the grid factor (``grid``: kg_per_kwh, source); either may be left out.
    Operator role."""
    body = await _body(request)
    return _settings(await run_in_threadpool(lighting.put_settings, who, body))
