"""Job discovery and status as server-sent events: what changes, pushed as it changes.

Three streams, each one JSON object per ``data:`` line (camelCase, as Mantis names them):

- ``GET /api/v1/jobDiscoveryStream/{jobId}``: where the job's workers are, per stage
  (``discovery_snapshot``);
- ``GET /api/v1/jobStatusStream/{jobId}``: the job's state and every worker's state
  (``status_snapshot``);
- ``GET /api/v1/lastSubmittedJobIdStream/{clusterName}``: the cluster's latest job that
  is still active (``{"clusterName", "jobId"}``, ``jobId`` null when there is none).

The first snapshot is asked for and written at once.  After that the actors push: the
stream watches the job or cluster (``Gateway.watch``: a JobChanged or ClusterChanged
from the actor whenever what the stream shows changes) and writes an event only when
the snapshot differs from the last one written.  A slow poll (``SAFETY_POLL_S``) backs
the push up (a watch lost with a restarted shard is renewed within seconds); where
the actor system cannot push to the API (simpleSystemBase), the stream polls every
``POLL_INTERVAL_S`` instead.  A comment line every ``KEEPALIVE_S`` of silence keeps
proxies (and clients detecting a dead master) from giving up on an idle stream.  The
loop ends when the client goes.

An unknown job or cluster is a JSON 404 before the stream starts.  The job streams end
after the snapshot showing a terminal job state; every stream that ends on the
server's side sends ``event: end`` with ``{"reason": ...}`` last, as the output stream
does, so a client can tell a finished stream from a broken connection.
"""
from __future__ import annotations

import asyncio
import logging
import time

import tornado.iostream

from actors.messages import GetCluster, GetJob, ListJobs, WatchCluster, WatchJob
from mantis.lifecycles.job_state import ACTIVE_JOB_STATES
from mantis.lifecycles.job_views import discovery_snapshot, latest_job_id, status_snapshot  # noqa: F401
from mantis.model import codec
from webapi.gateway import ApiError
from webapi.handlers import ApiHandler, _check_job_id, _check_name

log = logging.getLogger("mantis.job_streams")

POLL_INTERVAL_S = 0.5  # when changes cannot be pushed
SAFETY_POLL_S = 5.0    # when they are: a slow poll behind the push
KEEPALIVE_S = 10.0
TERMINAL_JOB_STATES = frozenset({"Completed", "Failed"})


class ChangeStreamHandler(ApiHandler):
    """Base of the streams: validate, first snapshot (4xx JSON on failure), then events on change.

    A subclass names its stream (``stream``), validates the path argument (``check``),
    asks for ``(snapshot, final)`` (``snapshot``), names what to watch (``watch``) and
    turns a pushed change into ``(snapshot, final)`` (``from_change``); ``final`` True
    ends the stream after that snapshot is sent.  ``snapshot`` raises ApiError like any
    handler: a 404 once streaming ends the stream (the job or cluster is gone), other
    errors (a busy master's 503) are tried again at the next poll.
    """

    stream = "stream"

    def initialize(self, gateway):
        super().initialize(gateway)
        self._gone = asyncio.Event()

    def check(self, key: str) -> str:
        raise NotImplementedError

    async def snapshot(self, key: str) -> tuple[dict, bool]:
        raise NotImplementedError

    def watch(self, key: str):
        raise NotImplementedError

    def from_change(self, key: str, change) -> tuple[dict, bool]:
        raise NotImplementedError

    async def get(self, key):
        key = self.check(key)
        current, final = await self.snapshot(key)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        log.info("%s subscriber for %s connected from %s", self.stream, key, self.request.remote_ip)
        pushed: asyncio.Queue = asyncio.Queue()
        unwatch = None if final else self.gateway.watch(self.watch(key), pushed.put_nowait)
        poll_s = POLL_INTERVAL_S if unwatch is None else SAFETY_POLL_S
        why = "client disconnected"
        try:
            await self._send(f"data: {codec.dumps(current)}\n\n")
            last = current
            while not final:
                change = await self._next(pushed, poll_s)
                if change is _GONE:
                    break
                try:
                    current, final = (await self.snapshot(key)) if change is None else self.from_change(key, change)
                except ApiError as exc:
                    if exc.status == 404:
                        why = exc.message
                        break
                    current = last  # transient (the master is busy): the next poll tries again
                if current != last:
                    await self._send(f"data: {codec.dumps(current)}\n\n")
                    last = current
                elif time.monotonic() - self._last_write >= KEEPALIVE_S:
                    await self._send(": keepalive\n\n")
            else:
                why = f"job {key} is {current['state']}"
            if not self._gone.is_set():
                await self._send(f"event: end\ndata: {codec.dumps({'reason': why})}\n\n")
        except tornado.iostream.StreamClosedError:
            why = "client disconnected"
        except Exception as exc:  # noqa: BLE001  headers are out: end the stream, an error page is impossible
            why = f"{type(exc).__name__}: {exc}"
            log.warning("%s for %s failed: %s", self.stream, key, why)
        finally:
            if unwatch is not None:
                unwatch()
        log.info("%s subscriber for %s from %s disconnected: %s", self.stream, key, self.request.remote_ip, why)
        if not self.request.connection.stream.closed():
            self.finish()

    async def _send(self, text: str) -> None:
        self.write(text)
        await self.flush()
        self._last_write = time.monotonic()

    async def _next(self, pushed: asyncio.Queue, poll_s: float):
        """The next pushed change; None when it is time to poll (or to keep alive); _GONE
        when the client went away."""
        wait = min(poll_s, max(0.05, KEEPALIVE_S - (time.monotonic() - self._last_write)))
        got = asyncio.ensure_future(pushed.get())
        gone = asyncio.ensure_future(self._gone.wait())
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

    def on_connection_close(self):
        self._gone.set()


