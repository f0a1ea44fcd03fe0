"""Job discovery, job status and a cluster's latest job, pushed as they change, in Mantis' shapes.

Three streams (SSE, one JSON object per ``data:`` line) and one lookup:

- ``GET /api/v1/jobDiscoveryStream/{jobId}``: Mantis' JobSchedulingInfo, where the job's
  workers are (``job_views.scheduling_info``), each time it changes;
- ``GET /api/v1/jobStatusStream/{jobId}``: Mantis' Status objects, one per job or worker
  state change (``job_views.status_events``); the first ones give the job's status and
  every current worker's.  Served over WebSocket too (one Status per message), as
  Mantis serves it, when the request is a WebSocket upgrade (``WebSocketUpgrade``
  routes it to ``JobStatusWebSocketHandler``);
- ``GET /api/v1/lastSubmittedJobIdStream/{clusterName}``: Mantis' JobClusterInfo
  ``{"name", "jobId"}``, the cluster's latest active job (``jobId`` null when none);
- ``GET /api/v1/jobClusters/{name}/latestJobDiscoveryInfo``: one JobSchedulingInfo of
  the cluster's latest active job.

The first events are asked for and written at once.  After that the actors push: the
stream watches the job or cluster (``Gateway.watch``: a JobChanged or ClusterChanged
from the actor whenever what the stream shows changes) and writes only what changed.
A slow poll (``SAFETY_POLL_S``) backs the push up (a watch lost with a restarted shard
is renewed within seconds); where the actor system cannot push to the API
(simpleSystemBase), the stream polls every ``POLL_INTERVAL_S`` instead.  After
``KEEPALIVE_S`` of silence an SSE stream writes a comment line, or, with
``?sendHB=true``, Mantis' heartbeat event (jobId ``HB_JobId``; a HEARTBEAT Status on
the status stream); the WebSocket always sends the HEARTBEAT Status.  The loop ends
when the client goes.

An unknown job or cluster is a JSON 404 before the stream starts (before the upgrade,
for a WebSocket).  The job streams end after the event showing a terminal job state;
an SSE stream that ends on the server's side sends ``event: end`` with ``{"reason":
...}`` last, as the output stream does, and a WebSocket closes with code 1000 and the
reason, so a client can tell a finished stream from a broken connection.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import tornado.iostream
import tornado.routing
import tornado.web
import tornado.websocket

from actors.messages import GetArchivedWorkers, GetCluster, GetJob, ListJobs, WatchCluster, WatchJob
from mantis.lifecycles.job_state import ACTIVE_JOB_STATES
from mantis.lifecycles.job_views import (
    cluster_heartbeat,
    cluster_info,
    latest_job_id,
    scheduling_heartbeat,
    scheduling_info,
    status_events,
    status_heartbeat,
    status_view,
    vanished_workers,
)
from mantis.model import codec
from webapi.gateway import ApiError
from webapi.handlers import ApiHandler, _check_job_id, _check_name

log = logging.getLogger("mantis.job_streams")

POLL_INTERVAL_S = 0.5  # when changes cannot be pushed
SAFETY_POLL_S = 5.0    # when they are: a slow poll behind the push
KEEPALIVE_S = 10.0
TERMINAL_JOB_STATES = frozenset({"Completed", "Failed"})


def _now_ms() -> int:
    return int(time.time() * 1000)


def _job_end(job: dict) -> str | None:
    """Why a job stream ends after showing ``job``: None while the job has not ended."""
    return f"job {job['jobId']} is {job['state']}" if job["state"] in TERMINAL_JOB_STATES else None


# -- what each stream sends (one instance per subscriber) ----------------------------------

class Feed:
    """One subscriber's stream: its first events, the events a change brings, its heartbeat.

    ``first()`` and ``next(change)`` return ``(events, end)``: the events to send (maybe
    none) and, when the stream is to end after them, why (else None).  ``change`` is what
    the actors pushed, or None when it is time to poll.  Both raise ApiError like any
    handler: a 404 once streaming ends the stream (the job or cluster is gone), other
    errors (a busy master's 503) are tried again at the next poll.
    """

    name = "stream"

    def __init__(self, gateway, key: str):
        self.gateway, self.key = gateway, key

    async def first(self) -> tuple[list[dict], str | None]:
        raise NotImplementedError

    async def next(self, change) -> tuple[list[dict], str | None]:
        raise NotImplementedError

    def watch(self):
        """The WatchJob or WatchCluster message naming what this stream follows."""
        raise NotImplementedError

    def heartbeat(self) -> dict:
        """Mantis' heartbeat event of this stream."""
        raise NotImplementedError


class DiscoveryFeed(Feed):
    """JobSchedulingInfo of a job, sent whenever it differs from the last one sent."""

    name = "jobDiscoveryStream"

    async def first(self):
        job = await self.gateway.ask(GetJob(self.key))
        self.last = scheduling_info(job)
        return [self.last], _job_end(job)

    async def next(self, change):
        job = change.job if change is not None else await self.gateway.ask(GetJob(self.key))
        info = scheduling_info(job)
        events = [info] if info != self.last else []
        self.last = info
        return events, _job_end(job)

    def watch(self):
        return WatchJob(self.key)

    def heartbeat(self):
        return scheduling_heartbeat()


class StatusFeed(Feed):
    """Status objects of a job: one per job or worker state change since the last view told."""

    name = "jobStatusStream"

    def __init__(self, gateway, key: str, clock: Callable[[], int] = _now_ms):
        super().__init__(gateway, key)
        self.clock = clock
        self.view: dict | None = None

    async def first(self):
        job = await self.gateway.ask(GetJob(self.key))
        return await self._events(job), _job_end(job)

    async def next(self, change):
        job = change.job if change is not None else await self.gateway.ask(GetJob(self.key))
        return await self._events(job), _job_end(job)

    async def _events(self, job: dict) -> list[dict]:
        view = status_view(job)
        if view == self.view:
            return []
        archived: dict[int, dict] = {}
        if vanished_workers(self.view, job):
            # A worker gone from the job has ended: its final state and reason are in the archive.
            try:
                archived = {w["workerNumber"]: w for w in await self.gateway.ask(GetArchivedWorkers(self.key))}
            except ApiError as exc:
                log.info("%s for %s: archived workers unavailable (%s)", self.name, self.key, exc.message)
        events = status_events(self.view, job, archived, self.clock())
        self.view = view
        return events

    def watch(self):
        return WatchJob(self.key)

    def heartbeat(self):
        return status_heartbeat(self.key, self.view["state"] if self.view else "Accepted", self.clock())


class LastSubmittedFeed(Feed):
    """JobClusterInfo of a cluster: its latest active job, sent whenever it changes.

    Active means Accepted or Launched: a job being killed is no longer the one to
    follow.  The stream runs until the client goes (or the cluster is deleted).
    """

    name = "lastSubmittedJobIdStream"

    async def first(self):
        await self.gateway.ask(GetCluster(self.key))  # a 404 for a cluster that does not exist
        jobs = await self.gateway.ask(ListJobs(cluster=self.key, states=sorted(ACTIVE_JOB_STATES)))
        self.last = cluster_info(self.key, latest_job_id(jobs))
        return [self.last], None

    async def next(self, change):
        if change is None:
            jobs = await self.gateway.ask(ListJobs(cluster=self.key, states=sorted(ACTIVE_JOB_STATES)))
            job_id = latest_job_id(jobs)
        elif change.final:
            raise ApiError(404, f"job cluster {self.key} was deleted")
        else:
            job_id = change.latest_job_id
        info = cluster_info(self.key, job_id)
        events = [info] if info != self.last else []
        self.last = info
        return events, None

    def watch(self):
        return WatchCluster(self.key)

    def heartbeat(self):
        return cluster_heartbeat()


# -- the loop both transports share ---------------------------------------------------------

_GONE = object()


class Pump:
    """Sends a feed's events as they come until the feed ends, the client goes, or it breaks.

    ``send(event)`` writes one event, ``keepalive()`` what a quiet stream writes every
    ``KEEPALIVE_S``; both raise when the client has gone.  ``gone`` is set by the
    transport when the client disconnects.
    """

    def __init__(self, gateway, feed: Feed, send: Callable[[dict], Awaitable[None]],
                 keepalive: Callable[[], Awaitable[None]], gone: asyncio.Event):
        self.gateway, self.feed = gateway, feed
        self._send, self._keepalive, self.gone = send, keepalive, gone
        self.last_write = time.monotonic()

    async def run(self, events: list[dict], end: str | None) -> tuple[str, bool]:
        """Send ``events`` (the first ones), then follow; returns (why it ended, whether
        the stream ended on the server's side and should say so)."""
        pushed: asyncio.Queue = asyncio.Queue()
        unwatch = None if end else self.gateway.watch(self.feed.watch(), pushed.put_nowait)
        poll_s = POLL_INTERVAL_S if unwatch is None else SAFETY_POLL_S
        try:
            await self._write(events)
            while end is None:
                change = await self._next(pushed, poll_s)
                if change is _GONE:
                    return "client disconnected", False
                try:
                    events, end = await self.feed.next(change)
                except ApiError as exc:
                    if exc.status == 404:
                        return exc.message, True
                    events = []  # transient (the master is busy): the next poll tries again
                if events:
                    await self._write(events)
                elif time.monotonic() - self.last_write >= KEEPALIVE_S:
                    await self._keepalive()
                    self.last_write = time.monotonic()
            return end, True
        finally:
            if unwatch is not None:
                unwatch()

    async def _write(self, events: list[dict]) -> None:
        for event in events:
            await self._send(event)
        self.last_write = time.monotonic()

    async def _next(self, pushed: asyncio.Queue, poll_s: float):
        """The next pushed change; None when it is time to poll (or to keep alive); _GONE
        when the client went away."""
        wait = min(poll_s, max(0.05, KEEPALIVE_S - (time.monotonic() - self.last_write)))
        got = asyncio.ensure_future(pushed.get())
        gone = asyncio.ensure_future(self.gone.wait())
        done, _ = await asyncio.wait({got, gone}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        for future in (got, gone):
            if future not in done:
                future.cancel()
        if gone in done:
            return _GONE
        if got in done:
            change = got.result()
            while not pushed.empty():  # only the latest matters
                change = pushed.get_nowait()
            return change
        return None


# -- SSE ------------------------------------------------------------------------------------

class ChangeStreamHandler(ApiHandler):
    """An SSE stream of a ``Feed``: validate, first events (4xx JSON on failure), then events on change.

    A subclass names its feed (``feed``) and how to validate the path argument (``check``).
    ``?sendHB=true`` makes the keepalive Mantis' heartbeat event instead of a comment.
    """

    feed: type[Feed] = Feed

    def initialize(self, gateway):
        super().initialize(gateway)
        self._gone = asyncio.Event()

    def check(self, key: str) -> str:
        raise NotImplementedError

    async def get(self, key):
        feed = self.feed(self.gateway, self.check(key))
        send_hb = self.get_query_argument("sendHB", "false").lower() == "true"
        events, end = await feed.first()
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        log.info("%s subscriber for %s connected from %s", feed.name, feed.key, self.request.remote_ip)

        async def keepalive() -> None:
            await self._send(f"data: {codec.dumps(feed.heartbeat())}\n\n" if send_hb else ": keepalive\n\n")

        pump = Pump(self.gateway, feed, lambda event: self._send(f"data: {codec.dumps(event)}\n\n"),
                    keepalive, self._gone)
        try:
            why, say_end = await pump.run(events, end)
            if say_end and not self._gone.is_set():
                await self._send(f"event: end\ndata: {codec.dumps({'reason': why})}\n\n")
        except tornado.iostream.StreamClosedError:
            why = "client disconnected"
        except Exception as exc:  # noqa: BLE001  headers are out: end the stream, an error page is impossible
            why = f"{type(exc).__name__}: {exc}"
            log.warning("%s for %s failed: %s", feed.name, feed.key, why)
        log.info("%s subscriber for %s from %s disconnected: %s", feed.name, feed.key, self.request.remote_ip, why)
        if not self.request.connection.stream.closed():
            self.finish()

    async def _send(self, text: str) -> None:
        self.write(text)
        await self.flush()

    def on_connection_close(self):
        self._gone.set()


class JobDiscoveryStreamHandler(ChangeStreamHandler):
    """``GET /api/v1/jobDiscoveryStream/{jobId}``: JobSchedulingInfo on every change."""

    feed = DiscoveryFeed

    def check(self, key):
        return _check_job_id(key)


class JobStatusStreamHandler(ChangeStreamHandler):
    """``GET /api/v1/jobStatusStream/{jobId}`` (not a WebSocket upgrade): Status objects over SSE."""

    feed = StatusFeed

    def check(self, key):
        return _check_job_id(key)


class LastSubmittedJobIdStreamHandler(ChangeStreamHandler):
    """``GET /api/v1/lastSubmittedJobIdStream/{clusterName}``: JobClusterInfo on every change."""

    feed = LastSubmittedFeed

    def check(self, key):
        return _check_name(key)


class LatestJobDiscoveryInfoHandler(ApiHandler):
    """``GET /api/v1/jobClusters/{name}/latestJobDiscoveryInfo``: one JobSchedulingInfo
    of the cluster's latest active job; a JSON 404 when the cluster has none."""

    async def get(self, name):
        name = _check_name(name)
        await self.gateway.ask(GetCluster(name))  # a 404 for a cluster that does not exist
        job_id = latest_job_id(await self.gateway.ask(ListJobs(cluster=name, states=sorted(ACTIVE_JOB_STATES))))
        if job_id is None:
            raise ApiError(404, f"job cluster {name} has no active job")
        self.reply(scheduling_info(await self.gateway.ask(GetJob(job_id))))


# -- WebSocket --------------------------------------------------------------------------------

class WebSocketUpgrade(tornado.routing.PathMatches):
    """Matches ``path`` only for a WebSocket upgrade request, so one path can be served
    by a WebSocketHandler (listed first) and an SSE handler (listed after)."""

    def match(self, request):
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return None
        return super().match(request)


class JobStatusWebSocketHandler(tornado.websocket.WebSocketHandler):
    """``GET /api/v1/jobStatusStream/{jobId}`` as a WebSocket: one Status object per message.

    The job id is checked and the first events asked for before the upgrade, so an
    unknown job is a JSON 4xx as on SSE.  A HEARTBEAT Status is sent after
    ``KEEPALIVE_S`` of silence.  The server closes with 1000 and the reason when the
    job has ended (or is gone).
    """

    def initialize(self, gateway):
        self.gateway = gateway
        self._gone = asyncio.Event()
        self._task: asyncio.Future | None = None

    async def get(self, *args, **kwargs):
        try:
            self.feed = StatusFeed(self.gateway, _check_job_id(args[0]))
            self._first = await self.feed.first()
        except ApiError as exc:
            self.set_status(exc.status)
            self.set_header("Content-Type", "application/json")
            self.finish(codec.dumps({"error": exc.message, "status": exc.status}))
            return
        await super().get(*args, **kwargs)

    def open(self, key):
        log.info("%s WebSocket subscriber for %s connected from %s", self.feed.name, self.feed.key,
                 self.request.remote_ip)
        self._task = asyncio.ensure_future(self._pump())

    async def _send(self, event: dict) -> None:
        await self.write_message(codec.dumps(event))

    async def _heartbeat(self) -> None:
        await self._send(self.feed.heartbeat())

    async def _pump(self) -> None:
        try:
            pump = Pump(self.gateway, self.feed, self._send, self._heartbeat, self._gone)
            why, say_end = await pump.run(*self._first)
            if say_end and not self._gone.is_set():
                self.close(1000, why[:120])
        except tornado.websocket.WebSocketClosedError:
            why = "client disconnected"
        except Exception as exc:  # noqa: BLE001  the socket is open: close it, an error page is impossible
            why = f"{type(exc).__name__}: {exc}"
            log.warning("%s WebSocket for %s failed: %s", self.feed.name, self.feed.key, why)
            self.close(1011, why[:120])
        log.info("%s WebSocket subscriber for %s from %s disconnected: %s", self.feed.name, self.feed.key,
                 self.request.remote_ip, why)

    def on_message(self, message):
        pass  # subscribers only listen

    def on_close(self):
        self._gone.set()

    def check_origin(self, origin):
        return True
