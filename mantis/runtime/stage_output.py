"""A stage's output served to the next stage's workers: keyed by consistent hashing, or round-robin.

A worker of a stage that is not the last listens on its port.  Each worker of the next
stage connects and sends one handshake frame, ``{"worker_index": i, "workers": n}``
(its index and how many workers its stage has), then only reads.  ``publish(batch)``
then routes the batch:

- keyed stage: each event goes to the downstream worker whose index owns the event's
  key on a ``HashRing`` over the indexes connected now, so one key reaches one worker,
  and scaling the next stage moves only the keys that must move;
- scalar stage: the whole batch goes to the next connected worker in turn (one with
  room in its queue first).

Each downstream connection is a ``FramedConnection`` (shared with ``output_server``):
a bounded queue of encoded frames, a writer thread, and a direct send from the
publishing thread when nothing is queued.  When a queue is full the stage's policy
decides: "block" waits for room (at most ``block_timeout_s``, so a stalled consumer
slows the stage, and through it the source, but cannot hang it forever; a batch still
not taken is dropped and counted), "drop" drops the batch for that connection at once
and counts it.  Frames still queued for a connection that goes away are counted as
dropped too.

Each downstream worker confirms what it receives (a ``Receipt``): after every batch
frame it reads, the number of events received on this connection so far, and on
``END_OF_STREAM`` the same with ``ended``.  So per connection the server knows the
events it handed to the kernel (sent) and the events the worker confirmed (delivered);
the difference is in flight.  When a connection ends without the end confirmed (the
worker died, hung up, or was replaced), its events in flight are counted as *lost*:
they were in socket buffers, or in the worker's hands before it could confirm them.
Once every connection has ended, each published event is exactly one of delivered,
lost or dropped.

When the stage's input ends normally, ``finish`` sends ``END_OF_STREAM`` after the
frames already queued and waits for every downstream worker to confirm it, so the next
stage can complete and nothing is in flight (a worker that is stopped or dies sends
nothing: its downstream waits for a replacement instead).
"""
from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mantis.runtime.framed_connection import FramedConnection
from mantis.runtime.frames import (
    END_OF_STREAM,
    FrameError,
    encode_stage_batch,
    read_message,
)
from mantis.runtime.hash_ring import CACHE_LIMIT, HashRing, key_text, stable_hash
from mantis.runtime.listener import Listener
from mantis.sdk.job_dsl import SLOW_CONSUMER_POLICIES

log = logging.getLogger("mantis.runtime.stage_output")

DEFAULT_BUFFER_BATCHES = 16
DEFAULT_BLOCK_TIMEOUT_S = 10.0
HANDSHAKE_TIMEOUT_S = 5.0
# A blocked publish looks this often whether the server was closed.
WAIT_SLICE_S = 0.05
# After END_OF_STREAM is written, how long a connection waits for the worker to confirm it.
END_CONFIRM_TIMEOUT_S = 10.0
# How long a connection's receipt reader may take to notice its socket was shut down.
READER_JOIN_S = 1.0


@dataclass(frozen=True)
class Handshake:
    """What a downstream worker says when it connects: its worker index and its stage's worker count."""

    worker_index: int
    workers: int

    def to_message(self) -> dict:
        """The handshake as the JSON object sent in its frame."""
        return {"worker_index": self.worker_index, "workers": self.workers}

    @classmethod
    def from_message(cls, message: Any) -> Handshake:
        """The handshake in ``message``; ValueError naming what is wrong with it."""
        if not isinstance(message, dict):
            raise ValueError("no handshake before the end of the stream")
        index = _whole_number("worker_index", message.get("worker_index"))
        workers = _whole_number("workers", message.get("workers"))
        if workers < 1 or not 0 <= index < workers:
            raise ValueError(f"handshake says worker {index} of {workers}")
        return cls(index, workers)


