"""One outgoing TCP connection written in whole frames: the piece both output servers share.

A worker serves its output on two kinds of connection: to subscribers
(``output_server``) and to the next stage's workers (``stage_output``).  Both write
length-prefixed frames the same way, so both use ``FramedConnection``:

- a bounded queue of ``(frame, events)`` items and one writer thread (the caller's,
  in ``write_loop``) that writes them out in order;
- a direct-send fast path: ``offer`` hands a frame to the kernel straight from the
  publishing thread when nothing is queued or being written (``MSG_DONTWAIT``, never
  waiting), and queues only what the kernel does not take at once.  This matters for
  throughput, not only latency: a CPU-bound pipeline thread holds the GIL, so a writer
  thread woken per frame would get it only every switch interval (5 ms), and the stage
  would spend half its time waiting for its own writer;
- counters: batches and events sent, events dropped (kept by the owning server, which
  also keeps totals across connections).

Every frame offered is accounted for once: sent, refused (``offer`` or ``put_waiting``
returns False, and the caller counts the drop), or left unsent when the connection
ends (``write_loop`` returns how many events, and the caller counts them).  So a
connection that fails under a direct send refuses the frame (False) instead of
pretending it was taken: the frame never reached the kernel, the stage output's
"every published event is delivered, lost or dropped" needs it counted, and a
round-robin publisher can still hand the batch to the next worker.
"""
from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable

from mantis.runtime.frames import END_OF_STREAM
from mantis.runtime.listener import shut_down

# A blocked ``put_waiting`` looks this often whether the connection was closed.
WAIT_SLICE_S = 0.05
# How often an idle writer wakes up (to run ``on_idle``; ``close`` also wakes it).
IDLE_CHECK_S = 0.5


class FramedConnection:
    """A connected socket written in whole frames by a queue, a writer and a direct-send path.

    ``offer`` and ``put_waiting`` may be called from several threads: a lock keeps
    their direct sends and queueing in order, so frames never interleave on the socket.
    The owner runs ``write_loop`` on a thread of its own, then ``release`` to close
    the socket.  ``close`` may be called from any thread at any time.
    """

    def __init__(self, sock: socket.socket, address: tuple, capacity: int):
        if capacity < 1:
            raise ValueError("a connection's queue holds at least one frame")
        sock.settimeout(None)
        # Frames are written whole; Nagle would only delay the tail of small ones.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self.address = address
        self.frames: queue.Queue = queue.Queue(capacity)
        self.sent_batches = 0
        self.sent_events = 0
        self.dropped_events = 0  # kept by the owning server, under its own lock
        self.closed = False
        # Held from the look at the queue until a direct send is counted or its
        # remainder queued, so concurrent publishers never interleave frames, and held
        # by ``release`` so no send gets through a socket being closed.
        self._send_lock = threading.Lock()

    @property
    def queued_batches(self) -> int:
        """Frames waiting in the queue now."""
        return self.frames.qsize()

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being written: everything offered so far is sent."""
        # unfinished_tasks counts frames queued or taken by the writer but not yet written.
        return self.frames.unfinished_tasks == 0

    def offer(self, frame: bytes, events: int) -> bool:
        """Send or queue ``frame`` (holding ``events`` events) without waiting.

        False if the frame was not taken: the queue is full, or the connection is
        closed or failed (see the module docstring); the caller counts the drop.
        """
        with self._send_lock:
            if self.closed:
                return False
            queued: bytes | memoryview = frame
            if self.frames.unfinished_tasks == 0:
                # The writer is idle, so writing here cannot reorder frames.
                try:
                    sent = self.sock.send(frame, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    return False  # the peer is gone; the writer notices and ends
                if sent == len(frame):
                    self.sent_batches += 1
                    self.sent_events += events
                    return True
                # The rest goes first in the queue; it was empty, so there is room.
                queued = memoryview(frame)[sent:]
            try:
                self.frames.put_nowait((queued, events))
                return True
            except queue.Full:
                return False

    def put_waiting(self, frame: bytes, events: int, timeout: float) -> bool:
        """Queue ``frame``, waiting up to ``timeout`` s for room; False if it could not be queued.

        Never sends directly, so ``END_OF_STREAM`` put here is seen by ``write_loop``.
        """
        deadline = time.monotonic() + timeout
        while not self.closed:
            try:
                self.frames.put((frame, events),
                                timeout=max(0.0, min(deadline - time.monotonic(), WAIT_SLICE_S)))
                return True
            except queue.Full:
                if time.monotonic() >= deadline:
                    return False
        return False

    def write_loop(self, on_idle: Callable[[], bool] | None = None) -> tuple[int, bool]:
        """Write queued frames until ``END_OF_STREAM`` is written, ``close``, or a failure.

        ``on_idle()`` runs when nothing was queued for ``IDLE_CHECK_S``; True ends the
        loop.  Returns the events left unsent (still queued, or in a frame cut short)
        and whether ``END_OF_STREAM`` was written.  The socket stays open (``release``
        closes it), so the owner may still read from it.
        """
        unsent, end_written = 0, False
        try:
            while not self.closed:
                try:
                    item = self.frames.get(timeout=IDLE_CHECK_S)
                except queue.Empty:
                    if on_idle is not None and on_idle():
                        break
                    continue
                if item is None:
                    break
                frame, events = item
                unsent = events  # until it is fully written
                self.sock.sendall(frame)
                unsent = 0
                if frame is END_OF_STREAM:
                    # Not task_done: the queue never looks idle again, so nothing is
                    # sent directly after the end.
                    end_written = True
                    break
                self.sent_batches += 1
                self.sent_events += events
                # Last: from here on a publishing thread may write (and count) itself.
                self.frames.task_done()
        except OSError:
            pass  # the peer went away or the connection was closed under the write
        with self._send_lock:
            # Under the lock: an offer either queued before this (and is counted
            # below) or sees the connection closed and refuses.
            self.closed = True
        while True:
            try:
                item = self.frames.get_nowait()
            except queue.Empty:
                return unsent, end_written
            if item is not None:
                unsent += item[1]

    def peer_hung_up(self) -> bool:
        """True if the peer closed its end (for connections whose peer never sends).

        Bytes the peer does send are read and ignored.
        """
        try:
            data = self.sock.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        return not data

    def hang_up(self) -> None:
        """Shut the socket down: wakes a ``sendall`` stuck on a stalled peer and any blocked read."""
        shut_down(self.sock)

    def close(self) -> None:
        """End the connection: the writer returns promptly, and so does any read of the socket."""
        self.closed = True
        self.hang_up()
        try:
            self.frames.put_nowait(None)  # wakes an idle writer; a full queue means it is busy
        except queue.Full:
            pass

    def release(self) -> None:
        """Close the socket, once ``write_loop`` has returned; no send gets through after this."""
        with self._send_lock:
            self.closed = True
            self.sock.close()
