"""A job source that reads another job's output through the master: job chaining.

``job_output_source(context, job_id=...)`` follows one upstream job;
``job_output_source(context, cluster=...)`` follows whichever job is the cluster's latest
active one, switching when the master says it changed (the upstream job was killed and
another submitted).  Either way it subscribes to ``GET {master}/api/v1/jobs/{jobId}/output``
(SSE, one JSON event per ``data:`` line) and emits ``UpstreamEvent(job_id, event)``.

The master may restart or fail over under a long-running chain, so a broken stream is
reconnected after a short backoff (``RETRY_DELAYS_S``) and the master's address is asked
for again (``mantis.ha.master_address.master_url``) on every connect.  Events the upstream
emitted while no connection stood are lost: the master relays output, it does not keep it.

Like every source it is ``thread_fed`` (``mantis.runtime.sources``): it emits from a
thread of its own, never inside ``subscribe``, and ends promptly when
``context.stopped`` is set or the subscription is disposed: a blocked read is woken by
shutting its socket.
"""
from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import reactivex

from mantis.ha.master_address import master_url
from mantis.lifecycles.job_views import HB_JOB_ID
from mantis.model import codec
from mantis.runtime.listener import shut_down
from mantis.runtime.sources import Halt, thread_fed
from mantis.sdk.job_dsl import Context

log = logging.getLogger("mantis.runtime.job_source")

# Waits before reconnecting, step by step; the last repeats.  Short: a failover takes
# seconds, and events emitted while disconnected are lost.
RETRY_DELAYS_S = (0.1, 0.25, 0.5, 1.0, 2.0)
CONNECT_TIMEOUT_S = 5.0
# An upstream silent this long is reconnected, so a dead master (no FIN) is noticed.
READ_TIMEOUT_S = 60.0
# How long an upstream job or cluster may be unknown (404) before the source fails:
# long enough that a master still loading its store after a restart is not taken at
# its word.
MISSING_GRACE_S = 15.0
# Longest wait between looks at whether the job to read changed.
STOP_POLL_S = 0.1
MAX_REDIRECTS = 3


class UpstreamEvent(NamedTuple):
    """One event of the upstream job's output and the id of the job that emitted it."""

    job_id: str
    event: Any


class UpstreamError(RuntimeError):
    """The upstream cannot be followed (it does not exist); the message says which and why."""


class HttpStatusError(OSError):
    """An SSE request answered with ``status`` (not 200); ``message`` is its JSON error, if any."""

    def __init__(self, status: int, message: str):
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


class _DownstreamError(Exception):
    """Carries an exception raised by the observer's on_next out of the read loop."""

    def __init__(self, error: Exception):
        super().__init__(str(error))
        self.error = error


class _Aborted(OSError):
    """The connection was aborted (by stop, dispose or a switch) while being opened."""


