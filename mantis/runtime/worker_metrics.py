"""A worker's metrics endpoint: its runtime counters and the job's own metrics, as JSON.

The job's own metrics are ``ctx.metrics`` (``mantis.sdk.metrics.MetricRegistry``).
``WorkerMetricsServer`` serves one worker's snapshot as JSON at ``GET /metrics.json`` on
its own port (``port``; 0 = a free one), from a daemon thread; ``provider()`` builds the
snapshot on each request.  A snapshot holds counters that only grow (events in and out,
drops, busy seconds, CPU seconds, bytes in) and gauges (memory, queue depth, the job's
metrics under ``user``): whoever reads it twice computes rates, so readers never
disturb each other.
"""
from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("mantis.runtime.worker_metrics")

METRICS_PATH = "/metrics.json"


class WorkerMetricsServer:
    """Serves ``provider()`` as JSON at ``GET /metrics.json`` on ``host:port`` until ``close``."""

    def __init__(self, provider: Callable[[], dict], host: str = "0.0.0.0", port: int = 0):
        self.provider = provider

        class Handler(BaseHTTPRequestHandler):
            def do_GET(handler) -> None:  # noqa: N802 (http.server's name)
                if handler.path.split("?")[0] != METRICS_PATH:
                    handler._reply(404, {"error": f"no such path; try {METRICS_PATH}"})
                    return
                try:
                    body = provider()
                except Exception as exc:  # a half-built worker: say so, do not kill the server
                    handler._reply(503, {"error": f"metrics unavailable: {type(exc).__name__}: {exc}"})
                    return
                handler._reply(200, body)

            def _reply(handler, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                handler.send_response(status)
                handler.send_header("Content-Type", "application/json")
                handler.send_header("Content-Length", str(len(data)))
                handler.end_headers()
                handler.wfile.write(data)

            def log_message(handler, *args) -> None:  # one request per second per reader: not news
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="worker-metrics")
        self._thread.start()

    @property
    def port(self) -> int:
        """The port the endpoint listens on."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
