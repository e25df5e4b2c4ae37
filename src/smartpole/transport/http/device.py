"""ThingsBoard's HTTP device API under ``/api/v1/{token}/``: telemetry, attributes, commands
(long poll ``GET …/rpc`` and replies), device-initiated RPC, claiming and firmware download.

A telemetry request is answered only after its readings are committed. Errors are problem+json:
401 unknown token, 400 malformed JSON (with position), 413 too large, 422 wrong shape, 408 no
command within a poll's timeout. Framing only: each route reads its request and calls the device
API (:class:`smartpole.devices.DeviceApi`) of the :class:`DeviceHttp` that :func:`mount` puts on
the app's state.

The routes are built once, at import, and read their collaborators from the request's app: routes
made per app (closures over its services) stay referenced from FastAPI's module-level caches of
endpoint callables, and with them every app ever built and its platform.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from pydantic import BaseModel, Field

from smartpole.devices import DeviceApi
from smartpole.errors import PayloadError, PayloadTooLarge, Unauthenticated
from smartpole.metrics import Metrics
from smartpole.model.types import DeviceRef
from smartpole.registry.access import token_hint
from smartpole.transport.http.problems import problem
from smartpole.transport.polls import ATTRIBUTES, MAX_POLL_MS, RPC, Polls

__all__ = ["DeviceHttp", "IngestResult", "attach", "mount", "router"]

log = logging.getLogger(__name__)
Token = Annotated[str, Path(description="The device's access token", max_length=128)]
TELEMETRY_EXAMPLES = {
    "flat": {"value": {"power": 42.5, "dim": 80, "on": True}},
    "with ts": {"value": {"ts": 1764000000000, "values": {"pm25": 31}}},
    "array": {"value": [{"ts": 1764000000000, "values": {"laeq": 61.2}}, {"laeq": 60.8}]},
}
RPC_EXAMPLE = {"id": 3, "method": "setDim", "params": {"level": 60}}
PollTimeout = Annotated[
    int, Query(alias="timeout", ge=0, description="How long to wait, ms (at most 60,000)")
]
# (the OpenAPI descriptions of two routes)
CLAIM_DESCRIPTION = (
    '``{"secretKey": "...", "durationMs": ms}``: a tenant may claim the device with that secret'
    "\nuntil then (``POST /api/claims``)."
)
FIRMWARE_DESCRIPTION = (
    "ThingsBoard's ``GET /api/v1/{token}/firmware?title=&version=&size=&chunk=``: a chunk of the"
    "\npackage assigned to the device, which must be the one named (its ``fw_title``/``fw_version``"
    "\nshared attributes)."
)
POLL_CHECK_S = 1.0  # how often an open poll looks whether its device is still there


class IngestResult(BaseModel):
    """What the platform did with a telemetry upload."""

    accepted: int = Field(description="Readings committed (duplicates included).")
    quarantined: int = Field(description="Values kept apart: wrong type or out of range.")


async def _body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"body of {declared} bytes exceeds the {limit}-byte limit", limit=limit
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body exceeds the {limit}-byte limit", limit=limit)
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class DeviceHttp:
    """What the routes serve: the device ``api``, the open long ``polls``, the ``metrics`` that
    count refusals, and ``max_body``, the largest request body taken (bytes)."""

    api: DeviceApi
    polls: Polls
    metrics: Metrics
    max_body: int


router = APIRouter(
    prefix="/api/v1",
    tags=["device API (HTTP)"],
    responses={401: {"description": "Unknown access token"}},
)


def mount(app: FastAPI) -> None:
    """Add the HTTP device API's routes to ``app``; they serve what :func:`attach` gave it."""
    app.include_router(router)


def attach(app: FastAPI, http: DeviceHttp) -> None:
    """Serve ``app``'s device routes over ``http`` from the next request on."""
    app.state.device_http = http


def _http(request: Request) -> DeviceHttp:
    http: DeviceHttp = request.app.state.device_http
    return http


def _device(api: DeviceApi, token: str) -> DeviceRef:
    ref = api.authenticate(token)
    if ref is None:
        # Never log the token itself: it is the device's secret.
        log.warning("HTTP ingest refused: unknown access token (hint %s)", token_hint(token))
        raise Unauthenticated("unknown device access token")
    return ref


@router.post(
    "/{token}/telemetry",
    summary="Upload telemetry",
    response_model=IngestResult,
    openapi_extra={
        "requestBody": {"content": {"application/json": {"examples": TELEMETRY_EXAMPLES}}}
    },
)
async def post_telemetry(request: Request, token: Token) -> IngestResult:
    """Store telemetry in any ThingsBoard form; answered after the commit."""
    http = _http(request)
    try:
        body = await _body(request, http.max_body)
        ref = _device(http.api, token)
        try:
            done = await http.api.upload(ref, body)
        except PayloadError:
            log.info("HTTP telemetry rejected for device %s (%s)", ref.id, ref.name)
            raise
    except Exception as err:
        http.metrics.reject("http", err)
        raise
    return IngestResult(accepted=done.accepted, quarantined=done.quarantined)


@router.post(
    "/{token}/attributes",
    summary="Upload client attributes",
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"example": {"firmware": "1.4.2", "model": "SL-60"}}}
        }
    },
)
async def post_attributes(request: Request, token: Token) -> dict[str, int]:
    """Store client-scope attributes (a flat JSON object)."""
    http = _http(request)
    body = await _body(request, http.max_body)
    return {"updated": await http.api.client_attributes(_device(http.api, token), body)}