class SseConnection:
    """One GET of a server-sent-event stream; ``abort`` from any thread ends a blocked read.

    ``open`` connects (following up to ``MAX_REDIRECTS`` redirects, as a standby master
    sends to the leader) and raises HttpStatusError for a non-200 answer, OSError or
    http.client.HTTPException when the master cannot be reached.  ``events`` yields
    ``(event_name, data)`` per SSE event (``event_name`` "message" unless the stream
    named it) until the stream ends; a broken or silent (``read_timeout``) stream
    raises OSError.
    """

    def __init__(self, url: str, connect_timeout: float = CONNECT_TIMEOUT_S,
                 read_timeout: float = READ_TIMEOUT_S):
        self.url = url
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self._lock = threading.Lock()
        self._aborted = False
        self._conn: http.client.HTTPConnection | None = None
        # Kept apart from the connection: http.client drops conn.sock when it hands a
        # response that closes the connection over to that response.
        self._sock: socket.socket | None = None
        self._response: http.client.HTTPResponse | None = None

    def open(self) -> SseConnection:
        """Connect and check the answer (see the class docstring); this connection, open."""
        url = self.url
        for _ in range(MAX_REDIRECTS + 1):
            response = self._get(url)
            if response.status in (301, 302, 303, 307, 308) and response.getheader("Location"):
                url = urllib.parse.urljoin(url, response.getheader("Location"))
                self._close_connection()
                continue
            if response.status != 200:
                raise HttpStatusError(response.status, _error_message(response))
            sock = self._sock
            if sock is None:  # closed meanwhile
                raise _Aborted("closed")
            # From now on reads block for events, not for a request/answer exchange.
            sock.settimeout(self.read_timeout)
            self._response = response
            return self
        raise HttpStatusError(310, f"more than {MAX_REDIRECTS} redirects from {self.url}")

    def _get(self, url: str) -> http.client.HTTPResponse:
        parts = urllib.parse.urlsplit(url)
        if parts.hostname is None:
            raise http.client.InvalidURL(f"no host in {url!r}")
        kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = kind(parts.hostname, parts.port, timeout=self.connect_timeout)
        conn.connect()
        with self._lock:
            if self._aborted:
                conn.close()
                raise _Aborted("aborted")
            self._conn, self._sock = conn, conn.sock
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", path, headers={"Accept": "text/event-stream"})
        return conn.getresponse()

    def events(self) -> Iterator[tuple[str, str]]:
        """``(event_name, data)`` per SSE event until the stream ends (see the class docstring)."""
        response = self._response
        if response is None:
            raise RuntimeError(f"{self.url}: events() before open()")
        name = "message"
        data: list[str] = []
        for raw in response:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if not line:
                if data:
                    yield name, "\n".join(data)
                name, data = "message", []
            elif line.startswith(":"):
                continue  # a comment: the keepalive or the greeting
            else:
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "data":
                    data.append(value)
                elif field == "event":
                    name = value
        with self._lock:
            if self._aborted:
                return
        raise ConnectionResetError(f"{self.url}: the stream ended without an end event")

    def abort(self) -> None:
        """End the connection now, from any thread; a read blocked in another thread returns at once.

        Only the socket is shut down here: closing the http.client objects under a
        thread still reading them breaks their state mid-call; ``close`` does that.
        """
        with self._lock:
            self._aborted = True
            sock = self._sock
        if sock is not None:
            shut_down(sock)

    def close(self) -> None:
        """Release the connection; called by the thread that opened and read it."""
        self.abort()
        self._close_connection()

    def _close_connection(self) -> None:
        with self._lock:
            conn, self._conn, self._sock = self._conn, None, None
        if conn is not None:
            conn.close()


def _error_message(response: http.client.HTTPResponse) -> str:
    body = response.read(4096)
    try:
        return str(codec.loads(body).get("error", body[:200]))
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", errors="replace") or response.reason


class _Backoff:
    """Reconnect delays: ``RETRY_DELAYS_S`` step by step, back to the first after a success."""

    def __init__(self, delays: tuple[float, ...]):
        self.delays, self.step = delays, 0

    def next(self) -> float:
        delay = self.delays[min(self.step, len(self.delays) - 1)]
        self.step += 1
        return delay

    def reset(self) -> None:
        self.step = 0


class _Missing:
    """How long something has been answered 404 without a break; ``expired`` after the grace."""

    def __init__(self, grace_s: float):
        self.grace_s = grace_s
        self.since: float | None = None

    def seen(self) -> bool:
        now = time.monotonic()
        if self.since is None:
            self.since = now
        return now - self.since >= self.grace_s

    def clear(self) -> None:
        self.since = None


