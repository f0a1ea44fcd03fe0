"""The input of a stage n > 1 worker: connections to every worker of stage n-1.

``StageInput`` connects to each upstream endpoint ``(worker_id, host, port)``, sends
the handshake (this worker's index and its stage's worker count, see
``stage_output.Handshake``), reads length-prefixed frames, decodes each whole batch
with one call (``frames.decode_stage_payload``) and feeds it to the stage's pipeline
through ``batches``, an Observable of lists.  It confirms every batch to its upstream
as soon as it has decoded it, before feeding it, and END_OF_STREAM too
(``stage_output.Receipt``), so the upstream can count exactly what never arrived when
a connection breaks.  Each endpoint has a thread of its own; batches from different
upstreams are fed one at a time (a lock), so the stage's operators see one thread at
a time.  While the pipeline is busy the reading thread waits, the socket fills, and
the upstream's own policy (block or drop) takes over: backpressure travels over TCP.

The control plane tells the input where its upstream workers are with ``update``:
endpoints that disappear are disconnected, new ones are connected, and one whose
connection is lost is retried every ``reconnect_interval_s`` until it reconnects or is
removed.  ``batches`` completes when every current upstream has sent END_OF_STREAM.
"""
from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterable
from typing import NamedTuple

import reactivex
from reactivex.abc import ObserverBase
from reactivex.disposable import Disposable

from mantis.runtime.frames import MAX_FRAME, FrameError, decode_stage_payload, encode_message, read_payload
from mantis.runtime.listener import shut_down
from mantis.runtime.stage_output import Handshake, Receipt

log = logging.getLogger("mantis.runtime.stage_input")

DEFAULT_RECONNECT_INTERVAL_S = 0.2
DEFAULT_CONNECT_TIMEOUT_S = 2.0


class UpstreamEndpoint(NamedTuple):
    """Where one upstream worker serves its output; ``worker_id`` names the worker (e.g. its number)."""

    worker_id: object
    host: str
    port: int


