"""The device catalog for the console: each kind and its telemetry keys, labelled in one
language (zh-CN or English), with units and physical ranges, from ``model/catalog.py``."""

from __future__ import annotations

import enum
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from smartpole.api.deps import Caller
from smartpole.model.catalog import CATALOG, KeySpec, KindSpec, ValueType

__all__ = ["Lang", "router"]

router = APIRouter(prefix="/api", tags=["catalog"])


class Lang(enum.StrEnum):
    """A language of the console."""

    ZH_CN = "zh-CN"
    EN = "en"


class KeyOut(BaseModel):
    """One telemetry key of a kind."""

    key: str
    label: str
    unit: str = Field(examples=["µg/m³"])
    type: ValueType
    min: float | None = Field(description="lowest physically possible value")
    max: float | None = Field(description="highest physically possible value")


class KindOut(BaseModel):
    """One device kind and its keys."""

    kind: str
    label: str
    keys: list[KeyOut]


class CatalogOut(BaseModel):
    """Every device kind, labelled in one language."""

    lang: Lang
    kinds: list[KindOut]


def _label(spec: KeySpec | KindSpec, lang: Lang) -> str:
    return spec.label_zh if lang == Lang.ZH_CN else spec.label_en


@router.get("/catalog", summary="Device kinds and their telemetry keys")
async def get_catalog(
    who: Caller,
    lang: Annotated[Lang, Query(description="language of the labels")] = Lang.EN,
) -> CatalogOut:
    """Each device kind and its telemetry keys with label (in ``lang``), unit, type and range
    (any role): the one source of the console's key labels and units."""
    return CatalogOut(
        lang=lang,
        kinds=[
            KindOut(
                kind=kind.kind.value,
                label=_label(kind, lang),
                keys=[
                    KeyOut(
                        key=k.key,
                        label=_label(k, lang),
                        unit=k.unit,
                        type=k.type,
                        min=k.min,
                        max=k.max,
                    )
                    for k in kind.keys.values()
                ],
            )
            for kind in CATALOG.values()
        ],
    )
