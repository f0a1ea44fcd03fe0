"""Test readers of a worker's output: connect over loopback and collect batches."""
from __future__ import annotations

import socket
import threading
import time

from mantis.runtime.frames import FrameError, decode_stage_payload, encode_message, read_frame, read_payload
from mantis.runtime.listener import shut_down
from mantis.runtime.stage_output import Receipt


class _Collector:
    """Connects to 127.0.0.1:port and, unless ``read`` is false, collects batches on a thread
    (``_read``, per kind of reader) until the connection ends (``eof``)."""

    def __init__(self, port: int, receive_buffer: int | None = None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.connect(("127.0.0.1", port))
        self.batches: list[list] = []
        self.eof = threading.Event()
        self.error: Exception | None = None

    def start_reading(self) -> None:
        """Collect batches on a daemon thread."""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        raise NotImplementedError

    @property
    def events(self) -> list:
        """Every event collected so far, in order."""
        return [event for batch in list(self.batches) for event in batch]

    def wait_for_events(self, count: int, timeout: float = 10.0) -> list:
        """Wait up to ``timeout`` s for ``count`` events; the events collected by then."""
        deadline = time.monotonic() + timeout
        while len(self.events) < count and time.monotonic() < deadline:
            time.sleep(0.001)
        return self.events

    def close(self) -> None:
        """Hang up."""
        shut_down(self.sock)
        self.sock.close()


class FrameCollector(_Collector):
    """A subscriber of an ``OutputServer``: collects every JSON batch until EOF."""

    def __init__(self, port: int, receive_buffer: int | None = None, read: bool = True):
        super().__init__(port, receive_buffer)
        if read:
            self.start_reading()

    def _read(self) -> None:
        try:
            while True:
                batch = read_frame(self.sock)
                if batch is None:
                    break
                self.batches.append(batch)
        except OSError as exc:
            self.error = exc
        finally:
            self.eof.set()


class DownstreamReader(_Collector):
    """A stand-in for a next-stage worker: connects, sends the handshake, collects batches.

    ``end_of_stream`` is set when the upstream sends END_OF_STREAM; ``eof`` when the
    connection ends for any reason.  ``read=False`` never reads (a stalled consumer);
    ``delay_s`` pauses after each batch (a slow one).  Like a real worker it confirms
    every batch and the end (``stage_output.Receipt``), unless ``confirm=False``.
    """

    def __init__(self, port: int, worker_index: int = 0, workers: int = 1,
                 receive_buffer: int | None = None, read: bool = True, delay_s: float = 0.0,
                 confirm: bool = True):
        super().__init__(port, receive_buffer)
        self.sock.sendall(encode_message({"worker_index": worker_index, "workers": workers}))
        self.worker_index = worker_index
        self.confirm = confirm
        self.delay_s = delay_s  # a pause after each batch: a slow consumer
        self.end_of_stream = threading.Event()
        if read:
            self.start_reading()

    def _read(self) -> None:
        received = 0
        try:
            while True:
                payload = read_payload(self.sock)
                if payload is None:
                    break
                if not payload:
                    if self.confirm:
                        self.sock.sendall(encode_message(Receipt(received, ended=True).to_message()))
                    self.end_of_stream.set()
                    continue
                batch = decode_stage_payload(payload)
                received += len(batch)
                if self.confirm:
                    self.sock.sendall(encode_message(Receipt(received).to_message()))
                self.batches.append(batch)
                if self.delay_s:
                    time.sleep(self.delay_s)
        except (OSError, FrameError) as exc:
            self.error = exc  # a torn frame when the server closes mid-write, or a bug
        finally:
            self.eof.set()
