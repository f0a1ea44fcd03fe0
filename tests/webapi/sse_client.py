"""A server-sent-event reader for tests: the stream is read on a thread, events wait in a queue.

A test opens a stream, acts on the master, then waits (bounded) for the event it expects.
"""
from __future__ import annotations

import http.client
import json
import queue
import socket
import threading
import urllib.parse
from typing import Self

from tests.support import wait_for

CLOSED = "<closed>"


class SseReader:
    """``url``'s SSE events as ``(event_name, data)``: ``data`` decoded JSON, name "message" by default.

    The end of the stream is the pseudo event ``(CLOSED, None)``.  ``close`` drops the connection.
    """

    def __init__(self, url: str, read_timeout: float = 60.0):
        parts = urllib.parse.urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=read_timeout)
        self.conn.connect()
        self.sock = self.conn.sock  # kept to cut a read blocked on another thread
        self.conn.request("GET", parts.path)
        self.response = self.conn.getresponse()
        assert self.response.status == 200, (self.response.status, self.response.read())
        self.headers = self.response.headers
        self.queue: queue.Queue = queue.Queue()
        self.seen: list[tuple[str, object]] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        name, data = "message", []
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data:
                        self.queue.put((name, json.loads("\n".join(data))))
                    name, data = "message", []
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line.startswith("event: "):
                    name = line[7:]
        except (OSError, ValueError, http.client.HTTPException):
            pass  # closed by the test, or cut by the server
        self.queue.put((CLOSED, None))

    def next(self, match=lambda name, data: True, timeout: float = 30.0, what: str = "an event"):
        """The first event (from now on) for which ``match(name, data)`` holds; earlier ones are skipped.

        AssertionError after ``timeout`` or if the stream closes first (unless closing is what matched).
        """
        def take():
            while True:
                try:
                    event = self.queue.get_nowait()
                except queue.Empty:
                    return None
                self.seen.append(event)
                if match(*event):
                    return event
                assert event[0] != CLOSED, f"stream closed while waiting for {what}; saw {self.seen[-5:]}"

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
