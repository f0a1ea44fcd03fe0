"""A worker's own Prometheus endpoint: its counters on its metrics port.

Each worker serves ``GET /metrics`` (prometheus_client's WSGI server, on a daemon thread
of the worker's process) on its metrics port: the second port it was offered, or any
free one, reported as ``metricsPort`` in its heartbeat metrics and so listed in the
job's discovery.  ``WorkerCollector`` reads the worker's existing figures at scrape
time through ``read()`` (the same dict its heartbeats carry: ``eventsIn``,
``eventsOut``, ``droppedEvents``, ``queueDepth``, ``subscribers``), plus this process'
CPU time and resident memory, read directly so that a scrape never disturbs the
heartbeat's own CPU-share sampling.  Nothing is counted twice: the worker keeps one set
of counters and this module only exposes them.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, start_wsgi_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mantis.runtime.process_stats import cpu_seconds, rss_mb

log = logging.getLogger("mantis.worker")

LABELS = ("job_id", "stage", "worker_index", "worker_number")
# (heartbeat field, metric name, help, counter?)
FIELDS = (
    ("eventsIn", "mantis_worker_events_in", "Events that entered the stage's operators.", True),
    ("eventsOut", "mantis_worker_events_out", "Events the stage published.", True),
    ("droppedEvents", "mantis_worker_dropped_events", "Events the output dropped (slow or absent consumers).", True),
    ("queueDepth", "mantis_worker_queue_depth", "Encoded batches waiting in the output queues.", False),
    ("subscribers", "mantis_worker_output_connections", "Next-stage workers or subscribers connected.", False),
)


class WorkerCollector(Collector):
    """The figures of one worker, labelled with its job, stage, index and number."""

    def __init__(self, read: Callable[[], dict], labels: dict[str, object]):
        self.read = read
        self.label_values = [str(labels[name]) for name in LABELS]

    def collect(self):
        values = self.read()
        for key, name, documentation, counter in FIELDS:
            kind = CounterMetricFamily if counter else GaugeMetricFamily
            family = kind(name, documentation, labels=LABELS)
            family.add_metric(self.label_values, float(values.get(key) or 0))
            yield family
        cpu = CounterMetricFamily("mantis_worker_cpu_seconds", "CPU time of the worker's process.", labels=LABELS)
        cpu.add_metric(self.label_values, cpu_seconds())
        yield cpu
        memory = GaugeMetricFamily("mantis_worker_resident_memory_bytes", "Resident memory of the worker's process.",
                                   labels=LABELS)
        memory.add_metric(self.label_values, rss_mb() * 1024 * 1024)
        yield memory


class WorkerMetricsServer:
    """Serves one ``WorkerCollector`` on ``host:port`` (port 0, or a taken port: any free
    one); ``port`` is where it listens, ``close()`` stops it."""

    def __init__(self, read: Callable[[], dict], labels: dict[str, object], host: str = "0.0.0.0", port: int = 0):
        self.registry = CollectorRegistry()
        self.registry.register(WorkerCollector(read, labels))
        try:
            self._server, _ = start_wsgi_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            if port == 0:
                raise
            log.warning("metrics port %d unavailable (%s); using a free port", port, exc.strerror)
            self._server, _ = start_wsgi_server(0, addr=host, registry=self.registry)
        self.port = int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
