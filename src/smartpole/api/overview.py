"""REST endpoint of the operations overview: the console's overview page in one answer."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import AlarmsDep, AssetsDep, Caller, ConnectionsDep, SeriesDep, TenantsDep
from smartpole.hub.analytics.overview import overview
from smartpole.model.clock import now_ms
from smartpole.model.lifecycle import Severity

__all__ = ["OverviewOut", "router"]

router = APIRouter(prefix="/api", tags=["overview"])


class KindCountOut(BaseModel):
    """Devices of one kind, online and offline."""

    kind: str
    online: int
    offline: int


class DistrictAirOut(BaseModel):
    """A district's air quality now."""

    district: str
    aqi: float = Field(description="mean of the latest AQI of its air sensors")
    level: int = Field(ge=1, le=6, description="HJ 633-2012 level, 1 excellent to 6 severe")
    devices: int = Field(description="air sensors that reported an AQI")


class OverviewOut(BaseModel):
    """The city as the caller's tenant sees it now."""

    devices: list[KindCountOut] = Field(description="by kind, kinds without a device left out")
    alarms: dict[Severity, int] = Field(description="active alarms by severity, worst first")
    lamp_energy_kwh: float = Field(description="the lamps' meters since midnight (kWh)")
    day_start: int = Field(description="midnight in the tenant's time zone (ms)")
    timezone: str = Field(
        description="the tenant's time zone (IANA name), where its day starts",
        examples=["Asia/Shanghai"],
    )
    air: list[DistrictAirOut] = Field(description="districts with an air sensor, by name")


@router.get("/overview", summary="The operations overview")
async def get_overview(
    assets: AssetsDep,
    series: SeriesDep,
    alarms: AlarmsDep,
    tenants: TenantsDep,
    connections: ConnectionsDep,
    who: Caller,
) -> OverviewOut:
    """Devices online and offline by kind, active alarms by severity, today's lamp energy and
    each district's air quality, from the devices and alarms the caller's tenant sees. A
    district's forecast is ``GET /api/forecast?district=...&key=aqi``."""

    def build() -> OverviewOut:
        out = overview(
            who,
            assets=assets,
            series=series,
            alarms=alarms,
            is_online=connections.is_online,
            zone=tenants.zone(who.tenant_id),
            now=now_ms(),
        )
        return OverviewOut.model_validate(out.to_dict())

    return await run_in_threadpool(build)
