"""The one server-sent-events client of the tests: the stream is read on a thread of its own.

A test opens a stream, acts on the master, then either waits (bounded) for the event it
expects with ``next``, or looks at everything received so far in ``events``.  ``read_sse``
is the short form: the first N data events of a stream.
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.parse
from typing import Self

from tests.support import wait_for

CLOSED = "<closed>"
REDIRECTS = (301, 302, 303, 307, 308)


class SseReader:
    """``url``'s SSE events, read as they come until the stream ends or ``close``.

    - ``next(match)`` returns the next ``(event_name, data)`` (``data`` decoded JSON, the name
      "message" unless the server named it) for which ``match`` holds; the end of the stream
      is the pseudo event ``(CLOSED, None)``; ``seen`` lists what ``next`` went through.
    - ``events`` holds the data of every event but ``end``, in arrival order, and
      ``lines_bytes`` the bytes of their ``data:`` lines; ``end_reason`` is the reason the
      ``end`` event gave; ``ended`` is set when the stream ends for any reason, and
      ``error`` says if it broke.

    A redirect (a standby sending to the leader) is followed.  The status must be 200.
    """

    def __init__(self, url: str, connect_timeout: float = 30.0, redirects: int = 5):
        for _ in range(redirects + 1):
            parts = urllib.parse.urlsplit(url)
            self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=connect_timeout)
            self.conn.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
            self.response = self.conn.getresponse()
            if self.response.status not in REDIRECTS:
                break
            url = urllib.parse.urljoin(url, self.response.headers["Location"])
            self.response.read()
            self.conn.close()
        if self.response.status != 200:
            raise AssertionError(f"{url} answered {self.response.status}: {self.response.read()!r}")
        self.headers = self.response.headers
        # Events may be minutes apart (a quiet job): the reading thread waits as long as it
        # takes, and the waits of ``next`` and the tests are what is bounded.
        self.sock = self.conn.sock  # kept to cut a read blocked on the reading thread
        self.sock.settimeout(None)
        # Everything received, including the end, appended by the reading thread only.
        self.received: list[tuple[str, object]] = []
        self.events: list = []
        self.lines_bytes = 0
        self.end_reason: str | None = None
        self.error: Exception | None = None
        self.ended = threading.Event()
        self._next = 0  # how far ``next`` has read ``received``
        self._thread = threading.Thread(target=self._read, daemon=True, name=f"sse {parts.path}")
        self._thread.start()

    def _read(self) -> None:
        name, data, size = "message", [], 0
        try:
            while True:
                raw = self.response.readline()
                if not raw:
                    break
                line = raw.decode("utf-8").rstrip("\r\n")
                if not line:  # a blank line ends an event (a comment alone makes none)
                    if data:
                        self._received(name, json.loads("\n".join(data)), size)
                    name, data, size = "message", [], 0
                elif line.startswith("data: "):
                    data.append(line[6:])
                    size += len(raw)
                elif line.startswith("event: "):
                    name = line[7:]
        except (OSError, ValueError, http.client.HTTPException) as exc:
            self.error = exc  # closed by the test, or cut by the server
        finally:
            self.received.append((CLOSED, None))
            self.ended.set()

    def _received(self, name: str, data: object, size: int) -> None:
        if name == "end":
            self.end_reason = data.get("reason") if isinstance(data, dict) else None
        else:
            self.events.append(data)
            self.lines_bytes += size
        self.received.append((name, data))

    @property
    def seen(self) -> list[tuple[str, object]]:
        """The events ``next`` has gone through, the matching ones and those it skipped."""
        return self.received[:self._next]

    def next(self, match=lambda name, data: True, timeout: float = 30.0, what: str = "an event"):
        """The first event (after the last one ``next`` returned) for which ``match(name, data)``
        holds; the ones before it are skipped.

        AssertionError after ``timeout`` or if the stream closes first (unless closing is what matched).
        """
        def take():
            while self._next < len(self.received):
                event = self.received[self._next]
                self._next += 1
                if match(*event):
                    return event
                assert event[0] != CLOSED, f"stream closed while waiting for {what}; saw {self.seen[-5:]}"
            return None

        return wait_for(take, timeout=timeout, interval=0.05, what=what)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the reading thread; close alone would not
        except OSError:
            pass
        self._thread.join(10)
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_sse(url: str, count: int, timeout: float = 30.0) -> list:
    """The data of the first ``count`` events of the SSE stream at ``url`` (redirects
    followed), fewer if it ends first, each within ``timeout`` of the one before; asserts
    the answer is an event stream."""
    with SseReader(url, connect_timeout=timeout) as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream"), stream.headers["Content-Type"]
        events: list = []
        while len(events) < count:
            name, data = stream.next(lambda name, data: name in ("message", "end", CLOSED), timeout=timeout,
                                     what=f"event {len(events) + 1} of {count} from {url}")
            if name != "message":
                break
            events.append(data)
        return events
