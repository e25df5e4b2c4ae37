"""``POST /api/v1/{token}/telemetry`` and ``/attributes``, as ThingsBoard's HTTP device API.

A request is answered only after its readings are committed. Errors are problem+json:
401 unknown token, 400 malformed JSON (with position), 413 too large, 422 wrong shape.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import Plat
from smartpole.api.schemas import IngestResult
from smartpole.app import Platform
from smartpole.errors import PayloadTooLarge, Unauthenticated
from smartpole.ingest.payload import decode_json, parse_attributes, parse_telemetry, to_batch
from smartpole.model.types import Scope
from smartpole.registry.assets import DeviceRef
from smartpole.store.database import now_ms

router = APIRouter(prefix="/api/v1", tags=["device API (HTTP)"])
log = logging.getLogger(__name__)
Token = Annotated[str, Path(description="The device's access token", max_length=128)]
TELEMETRY_EXAMPLES = {
    "flat": {"value": {"power": 42.5, "dim": 80, "on": True}},
    "with ts": {"value": {"ts": 1764000000000, "values": {"pm25": 31}}},
    "array": {"value": [{"ts": 1764000000000, "values": {"laeq": 61.2}}, {"laeq": 60.8}]},
}


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
        log.warning("HTTP ingest refused: unknown access token (hint %s…)", token[:4])
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
        chosen = set(keys.split(",")) if keys else None
        for k, v in attrs.get(str(scope), {}).items():
            if chosen is None or k in chosen:
                out[str(scope)][k] = v["value"]
    return out
