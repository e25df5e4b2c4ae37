"""REST endpoints of stream analytics: district forecasts and the anomaly detector's state."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from smartpole.api.deps import AnomalyDep, Caller, ForecastsDep
from smartpole.model.types import Role

__all__ = ["router"]

router = APIRouter(prefix="/api/analytics", tags=["analytics"])
PROBLEM: dict[str, Any] = {"application/problem+json": {}}


class ForecastPoint(BaseModel):
    """One forecast hour: it starts at ``ts`` (ms)."""

    ts: int
    value: float


class Window(BaseModel):
    """The hours the model was fitted on, ``[start, end)`` in ms."""

    start: int
    end: int
    hours: int


class ForecastOut(BaseModel):
    """A forecast and what it rests on."""

    district: str
    key: str
    unit: str
    source: str = Field(description="how the district series is made from its devices")
    model: str = Field(description="the model chosen for this series")
    library: str
    params: dict[str, float]
    fitted_on: Window
    mae: float = Field(description="the model's one-step mean absolute error, 2nd half")
    baseline_mae: float = Field(description="the seasonal mean's error on the same hours")
    forecast: list[ForecastPoint]


class AnomalyStats(BaseModel):
    """What the online anomaly detector holds and has done since start."""

    series: int = Field(description="series with a learned baseline")
    max_series: int
    bytes_per_series: int
    scored: int = Field(description="readings scored since start")
    evicted: int = Field(description="series dropped to stay within max_series")
    raised: int = Field(description="anomaly alarms raised since start")
    dropped_batches: int = Field(description="batches skipped because scoring fell behind")
    anomalous_devices: int
    threshold: float
    day_weight: float
    consecutive: int


@router.get(
    "/forecast",
    summary="Forecast a district's air quality or lamp load",
    responses={
        409: {"content": PROBLEM, "description": "not enough hourly history yet (48 h)"},
        422: {"content": PROBLEM, "description": "unknown key"},
    },
)
async def forecast(
    forecasts: ForecastsDep,
    who: Caller,
    district: Annotated[str, Query(min_length=1, max_length=100, examples=["Futian"])],
    key: Annotated[
        str,
        Query(
            description="pm25, pm10, no2, aqi (mean of the air sensors), power (W) or "
            "energy (kWh per hour), the total of the street lamps"
        ),
    ] = "pm25",
    hours: Annotated[int, Query(ge=1, le=72)] = 24,
) -> ForecastOut:
    """The next ``hours`` hours of ``key`` in ``district``, from the devices the caller sees.

    Fitted on the hourly rollups of the last days (``forecast_window_days``): river's
    Holt-Winters on a small parameter grid against the seasonal mean of the same hour, the one
    with the smaller one-step error wins. The answer names the model and the window.
    """
    out = await run_in_threadpool(forecasts.forecast, who, district, key, hours)
    return ForecastOut(**out)


@router.get("/anomaly", summary="State of the anomaly detector")
def anomaly(detector: AnomalyDep, who: Caller) -> AnomalyStats:
    """How many series the detector tracks, how much it scored and raised (city operator)."""
    who.require_city(Role.VIEWER)
    return AnomalyStats(**detector.stats())
