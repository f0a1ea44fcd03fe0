"""A subscriber to a job's output over SSE, reading on a thread of its own (for e2e tests)."""
from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.parse


class SseReader:
    """Reads ``GET /api/v1/jobs/{job_id}/output`` until the stream ends or ``close``.

    ``events`` holds every data event, in arrival order; ``lines_bytes`` the bytes of
    their ``data:`` lines.  ``end_reason`` is the reason the ``end`` event gave;
    ``ended`` is set when the stream ends for any reason (``error`` says if it broke).
    """

    def __init__(self, master_url: str, job_id: str):
        parts = urllib.parse.urlsplit(master_url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.conn.request("GET", f"/api/v1/jobs/{job_id}/output")
        self.response = self.conn.getresponse()
        if self.response.status != 200:
            raise AssertionError(f"output stream answered {self.response.status}: {self.response.read()!r}")
        self.conn.sock.settimeout(None)
        self.events: list[dict] = []
        self.lines_bytes = 0
        self.end_reason: str | None = None
        self.error: Exception | None = None
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True, name=f"sse-{job_id}")
        self._thread.start()

    def _read(self) -> None:
        event_name = None
        try:
            while True:
                raw = self.response.readline()
                if not raw:
                    break
                line = raw.decode("utf-8").rstrip("\n")
                if line.startswith("event: "):
                    event_name = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    if event_name == "end":
                        self.end_reason = data.get("reason")
                    else:
                        self.events.append(data)
                        self.lines_bytes += len(raw)
                elif not line:
                    event_name = None
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self.error = exc
        finally:
            self.ended.set()

    def close(self) -> None:
        sock = self.conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # the reading thread sees the end of the stream
            except OSError:
                pass
        self._thread.join(5)
        self.conn.close()

    def __enter__(self) -> "SseReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