class StageInput:
    """Connections to the upstream stage's workers, fed into one Observable of batches.

    ``worker_index`` and ``workers_in_stage`` are this worker's index and its stage's
    worker count, sent in the handshake.  Connections start when ``batches`` is
    subscribed (once) and end on dispose or ``close``.  Counters: ``events_in``,
    ``batches_in``, ``bytes_in`` (payload bytes), ``connects`` (successful
    connections), ``reconnects`` (connections that replaced a lost or retired one),
    ``disconnects`` (connections lost without END_OF_STREAM).
    """

    def __init__(self, worker_index: int, workers_in_stage: int,
                 endpoints: Iterable[tuple] = (),
                 reconnect_interval_s: float = DEFAULT_RECONNECT_INTERVAL_S,
                 connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
                 max_frame: int = MAX_FRAME):
        self.handshake = Handshake.from_message({"worker_index": worker_index,
                                                 "workers": workers_in_stage})
        self.reconnect_interval_s = reconnect_interval_s
        self.connect_timeout_s = connect_timeout_s
        self.max_frame = max_frame
        self.events_in = 0
        self.batches_in = 0
        self.bytes_in = 0
        self.connects = 0
        self.reconnects = 0
        self.disconnects = 0
        self._lost_unreplaced = 0  # lost or retired connections not yet made up for
        self._lock = threading.Lock()       # endpoints, links, counters of connections
        self._feed_lock = threading.Lock()  # one batch at a time into the pipeline
        self._endpoints: tuple[UpstreamEndpoint, ...] = _endpoints(endpoints)
        self._links: dict[UpstreamEndpoint, _Link] = {}
        self._observer: ObserverBase[list] | None = None  # the one subscriber of ``batches``
        self._ended = False  # completed, failed or closed: nothing more is fed
        self._leaving = False  # leave() was called: every upstream ends this worker's stream
        self._upstream_finished = False  # the upstream stage completed (see update)

    @property
    def endpoints(self) -> tuple[UpstreamEndpoint, ...]:
        """The upstream endpoints as last set."""
        return self._endpoints

    @property
    def connected(self) -> int:
        """How many upstream connections are open now."""
        return sum(1 for link in list(self._links.values()) if link.connected)

    @property
    def batches(self) -> reactivex.Observable:
        """An Observable of the batches received from every upstream (subscribe once)."""

        def subscribe(observer, scheduler=None):
            with self._lock:
                if self._observer is not None or self._ended:
                    raise RuntimeError("a StageInput feeds one subscriber, once")
                self._observer = observer
                self._sync_links()
            self._complete_if_upstream_finished()
            return Disposable(self.close)

        return reactivex.create(subscribe)

    def update(self, endpoints: Iterable[tuple], upstream_finished: bool = False) -> None:
        """Make ``endpoints`` the upstream workers: connect new ones, disconnect removed ones.

        An endpoint is ``(worker_id, host, port)``; one whose worker id stays but whose
        address changes counts as removed and added.  ``upstream_finished`` says the
        upstream stage has completed: with no endpoint left the input completes now
        (nothing will ever come), instead of waiting for upstream workers that will
        never appear.  ValueError for a malformed endpoint.
        """
        new = _endpoints(endpoints)
        with self._lock:
            self._endpoints = new
            self._upstream_finished = upstream_finished
            if self._observer is not None and not self._ended:
                self._sync_links()
        self._complete_if_upstream_finished()

    def _complete_if_upstream_finished(self, force: bool = False) -> None:
        with self._lock:
            done = force or (self._upstream_finished and not self._endpoints)
            observer = self._observer
        if done and observer is not None:
            with self._feed_lock:
                if not self._ended:
                    self._ended = True
                    log.info("stage input %d: the upstream stage has completed; input ends",
                             self.handshake.worker_index)
                    observer.on_completed()

    def leave(self) -> None:
        """Go away without losing anything: ask every upstream to send nothing more and end
        this worker's stream after what it already sent (the next stage is scaled down).
        The input completes once every upstream has ended it; links not connected now had
        nothing in flight and end at once."""
        with self._lock:
            self._leaving = True
            links = list(self._links.values())
        if not links:
            self._complete_if_upstream_finished(force=True)
        for link in links:
            if not link.leave():
                link.retire()
                self._finished(link)

    def close(self) -> None:
        """Disconnect from every upstream; nothing more is fed to the pipeline."""
        with self._lock:
            self._ended = True
            links, self._links = list(self._links.values()), {}
        for link in links:
            link.retire()

    # -- called by links ---------------------------------------------------------------

    def _subscriber(self) -> ObserverBase[list]:
        """The pipeline's observer; links exist only once ``batches`` is subscribed, so it is set."""
        observer = self._observer
        if observer is None:
            raise RuntimeError("stage input: fed before its batches were subscribed")
        return observer

    def _sync_links(self) -> None:
        """Under _lock: one link per current endpoint."""
        wanted = set(self._endpoints)
        for endpoint in [e for e in self._links if e not in wanted]:
            link = self._links.pop(endpoint)
            if link.connected:
                self._lost_unreplaced += 1
            link.retire()
        for endpoint in self._endpoints:
            if endpoint not in self._links:
                link = _Link(self, endpoint)
                self._links[endpoint] = link
                link.start()

    def _connected(self, link: _Link) -> None:
        with self._lock:
            self.connects += 1
            if self._lost_unreplaced:
                self._lost_unreplaced -= 1
                self.reconnects += 1
        log.info("stage input %d: connected to upstream %s", self.handshake.worker_index, link.endpoint)

    def _lost(self, link: _Link, reason: str) -> None:
        with self._lock:
            self.disconnects += 1
            self._lost_unreplaced += 1
        log.info("stage input %d: lost upstream %s: %s", self.handshake.worker_index,
                 link.endpoint, reason)

    def _feed(self, batch: list, size: int) -> bool:
        """Hand one decoded batch to the pipeline; False once the input has ended."""
        with self._feed_lock:
            if self._ended:
                return False
            self.events_in += len(batch)
            self.batches_in += 1
            self.bytes_in += size
            try:
                self._subscriber().on_next(batch)
            except Exception as exc:  # an operator that does not catch its own errors
                self._fail(exc)
                return False
            return True

    def _finished(self, link: _Link) -> None:
        """``link`` got END_OF_STREAM; complete once every current upstream has."""
        with self._lock:
            link.finished = True
            current = [self._links.get(e) for e in self._endpoints]
            done = bool(current) and all(lk is not None and lk.finished for lk in current)
        if done:
            with self._feed_lock:
                if not self._ended:
                    self._ended = True
                    self._subscriber().on_completed()

    def _fail(self, exc: Exception) -> None:
        """Under _feed_lock: end the stream with ``exc`` and stop every link."""
        self._ended = True
        self._subscriber().on_error(exc)
        self.close()  # never waits for a link, so a link's own thread may call it