@router.get(
    "/{token}/attributes/updates",
    summary="Wait for shared-attribute updates (long poll)",
    responses={
        200: {"content": {"application/json": {"example": {"dim_schedule": "night"}}}},
        408: {"description": "No update came within the timeout; poll again"},
    },
)
async def poll_attributes(
    request: Request, token: Token, wait_ms: PollTimeout = 20_000
) -> Response:
    """The next change of the device's shared attributes, as ThingsBoard's HTTP API gives it:
    the changed keys and values (``{"deleted": [keys]}`` for removed ones)."""
    http = _http(request)
    got = await _poll(http, request, _device(http.api, token), ATTRIBUTES, wait_ms)
    if isinstance(got, Response):
        return got
    return Response(orjson.dumps(got), media_type="application/json")


@router.get("/{token}/attributes", summary="Read attributes (device side)")
async def get_attributes(
    request: Request,
    token: Token,
    clientKeys: str | None = None,
    sharedKeys: str | None = None,
) -> dict[str, dict[str, Any]]:
    """The device's client and shared attributes, as ThingsBoard returns them."""
    asked = {"clientKeys": clientKeys, "sharedKeys": sharedKeys}
    api = _http(request).api
    return await api.attributes(_device(api, token), asked)


# -- commands, device-initiated RPC, claiming, firmware ---------------------------------
@router.get(
    "/{token}/rpc",
    summary="Wait for a command (long poll)",
    responses={
        200: {"content": {"application/json": {"example": RPC_EXAMPLE}}},
        408: {"description": "No command came within the timeout; poll again"},
    },
)
async def poll_rpc(request: Request, token: Token, wait_ms: PollTimeout = 20_000) -> Response:
    """The next command for the device, as ThingsBoard's HTTP API gives it:
    ``{"id": n, "method": ..., "params": ...}``; answer two-way ones on ``POST …/rpc/{id}``.
    While the request is open the device is reachable: queued persistent commands go first."""
    http = _http(request)
    ref = _device(http.api, token)
    got = await _poll(http, request, ref, RPC, wait_ms)
    if isinstance(got, Response):
        return got
    await http.api.platform.rpc_delivered(ref.id, got["id"])
    return Response(orjson.dumps(got), media_type="application/json")


async def _poll(
    http: DeviceHttp, request: Request, ref: DeviceRef, kind: str, wait_ms: int
) -> dict[str, Any] | Response:
    """Hold a long poll until it is answered (the answer), or a Response: 408 at the timeout,
    503 when the node stops, nothing when the device went away."""
    api, polls = http.api, http.polls
    api.platform.heard(ref)
    wait_ms = min(wait_ms, MAX_POLL_MS)
    deadline = asyncio.get_running_loop().time() + wait_ms / 1000
    future = polls.open(ref.id, kind)
    try:
        if kind == RPC:
            await api.platform.rpc_ready(ref)  # its queued commands, oldest first (one a poll)
        while not future.done():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                detail = f"nothing for device {ref.name} within {wait_ms} ms"
                return problem(408, "Request timeout", detail)
            await asyncio.wait({future}, timeout=min(left, POLL_CHECK_S))
            if not future.done() and await request.is_disconnected():
                return Response(status_code=499)  # nobody reads it; the device is gone
    finally:
        polls.close(ref.id, future, kind)
        future.cancel()  # what arrives now finds no poll (no effect once it has an answer)
    if future.cancelled():  # the node is stopping
        return problem(503, "Service unavailable", "this node is shutting down; poll again")
    if await request.is_disconnected():  # the device left as the answer came: a command is
        return Response(status_code=499)  # not delivered, so a persistent one goes next poll
    return future.result()


@router.post("/{token}/rpc/{request_id}", summary="Answer a command", status_code=200)
async def reply_rpc(
    request: Request, token: Token, request_id: Annotated[int, Path(ge=0)]
) -> dict[str, bool]:
    """The device's reply to a two-way command (any JSON; ``{"error": ...}`` fails it)."""
    http = _http(request)
    body = await _body(request, http.max_body)
    await http.api.reply(_device(http.api, token), request_id, body)
    return {"ok": True}


@router.post(
    "/{token}/rpc",
    summary="Call the platform (device-initiated RPC)",
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"example": {"method": "getCurrentTime", "params": {}}}}
        }
    },
)
async def client_rpc(request: Request, token: Token) -> Any:
    """``getCurrentTime`` or ``getSessionLimits``, as over MQTT; the answer is the body."""
    http = _http(request)
    body = await _body(request, http.max_body)
    return http.api.call(_device(http.api, token), body)


@router.post(
    "/{token}/claim",
    summary="Open the device's claim window",
    status_code=200,
    description=CLAIM_DESCRIPTION,
)
async def claim(request: Request, token: Token) -> dict[str, bool]:
    """Open the device's claim window (:data:`CLAIM_DESCRIPTION`)."""
    http = _http(request)
    body = await _body(request, http.max_body)
    await http.api.claim(_device(http.api, token), body if body.strip() else b"{}")
    return {"ok": True}


@router.get(
    "/{token}/firmware",
    summary="Download the assigned firmware (in chunks)",
    description=FIRMWARE_DESCRIPTION,
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def firmware(
    request: Request,
    token: Token,
    title: str,
    version: str,
    size: Annotated[int, Query(ge=0, description="Chunk size in bytes; 0: the whole file")] = 0,
    chunk: Annotated[int, Query(ge=0, description="Chunk index")] = 0,
) -> Response:
    """A chunk of the assigned firmware (:data:`FIRMWARE_DESCRIPTION`)."""
    api = _http(request).api
    data = await api.firmware(_device(api, token), title, version, size, chunk)
    return Response(data, media_type="application/octet-stream")
