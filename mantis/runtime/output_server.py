"""A worker's output, served over TCP to any number of readers as length-prefixed frames.

Each connected reader gets its own bounded queue of encoded frames and its own writer
thread.  ``publish`` encodes a batch once and offers the frame to every reader without
waiting: a reader whose queue is full loses that batch, and the loss is counted.  So a
slow or stalled reader never slows the pipeline or the other readers, and memory per
reader stays below ``buffer_batches`` frames (plus the kernel's socket buffers).
A frame for a reader with nothing queued is first offered to the kernel straight from
the publishing thread (``MSG_DONTWAIT``, never waiting); only what the kernel does not
take at once is queued.  A CPU-bound pipeline thread holds the GIL, so a writer thread
woken per frame would get it only every switch interval (5 ms) and cost a thread
hand-off per batch (``stage_output`` does the same for the same reason).

Readers see only what is published after they connect (live output, no replay).  They
never send anything; the server closes a connection when the peer does.
"""
from __future__ import annotations

import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass

from mantis.runtime.frames import encode_batch
from mantis.runtime.listener import Listener

log = logging.getLogger("mantis.runtime.output")

DEFAULT_BUFFER_BATCHES = 16
# How often an idle writer looks whether its reader hung up, so ``connections`` stays
# true without waiting for the next publish to fail.
PEER_CHECK_S = 0.5


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
        self._readers: tuple[_Reader, ...] = ()
        self._dropped_events = 0
        self._closed = False
        self._listener = Listener(host, port, self._accepted, "output-accept")
        self._port = self._listener.port

    @property
    def port(self) -> int:
        """The TCP port actually listened on."""
        return self._port

    @property
    def connections(self) -> int:
        """How many readers are connected now."""
        return len(self._readers)

    @property
    def dropped_events(self) -> int:
        """Events dropped for slow readers since the server started (all readers, past and present)."""
        return self._dropped_events

    @property
    def queued_batches(self) -> int:
        """Frames waiting in all readers' queues now."""
        return sum(r.frames.qsize() for r in self._readers)

    def reader_stats(self) -> list[ReaderStats]:
        """A snapshot of every connected reader's queue and counters."""
        return [r.stats() for r in self._readers]

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until every connected reader's queue has been written out.

        For a worker whose output has ended, so that ``close`` does not discard the
        tail.  True once all queues are empty (a reader that hangs up counts as drained).
        """
        deadline = time.monotonic() + timeout
        # unfinished_tasks counts frames queued or taken but not yet fully written.
        while any(r.frames.unfinished_tasks for r in self._readers):
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
        for reader in readers:
            if not reader.offer(frame):
                with self._lock:
                    reader.dropped_events += len(batch)
                    self._dropped_events += len(batch)

    def close(self) -> None:
        """Stop listening and disconnect every reader; frames still queued are discarded."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            readers, self._readers = self._readers, ()
        self._listener.close()
        for reader in readers:
            reader.close()

    def __enter__(self) -> "OutputServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _accepted(self, conn: socket.socket, address: tuple) -> bool:
        conn.settimeout(None)
        # Frames are written whole; Nagle would only delay the tail of small ones.
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reader = _Reader(conn, address, self.buffer_batches, self._forget)
        with self._lock:
            if self._closed:
                conn.close()
                return False
            self._readers = self._readers + (reader,)
        reader.start()
        log.info("output reader %s connected to port %d", address, self._port)
        return True

    def _forget(self, reader: "_Reader") -> None:
        with self._lock:
            self._readers = tuple(r for r in self._readers if r is not reader)
        log.info("output reader %s disconnected from port %d", reader.address, self._port)


class _Reader:
    """One connection: a bounded queue of frames and the thread that writes them out."""

    def __init__(self, sock: socket.socket, address: tuple, capacity: int, forget):
        self.sock = sock
        self.address = address
        self.frames: queue.Queue = queue.Queue(capacity)
        self.sent_batches = 0
        self.dropped_events = 0
        self._closed = False
        # Held from the look at the queue until a direct send is done or its remainder
        # queued, so publishing threads never interleave their frames on the socket.
        self._send_lock = threading.Lock()
        self._forget = forget
        self._thread = threading.Thread(target=self._write_loop, daemon=True,
                                         name=f"output-writer-{address}")

    def start(self) -> None:
        self._thread.start()

    def stats(self) -> ReaderStats:
        return ReaderStats(self.address, self.frames.qsize(), self.sent_batches, self.dropped_events)

    def offer(self, frame: bytes) -> bool:
        """Send or queue ``frame`` without waiting; False if the queue is full (the frame is lost).

        When nothing is queued or being written (``unfinished_tasks`` == 0) the writer is
        idle, so this thread may write to the socket itself without reordering frames;
        what the kernel does not take at once is queued, under the same lock, as the
        next frame for the writer.  A reader already gone takes the frame as its writer
        would have: it is discarded with the reader, not counted as dropped.
        """
        frames = self.frames
        with self._send_lock:
            if frames.unfinished_tasks == 0 and not self._closed:
                try:
                    sent = self.sock.send(frame, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    return True  # the reader went away; its writer notices and forgets it
                if sent == len(frame):
                    self.sent_batches += 1
                    return True
                frame = memoryview(frame)[sent:]
            try:
                frames.put_nowait(frame)
                return True
            except queue.Full:
                return False

    def close(self) -> None:
        self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # unblocks a sendall stuck on a stalled reader
        except OSError:
            pass
        try:
            self.frames.put_nowait(None)  # wakes an idle writer; a full queue means it is busy
        except queue.Full:
            pass

    def _write_loop(self) -> None:
        try:
            while not self._closed:
                try:
                    frame = self.frames.get(timeout=PEER_CHECK_S)
                except queue.Empty:
                    if self._peer_hung_up():
                        break
                    continue
                if frame is None:
                    break
                self.sock.sendall(frame)
                self.sent_batches += 1
                # Last: from here on a publishing thread may write (and count) itself.
                self.frames.task_done()
        except OSError:
            pass  # the reader went away or the server closed the socket
        finally:
            self._closed = True
            self.sock.close()
            self._forget(self)

    def _peer_hung_up(self) -> bool:
        try:
            data = self.sock.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return not data  # readers are not meant to send; any bytes they do are ignored
