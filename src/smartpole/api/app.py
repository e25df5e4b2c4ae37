"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from smartpole import __version__
from smartpole.api import alarms as alarms_api
from smartpole.api import analytics as analytics_api
from smartpole.api import audit as audit_api
from smartpole.api import broker as broker_api
from smartpole.api import (
    catalog,
    console,
    control,
    docs,
    firmware,
    grants,
    live,
    ngsi_ld_batch,
    ngsi_ld_http,
    ngsi_ld_subscriptions,
    ngsi_ld_temporal,
    problems,
    provisioning,
    registry,
    telemetry,
)
from smartpole.api import lighting as lighting_api
from smartpole.api import map as map_api
from smartpole.api import metrics as metrics_api
from smartpole.api import ngsi_ld as ngsi_ld_api
from smartpole.api import overview as overview_api
from smartpole.api import rules as rules_api
from smartpole.api import session as session_api
from smartpole.api import users as users_api
from smartpole.api import webhooks as webhooks_api
from smartpole.api import workorders as workorders_api
from smartpole.api.deps import (
    AnomalyDep,
    DatabaseDep,
    HealthDep,
    HubDep,
    PipelineDep,
    SeriesDep,
    SettingsDep,
)
from smartpole.api.services import Lifecycle, Services
from smartpole.child import ChildStatus
from smartpole.transport.http import device as device_http

__all__ = ["bind", "create_app"]

DESCRIPTION = """
The REST API of **smartpole**, the platform for a city's multi-function smart poles.

Authenticate with an API key: `Authorization: Bearer <key>` (or `X-API-Key: <key>`), or with
the console's session cookie (`POST /api/session`; its writes also send `X-CSRF-Token`). A key
or a user belongs to a tenant and has a role (`viewer` reads, `operator` also writes devices,
attributes and telemetry settings, `admin` also manages keys and users). The city operator
tenant sees every pole and device; any other tenant sees only its own devices and the poles that
carry them. Every change a key or a user makes is in the audit log (`GET /api/audit`).

Devices upload over `/api/v1/{access_token}/...`, the ThingsBoard HTTP device API.
Errors are `application/problem+json` (RFC 9457).
"""


def bind(app: FastAPI, services: Services) -> None:
    """Serve ``services`` on ``app`` from the next request on: every route reads what it serves
    from ``app.state`` per request, so an app built once may serve other services later (the
    tests build one app per process: FastAPI's first request on a new app lays out every route
    again, most of a second)."""
    app.state.services = services  # read by api.deps
    device_http.attach(
        app,
        device_http.DeviceHttp(
            services.device_api,
            services.polls,
            services.metrics,
            services.settings.max_body_bytes,
        ),
    )


def create_app(services: Services, *, lifecycle: Lifecycle | None = None) -> FastAPI:
    """Build the app around the services it serves; given a ``lifecycle`` (the platform), its
    lifespan also starts and stops it (without one, whoever built the services runs them)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if lifecycle is not None:
            await lifecycle.start()
        try:
            yield
        finally:
            if lifecycle is not None:
                await lifecycle.stop()

    app = FastAPI(
        title="smartpole",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served offline by api.docs
        redoc_url=None,
    )
    bind(app, services)
    app.add_middleware(audit_api.AuditTrail)  # inside problems' request ids: a failure is a 500
    problems.install(app)
    docs.install(app)
    app.include_router(session_api.router)
    app.include_router(users_api.router)
    app.include_router(audit_api.router)
    app.include_router(registry.router)
    app.include_router(telemetry.router)
    app.include_router(control.router)
    app.include_router(broker_api.router)
    app.include_router(rules_api.router)
    app.include_router(lighting_api.router)
    app.include_router(alarms_api.router)
    app.include_router(webhooks_api.router)
    app.include_router(workorders_api.router)
    app.include_router(analytics_api.router)
    app.include_router(overview_api.router)
    app.include_router(provisioning.router)
    app.include_router(grants.router)
    app.include_router(firmware.router)
    app.include_router(map_api.router)
    app.include_router(catalog.router)
    app.include_router(live.router)
    app.include_router(ngsi_ld_api.router)
    app.include_router(ngsi_ld_batch.router)
    app.include_router(ngsi_ld_temporal.router)
    app.include_router(ngsi_ld_subscriptions.router)
    ngsi_ld_http.install(app)
    device_http.mount(app)
    app.include_router(metrics_api.router)
    console.install(app, services.settings)

    @app.get("/livez", tags=["operations"], summary="Liveness: the process runs")
    def livez() -> dict[str, str]:
        """200 while the process serves requests, whatever the database does: an orchestrator
        restarts on this one, and a restart would not bring a database back."""
        return {"status": "alive"}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: the store can commit",
        responses={503: {"description": "Not ready; the reason is in the problem+json body"}},
    )
    async def readyz(health: HealthDep) -> Any:
        """200 when this node can store what devices send; 503 problem+json with the reason
        while the store cannot commit (database down or unreachable, disk full, file locked)."""
        outage = await run_in_threadpool(health.unready)
        if outage is not None:
            return problems.problem(
                503, "Not ready", outage.detail, retry_after=5, reason=outage.detail
            )
        return {"status": "ready"}

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="Readiness with the pipeline's state",
        responses={
            503: {
                "description": "The store cannot commit; the same body, with `reason`",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def healthz(
        health: HealthDep,
        database: DatabaseDep,
        pipeline: PipelineDep,
        hub: HubDep,
        anomaly: AnomalyDep,
        settings: SettingsDep,
        series: SeriesDep,
    ) -> Any:
        """Whether the store can commit (200, or 503 with ``reason``), and how the ingest
        pipeline, the rules and the anomaly detector are doing."""
        outage = await run_in_threadpool(health.unready)
        revision = None if outage is not None else await run_in_threadpool(database.revision)
        hub_body: dict[str, Any] = {"queued": hub.queued}
        worker = hub.worker_status()
        if worker is not None:  # rules evaluated in a process of their own
            hub_body["worker"] = {**_child(worker), "queued": hub.queued, "lag": round(hub.lag, 3)}
        anomaly_body: dict[str, Any] = {
            "enabled": settings.anomaly_enabled,
            "queued": anomaly.queued,
            "dropped": anomaly.dropped,
            "raised": anomaly.raised,
        }
        scorer = anomaly.worker_status()
        if scorer is not None:  # anomalies scored in a process of their own
            anomaly_body["worker"] = _child(scorer)
        pipeline_body: dict[str, Any] = {
            "pending": pipeline.pending,
            "committed": pipeline.committed,
            "batches": pipeline.batches,
        }
        if series.writer is not None:  # readings committed by a process of their own
            pipeline_body["writer"] = _child(series.writer.status())
        body = {
            "status": "ok" if outage is None else "unavailable",
            "version": __version__,
            "engine": database.dialect,
            "revision": revision,
            "pipeline": pipeline_body,
            # batches committed but not yet evaluated by the rules / scored by the detector
            "hub": hub_body,
            "anomaly": anomaly_body,
        }
        if outage is None:
            return body
        return JSONResponse({**body, "reason": outage.detail}, 503, {"Retry-After": "5"})

    return app


def _child(status: ChildStatus) -> dict[str, Any]:
    """A worker process as ``/healthz`` shows it."""
    return {"pid": status.pid, "alive": status.alive, "restarts": status.restarts}
