"""REST endpoints of work orders (工单) and the maintenance teams they are assigned to."""

from __future__ import annotations

from typing import Annotated, Any, Self

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import AlarmsDep, AssetsDep, Caller, WorkOrdersDep
from smartpole.api.schemas import Id, Offset
from smartpole.errors import Forbidden, InvalidInput
from smartpole.hub.alarms.store import Alarms
from smartpole.hub.workorders.lifecycle import TRANSITIONS
from smartpole.hub.workorders.store import WorkOrderFilter, WorkOrders
from smartpole.model.lifecycle import Severity, WorkOrderStatus
from smartpole.model.types import Role
from smartpole.model.workorders import Team, WorkOrder, WorkOrderEntry
from smartpole.registry.access import Principal
from smartpole.registry.assets import Assets

__all__ = ["router"]

router = APIRouter(prefix="/api")
PROBLEM: dict[str, Any] = {"application/problem+json": {}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"content": PROBLEM, "description": "no such work order visible to the caller"}
}
NAME = r"^[a-z0-9][a-z0-9_\-]{0,63}$"


# -- bodies ---------------------------------------------------------------------------------
class TeamIn(BaseModel):
    """A new maintenance team."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=NAME, examples=["futian-lamps-1"])
    title: str = Field("", max_length=200, examples=["福田路灯维修一班 Futian lamp crew 1"])
    contact: str = Field("", max_length=200, examples=["+86 755 0000 0000"])
    tenant_id: Id | None = Field(
        None, description="city operator only: the tenant the team belongs to (default: own)"
    )


class TeamPatch(BaseModel):
    """Changes to a team."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, pattern=NAME)
    title: str | None = Field(None, max_length=200)
    contact: str | None = Field(None, max_length=200)


class TeamOut(BaseModel):
    """A maintenance team of a tenant."""

    id: int
    tenant_id: int
    name: str
    title: str
    contact: str
    created: int

    @classmethod
    def of(cls, team: Team) -> TeamOut:
        """From the domain object."""
        return cls(**team.to_dict())


class WorkOrderIn(BaseModel):
    """A work order opened by hand: from an alarm, or for a device or a pole."""

    model_config = ConfigDict(extra="forbid")
    alarm_id: Id | None = Field(None, description="the alarm it comes from")
    device_id: Id | None = Field(None, description="without an alarm: the device to fix")
    pole_id: Id | None = Field(None, description="without an alarm or device: the pole")
    title: str | None = Field(
        None, min_length=1, max_length=200, description="required without an alarm"
    )
    description: str = Field("", max_length=4000)
    severity: Severity | None = Field(
        None, description="sets the deadline (SLA); default the alarm's, else minor"
    )
    team_id: Id | None = Field(None, description="assign at once (status assigned)")


class TransitionIn(BaseModel):
    """A step in a work order's lifecycle."""

    model_config = ConfigDict(extra="forbid")
    to: WorkOrderStatus = Field(examples=["in_progress"])
    comment: str = Field("", max_length=4000)


class AssignIn(BaseModel):
    """A team to give the work order to."""

    model_config = ConfigDict(extra="forbid")
    team_id: Id
    comment: str = Field("", max_length=4000)


class CommentIn(BaseModel):
    """A note for the work order's history."""

    model_config = ConfigDict(extra="forbid")
    comment: str = Field(min_length=1, max_length=4000, examples=["spare driver ordered"])


class HistoryEntry(BaseModel):
    """One change of a work order."""

    id: int
    ts: int
    actor: str = Field(description="tenant (role), `rule` or `hub`")
    action: str = Field(
        description="created, assigned, unassigned, transition, comment, overdue, resolve_suggested"
    )
    from_status: WorkOrderStatus | None
    to_status: WorkOrderStatus | None
    comment: str
    details: dict[str, Any]

    @classmethod
    def of(cls, entry: WorkOrderEntry) -> HistoryEntry:
        """From the domain object."""
        return cls(**entry.to_dict())


