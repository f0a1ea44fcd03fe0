"""A worker's own metrics endpoint: its figures as JSON for the Job Master, and in
Prometheus' text format for operators.

Each worker serves, on a metrics port of its own (a free one, apart from the ports the job
was offered; reported as ``metricsPort`` in its heartbeat and so listed in discovery),
from a daemon thread of its own process:

- ``GET /metrics.json``: ``snapshot()`` as JSON, built on each request: counters that only
  grow (events in and out, drops, busy seconds, CPU seconds, bytes in) and gauges
  (memory, queue depth, the job's own ``ctx.metrics`` under ``user``).  Whoever reads it
  twice computes rates, so readers never disturb each other; the Job Master does.
- ``GET /metrics``: the same figures through ``WorkerCollector`` (prometheus_client),
  labelled with the worker's job, stage, index and number, plus the process' CPU time and
  resident memory, read directly so that a scrape never disturbs the heartbeat's own
  CPU-share sampling.

Nothing is counted twice: the worker keeps one set of counters and this module only
exposes them.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mantis.runtime.process_stats import cpu_seconds, rss_mb

log = logging.getLogger("mantis.runtime.worker_metrics")

METRICS_PATH = "/metrics.json"
PROMETHEUS_PATH = "/metrics"
LABELS = ("job_id", "stage", "worker_index", "worker_number")
# (snapshot field, metric name, help, counter?)
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
    """Serves ``snapshot()`` at ``/metrics.json`` and, given the worker's ``labels``, its
    Prometheus figures at ``/metrics``, on ``host:port`` (port 0, or a taken port: any free
    one) until ``close()``; ``port`` is where it listens."""

    def __init__(self, snapshot: Callable[[], dict], labels: dict[str, object] | None = None,
                 host: str = "0.0.0.0", port: int = 0):
        registry = CollectorRegistry()
        if labels is not None:
            registry.register(WorkerCollector(snapshot, labels))

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler) -> None:  # noqa: N802 (http.server's name)
                path = handler.path.split("?")[0]
                try:
                    if path == METRICS_PATH:
                        handler._reply(200, json.dumps(snapshot()).encode(), "application/json")
                    elif path == PROMETHEUS_PATH and labels is not None:
                        handler._reply(200, generate_latest(registry), CONTENT_TYPE_LATEST)
                    else:
                        error = {"error": f"no such path; try {METRICS_PATH} or {PROMETHEUS_PATH}"}
                        handler._reply(404, json.dumps(error).encode(), "application/json")
                except Exception as exc:  # a half-built worker: say so, do not kill the server
                    error = {"error": f"metrics unavailable: {type(exc).__name__}: {exc}"}
                    handler._reply(503, json.dumps(error).encode(), "application/json")

            def _reply(handler, status: int, data: bytes, content_type: str) -> None:
                handler.send_response(status)
                handler.send_header("Content-Type", content_type)
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)

            def log_message(handler, *args) -> None:  # one request per second per reader: not news
                pass

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            if port == 0:
                raise
            log.warning("metrics port %d unavailable (%s); using a free port", port, exc.strerror)
            self._server = ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="worker-metrics")
        self._thread.start()

    @property
    def port(self) -> int:
        """The port the endpoint listens on."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
