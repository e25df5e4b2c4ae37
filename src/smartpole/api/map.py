"""The city map's data: every visible pole as columns with its state, value layers, outlines.

Made for 100,000 poles: columns instead of features, coordinates as integers of 1e-6 degrees,
one state code per pole, gzip when the client takes it, and an ETag so that a client that has
the same answer gets a 304 without a body. State changes after the answer arrive over the
live socket (``{"op": "map"}`` on ``/api/live``).
"""

from __future__ import annotations

import gzip
import hashlib
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import Caller, DatabaseDep, PoleStatesDep, SeriesDep
from smartpole.hub.layers import Layer, kind_of, layer_values
from smartpole.model.map import KINDS, MapPoles, PoleState
from smartpole.registry.mapdata import devices_of_kind, map_poles, outlines

__all__ = ["router"]

router = APIRouter(prefix="/api/map", tags=["map"])
GZIP_MIN = 256  # smaller answers are not worth compressing
GZIP_LEVEL = 6


class PoleColumns(BaseModel):
    """One list per field; item ``i`` of each is the same pole."""

    id: list[int]
    code: list[str]
    lon: list[int] = Field(description="longitude in 1e-6 degrees (WGS 84)")
    lat: list[int] = Field(description="latitude in 1e-6 degrees (WGS 84)")
    district: list[int] = Field(description="index into `districts`")
    road: list[int] = Field(description="index into `roads`")
    kinds: list[int] = Field(description="bitmask over `kinds` of the devices the caller sees")
    owners: list[int] = Field(description="index into `owner_sets`")
    state: list[int] = Field(
        description="0 ok, 1 offline, 2 warning, 3 minor, 4 major, 5 critical (in the "
        "caller's view: only the alarms and devices it sees)"
    )


class MapPolesOut(BaseModel):
    """The poles the caller may see, columnar."""

    version: int = Field(description="bumped by every change of any pole's state")
    kinds: list[str] = Field(description="device kinds, bit i of a pole's `kinds` is kinds[i]")
    districts: list[str]
    roads: list[str]
    owners: list[str] = Field(description="tenant names of the devices the caller sees")
    owner_sets: list[list[int]] = Field(description="sets of indexes into `owners`")
    poles: PoleColumns


class LayerOut(BaseModel):
    """A layer's value per pole, only for poles that have one."""

    version: int = Field(description="ms of the newest reading used (0: none)")
    id: list[int] = Field(description="pole ids")
    value: list[float]


class DistrictOutline(BaseModel):
    """A district's outline: a closed ring of [lon, lat]."""

    name: str
    outline: list[list[float]]


class RoadLine(BaseModel):
    """A road drawn through its poles, in order along it."""

    name: str
    district: str
    line: list[list[float]]


class OutlinesOut(BaseModel):
    """What the offline base map draws: districts and roads."""

    districts: list[DistrictOutline]
    roads: list[RoadLine]


NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "the client's copy (If-None-Match) is current"}
}


def _answer(request: Request, body: Any) -> Response:
    """JSON with an ETag, 304 when the client has it, gzip when the client takes it."""
    raw = orjson.dumps(body)
    tag = f'W/"{hashlib.blake2b(raw, digest_size=12).hexdigest()}"'
    headers = {"ETag": tag, "Vary": "Accept-Encoding", "Cache-Control": "no-cache"}
    if tag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if len(raw) >= GZIP_MIN and "gzip" in request.headers.get("accept-encoding", ""):
        raw = gzip.compress(raw, GZIP_LEVEL, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return Response(raw, media_type="application/json", headers=headers)


def _poles_body(columns: MapPoles, states: dict[int, PoleState], version: int) -> dict[str, Any]:
    ok = PoleState.OK
    return {
        "version": version,
        "kinds": [k.value for k in KINDS],
        "districts": columns.districts,
        "roads": columns.roads,
        "owners": columns.owners,
        "owner_sets": columns.owner_sets,
        "poles": {
            "id": columns.id,
            "code": columns.code,
            "lon": columns.lon,
            "lat": columns.lat,
            "district": columns.district,
            "road": columns.road,
            "kinds": columns.kinds,
            "owners": columns.owner,
            "state": [int(states.get(p, ok)) for p in columns.id],
        },
    }


@router.get(
    "/poles",
    summary="Every visible pole for the map",
    response_model=None,
    responses={200: {"model": MapPolesOut}, **NOT_MODIFIED},
)
async def get_map_poles(
    request: Request, database: DatabaseDep, states: PoleStatesDep, who: Caller
) -> Response:
    """The poles the caller may see, as columns, each with its worst state in the caller's
    view (any role). Pole state changes after this answer come over ``/api/live``."""
    version, view = states.version, states.states(who)  # together, on the event loop
    columns = await run_in_threadpool(map_poles, database.engine, who)
    body = _poles_body(columns, view, version)
    return await run_in_threadpool(_answer, request, body)


@router.get(
    "/layers/{layer}",
    summary="A value layer of the map",
    response_model=None,
    responses={200: {"model": LayerOut}, **NOT_MODIFIED},
)
async def get_map_layer(
    request: Request, layer: Layer, database: DatabaseDep, series: SeriesDep, who: Caller
) -> Response:
    """Per visible pole, from the latest readings of the devices the caller sees: ``aqi``
    (China AQI, HJ 633-2012, of its air sensors; the worst), ``noise`` (LAeq in dB(A); the
    loudest), ``lamp`` (dim level in %, 0 when off; the mean of its lamps)."""
    mounted = await run_in_threadpool(devices_of_kind, database.engine, who, kind_of(layer))
    values = await run_in_threadpool(layer_values, layer, mounted, series)
    body = {"version": values.version, "id": values.pole_ids, "value": values.values}
    return await run_in_threadpool(_answer, request, body)


@router.get(
    "/outlines",
    summary="District outlines and roads for the offline base map",
    response_model=None,
    responses={200: {"model": OutlinesOut}, **NOT_MODIFIED},
)
async def get_map_outlines(request: Request, database: DatabaseDep, who: Caller) -> Response:
    """Each district as the hull of its visible poles, each road as a line through its
    visible poles in order along it: a base map that needs no tiles and no internet."""
    districts, roads = await run_in_threadpool(outlines, database.engine, who)
    body = {
        "districts": [{"name": d.name, "outline": d.outline} for d in districts],
        "roads": [{"name": r.name, "district": r.district, "line": r.line} for r in roads],
    }
    return await run_in_threadpool(_answer, request, body)