class WorkOrderOut(BaseModel):
    """A work order."""

    id: int
    tenant_id: int
    alarm_id: int | None
    device_id: int | None
    pole_id: int | None
    title: str
    description: str
    severity: Severity
    status: WorkOrderStatus
    team_id: int | None
    team: str | None = Field(description="the team's name")
    created: int
    updated: int
    deadline: int = Field(description="created + the severity's SLA (ms)")
    resolved: int | None
    closed: int | None
    overdue: bool = Field(description="unresolved and past its deadline")
    overdue_since: int | None = Field(description="when the overdue alarm was raised")
    resolve_suggested: bool = Field(description="its alarm cleared: consider resolving it")
    steps: list[WorkOrderStatus] = Field(
        default_factory=list,
        description="the statuses it may move to next (`POST .../transition`); `assigned` is"
        " reached by `POST .../assign`",
    )

    @classmethod
    def of(cls, order: WorkOrder) -> Self:
        """From the domain object, with the steps its status allows."""
        return cls(**order.to_dict(), steps=list(TRANSITIONS[order.status]))


class WorkOrderDetail(WorkOrderOut):
    """A work order with every change made to it."""

    history: list[HistoryEntry]


class WorkOrderPage(BaseModel):
    """One page of work orders."""

    items: list[WorkOrderOut]
    total: int
    limit: int
    offset: int


WO = WorkOrdersDep


# -- teams ----------------------------------------------------------------------------------
@router.get("/teams", tags=["work orders"], summary="List maintenance teams")
def list_teams(wo: WO, who: Caller) -> list[TeamOut]:
    """The teams of the caller's tenant (the city operator sees every tenant's)."""
    return [TeamOut.of(t) for t in wo.list_teams(who)]


@router.post("/teams", tags=["work orders"], status_code=201, summary="Create a team")
def create_team(wo: WO, who: Caller, body: TeamIn) -> TeamOut:
    """Add a maintenance team (admin); its name is unique within its tenant.

    The city operator may create a team for another tenant with ``tenant_id``; city teams
    can take the work orders of every tenant.
    """
    who.require(Role.ADMIN)
    tenant_id = who.tenant_id
    if body.tenant_id is not None and body.tenant_id != who.tenant_id:
        who.require_city(Role.ADMIN)
        tenant_id = body.tenant_id
    return TeamOut.of(wo.create_team(tenant_id, body.name, body.title, body.contact))


@router.get(
    "/teams/{team_id}",
    tags=["work orders"],
    summary="Get a team",
    responses={404: {"content": PROBLEM}},
)
def get_team(wo: WO, who: Caller, team_id: Id) -> TeamOut:
    """One team of the caller's tenant."""
    return TeamOut.of(wo.get_team(who, team_id))


@router.patch("/teams/{team_id}", tags=["work orders"], summary="Change a team")
def update_team(wo: WO, who: Caller, team_id: Id, body: TeamPatch) -> TeamOut:
    """Rename a team or change its title or contact (admin)."""
    who.require(Role.ADMIN)
    values = body.model_dump(exclude_unset=True, exclude_none=True)
    return TeamOut.of(wo.update_team(who, team_id, **values))


@router.delete("/teams/{team_id}", tags=["work orders"], status_code=204, summary="Delete")
def delete_team(wo: WO, who: Caller, team_id: Id) -> Response:
    """Remove a team (admin); its unresolved work orders go back to ``open``."""
    who.require(Role.ADMIN)
    wo.delete_team(who, team_id)
    return Response(status_code=204)