class _Link:
    """One upstream endpoint: a thread that connects, reads and reconnects until retired."""

    def __init__(self, stage_input: StageInput, endpoint: UpstreamEndpoint):
        self.input = stage_input
        self.endpoint = endpoint
        self.connected = False
        self.finished = False
        self.received = 0  # events received on the current connection
        self._send_lock = threading.Lock()  # receipts from the reader, the leaving notice from leave()
        self._retired = threading.Event()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"stage-input-{endpoint.host}:{endpoint.port}")

    def start(self) -> None:
        self._thread.start()

    def leave(self) -> bool:
        """Tell the upstream this worker is leaving (see ``StageInput.leave``); False when
        not connected (nothing is in flight from it)."""
        with self._send_lock:
            sock = self._sock
            if sock is None or not self.connected:
                return False
            try:
                sock.sendall(encode_message(Receipt(self.received, leaving=True).to_message()))
            except OSError:
                return False
            return True

    def retire(self) -> None:
        """Stop for good: close the connection (waking a blocked read) and do not reconnect."""
        self._retired.set()
        sock = self._sock
        if sock is not None:
            shut_down(sock)

    def _run(self) -> None:
        stage_input = self.input
        hello = encode_message(stage_input.handshake.to_message())
        while not self._retired.is_set() and not self.finished:
            try:
                sock = socket.create_connection((self.endpoint.host, self.endpoint.port),
                                                timeout=stage_input.connect_timeout_s)
            except OSError:
                self._retired.wait(stage_input.reconnect_interval_s)
                continue
            self._sock = sock
            if self._retired.is_set():  # retired while connecting: retire() saw no socket
                sock.close()
                break
            try:
                sock.settimeout(None)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                sock.sendall(hello)
                self.received = 0
                self.connected = True
                stage_input._connected(self)
                if stage_input._leaving:  # connected while leaving: it must not send anything
                    self.leave()
                reason = self._read(sock)
            except (OSError, FrameError) as exc:
                reason = str(exc) or type(exc).__name__
            finally:
                self.connected = False
                self._sock = None
                sock.close()
            if self.finished:
                stage_input._finished(self)
            elif not self._retired.is_set():
                stage_input._lost(self, reason)
                self._retired.wait(stage_input.reconnect_interval_s)

    def _read(self, sock: socket.socket) -> str:
        """Confirm and feed every batch until the stream ends; why it ended (END_OF_STREAM
        sets ``finished``).  Receipts count events on this connection, from 0."""
        feed, max_frame = self.input._feed, self.input.max_frame
        received = 0
        send_lock = self._send_lock
        while True:
            payload = read_payload(sock, max_frame)
            if payload is None:
                return "upstream closed the connection"
            if not payload:
                self.finished = True
                try:
                    with send_lock:
                        sock.sendall(encode_message(Receipt(received, ended=True).to_message()))
                except OSError:
                    pass  # the stream did end; the upstream just cannot hear it confirmed
                return "end of stream"
            batch = decode_stage_payload(payload)
            received += len(batch)
            self.received = received
            # Before feeding: the batch has arrived, whatever becomes of this worker now.
            with send_lock:
                sock.sendall(encode_message(Receipt(received).to_message()))
            if not feed(batch, len(payload)):
                self._retired.set()
                return "input ended"


def _endpoints(endpoints: Iterable[tuple]) -> tuple[UpstreamEndpoint, ...]:
    result = []
    for endpoint in endpoints:
        try:
            worker_id, host, port = endpoint
        except (TypeError, ValueError):
            raise ValueError(f"an upstream endpoint is (worker_id, host, port), got {endpoint!r}") from None
        if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int) \
                or not 0 < port < 65536:
            raise ValueError(f"upstream endpoint {endpoint!r} needs a host name and a port 1-65535")
        result.append(UpstreamEndpoint(worker_id, host, port))
    return tuple(dict.fromkeys(result))  # duplicates once, order kept
