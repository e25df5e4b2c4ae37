"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from smartpole import __version__
from smartpole.api import alarms as alarms_api
from smartpole.api import analytics as analytics_api
from smartpole.api import broker as broker_api
from smartpole.api import control, firmware, problems, provisioning, registry, telemetry
from smartpole.api import metrics as metrics_api
from smartpole.api import rules as rules_api
from smartpole.api import webhooks as webhooks_api
from smartpole.api import workorders as workorders_api
from smartpole.api.deps import Plat
from smartpole.app import Platform
from smartpole.transport.http import router as device_router

__all__ = ["create_app"]

DESCRIPTION = """
The REST API of **smartpole**, the platform for a city's multi-function smart poles.

Authenticate with an API key: `Authorization: Bearer <key>` (or `X-API-Key: <key>`). A key
belongs to a tenant and has a role (`viewer` reads, `operator` also writes devices, attributes
and telemetry settings, `admin` also manages keys). The city operator tenant sees every pole and
device; any other tenant sees only its own devices and the poles that carry them.

Devices upload over `/api/v1/{access_token}/...`, the ThingsBoard HTTP device API.
Errors are `application/problem+json` (RFC 9457).
"""


def create_app(platform: Platform, *, manage_lifecycle: bool = True) -> FastAPI:
    """Build the app around a platform; with ``manage_lifecycle`` it starts and stops it."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await platform.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                await platform.stop()

    app = FastAPI(
        title="smartpole",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.platform = platform
    problems.install(app)
    app.include_router(registry.router)
    app.include_router(telemetry.router)
    app.include_router(control.router)
    app.include_router(broker_api.router)
    app.include_router(rules_api.router)
    app.include_router(alarms_api.router)
    app.include_router(webhooks_api.router)
    app.include_router(workorders_api.router)
    app.include_router(analytics_api.router)
    app.include_router(provisioning.router)
    app.include_router(firmware.router)
    app.include_router(device_router)
    app.include_router(metrics_api.router)

    @app.get("/healthz", tags=["operations"], summary="Liveness and pipeline state")
    def healthz(p: Plat) -> dict[str, Any]:
        """Whether the store answers, and how the ingest pipeline is doing."""
        return {
            "status": "ok",
            "version": __version__,
            "engine": p.db.dialect,
            "revision": p.db.revision(),
            "pipeline": {
                "pending": p.pipeline.pending,
                "committed": p.pipeline.committed,
                "batches": p.pipeline.batches,
            },
            # batches committed but not yet evaluated by the rules / scored by the detector
            "hub": {"queued": p.hub.queued},
            "anomaly": {
                "enabled": p.settings.anomaly_enabled,
                "queued": p.anomaly.queued,
                "dropped": p.anomaly.dropped,
                "raised": p.anomaly.raised,
            },
        }

    return app