_GONE = object()


class JobDiscoveryStreamHandler(ChangeStreamHandler):
    """``GET /api/v1/jobDiscoveryStream/{jobId}``: ``discovery_snapshot`` on every change."""

    stream = "jobDiscoveryStream"

    def check(self, key):
        return _check_job_id(key)

    async def snapshot(self, key):
        job = await self.gateway.ask(GetJob(key))
        return discovery_snapshot(job), job["state"] in TERMINAL_JOB_STATES

    def watch(self, key):
        return WatchJob(key)

    def from_change(self, key, change):
        return discovery_snapshot(change.job), change.job["state"] in TERMINAL_JOB_STATES


class JobStatusStreamHandler(ChangeStreamHandler):
    """``GET /api/v1/jobStatusStream/{jobId}``: ``status_snapshot`` on every change."""

    stream = "jobStatusStream"

    def check(self, key):
        return _check_job_id(key)

    async def snapshot(self, key):
        job = await self.gateway.ask(GetJob(key))
        return status_snapshot(job), job["state"] in TERMINAL_JOB_STATES

    def watch(self, key):
        return WatchJob(key)

    def from_change(self, key, change):
        return status_snapshot(change.job), change.job["state"] in TERMINAL_JOB_STATES


class LastSubmittedJobIdStreamHandler(ChangeStreamHandler):
    """``GET /api/v1/lastSubmittedJobIdStream/{clusterName}``: the latest active job's id on every change.

    Active means Accepted or Launched: a job being killed is no longer the one to
    follow.  The stream runs until the client goes (or the cluster is deleted).
    """

    stream = "lastSubmittedJobIdStream"

    def check(self, key):
        return _check_name(key)

    async def snapshot(self, key):
        await self.gateway.ask(GetCluster(key))  # a 404 for a cluster that does not exist
        jobs = await self.gateway.ask(ListJobs(cluster=key, states=sorted(ACTIVE_JOB_STATES)))
        return {"clusterName": key, "jobId": latest_job_id(jobs)}, False

    def watch(self, key):
        return WatchCluster(key)

    def from_change(self, key, change):
        if change.final:
            raise ApiError(404, f"job cluster {key} was deleted")
        return {"clusterName": key, "jobId": change.latest_job_id}, False


class LatestJobDiscoveryInfoHandler(ApiHandler):
    """``GET /api/v1/jobClusters/{name}/latestJobDiscoveryInfo``: one ``discovery_snapshot``
    of the cluster's latest active job; a JSON 404 when the cluster has none."""

    async def get(self, name):
        name = _check_name(name)
        await self.gateway.ask(GetCluster(name))  # a 404 for a cluster that does not exist
        job_id = latest_job_id(await self.gateway.ask(ListJobs(cluster=name, states=sorted(ACTIVE_JOB_STATES))))
        if job_id is None:
            raise ApiError(404, f"job cluster {name} has no active job")
        self.reply(discovery_snapshot(await self.gateway.ask(GetJob(job_id))))
