"""REST endpoints of control: commands to devices (server-side RPC) and their results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import AssetsDep, Caller, ControlDep
from smartpole.api.schemas import Id
from smartpole.errors import NotFound
from smartpole.model.commands import Command, CommandStatus
from smartpole.model.types import Role

__all__ = ["CommandIn", "CommandOut", "router"]

router = APIRouter(prefix="/api", tags=["commands"])
DAY_MS = 86_400_000
PROBLEM: dict[str, Any] = {"application/problem+json": {}}


class CommandIn(BaseModel):
    """A command to send to a device (ThingsBoard's server-side RPC body)."""

    model_config = ConfigDict(extra="forbid")
    method: str = Field(min_length=1, max_length=128, examples=["setDim"])
    params: Any = Field(default_factory=dict, examples=[{"level": 60}])
    oneway: bool = Field(False, description="no reply expected: done once delivered")
    timeout: int = Field(
        10_000, ge=100, le=600_000, description="ms to wait for the reply (or delivery) once sent"
    )
    persistent: bool = Field(
        False, description="keep it and send it when the device connects, instead of failing"
    )
    expiration: int | None = Field(
        None,
        ge=1,
        le=30 * DAY_MS,
        description="persistent only: ms from now to wait for the device (default a day)",
    )


class CommandOut(BaseModel):
    """A command and where it is in its lifecycle."""

    id: int
    device_id: int
    request_id: int = Field(description="the per-device RPC id used on the wire")
    method: str
    params: Any
    oneway: bool
    persistent: bool
    status: CommandStatus
    timeout: int
    created: int
    expires: int = Field(description="when it gives up in its current status (ms)")
    sent: int | None
    delivered: int | None
    completed: int | None
    response: Any = None
    error: str | None
    retries: int = Field(description="times it was sent again after an unconfirmed send")

    @classmethod
    def of(cls, command: Command) -> CommandOut:
        """The answer for a command."""
        return cls.model_validate(command, from_attributes=True)


@router.post(
    "/devices/{device_id}/rpc",
    summary="Send a command to a device",
    responses={
        202: {"model": CommandOut, "description": "one-way or persistent: accepted"},
        409: {"content": PROBLEM, "description": "the device is offline (not persistent)"},
        504: {"content": PROBLEM, "description": "no reply within the timeout"},
    },
)
async def send_command(
    assets: AssetsDep,
    ctl: ControlDep,
    who: Caller,
    device_id: Id,
    body: CommandIn,
    response: Response,
) -> CommandOut:
    """Call a method on a visible device (operator).

    A two-way command waits for the reply and answers 200 with the finished command
    (``succeeded``, or ``failed`` when the device replied ``{"error": ...}``), or 504 when no
    reply came within ``timeout``. One-way and persistent commands answer 202 at once; follow
    them with ``GET /api/commands/{id}``. A non-persistent command to an offline device is
    refused with 409; a persistent one is queued until the device connects or it expires.
    """
    who.require(Role.OPERATOR)
    await run_in_threadpool(assets.get_device, who, device_id)
    out = await ctl.call(
        device_id,
        body.method,
        body.params,
        oneway=body.oneway,
        timeout_ms=body.timeout,
        persistent=body.persistent,
        expiration_ms=body.expiration,
    )
    if body.oneway or body.persistent:
        response.status_code = 202
    return CommandOut.of(out)


@router.get("/devices/{device_id}/commands", summary="List a device's commands")
def list_commands(
    assets: AssetsDep,
    ctl: ControlDep,
    who: Caller,
    device_id: Id,
    status: CommandStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CommandOut]:
    """The commands of a visible device, newest first, optionally of one status."""
    assets.get_device(who, device_id)
    return [CommandOut.of(c) for c in ctl.of_device(device_id, status, limit)]


@router.get("/commands/{command_id}", summary="Get a command")
def get_command(assets: AssetsDep, ctl: ControlDep, who: Caller, command_id: Id) -> CommandOut:
    """One command, if its device is visible to the caller."""
    command = ctl.get(command_id)
    try:
        assets.get_device(who, command.device_id)
    except NotFound as err:
        raise NotFound(f"command {command_id} not found", command_id=command_id) from err
    return CommandOut.of(command)