# -- work orders ----------------------------------------------------------------------------
@router.get("/work-orders", tags=["work orders"], summary="List work orders")
def list_work_orders(
    wo: WO,
    who: Caller,
    status: Annotated[list[WorkOrderStatus] | None, Query()] = None,
    team_id: Id | None = None,
    overdue: bool | None = None,
    alarm_id: Id | None = None,
    device_id: Id | None = None,
    pole_id: Id | None = None,
    severity: Severity | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> WorkOrderPage:
    """The visible work orders, newest first; ``status`` may repeat (``?status=open&...``)."""
    f = WorkOrderFilter(
        status=status,
        team_id=team_id,
        overdue=overdue,
        alarm_id=alarm_id,
        device_id=device_id,
        pole_id=pole_id,
        severity=severity,
    )
    rows, total = wo.find(who, f, limit=limit, offset=offset)
    return WorkOrderPage(
        items=[WorkOrderOut.of(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.post(
    "/work-orders",
    tags=["work orders"],
    status_code=201,
    summary="Open a work order by hand",
    responses={404: {"content": PROBLEM, "description": "alarm, device, pole or team unknown"}},
)
async def create_work_order(
    alarms: AlarmsDep, assets: AssetsDep, wo: WO, who: Caller, body: WorkOrderIn
) -> WorkOrderDetail:
    """Open a work order (operator), from an alarm or free-standing for a device or pole.

    From an alarm it belongs to the alarm's tenant (only that tenant or the city operator may
    open it) and takes the alarm's severity, device and pole. For a device it belongs to the
    device's owner; for a pole, to the caller's tenant. The deadline is the severity's SLA.
    """
    who.require(Role.OPERATOR)
    wo_id = await run_in_threadpool(_create, alarms, assets, wo, who, body)
    return WorkOrderDetail.of(await run_in_threadpool(wo.get, who, wo_id))


def _create(
    alarms: Alarms, assets: Assets, wo: WorkOrders, who: Principal, body: WorkOrderIn
) -> int:
    alarm = None
    tenant_id = who.tenant_id
    if body.alarm_id is not None:
        alarm = alarms.get_visible(who, body.alarm_id)
        if alarm.tenant_id != who.tenant_id and not who.is_operator:
            raise Forbidden(
                f"work orders of alarm {alarm.id} belong to its owner tenant",
                alarm_id=alarm.id,
            )
        tenant_id = alarm.tenant_id
    elif body.device_id is not None:
        tenant_id = assets.get_device(who, body.device_id).owner_id
    elif body.pole_id is not None:
        assets.get_pole(who, body.pole_id)
    else:
        raise InvalidInput("give an alarm_id, a device_id or a pole_id")
    if body.device_id is not None and alarm is not None:
        assets.get_device(who, body.device_id)
    if body.pole_id is not None and (alarm is not None or body.device_id is not None):
        assets.get_pole(who, body.pole_id)
    return wo.create(
        actor=who.signature,
        tenant_id=tenant_id,
        alarm=alarm,
        device_id=body.device_id,
        pole_id=body.pole_id,
        title=body.title,
        description=body.description,
        severity=body.severity,
        team_id=body.team_id,
    )


@router.get(
    "/work-orders/{work_order_id}",
    tags=["work orders"],
    summary="Get a work order and its history",
    responses=NOT_FOUND,
)
def get_work_order(wo: WO, who: Caller, work_order_id: Id) -> WorkOrderDetail:
    """A visible work order with every change made to it, oldest first."""
    return WorkOrderDetail.of(wo.get(who, work_order_id))


@router.post(
    "/work-orders/{work_order_id}/transition",
    tags=["work orders"],
    summary="Move a work order through its lifecycle",
    responses={
        **NOT_FOUND,
        409: {
            "content": PROBLEM,
            "description": "not allowed from the current status; `allowed` lists what is",
        },
    },
)
async def transition(wo: WO, who: Caller, work_order_id: Id, body: TransitionIn) -> WorkOrderDetail:
    """Change a work order's status (operator).

    Allowed: open → assigned (needs a team) or closed (dismissed); assigned → in_progress;
    in_progress → resolved; resolved → closed, or back to in_progress (reopen). Anything else
    is a 409 problem whose ``allowed`` names the steps possible from the current status.
    Resolving or closing clears the order's overdue alarm.
    """
    who.require(Role.OPERATOR)
    return WorkOrderDetail.of(await wo.transition(who, work_order_id, body.to, body.comment))


@router.post(
    "/work-orders/{work_order_id}/assign",
    tags=["work orders"],
    summary="Assign a work order to a team",
    responses={**NOT_FOUND, 409: {"content": PROBLEM, "description": "already resolved"}},
)
async def assign(wo: WO, who: Caller, work_order_id: Id, body: AssignIn) -> WorkOrderDetail:
    """Give an unresolved work order to a team of its tenant or of the city (operator).

    An ``open`` order becomes ``assigned``; an assigned or in-progress one changes team.
    """
    who.require(Role.OPERATOR)
    return WorkOrderDetail.of(await wo.assign(who, work_order_id, body.team_id, body.comment))


@router.post(
    "/work-orders/{work_order_id}/comments",
    tags=["work orders"],
    status_code=201,
    summary="Comment on a work order",
    responses=NOT_FOUND,
)
def comment(wo: WO, who: Caller, work_order_id: Id, body: CommentIn) -> HistoryEntry:
    """Add a comment to the work order's history (operator)."""
    who.require(Role.OPERATOR)
    return HistoryEntry.of(wo.comment(who, work_order_id, body.comment))
