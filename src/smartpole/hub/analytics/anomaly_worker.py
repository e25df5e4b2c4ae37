"""The anomaly detector in a process of its own, so that scoring does not take ingest's core.

With ``anomaly_worker = true`` the anomaly service (``anomaly.py``) starts ``python -m
smartpole.hub.analytics.anomaly_worker`` (``smartpole/child.py``: framed pickles over the
child's stdin and stdout). It sends a :class:`Seed` (the detector's settings, the last saved
baselines, the kinds of the devices it knows), then committed readings as columns
(:class:`Scoring`); the worker scores and learns them and answers with the series that changed
state. :class:`Dump` asks for the baselines to save.

The baselines live in the worker: one that dies is replaced and seeded with the last saved
snapshot (what was learned since is learned again; the readings it had not answered are sent
again, so no series' change of state is missed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from smartpole.child import Child, Failure, serve
from smartpole.hub.analytics.detector import AnomalyEvent, Detector, score
from smartpole.model.columns import Columns
from smartpole.model.types import DeviceKind

__all__ = ["Dump", "Message", "Reply", "Scores", "Scoring", "Seed", "anomaly_worker", "answer"]


@dataclass(frozen=True, slots=True)
class Seed:
    """A new worker's detector: the settings of ``detector`` (its series are not sent), the
    baselines of ``snapshot`` (``Detector.dump``) and the kinds of the devices known."""

    detector: Detector
    snapshot: bytes | None
    kinds: dict[int, DeviceKind]


@dataclass(frozen=True, slots=True)
class Scoring:
    """Committed readings to score, with the kinds of the devices the worker has not been
    told of."""

    kinds: dict[int, DeviceKind]
    columns: Columns


@dataclass(frozen=True, slots=True)
class Dump:
    """Ask for the baselines (``Detector.dump``) to save."""


@dataclass(frozen=True, slots=True)
class Scores:
    """The worker's answer to :class:`Columns`: the series that changed state, and how big
    the detector is now (for the service's statistics)."""

    events: list[AnomalyEvent]
    series: int
    scored: int
    evicted: int


class _Worker:
    __slots__ = ("detector", "kinds")

    def __init__(self, detector: Detector, kinds: dict[int, DeviceKind]) -> None:
        self.detector = detector
        self.kinds = kinds


Message = Seed | Scoring | Dump
Reply = Scores | bytes | Failure | None


def answer(worker: _Worker | None, message: Message) -> tuple[_Worker | None, Reply]:
    """The worker's answer to one message, and its state from then on."""
    if isinstance(message, Seed):
        detector = message.detector
        detector.series.clear()
        if message.snapshot is not None:
            detector.load(message.snapshot)
        return _Worker(detector, dict(message.kinds)), None
    if worker is None:
        return None, Failure("not seeded")
    if isinstance(message, Dump):
        return worker, worker.detector.dump()
    worker.kinds.update(message.kinds)
    d = worker.detector
    events = score(d, worker.kinds, message.columns.rows())
    return worker, Scores(events, len(d), d.scored, d.evicted)


def main() -> None:
    """Answer the anomaly service's messages until it closes stdin."""
    serve("anomaly worker", answer)


def anomaly_worker(seed: Callable[[], Seed], on_restart: Callable[[], None]) -> Child:
    """The worker process as the anomaly service sees it."""
    return Child(
        "smartpole.hub.analytics.anomaly_worker", "anomaly worker", seed, on_restart=on_restart
    )


if __name__ == "__main__":
    # The module again under its own name: the messages' classes are its, not ``__main__``'s.
    from smartpole.hub.analytics import anomaly_worker as this

    this.main()
