"""The console's live socket, ``/api/live``: pole states, a pole's devices, alarms, as they change.

Client → server, JSON: ``{"op": "map"}`` (pole state changes), ``{"op": "pole", "id": N}``
(that pole's devices: latest values, online state, commands; and its alarms; replaces an
earlier pole), ``{"op": "alarms"}`` (every alarm change). Server → client, JSON with
``"type"``: ``hello``, ``states``, ``latest``, ``online``, ``alarm``, ``command``, ``dropped``,
and ``error`` for an op it refused. Only what the caller may see is ever sent; the service
behind it is :class:`smartpole.hub.live.Live`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from smartpole.api.control import CommandOut
from smartpole.api.deps import services_of, websocket_principal
from smartpole.errors import SmartpoleError
from smartpole.hub.live import Message, Watcher
from smartpole.model.alarms import AlarmChange
from smartpole.model.commands import Command
from smartpole.registry.access import Principal

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api", tags=["live"])
POLICY_VIOLATION = 1008  # the WebSocket close code for a refused caller
MAX_OP_BYTES = 1024


def hello(who: Principal) -> dict[str, Any]:
    """The first message: who the socket acts for (``user`` is null for an API key)."""
    user = None if who.user_id is None else {"id": who.user_id, "name": who.name}
    return {"type": "hello", "user": user, "tenant": who.tenant, "role": who.role.value}


def encode(message: Message) -> dict[str, Any]:
    """A queued message as the JSON the client gets."""
    kind, body = message
    if kind == "latest":
        device_id, values = body
        out = {k: {"ts": ts, "value": v} for k, (ts, v) in values.items()}
        return {"type": "latest", "device": device_id, "values": out}
    if kind == "online":
        device_id, online = body
        return {"type": "online", "device": device_id, "online": online}
    if kind == "alarm":
        change: AlarmChange = body
        return {"type": "alarm", "change": change.change, "alarm": change.alarm.to_dict()}
    if kind == "command":
        command: Command = body
        return {"type": "command", "command": CommandOut.of(command).model_dump(mode="json")}
    return {"type": "states", "poles": [[p, s] for p, s in body]}


@router.websocket("/live")
async def live_socket(ws: WebSocket) -> None:
    """Live updates for the console (see the module's docstring and docs/console.md).

    Authenticate with ``?key=<key>`` or ``Authorization: Bearer <key>``, or the console's
    session cookie from a page of this host; anything else closes the socket with code 1008.
    """
    await ws.accept()  # first, so that a refusal is a close frame with its code (1008)
    who = await websocket_principal(ws)
    if who is None:
        return
    live = services_of(ws).live
    with live.watch(who) as watcher:
        await ws.send_json(hello(who))
        sender = asyncio.create_task(_send(ws, watcher))
        try:
            await _receive(ws, watcher)
        except WebSocketDisconnect:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender


async def _send(ws: WebSocket, watcher: Watcher) -> None:
    """Send what is queued for the watcher, telling it first how many it lost, if any."""
    while True:
        messages = await watcher.take()
        if watcher.dropped:
            dropped, watcher.dropped = watcher.dropped, 0
            await ws.send_text(orjson.dumps({"type": "dropped", "count": dropped}).decode())
        for message in messages:
            await ws.send_text(orjson.dumps(encode(message)).decode())


async def _receive(ws: WebSocket, watcher: Watcher) -> None:
    """Take the client's ops until it closes."""
    while True:
        text = await ws.receive_text()
        try:
            op = orjson.loads(text) if len(text) <= MAX_OP_BYTES else None
        except orjson.JSONDecodeError:
            op = None
        if not isinstance(op, dict) or op.get("op") not in ("map", "pole", "alarms"):
            await _refuse(ws, 400, 'an op is {"op": "map" | "alarms"} or {"op": "pole", "id": N}')
            continue
        if op["op"] == "map":
            watcher.map = True
        elif op["op"] == "alarms":
            watcher.alarms = True
        else:
            await _watch_pole(ws, watcher, op.get("id"))


async def _refuse(ws: WebSocket, status: int, detail: str) -> None:
    await ws.send_json({"type": "error", "status": status, "detail": detail})


async def _watch_pole(ws: WebSocket, watcher: Watcher, pole_id: Any) -> None:
    """Follow a visible pole: its devices the caller sees, then their latest values and online
    state as they are now (later changes follow; a client keeps the newer ``ts``)."""
    if isinstance(pole_id, bool) or not isinstance(pole_id, int) or pole_id < 1:
        await _refuse(ws, 400, "a pole id is a positive integer")
        return
    services = services_of(ws)
    try:
        pole = await run_in_threadpool(services.assets.get_pole, watcher.who, pole_id)
    except SmartpoleError as err:
        await _refuse(ws, 404, err.detail)
        return
    ids = [d.id for d in pole.devices or ()]
    services.live.follow_pole(watcher, pole_id, ids)
    latest = await run_in_threadpool(services.series.latest, ids)
    for device_id in ids:
        watcher.put(("online", (device_id, not services.pole_states.is_offline(device_id))))
        if latest.get(device_id):
            watcher.put(("latest", (device_id, latest[device_id])))
