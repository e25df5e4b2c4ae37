"""ThingsBoard's HTTP device API under ``/api/v1/{token}/``: telemetry, attributes, commands
(long poll ``GET …/rpc`` and replies), device-initiated RPC, claiming and firmware download.

A telemetry request is answered only after its readings are committed. Errors are problem+json:
401 unknown token, 400 malformed JSON (with position), 413 too large, 422 wrong shape, 408 no
command within a poll's timeout.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import Plat
from smartpole.api.problems import problem
from smartpole.api.schemas import IngestResult
from smartpole.app import Platform
from smartpole.errors import InvalidInput, NotFound, PayloadTooLarge, Unauthenticated
from smartpole.ingest.payload import decode_json, parse_attributes, parse_telemetry, to_batch
from smartpole.model.clock import now_ms
from smartpole.model.types import DeviceRef, Scope, split_keys
from smartpole.registry.access import token_hint
from smartpole.transport.polls import ATTRIBUTES, MAX_POLL_MS, RPC

router = APIRouter(
    prefix="/api/v1",
    tags=["device API (HTTP)"],
    responses={401: {"description": "Unknown access token"}},
)
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
POLL_CHECK_S = 1.0  # how often an open poll looks whether its device is still there


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


async def _device(p: Platform, token: str) -> DeviceRef:
    ref = p.assets.device_by_token(token)
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
async def post_telemetry(request: Request, p: Plat, token: Token) -> IngestResult:
    """Store telemetry in any ThingsBoard form; answered after the commit."""
    try:
        body = await _body(request, p.settings.max_body_bytes)
        ref = await _device(p, token)
        now = p.devices.receive_time(ref.id, now_ms())
        try:
            triples = parse_telemetry(decode_json(body), now)
        except Exception:
            log.info("HTTP telemetry rejected for device %s (%s)", ref.id, ref.name)
            raise
        batch = to_batch(ref.id, ref.kind, triples, now)
        await p.pipeline.submit(batch)
    except Exception as err:
        p.metrics.reject("http", err)
        raise
    p.devices.offline.discard(ref.id)  # heard from again, over HTTP
    return IngestResult(accepted=len(batch.readings), quarantined=len(batch.quarantined))


@router.post(
    "/{token}/attributes",
    summary="Upload client attributes",
    openapi_extra={
        "requestBody": {
            "content": {"application/json": {"example": {"firmware": "1.4.2", "model": "SL-60"}}}
        }
    },
)
async def post_attributes(request: Request, p: Plat, token: Token) -> dict[str, int]:
    """Store client-scope attributes (a flat JSON object)."""
    body = await _body(request, p.settings.max_body_bytes)
    ref = await _device(p, token)
    values = parse_attributes(decode_json(body))
    await run_in_threadpool(p.assets.set_attributes, ref.id, Scope.CLIENT, values)
    return {"updated": len(values)}


@router.get(
    "/{token}/attributes/updates",
    summary="Wait for shared-attribute updates (long poll)",
    responses={
        200: {"content": {"application/json": {"example": {"dim_schedule": "night"}}}},
        408: {"description": "No update came within the timeout; poll again"},
    },
)
async def poll_attributes(
    request: Request, p: Plat, token: Token, wait_ms: PollTimeout = 20_000
) -> Response:
    """The next change of the device's shared attributes, as ThingsBoard's HTTP API gives it:
    the changed keys and values (``{"deleted": [keys]}`` for removed ones)."""
    ref = await _device(p, token)
    got = await _poll(request, p, ref, ATTRIBUTES, wait_ms)
    if isinstance(got, Response):
        return got
    return Response(orjson.dumps(got), media_type="application/json")


@router.get("/{token}/attributes", summary="Read attributes (device side)")
async def get_attributes(
    p: Plat,
    token: Token,
    clientKeys: str | None = None,
    sharedKeys: str | None = None,
) -> dict[str, dict[str, Any]]:
    """The device's client and shared attributes, as ThingsBoard returns them."""
    ref = await _device(p, token)
    wanted = {Scope.CLIENT: clientKeys, Scope.SHARED: sharedKeys}
    out: dict[str, dict[str, Any]] = {"client": {}, "shared": {}}
    attrs = await run_in_threadpool(p.assets.get_attributes, ref.id, [Scope.CLIENT, Scope.SHARED])
    for scope, keys in wanted.items():
        chosen = set(split_keys(keys)) if keys else None
        for k, v in attrs.get(str(scope), {}).items():
            if chosen is None or k in chosen:
                out[str(scope)][k] = v["value"]
    return out


