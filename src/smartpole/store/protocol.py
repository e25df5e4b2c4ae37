"""What the pipeline, the API and the hub need of the time-series store: :class:`TimeSeries`,
which :class:`smartpole.store.series.SeriesStore` implements on both engines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, tzinfo
from typing import Any, Literal, Protocol

from smartpole.child import ChildStatus
from smartpole.model.types import Value
from smartpole.model.writes import WriteBatch, WriteResult
from smartpole.store.marks import Mark

__all__ = ["AggPoint", "Aggregation", "TimeSeries", "Writer"]

Aggregation = Literal["none", "avg", "min", "max", "sum", "count"]
AggPoint = tuple[int, float]


class TimeSeries(Protocol):
    """What the pipeline, the API and the hub need of the time-series store."""

    def write(self, batch: WriteBatch) -> WriteResult:
        """Commit one batch in one transaction."""
        ...

    def latest(
        self, device_ids: Sequence[int], keys: Sequence[str] | None = None
    ) -> dict[int, dict[str, tuple[int, Value]]]:
        """Newest ``(ts, value)`` per device and key."""
        ...

    def previous(
        self, device_ids: Sequence[int], keys: Sequence[str]
    ) -> dict[int, dict[str, tuple[int, Value]]]:
        """Per device and key, the newest ``(ts, value)`` older than the newest."""
        ...

    def history(
        self, device_id: int, keys: Sequence[str], start: int, end: int, limit: int = 1000
    ) -> dict[str, list[tuple[int, Value]]]:
        """Raw readings in ``[start, end)``, oldest first."""
        ...

    def recent(
        self, device_ids: Sequence[int], keys: Sequence[str], start: int, end: int, n: int
    ) -> dict[int, dict[str, list[tuple[int, Value]]]]:
        """Per device and key, the newest ``n`` raw readings in ``[start, end)``, oldest first."""
        ...

    def having(
        self,
        device_ids: Sequence[int],
        keys: Sequence[str],
        start: int,
        end: int,
        *,
        rolled_up: bool = False,
    ) -> set[int]:
        """The devices with a raw reading of one of ``keys`` in ``[start, end)`` (``rolled_up``:
        or an hourly rollup of one)."""
        ...

    def aggregate(
        self,
        device_ids: Sequence[int],
        keys: Sequence[str],
        start: int,
        end: int,
        interval: int,
        agg: Aggregation,
        per_device: bool = True,
        zone: tzinfo = UTC,
    ) -> dict[int, dict[str, list[AggPoint]]]:
        """Buckets aligned to the clock (days at midnight in ``zone``), labelled by their
        start; with ``per_device=False`` all under id 0."""
        ...

    def values_before(
        self, device_ids: Sequence[int], key: str, marks: Sequence[int], floor: int
    ) -> dict[int, list[Mark]]:
        """Per device, the last numeric ``(ts, value)`` of ``key`` before each of ``marks``
        (ascending)."""
        ...

    def lowest(self, key: str, spans: Sequence[tuple[int, int, int]]) -> list[float | None]:
        """The lowest rollup value of ``key`` in each ``(device, start, end)``."""
        ...

    def purge(self, now: int | None = None) -> int:
        """Delete readings past their key's retention; return how many went."""
        ...


class Writer(Protocol):
    """Who commits a series store's writes when it is not its own process (``writer.py``)."""

    def write(self, rows: list[tuple[Any, ...]], batch: WriteBatch) -> WriteResult:
        """Commit the readings' rows with the batch's quarantine and last-seen."""
        ...

    def flush(self) -> None:
        """Write the gathered latest values and rollups now."""
        ...

    def recover(self) -> int:
        """Settle the node's unflushed marks; how many were settled."""
        ...

    def close(self, *, flush: bool = True) -> None:
        """Stop (after writing what is gathered, unless ``flush`` is False)."""
        ...

    def status(self) -> ChildStatus:
        """How its process is doing (``/healthz``)."""
        ...
