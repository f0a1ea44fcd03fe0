"""A worker's default health endpoint: ``GET /health`` and ``GET /ready`` over HTTP.

Every worker serves it on loopback, on a free port reported as the ``healthPort``
metric (its assigned ports are the job's to use), so an HTTP check with no ``portIndex`` has something to ask.
``/health`` answers 200 while the stage's pipeline runs and the job's own ``health``
hook (if it declared one) returns true, 503 otherwise; ``/ready`` likewise with the
job's ``ready`` hook.  A hook that raises counts as false, with the error in the body.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import ujson

log = logging.getLogger("mantis.runtime.health")

Verdict = Callable[[], bool]


class HealthEndpoint:
    """Serves ``/health`` and ``/ready`` on ``host:port`` (0: any free port) until ``close``.

    ``health`` and ``ready`` are called on the server's threads for each request.
    """

    def __init__(self, health: Verdict, ready: Verdict, host: str = "0.0.0.0", port: int = 0):
        checks = {"/health": health, "/ready": ready}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                verdict = checks.get(self.path.split("?", 1)[0])
                if verdict is None:
                    self._answer(404, {"error": f"no such path {self.path}"})
                    return
                try:
                    ok, detail = bool(verdict()), ""
                except Exception as exc:  # a job's hook may raise anything: it means "not ok"
                    ok, detail = False, f"{type(exc).__name__}: {exc}"
                self._answer(200 if ok else 503, {"ok": ok, "detail": detail})

            def _answer(self, status: int, body: dict) -> None:
                data = ujson.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format, *args) -> None:  # probes every few seconds: not worth a log line
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.25},
                                        daemon=True, name=f"health-endpoint-{self.port}")
        self._thread.start()

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
