"""``GET /metrics``: Prometheus' scrape endpoint, for the city operator only.

The metrics name every tenant and count their devices, so no other tenant may read them. A
scraper that cannot send an API key uses the separate address instead (``metrics_port``).
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

from smartpole.api.deps import Caller, MetricsDep
from smartpole.metrics import CONTENT_TYPE
from smartpole.model.types import Role

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics (city operator keys only)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."}},
)
async def metrics(metrics: MetricsDep, who: Caller) -> Response:
    """Every metric in Prometheus' text format; needs a key of the city operator tenant."""
    who.require_city(Role.VIEWER)
    body = await asyncio.to_thread(metrics.exposition)  # the per-tenant counts query the store
    return Response(body, media_type=CONTENT_TYPE)
