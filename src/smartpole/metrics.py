"""Prometheus metrics: the instruments every part shares, in one registry per platform.

A leaf module (it imports nothing of smartpole), so the pipeline and the transports can take a
:class:`Metrics` in their constructors. Each platform builds its own ``CollectorRegistry``
instead of using prometheus-client's global one, so that tests and several platforms in one
process keep separate numbers. What is read at scrape time (queue depths, connections,
per-tenant device counts) is registered by the composition root with :meth:`Metrics.gauge`
and :meth:`Metrics.gauges`. ``docs/operators.md`` lists every metric.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "Metrics", "reason"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Commits take ~1 ms on SQLite and tens of ms on a busy PostgreSQL; seconds mean trouble.
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
Labelled = Iterable[tuple[Sequence[str], float]]


def reason(err: BaseException) -> str:
    """A short, bounded label for why a message was refused: the smartpole error's class in
    snake case (``payload_error``, ``overloaded``, ``forbidden``...), else ``internal``."""
    if not type(err).__module__.startswith("smartpole."):
        return "internal"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(err).__name__).lower()


class _ScrapeTime(Collector):
    """A gauge family whose samples are read when Prometheus scrapes."""

    def __init__(self, name: str, doc: str, labels: Sequence[str], read: Callable[[], Labelled]):
        self.name, self.doc, self.labels, self.read = name, doc, list(labels), read

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        for values, sample in self.read():
            family.add_metric(list(values), sample)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.doc, labels=self.labels)


class Metrics:
    """The platform's instruments; pass one object to every part that counts something."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.readings_received = Counter(
            "smartpole_readings_received",
            "Readings (and quarantined values) devices handed to the ingest pipeline.",
            registry=r,
        )
        self.readings_stored = Counter(
            "smartpole_readings_stored",
            "Readings committed as new rows (duplicates and quarantined values excluded).",
            registry=r,
        )
        self.readings_duplicate = Counter(
            "smartpole_readings_duplicate",
            "Readings ignored because their (device, key, ts) was stored already.",
            registry=r,
        )
        self.readings_quarantined = Counter(
            "smartpole_readings_quarantined",
            "Values the device catalog ruled out, kept apart in quarantine.",
            registry=r,
        )
        self.commits = Histogram(
            "smartpole_commit_seconds",
            "Time to commit one ingest batch (the devices wait this long for their ack).",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.commit_failures = Counter(
            "smartpole_commit_failures",
            "Ingest batches whose transaction failed (nothing acknowledged).",
            registry=r,
        )
        self.commit_retries = Counter(
            "smartpole_commit_retries",
            "Attempts at a held batch while the store could not commit (an outage).",
            registry=r,
        )
        self.rejected = Counter(
            "smartpole_messages_rejected",
            "Device messages refused, by transport and reason.",
            ["transport", "reason"],
            registry=r,
        )
        self.hub_delay = Histogram(
            "smartpole_hub_delay_seconds",
            "From a batch's commit to the end of its rule evaluation.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.hub_worker_restarts = Counter(
            "smartpole_hub_worker_restarts",
            "Times the hub's rule-evaluation worker process was started again after it died.",
            registry=r,
        )
        self.anomaly_worker_restarts = Counter(
            "smartpole_anomaly_worker_restarts",
            "Times the anomaly detector's worker process was started again after it died.",
            registry=r,
        )
        self.tenant_readings = Counter(
            "smartpole_tenant_readings_accepted",
            "Readings committed (duplicates included), by the device's owner tenant.",
            ["tenant"],
            registry=r,
        )
        ProcessCollector(registry=r)  # resident memory, open files, CPU of this process
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def reject(self, transport: str, err: BaseException) -> None:
        """Count a device message refused by ``transport`` (``mqtt``, ``http``)."""
        self.rejected.labels(transport, reason(err)).inc()

    def gauge(self, name: str, doc: str, read: Callable[[], float]) -> None:
        """A gauge read at scrape time."""
        self.gauges(name, doc, [], lambda: [((), read())])

    def gauges(
        self, name: str, doc: str, labels: Sequence[str], read: Callable[[], Labelled]
    ) -> None:
        """A labelled gauge family read at scrape time: ``read`` yields (label values, value)."""
        self.registry.register(_ScrapeTime(name, doc, labels, read))

    def exposition(self) -> bytes:
        """The current values in Prometheus' text format (content type :data:`CONTENT_TYPE`)."""
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` without authentication on a separate address (a thread); return
        the port (``port`` 0 picks a free one)."""
        self._server, self._thread = start_http_server(port, host, registry=self.registry)
        return int(self._server.server_port)

    @property
    def port(self) -> int | None:
        """The separate address's port while serving, else None."""
        return None if self._server is None else int(self._server.server_port)

    def stop(self) -> None:
        """Stop the separate metrics address, if serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(5)
            self._server = self._thread = None