# -- commands, device-initiated RPC, claiming, firmware -------------------------------------
@router.get(
    "/{token}/rpc",
    summary="Wait for a command (long poll)",
    responses={
        200: {"content": {"application/json": {"example": RPC_EXAMPLE}}},
        408: {"description": "No command came within the timeout; poll again"},
    },
)
async def poll_rpc(
    request: Request, p: Plat, token: Token, wait_ms: PollTimeout = 20_000
) -> Response:
    """The next command for the device, as ThingsBoard's HTTP API gives it:
    ``{"id": n, "method": ..., "params": ...}``; answer two-way ones on ``POST …/rpc/{id}``.
    While the request is open the device is reachable: queued persistent commands go first."""
    ref = await _device(p, token)
    got = await _poll(request, p, ref, RPC, wait_ms)
    if isinstance(got, Response):
        return got
    await p.devices.rpc_delivered(ref.id, got["id"])
    return Response(orjson.dumps(got), media_type="application/json")


async def _poll(
    request: Request, p: Platform, ref: DeviceRef, kind: str, wait_ms: int
) -> dict[str, Any] | Response:
    """Hold a long poll until it is answered (the answer), or a Response: 408 at the timeout,
    503 when the node stops, nothing when the device went away."""
    p.devices.offline.discard(ref.id)
    wait_ms = min(wait_ms, MAX_POLL_MS)
    deadline = asyncio.get_running_loop().time() + wait_ms / 1000
    future = p.polls.open(ref.id, kind)
    try:
        if kind == RPC:
            await p.devices.rpc_ready(ref)  # its queued commands, oldest first (one per poll)
        while not future.done():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                detail = f"nothing for device {ref.name} within {wait_ms} ms"
                return problem(408, "Request timeout", detail)
            await asyncio.wait({future}, timeout=min(left, POLL_CHECK_S))
            if not future.done() and await request.is_disconnected():
                return Response(status_code=499)  # nobody reads it; the device is gone
    finally:
        p.polls.close(ref.id, future, kind)
        future.cancel()  # what arrives now finds no poll (no effect once it has an answer)
    if future.cancelled():  # the node is stopping
        return problem(503, "Service unavailable", "this node is shutting down; poll again")
    if await request.is_disconnected():  # the device left as the answer came: a command is not
        return Response(status_code=499)  # delivered, so a persistent one goes on its next poll
    return future.result()


@router.post("/{token}/rpc/{request_id}", summary="Answer a command", status_code=200)
async def reply_rpc(
    request: Request, p: Plat, token: Token, request_id: Annotated[int, Path(ge=0)]
) -> dict[str, bool]:
    """The device's reply to a two-way command (any JSON; ``{"error": ...}`` fails it)."""
    body = await _body(request, p.settings.max_body_bytes)
    ref = await _device(p, token)
    await p.devices.rpc_reply(ref, request_id, decode_json(body))
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
async def client_rpc(request: Request, p: Plat, token: Token) -> Any:
    """``getCurrentTime`` or ``getSessionLimits``, as over MQTT; the answer is the body."""
    body = await _body(request, p.settings.max_body_bytes)
    ref = await _device(p, token)
    call = decode_json(body)
    if not isinstance(call, dict) or not isinstance(call.get("method"), str):
        raise InvalidInput('client RPC needs {"method": "...", "params": ...}')
    return await p.devices.client_rpc(ref, call["method"], call.get("params"))


@router.post("/{token}/claim", summary="Open the device's claim window", status_code=200)
async def claim(request: Request, p: Plat, token: Token) -> dict[str, bool]:
    """``{"secretKey": "...", "durationMs": ms}``: a tenant may claim the device with that secret
    until then (``POST /api/claims``)."""
    body = await _body(request, p.settings.max_body_bytes)
    ref = await _device(p, token)
    await p.devices.claim(ref, decode_json(body) if body.strip() else {})
    return {"ok": True}


@router.get(
    "/{token}/firmware",
    summary="Download the assigned firmware (in chunks)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def firmware(
    p: Plat,
    token: Token,
    title: str,
    version: str,
    size: Annotated[int, Query(ge=0, description="Chunk size in bytes; 0: the whole file")] = 0,
    chunk: Annotated[int, Query(ge=0, description="Chunk index")] = 0,
) -> Response:
    """ThingsBoard's ``GET /api/v1/{token}/firmware?title=&version=&size=&chunk=``: a chunk of the
    package assigned to the device, which must be the one named (its ``fw_title``/``fw_version``
    shared attributes)."""
    ref = await _device(p, token)
    assigned = await run_in_threadpool(p.firmware.assigned, ref.id)
    if assigned is None or (assigned["title"], assigned["version"]) != (title, version):
        raise NotFound(f"firmware {title} {version} is not assigned to device {ref.name}")
    data = await p.devices.firmware_chunk(ref, size, chunk)
    if data is None:
        raise NotFound(f"firmware {title} {version} is not assigned to device {ref.name}")
    return Response(data, media_type="application/octet-stream")