def _whole_number(name: str, value: Any) -> int:
    """``value`` if it is an int (not a bool); ValueError naming handshake field ``name`` else."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"handshake field {name} must be a whole number, got {value!r}")
    return value


@dataclass(frozen=True)
class Receipt:
    """What a downstream worker confirms: ``received`` events on this connection so far,
    ``ended`` once it has read END_OF_STREAM, and ``leaving`` when it is going away (its
    stage is scaled down): send it nothing more, and END_OF_STREAM after what is queued."""

    received: int
    ended: bool = False
    leaving: bool = False

    def to_message(self) -> dict:
        """The receipt as the JSON object sent in its frame."""
        message: dict = {"received": self.received}
        if self.ended:
            message["ended"] = True
        if self.leaving:
            message["leaving"] = True
        return message

    @classmethod
    def from_message(cls, message: Any) -> Receipt:
        """The receipt in ``message``; ValueError naming what is wrong with it."""
        if not isinstance(message, dict):
            raise ValueError("a receipt is a JSON object")
        received, ended = message.get("received"), message.get("ended", False)
        leaving = message.get("leaving", False)
        if isinstance(received, bool) or not isinstance(received, int) or received < 0:
            raise ValueError(f"receipt field received must be a whole number >= 0, got {received!r}")
        if not isinstance(ended, bool) or not isinstance(leaving, bool):
            raise ValueError(f"receipt fields ended and leaving must be true or false, got {ended!r}, {leaving!r}")
        return cls(received, ended, leaving)


@dataclass(frozen=True)
class DownstreamStats:
    """One connected downstream worker: who it is, frames waiting for it, events sent,
    dropped and confirmed (delivered)."""

    worker_index: int
    workers: int
    address: tuple
    queued_batches: int
    sent_events: int
    dropped_events: int
    delivered_events: int


class StageOutputServer:
    """Serves a stage's output batches to the next stage's workers (see the module docstring).

    ``key`` is the stage's key function (None: scalar, round-robin);
    ``on_slow_consumer`` is "block" or "drop".  Listens at once on ``host:port`` (port
    0 picks a free one; see ``port``).  ``publish`` is meant to be called from one
    thread at a time (the executor's flush does).  Threads are daemons; ``close``
    stops everything.
    """

    def __init__(self, key: Callable[[Any], Any] | None = None, on_slow_consumer: str = "block",
                 host: str = "127.0.0.1", port: int = 0,
                 buffer_batches: int = DEFAULT_BUFFER_BATCHES,
                 block_timeout_s: float = DEFAULT_BLOCK_TIMEOUT_S):
        if on_slow_consumer not in SLOW_CONSUMER_POLICIES:
            raise ValueError(f"on_slow_consumer must be one of {', '.join(SLOW_CONSUMER_POLICIES)}")
        if buffer_batches < 1 or block_timeout_s < 0:
            raise ValueError("buffer_batches must be at least 1 and block_timeout_s not negative")
        self.key = key
        self.on_slow_consumer = on_slow_consumer
        self.buffer_batches = buffer_batches
        self.block_timeout_s = block_timeout_s
        self._blocking = on_slow_consumer == "block"
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # notified when connections change
        # Replaced, never mutated, under _lock: publish reads it without locking.
        self._routing = _Routing.over((), keyed=key is not None)
        self._turns = itertools.count()
        self._dropped_events = 0
        self._lost_events = 0
        self._delivered_by_departed = 0  # confirmed by connections that have ended
        self._closed = False
        self._finished = False
        self._listener = Listener(host, port, self._accepted, "stage-output-accept")
        self.port: int = self._listener.port  # the TCP port actually listened on

    # -- what the worker reports ---------------------------------------------------

    @property
    def connections(self) -> int:
        """How many downstream workers are connected now."""
        return len(self._routing.downstreams)

    @property
    def connected_indexes(self) -> tuple[int, ...]:
        """The worker indexes of the connected downstream workers, ascending."""
        return tuple(d.handshake.worker_index for d in self._routing.downstreams)

    @property
    def dropped_events(self) -> int:
        """Events dropped since the server started: full queues, no downstream, lost connections."""
        return self._dropped_events

    @property
    def lost_events(self) -> int:
        """Events sent to downstream workers whose connections ended before confirming them."""
        return self._lost_events

    @property
    def delivered_events(self) -> int:
        """Events downstream workers confirmed receiving, on every connection since the start
        (a connection being replaced by its index's new one is left out until it is closed)."""
        with self._lock:
            return self._delivered_by_departed + sum(d.delivered_events for d in self._routing.downstreams)

    @property
    def in_flight_events(self) -> int:
        """Events sent to the connected downstream workers and not confirmed yet."""
        return sum(max(0, d.sent_events - d.delivered_events) for d in self._routing.downstreams)

    @property
    def queued_batches(self) -> int:
        """Frames waiting in all connections' queues now."""
        return sum(d.queued_batches for d in self._routing.downstreams)

    @property
    def sent_events(self) -> int:
        """Events written to the connections connected now (departed ones no longer count)."""
        return sum(d.sent_events for d in self._routing.downstreams)

    def downstream_stats(self) -> list[DownstreamStats]:
        """A snapshot of every connected downstream worker, by worker index."""
        return [d.stats() for d in self._routing.downstreams]

    def wait_for_downstream(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s until every index of the next stage is connected.

        "Every" means 0..n-1 for the largest worker count any connected handshake
        announced.  True once that holds, False on timeout or close.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._routing.complete:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    return False
                self._changed.wait(min(remaining, WAIT_SLICE_S))
            return True

    # -- the data path -------------------------------------------------------------

    def publish(self, batch: list) -> None:
        """Route ``batch`` to the downstream workers (keyed or round-robin), as the policy allows.

        In "block" mode this may wait, at most ``block_timeout_s`` per connection, for
        room (or, with nobody connected, for a first connection).  FrameError if an event
        cannot be encoded (``frames.encode_stage_batch``); TypeError if a key is unhashable.
        """
        if not batch:
            return
        routing = self._routing
        if not routing.downstreams and self._blocking:
            routing = self._await_a_downstream()
        if not routing.downstreams:
            self._count_drop(None, len(batch))
            return
        key = self.key
        if key is None:
            self._send_round_robin(routing, batch)
            return
        for downstream, part in zip(routing.downstreams, self._partition(routing, batch, key), strict=True):
            if part:
                self._offer(downstream, part)

    def finish(self, timeout: float = 10.0) -> bool:
        """Send END_OF_STREAM to every downstream worker after what is queued; wait until
        each confirmed it (and so everything before it).

        Workers that connect later get END_OF_STREAM at once.  True if every connection
        confirmed the end within ``timeout`` s; False if one did not, or went away first.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            self._finished = True
            downstreams = self._routing.downstreams
        queued = all([d.put_waiting(END_OF_STREAM, 0, deadline - time.monotonic())
                      for d in downstreams])
        return queued and all([d.settled.wait(max(0.0, deadline - time.monotonic()))
                               and d.end_confirmed.is_set() for d in downstreams])

    def close(self) -> None:
        """Stop listening and disconnect every downstream worker; queued frames are dropped."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            downstreams = self._routing.downstreams
            self._changed.notify_all()
        self._listener.close()
        for downstream in downstreams:
            downstream.close()

    def __enter__(self) -> StageOutputServer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _partition(self, routing: _Routing, batch: list, key: Callable[[Any], Any]) -> list[list]:
        """``batch`` split into one list per connected downstream (by slot), each key (by the
        stage's key function ``key``) to its owner.

        Every event's key is computed and looked up even when one downstream owns every
        key, so a key function that raises, or an unhashable key, fails the same way
        whatever the number of downstream workers.
        """
        cache = routing.slot_cache
        if len(routing.downstreams) == 1:
            # Every key is owned by the only downstream, so the batch goes whole; the
            # keys are still computed and looked up (C-level map passes, a third cheaper
            # than the loop below) for the errors and the cache.
            if None in list(map(cache.get, map(key, batch))):  # TypeError for an unhashable key
                for k in map(key, batch):
                    self._slot_of(routing, k)
            return [batch]
        slot_of = self._slot_of
        parts: list[list] = [[] for _ in routing.downstreams]
        appends = [part.append for part in parts]
        for event in batch:
            k = key(event)
            slot = cache.get(k)
            appends[slot_of(routing, k) if slot is None else slot](event)
        return parts

    @staticmethod
    def _slot_of(routing: _Routing, k: Any) -> int:
        """The slot of the downstream owning key ``k``, through (and into) the routing's cache."""
        cache = routing.slot_cache
        slot = cache.get(k)
        if slot is None:
            ring = routing.ring
            if ring is None:
                raise RuntimeError("keyed routing without a hash ring (no downstream connected?)")
            slot = routing.slot_of_index[ring.index_of_hash(stable_hash(key_text(k)))]
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            cache[k] = slot
        return slot

    def _send_round_robin(self, routing: _Routing, batch: list) -> None:
        downstreams = routing.downstreams
        count = len(downstreams)
        first = next(self._turns) % count
        frame, events = encode_stage_batch(batch), len(batch)
        # The next one in turn, or failing that any with room: a slow worker gets less.
        for step in range(count):
            if downstreams[(first + step) % count].offer(frame, events):
                return
        target = downstreams[first]
        if not (self._blocking and target.put_waiting(frame, events, self.block_timeout_s)):
            if target.retiring:  # it left after this batch was routed: route it again
                self.publish(batch)
                return
            self._count_drop(target, events)

    def _offer(self, downstream: _Downstream, batch: list) -> None:
        frame, events = encode_stage_batch(batch), len(batch)
        taken = downstream.offer(frame, events) or (
            self._blocking and downstream.put_waiting(frame, events, self.block_timeout_s))
        if not taken:
            if downstream.retiring:  # it left after this batch was routed: route it again
                self.publish(batch)
                return
            self._count_drop(downstream, events)

    def _leaving(self, downstream: _Downstream) -> None:
        """``downstream`` is going away (its stage is scaled down): route around it from
        now on, and send it END_OF_STREAM after what is queued for it, so it gets
        everything it was sent and nothing is lost (the rest goes to the others)."""
        with self._changed:
            if downstream in self._routing.downstreams:
                self._routing = _Routing.over([d for d in self._routing.downstreams if d is not downstream],
                                              keyed=self.key is not None)
                self._changed.notify_all()
        log.info("stage output port %d: downstream worker %d is leaving; ending its stream",
                 self.port, downstream.handshake.worker_index)
        downstream.retire()

    def _await_a_downstream(self) -> _Routing:
        deadline = time.monotonic() + self.block_timeout_s
        with self._changed:
            while not self._routing.downstreams and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(min(remaining, WAIT_SLICE_S))
            return self._routing

    def _count_drop(self, downstream: _Downstream | None, events: int) -> None:
        with self._lock:
            self._dropped_events += events
            if downstream is not None:
                downstream.dropped_events += events

    # -- connections ---------------------------------------------------------------

    def _accepted(self, conn: socket.socket, address: tuple) -> None:
        threading.Thread(target=self._serve, args=(conn, address), daemon=True,
                         name=f"stage-output-{address}").start()

    def _serve(self, conn: socket.socket, address: tuple) -> None:
        """One connection's thread: read the handshake, register, then write frames until it ends."""
        try:
            conn.settimeout(HANDSHAKE_TIMEOUT_S)
            handshake = Handshake.from_message(read_message(conn))
            downstream = _Downstream(conn, address, handshake, self.buffer_batches, self._leaving)
        except (OSError, FrameError, ValueError) as exc:
            log.warning("stage output port %d: refused %s: %s", self.port, address, exc)
            conn.close()
            return
        replaced = None
        with self._changed:
            if self._closed:
                conn.close()
                return
            if self._finished:
                downstream.put_waiting(END_OF_STREAM, 0, 0)  # the queue is empty: never waits
            current = self._routing.downstreams
            replaced = next((d for d in current if d.handshake.worker_index == handshake.worker_index), None)
            self._routing = _Routing.over([d for d in current if d is not replaced] + [downstream],
                                          keyed=self.key is not None)
            self._changed.notify_all()
        if replaced is not None:
            # The same worker index connected again (a replacement, or a reconnect seen
            # before the old connection's loss): the newer connection wins.
            replaced.close()
        log.info("stage output port %d: downstream worker %d of %d connected from %s",
                 self.port, handshake.worker_index, handshake.workers, address)
        receipts = threading.Thread(target=downstream.read_receipts, daemon=True,
                                    name=f"stage-output-receipts-{address}")
        receipts.start()
        unsent, end_written = downstream.write_loop()
        if end_written:
            # Nothing more to say once the worker confirms the end (or hangs up).
            downstream.receipts_over.wait(END_CONFIRM_TIMEOUT_S)
        downstream.hang_up()
        receipts.join(READER_JOIN_S)
        downstream.release()
        # Receipts are final now: what was sent and never confirmed did not arrive (or
        # died with the worker before it could confirm it).
        unconfirmed = 0 if downstream.end_confirmed.is_set() else max(
            0, downstream.sent_events - downstream.delivered_events)
        with self._changed:
            # Counted before the connection disappears from view, so anyone who sees it
            # gone also sees its losses.
            self._dropped_events += unsent
            downstream.dropped_events += unsent
            self._lost_events += unconfirmed
            self._delivered_by_departed += downstream.delivered_events
            if downstream in self._routing.downstreams:
                self._routing = _Routing.over([d for d in self._routing.downstreams if d is not downstream],
                                              keyed=self.key is not None)
                self._changed.notify_all()
        downstream.settled.set()
        if unconfirmed or unsent:
            log.info("stage output port %d: downstream worker %d disconnected; %d event(s) lost "
                     "in flight, %d dropped from its queue", self.port, handshake.worker_index,
                     unconfirmed, unsent)
        else:
            log.info("stage output port %d: downstream worker %d disconnected", self.port,
                     handshake.worker_index)


@dataclass(frozen=True)
class _Routing:
    """Who is connected, as publish sees it: downstreams by index, the ring, a key -> slot cache."""

    downstreams: tuple[_Downstream, ...]
    ring: HashRing | None
    slot_of_index: dict[int, int]
    slot_cache: dict

    @classmethod
    def over(cls, downstreams, keyed: bool) -> _Routing:
        ordered = tuple(sorted(downstreams, key=lambda d: d.handshake.worker_index))
        indexes = [d.handshake.worker_index for d in ordered]
        ring = HashRing(indexes) if keyed and indexes else None
        return cls(ordered, ring, {index: slot for slot, index in enumerate(indexes)}, {})

    @property
    def complete(self) -> bool:
        """At least one downstream, and every index below the largest announced worker count."""
        if not self.downstreams:
            return False
        workers = max(d.handshake.workers for d in self.downstreams)
        return set(range(workers)) <= set(self.slot_of_index)


class _Downstream(FramedConnection):
    """One downstream connection: a ``FramedConnection`` to a next-stage worker, and the
    receipts that worker sends back (read on a thread of their own)."""

    def __init__(self, sock: socket.socket, address: tuple, handshake: Handshake, capacity: int,
                 on_leaving: Callable[[_Downstream], None] | None = None):
        super().__init__(sock, address, capacity)
        self.handshake = handshake
        self.on_leaving = on_leaving
        # Set once the worker said it is leaving: no frame is taken after that, and
        # END_OF_STREAM is queued after the last one taken (``_retire_lock`` orders them).
        self.retiring = False
        self._retire_lock = threading.Lock()
        self.delivered_events = 0  # the worker's latest receipt
        self.end_confirmed = threading.Event()  # the worker confirmed END_OF_STREAM
        self.receipts_over = threading.Event()  # the end confirmed, or the reader stopped
        self.settled = threading.Event()  # the end confirmed, or the connection is over and counted

    def offer(self, frame: bytes, events: int) -> bool:
        """As ``FramedConnection.offer``; False once the worker is leaving."""
        with self._retire_lock:
            return not self.retiring and super().offer(frame, events)

    def put_waiting(self, frame: bytes, events: int, timeout: float) -> bool:
        """As ``FramedConnection.put_waiting``; False once the worker is leaving (the caller
        routes the frame to another worker)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._retire_lock:
                if self.retiring and frame is not END_OF_STREAM:
                    return False
                if super().put_waiting(frame, events, max(0.0, min(deadline - time.monotonic(), WAIT_SLICE_S))):
                    return True
            if self.closed or time.monotonic() >= deadline:
                return False

    def retire(self) -> None:
        """Take nothing more; END_OF_STREAM goes after what was taken (a thread of its own
        waits for room, so the receipts keep being read)."""
        with self._retire_lock:
            if self.retiring:
                return
            self.retiring = True

        def end() -> None:
            while not self.closed and not FramedConnection.put_waiting(self, END_OF_STREAM, 0, WAIT_SLICE_S):
                pass

        threading.Thread(target=end, daemon=True, name=f"stage-output-retire-{self.address}").start()

    def stats(self) -> DownstreamStats:
        """A snapshot of this connection's queue and counters."""
        return DownstreamStats(self.handshake.worker_index, self.handshake.workers, self.address,
                               self.queued_batches, self.sent_events, self.dropped_events,
                               self.delivered_events)

    def read_receipts(self) -> None:
        """Record the worker's receipts until it hangs up, then end the connection.

        A worker that hangs up (or dies: the kernel closes its socket) is gone, so the
        writer is woken too.  A malformed receipt ends the connection as well.
        """
        try:
            while True:
                message = read_message(self.sock)
                if message is None:
                    break
                receipt = Receipt.from_message(message)
                if receipt.received > self.delivered_events:
                    self.delivered_events = receipt.received
                if receipt.leaving and self.on_leaving is not None:
                    self.on_leaving(self)
                if receipt.ended:
                    self.end_confirmed.set()
                    self.receipts_over.set()
                    self.settled.set()
        except (OSError, FrameError, ValueError) as exc:
            if not self.closed:
                log.info("downstream worker %d at %s: connection ended: %s",
                         self.handshake.worker_index, self.address, exc)
        finally:
            self.receipts_over.set()
            self.close()
