"""What one write to the time-series store carries, and how it landed.

Ingest builds a :class:`WriteBatch` from a device's payload; the pipeline merges batches and
hands them to the store in one transaction, and to its listeners (the hub, the census) after the
commit. A message some of whose values were kept apart is acknowledged with a
:class:`Quarantine` note.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from smartpole.model.types import Quality, Reading

__all__ = ["Quarantine", "Quarantined", "WriteBatch", "WriteResult"]


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A reading kept apart from good data, with why."""

    reading: Reading
    quality: Quality
    reason: str


@dataclass(slots=True)
class WriteBatch:
    """What the pipeline hands the store in one transaction."""

    readings: list[Reading] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    seen: dict[int, int] = field(default_factory=dict)  # device id -> receive time (ms)

    def extend(self, other: WriteBatch) -> None:
        """Append another batch's content to this one."""
        self.readings.extend(other.readings)
        self.quarantined.extend(other.quarantined)
        for device_id, ts in other.seen.items():
            if ts > self.seen.get(device_id, 0):
                self.seen[device_id] = ts

    def __len__(self) -> int:
        return len(self.readings) + len(self.quarantined)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """How a batch landed: new readings, duplicates ignored, values quarantined."""

    inserted: int
    duplicates: int
    quarantined: int


@dataclass(frozen=True, slots=True)
class Quarantine:
    """A committed message some of whose values broke the catalog and were kept apart: what its
    acknowledgement tells the device (``transport/refusals.py`` words it for MQTT)."""

    count: int
    first: str  # why the first one was
