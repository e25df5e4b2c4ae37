"""REST endpoints of alarms (list, get, acknowledge, clear, assign, comment) and their
WebSocket stream."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, ConfigDict, Field

from smartpole.api.deps import AlarmsDep, Caller, HubDep, websocket_principal
from smartpole.api.schemas import Id, Millis, Offset
from smartpole.hub.alarms.store import AlarmFilter
from smartpole.model.alarms import Alarm
from smartpole.model.lifecycle import AlarmStatus, Severity
from smartpole.model.types import Role

__all__ = ["AlarmOut", "router"]

router = APIRouter(prefix="/api", tags=["alarms"])
PROBLEM: dict[str, Any] = {"application/problem+json": {}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"content": PROBLEM, "description": "no such alarm visible to the caller"}
}


class AlarmOut(BaseModel):
    """An alarm and where it is in its lifecycle."""

    id: int
    tenant_id: int = Field(description="owner of the originator")
    originator_type: str = Field(examples=["device"])
    originator_id: int
    type: str = Field(examples=["pole_tilt"])
    severity: Severity
    status: AlarmStatus
    details: dict[str, Any]
    first_ts: int
    last_ts: int
    count: int = Field(description="times raised while active")
    assignee: str | None
    acked_ts: int | None
    cleared_ts: int | None
    pole_id: int | None = Field(description="the pole it propagates to")
    root_id: int | None = Field(
        None, description="the root alarm this one is grouped under (its pole's, when dark)"
    )
    latch: bool = Field(False, description="stays active until acknowledged")
    released_ts: int | None = Field(
        None, description="latched and unacknowledged: when its rule stopped holding (ms)"
    )
    children: int = Field(0, description="alarms grouped under this one that the caller sees")

    @classmethod
    def of(cls, alarm: Alarm) -> AlarmOut:
        """From the domain object."""
        return cls(**alarm.to_dict())


class AssignIn(BaseModel):
    """Who an alarm is assigned to (null unassigns)."""

    model_config = ConfigDict(extra="forbid")
    assignee: str | None = Field(max_length=200, examples=["crew-7"])


class CommentIn(BaseModel):
    """A comment on an alarm."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)


class CommentOut(BaseModel):
    """A comment and who wrote it: a person's login, tenant and role ("li.wei (lighting,
    operator)"), or for an API key its tenant and role ("lighting (operator)")."""

    id: int
    alarm_id: int
    ts: int
    author: str
    text: str


@router.get("/alarms", summary="List alarms")
def list_alarms(
    alarms: AlarmsDep,
    who: Caller,
    status: Annotated[list[AlarmStatus] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    active: Annotated[bool | None, Query(description="only active (or only cleared)")] = None,
    type: str | None = None,
    originator_type: str | None = None,
    originator_id: Id | None = None,
    pole_id: Annotated[Id | None, Query(description="alarms of the pole and its devices")] = None,
    assignee: str | None = None,
    since: Annotated[Millis | None, Query(description="last occurrence at or after (ms)")] = None,
    until: Annotated[Millis | None, Query(description="last occurrence before (ms)")] = None,
    roots: Annotated[
        bool, Query(description="only root alarms: those grouped under no other (one per problem)")
    ] = False,
    root_id: Annotated[
        Id | None,
        Query(description="only the alarms grouped under this one"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> list[AlarmOut]:
    """Alarms the caller's tenant sees (its devices' and those propagated to it), newest
    occurrence first."""
    if active is not None and status is None:
        status = [s for s in AlarmStatus if s.active == active]
    f = AlarmFilter(
        status=status,
        severity=severity,
        type=type,
        originator_type=originator_type,
        originator_id=originator_id,
        pole_id=pole_id,
        assignee=assignee,
        since=since,
        until=until,
        roots=roots,
        root_id=root_id,
    )
    return [AlarmOut.of(a) for a in alarms.find(who, f, limit=limit, offset=offset)]


@router.get("/alarms/{alarm_id}", summary="Get an alarm", responses=NOT_FOUND)
def get_alarm(alarms: AlarmsDep, who: Caller, alarm_id: Id) -> AlarmOut:
    """A visible alarm."""
    return AlarmOut.of(alarms.get_visible(who, alarm_id))


@router.post("/alarms/{alarm_id}/ack", summary="Acknowledge an alarm", responses=NOT_FOUND)
async def ack_alarm(alarms: AlarmsDep, who: Caller, alarm_id: Id) -> AlarmOut:
    """Acknowledge a visible alarm (operator role); acknowledging twice changes nothing."""
    who.require(Role.OPERATOR)
    return AlarmOut.of(await alarms.acknowledge(who, alarm_id))


@router.post("/alarms/{alarm_id}/clear", summary="Clear an alarm", responses=NOT_FOUND)
async def clear_alarm(alarms: AlarmsDep, who: Caller, alarm_id: Id) -> AlarmOut:
    """Clear a visible alarm by hand (operator role); a rule may raise it again."""
    who.require(Role.OPERATOR)
    return AlarmOut.of(await alarms.clear_by_id(who, alarm_id))


@router.post("/alarms/{alarm_id}/assign", summary="Assign an alarm", responses=NOT_FOUND)
async def assign_alarm(alarms: AlarmsDep, who: Caller, alarm_id: Id, body: AssignIn) -> AlarmOut:
    """Assign a visible alarm to someone, or unassign it with null (operator role)."""
    who.require(Role.OPERATOR)
    return AlarmOut.of(await alarms.assign(who, alarm_id, body.assignee))


@router.get("/alarms/{alarm_id}/comments", summary="List comments", responses=NOT_FOUND)
def list_comments(alarms: AlarmsDep, who: Caller, alarm_id: Id) -> list[CommentOut]:
    """The comments of a visible alarm, oldest first."""
    return [CommentOut(**c.to_dict()) for c in alarms.comments(who, alarm_id)]


@router.post(
    "/alarms/{alarm_id}/comments",
    name="alarm.comment",
    status_code=201,
    summary="Comment on an alarm",
    responses=NOT_FOUND,
)
async def add_comment(alarms: AlarmsDep, who: Caller, alarm_id: Id, body: CommentIn) -> CommentOut:
    """Add a comment to a visible alarm (any role of a tenant that sees it)."""
    return CommentOut(**(await alarms.comment(who, alarm_id, body.text)).to_dict())


@router.websocket("/alarms/stream")
async def alarm_stream(ws: WebSocket, hub: HubDep) -> None:
    """Every change of an alarm the caller sees, as JSON ``{"change": ..., "alarm": {...}}``.

    Authenticate with ``Authorization: Bearer <key>`` or ``?key=<key>``, or the console's
    session cookie from a page of this host; anything else closes the socket with code 1008.
    A client too slow to keep up loses the oldest changes and is told with ``{"dropped": n}``.
    """
    who = await websocket_principal(ws)
    if who is None:
        return
    with hub.stream.subscribe(who) as sub:
        await ws.accept()  # subscribed first: a client sees every change after its connect
        closed = asyncio.ensure_future(ws.receive())  # the client's close (or anything) ends it
        try:
            while True:
                got = asyncio.ensure_future(sub.queue.get())
                done, _ = await asyncio.wait({got, closed}, return_when=asyncio.FIRST_COMPLETED)
                if closed in done:
                    got.cancel()
                    break
                change = got.result()
                if sub.dropped:
                    await ws.send_json({"dropped": sub.dropped})
                    sub.dropped = 0
                await ws.send_json({"change": change.change, "alarm": change.alarm.to_dict()})
        except WebSocketDisconnect:
            pass
        finally:
            closed.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await closed
