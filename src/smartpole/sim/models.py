"""Every device kind's model, by kind."""

from __future__ import annotations

from smartpole.model.types import DeviceKind
from smartpole.sim.equipment import (
    Camera,
    Charger,
    Display,
    Flood,
    Gateway,
    Manhole,
    Meter,
    SmallCell,
    Sos,
    Speaker,
    Tilt,
    Wifi,
)
from smartpole.sim.physics import Air, Lamp, Model, Noise, Site, Weather

__all__ = ["MODELS", "model_for"]

MODELS: dict[DeviceKind, type[Model]] = {
    m.kind: m
    for m in (
        Lamp,
        Air,
        Weather,
        Noise,
        Camera,
        SmallCell,
        Display,
        Speaker,
        Sos,
        Charger,
        Wifi,
        Tilt,
        Flood,
        Manhole,
        Meter,
        Gateway,
    )
}


def model_for(kind: DeviceKind | str, name: str, seed: int, site: Site | None = None) -> Model:
    """A fresh model of a device of ``kind``."""
    return MODELS[DeviceKind(kind)](name, seed, site)