def job_output_source(context: Context, job_id: str | None = None, cluster: str | None = None,
                      master: Callable[[], str] = master_url,
                      retry_delays_s: tuple[float, ...] = RETRY_DELAYS_S,
                      missing_grace_s: float = MISSING_GRACE_S,
                      read_timeout_s: float = READ_TIMEOUT_S) -> reactivex.Observable:
    """An Observable of ``UpstreamEvent`` from another job's output, read through the master.

    Give exactly one of ``job_id`` (that job; the Observable completes when the job
    ends) or ``cluster`` (the cluster's latest active job, followed from job to job; it
    never completes).  ``master()`` is the master's API URL, called on every connect.
    Broken streams are reconnected after ``retry_delays_s``.  on_error with
    UpstreamError when the job (or cluster) has been unknown to the master for
    ``missing_grace_s``.  Stops without completing when ``context.stopped`` is set or
    the subscription is disposed.  Each subscription has its own connections.
    Raises ValueError at once unless exactly one of ``job_id`` and ``cluster`` is given.
    """
    if (job_id is None) == (cluster is None):
        raise ValueError("give exactly one of job_id and cluster")

    def feed(emit, halt: Halt) -> None:
        _Follower(context, emit, halt, job_id, cluster, master, retry_delays_s,
                  missing_grace_s, read_timeout_s).run()

    return thread_fed(context, f"job-source-{cluster or job_id}", feed)


