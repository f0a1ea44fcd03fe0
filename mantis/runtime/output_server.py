"""A worker's output, served over TCP to any number of readers as length-prefixed frames.

Each connected reader gets its own bounded queue of encoded frames and its own writer
thread.  ``publish`` encodes a batch once and offers the frame to every reader without
waiting: a reader whose queue is full loses that batch, and the loss is counted.  So a
slow or stalled reader never slows the pipeline or the other readers, and memory per
reader stays below ``buffer_batches`` frames (plus the kernel's socket buffers).
Each reader is a ``FramedConnection`` (shared with ``stage_output``): a frame for a
reader with nothing queued is first offered to the kernel straight from the publishing
thread, and only what the kernel does not take at once is queued.  A batch a reader
could not take (queue full, or the reader failed under the send) and the frames still
queued when a reader goes are counted as dropped for it.

Readers see only what is published after they connect (live output, no replay).  They
never send anything; the server closes a connection when the peer does.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass

from mantis.runtime.framed_connection import FramedConnection
from mantis.runtime.frames import encode_batch
from mantis.runtime.listener import Listener

log = logging.getLogger("mantis.runtime.output")

DEFAULT_BUFFER_BATCHES = 16


@dataclass(frozen=True)
class ReaderStats:
    """One connected reader: its address, frames waiting for it, frames sent, events dropped."""

    address: tuple
    queued_batches: int
    sent_batches: int
    dropped_events: int


class OutputServer:
    """Serves published batches to every connected TCP reader, dropping per slow reader.

    Listens at once on ``host:port`` (port 0 picks a free one; see ``port``).  Threads
    are daemons, so the server never keeps a process alive; ``close`` stops it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0,
                 buffer_batches: int = DEFAULT_BUFFER_BATCHES):
        if buffer_batches < 1:
            raise ValueError("buffer_batches must be at least 1")
        self.buffer_batches = buffer_batches
        self._lock = threading.Lock()
        # Replaced, never mutated, under _lock: publish reads it without locking.
        self._readers: tuple[FramedConnection, ...] = ()
        self._dropped_events = 0
        self._closed = False
        self._listener = Listener(host, port, self._accepted, "output-accept")
        self.port: int = self._listener.port  # the TCP port actually listened on

    @property
    def connections(self) -> int:
        """How many readers are connected now."""
        return len(self._readers)

    @property
    def dropped_events(self) -> int:
        """Events dropped for slow or departed readers since the server started (all readers,
        past and present)."""
        return self._dropped_events

    @property
    def queued_batches(self) -> int:
        """Frames waiting in all readers' queues now."""
        return sum(r.queued_batches for r in self._readers)

    def reader_stats(self) -> list[ReaderStats]:
        """A snapshot of every connected reader's queue and counters."""
        return [ReaderStats(r.address, r.queued_batches, r.sent_batches, r.dropped_events)
                for r in self._readers]

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until every connected reader's queue has been written out.

        For a worker whose output has ended, so that ``close`` does not discard the
        tail.  True once all queues are empty (a reader that hangs up counts as drained).
        """
        deadline = time.monotonic() + timeout
        while not all(r.idle for r in self._readers):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True

    def publish(self, batch: list) -> None:
        """Offer ``batch`` to every connected reader; never blocks on a reader.

        The batch is encoded only when someone is connected, so an event that is not
        JSON-able raises FrameError only then.  Safe to call from any thread.
        """
        readers = self._readers
        if not readers or not batch:
            return
        frame = encode_batch(batch)
        events = len(batch)
        for reader in readers:
            if not reader.offer(frame, events):
                self._count_drop(reader, events)

    def close(self) -> None:
        """Stop listening and disconnect every reader; frames still queued are dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            readers, self._readers = self._readers, ()
        self._listener.close()
        for reader in readers:
            reader.close()

    def __enter__(self) -> OutputServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _count_drop(self, reader: FramedConnection, events: int) -> None:
        with self._lock:
            reader.dropped_events += events
            self._dropped_events += events

    def _accepted(self, conn: socket.socket, address: tuple) -> bool:
        try:
            reader = FramedConnection(conn, address, self.buffer_batches)
        except OSError:  # gone already; the accept loop carries on
            conn.close()
            return True
        with self._lock:
            if self._closed:
                conn.close()
                return False
            self._readers = self._readers + (reader,)
        threading.Thread(target=self._serve, args=(reader,), daemon=True,
                         name=f"output-writer-{address}").start()
        log.info("output reader %s connected to port %d", address, self.port)
        return True

    def _serve(self, reader: FramedConnection) -> None:
        """One reader's writer thread: write its frames until it hangs up or the server closes.

        Readers never send, so an idle writer looks whether its reader hung up, and
        ``connections`` stays true without waiting for the next publish to fail.
        """
        unsent, _ = reader.write_loop(on_idle=reader.peer_hung_up)
        reader.release()
        with self._lock:
            self._readers = tuple(r for r in self._readers if r is not reader)
        if unsent:
            self._count_drop(reader, unsent)
        log.info("output reader %s disconnected from port %d", reader.address, self.port)