class _Follower:
    """One subscription: the reader (the feed's thread) on the upstream job's output and,
    when following a cluster, a thread on the cluster's lastSubmittedJobIdStream telling
    it which job to read.

    Only the reader emits; it returns to complete and raises to fail (``thread_fed``).
    The halt (dispose, ``context.stopped``, or the reader's end) aborts every open
    connection, so no thread stays blocked in a read.
    """

    def __init__(self, context, emit, halt: Halt, job_id, cluster, master, retry_delays_s,
                 missing_grace_s, read_timeout_s):
        self.context, self.emit = context, emit
        self.cluster, self.master = cluster, master
        self.retry_delays_s, self.missing_grace_s = retry_delays_s, missing_grace_s
        self.read_timeout_s = read_timeout_s
        self.halted = halt
        self.changed = threading.Condition()
        self.target: str | None = job_id  # the job to read; set by the cluster thread
        self.ended: set[str] = set()  # jobs whose output ended: never read again
        self.failure: Exception | None = None
        self.connections: dict[str, SseConnection] = {}  # "reader"/"cluster" -> open connection

    def run(self) -> None:
        """Read the upstream output until it ends; raise what the source fails with."""
        self.halted.on_halt(self._abort_all)
        if self.cluster is not None:
            threading.Thread(target=self._follow_cluster, daemon=True,
                             name=f"job-source-{self.cluster}-latest").start()
        try:
            self._read()
        except _DownstreamError as exc:
            raise exc.error from None
        if self.failure is not None:
            if not self.halted.is_set():
                log.warning("job source of %s failed: %s", self.context.job_id, self.failure)
            raise self.failure

    def _abort_all(self) -> None:
        """At the halt: wake every thread of this subscription and any blocked read."""
        with self.changed:
            connections = list(self.connections.values())
            self.changed.notify_all()
        for conn in connections:
            conn.abort()

    def _connect(self, role: str, path: str) -> SseConnection:
        conn = SseConnection(self.master().rstrip("/") + path, read_timeout=self.read_timeout_s)
        with self.changed:
            if self.halted.is_set():
                raise _Aborted("halted")
            self.connections[role] = conn
        return conn.open()

    def _disconnect(self, role: str) -> None:
        with self.changed:
            conn = self.connections.pop(role, None)
        if conn is not None:
            conn.close()

    # -- the cluster's latest job (cluster mode) -----------------------------------

    def _follow_cluster(self) -> None:
        backoff, missing = _Backoff(self.retry_delays_s), _Missing(self.missing_grace_s)
        path = f"/api/v1/lastSubmittedJobIdStream/{urllib.parse.quote(self.cluster)}"
        while not self.halted.is_set():
            try:
                conn = self._connect("cluster", path)
                missing.clear()
                for name, data in conn.events():
                    # Reset only once the stream delivers: a master that accepts and
                    # drops at once would otherwise be asked again at the shortest delay.
                    backoff.reset()
                    if name == "end":
                        break  # the cluster is gone: the next connect says so with a 404
                    # Mantis' JobClusterInfo, {"name", "jobId"}; a heartbeat names no job to read.
                    job_id = codec.loads(data).get("jobId")
                    if job_id != HB_JOB_ID:
                        self._set_target(job_id)
            except HttpStatusError as exc:
                if exc.status == 404 and missing.seen():
                    self._fail(UpstreamError(f"upstream cluster {self.cluster}: {exc.message}"))
                    return
                self._log_break(f"cluster {self.cluster}", exc)
            except Exception as exc:  # noqa: BLE001  as in _read: any failure is a break
                self._log_break(f"cluster {self.cluster}", exc)
            finally:
                self._disconnect("cluster")
            self.halted.wait(backoff.next())

    def _set_target(self, job_id: str | None) -> None:
        with self.changed:
            if job_id == self.target:
                return
            log.info("job source of %s: cluster %s now runs %s (was %s)", self.context.job_id,
                     self.cluster, job_id, self.target)
            self.target = job_id
            reader = self.connections.get("reader")
            self.changed.notify_all()
        if reader is not None:
            reader.abort()  # the reader is on the previous job: make it switch now

    def _fail(self, exc: Exception) -> None:
        with self.changed:
            self.failure = exc
            self.changed.notify_all()
            reader = self.connections.get("reader")
        if reader is not None:
            reader.abort()

    # -- the upstream job's output (both modes; the only thread that emits) -----------

    def _next_target(self) -> str | None:
        """The job to read next, waiting for the cluster thread to name a new one; None to end."""
        with self.changed:
            while not self.halted.is_set() and self.failure is None:
                if self.target is not None and self.target not in self.ended:
                    return self.target
                self.changed.wait(STOP_POLL_S)
        return None

    def _read(self) -> None:
        """Read job after job until the output ends, the halt, or a failure (``self.failure``)."""
        backoff, missing = _Backoff(self.retry_delays_s), _Missing(self.missing_grace_s)
        on_next = self.emit
        while True:
            job = self._next_target()
            if job is None:
                break
            try:
                conn = self._connect("reader", f"/api/v1/jobs/{urllib.parse.quote(job)}/output")
                if self.target != job:
                    continue  # switched while connecting
                log.info("job source of %s: reading the output of %s", self.context.job_id, job)
                missing.clear()
                for name, data in conn.events():
                    backoff.reset()  # as in _follow_cluster: only once the stream delivers
                    if name == "end":
                        log.info("job source of %s: %s ended (%s)", self.context.job_id, job, data)
                        self.ended.add(job)
                        break
                    try:
                        event = codec.loads(data)
                    except ValueError:
                        log.warning("job source of %s: %s sent a line that is not JSON: %.100s",
                                    self.context.job_id, job, data)
                        continue
                    try:
                        on_next(UpstreamEvent(job, event))
                    except Exception as exc:  # downstream operators are user code
                        raise _DownstreamError(exc) from exc
            except HttpStatusError as exc:
                if exc.status == 404 and (self.cluster is not None or missing.seen()):
                    # Following a cluster, a job the master does not know is not worth
                    # waiting for: the cluster thread names the next one.
                    self.ended.add(job)
                    if self.cluster is None:
                        self.failure = UpstreamError(f"upstream job {job}: {exc.message}")
                        break
                if self.target == job:
                    self._log_break(job, exc)
            except _DownstreamError:
                raise  # run() fails the source with the operators' own error
            except Exception as exc:  # noqa: BLE001  any failure of the connection is a break
                # http.client raises OSError, HTTPException or even ValueError (a chunk
                # cut in the middle) when a stream breaks.
                if self.target == job:  # otherwise it was cut to switch jobs
                    self._log_break(job, exc)
            finally:
                self._disconnect("reader")
            if job in self.ended:
                if self.cluster is None:
                    break
                continue  # the cluster thread names the next job
            if self.target == job:
                self.halted.wait(backoff.next())

    def _log_break(self, what: str, exc: Exception) -> None:
        if not self.halted.is_set():
            log.info("job source of %s: stream of %s broke (%s: %s); reconnecting", self.context.job_id,
                     what, type(exc).__name__, exc)
