"""A running job's output, relayed to WebSocket and SSE subscribers.

Each subscriber gets its own ``OutputRelay``: TCP connections to every Started worker
of the job's last stage, reading length-prefixed batch frames.  The relay follows the
job: it looks the workers up again every second, so a replaced worker (after a crash)
is picked up and the output resumes.  Memory is bounded per subscriber: the relay
holds at most ``QUEUE_BATCHES`` batches; when the subscriber is slow the relay stops
reading, the worker's own per-connection buffer fills and the worker drops (and
counts) the batches for that subscriber only.

When the job ends, its workers have written their last output and closed their ports;
the relay ends the stream only after reading every connection to its end (at most
``END_DRAIN_S``), so a finite job's last batches (e.g. a final summary) reach the
subscriber before the end.

A subscriber may narrow what it gets (``mantis.runtime.subscription``): ``?filter=<expression>``
and ``?sampleMSec=<ms>``, applied here per subscriber.  By cluster name
(``/api/v1/jobconnectbyname/{clusterName}``) a ``ClusterOutputRelay`` follows the
cluster's latest active job, switching when a newer one is submitted or the current one
ends, and keeps the stream open between jobs.
"""
from __future__ import annotations

import asyncio
import logging
import time

import tornado.iostream
import tornado.tcpclient
import tornado.web
import tornado.websocket

from actors.messages import GetCluster, GetJob, ListJobs
from mantis.lifecycles.job_state import ACTIVE_JOB_STATES
from mantis.model import codec
from mantis.runtime.frames import read_frame_async
from mantis.runtime.subscription import Subscription, SubscriptionError
from webapi.gateway import ApiError
from webapi.handlers import ApiHandler, _check_job_id, _check_name
from webapi.job_streams import latest_job_id

log = logging.getLogger("mantis.streams")

QUEUE_BATCHES = 16
FOLLOW_INTERVAL_S = 1.0
# After the job ended: how long the relay waits for its connections to reach their end.
END_DRAIN_S = 5.0


def sink_workers(job: dict) -> dict[str, tuple[str, int]]:
    """worker id -> (host, port) of the Started workers of the job's last stage."""
    if not job["workers"]:
        return {}
    last = max(w["stageNum"] for w in job["workers"])
    out = {}
    for w in job["workers"]:
        port = w["metrics"].get("port") or (w["ports"] or [None])[0]  # the port it really serves on
        if w["stageNum"] == last and w["state"] == "Started" and port:
            out[w["workerId"]] = (w["host"] or "127.0.0.1", int(port))
    return out


class _Relay:
    """What the handlers read from: a bounded queue of batches, ended by None.

    ``ended_reason`` says why the stream ended on the server's side (None: the subscriber
    went, or ``close``).  Subclasses fill the queue from ``start`` on and release what
    they hold in ``_release``.
    """

    def __init__(self, gateway):
        self.gateway = gateway
        self.queue: asyncio.Queue = asyncio.Queue(maxsize=QUEUE_BATCHES)
        self.closed = False
        self.ended_reason: str | None = None

    async def batches(self):
        """Yield batches (lists of events) until the stream ends or ``close`` is called."""
        while not self.closed:
            batch = await self.queue.get()
            if batch is None:
                return
            yield batch

    def close(self) -> None:
        """Stop relaying; ``batches`` ends."""
        self.closed = True
        self._release()
        follower = getattr(self, "follower", None)
        if follower is not None:
            follower.cancel()
        if not self.queue.full():
            self.queue.put_nowait(None)

    def _release(self) -> None:
        pass


class OutputRelay(_Relay):
    """Batches of one job's output for one subscriber, following worker changes."""

    def __init__(self, gateway, job_id: str):
        super().__init__(gateway)
        self.job_id = job_id
        self.readers: dict[str, asyncio.Task] = {}

    async def start(self) -> None:
        """Check the job exists (ApiError 404 otherwise) and begin following it."""
        job = await self.gateway.ask(GetJob(self.job_id))
        self._connect(job)
        self.follower = asyncio.ensure_future(self._follow())

    def _connect(self, job: dict) -> None:
        """Read every Started last-stage worker not read yet; note when the job has ended."""
        if job["state"] in ("Completed", "Failed"):
            self.ended_reason = f"job {self.job_id} is {job['state']}"
            return
        for worker_id, (host, port) in sink_workers(job).items():
            task = self.readers.get(worker_id)
            if task is None or task.done():
                self.readers[worker_id] = asyncio.ensure_future(self._read(worker_id, host, port))

    async def _follow(self) -> None:
        while not self.closed and self.ended_reason is None:
            await asyncio.sleep(FOLLOW_INTERVAL_S)
            try:
                self._connect(await self.gateway.ask(GetJob(self.job_id)))
            except ApiError as exc:
                if exc.status == 404:
                    self.ended_reason = exc.message
        if self.closed:
            return
        # The workers wrote their last output before the job ended; it may still be on
        # its way here, so the end goes after it.
        reading = [task for task in self.readers.values() if not task.done()]
        if reading:
            await asyncio.wait(reading, timeout=END_DRAIN_S)
        for task in reading:
            task.cancel()  # a worker that never closed its port (e.g. hung, then replaced)
        await self.queue.put(None)

    async def _read(self, worker_id: str, host: str, port: int) -> None:
        try:
            stream = await tornado.tcpclient.TCPClient().connect(host, port, timeout=2)
        except (OSError, tornado.iostream.StreamClosedError, TimeoutError):
            return  # the follower tries again on its next look
        log.info("relay for %s reading worker %s at %s:%d", self.job_id, worker_id, host, port)
        try:
            while not self.closed:
                # The runtime's own frame reader, with its size check.
                await self.queue.put(await read_frame_async(stream.read_bytes))
        except (tornado.iostream.StreamClosedError, ValueError):  # FrameError is a ValueError
            pass
        finally:
            stream.close()

    def _release(self) -> None:
        for task in self.readers.values():
            task.cancel()


class ClusterOutputRelay(_Relay):
    """Batches of the output of a cluster's latest active job, following it to newer jobs.

    It looks the latest job up every ``FOLLOW_INTERVAL_S``; while the cluster has no
    active job it waits for one.  The stream ends only when the cluster is deleted (or
    on ``close``).
    """

    def __init__(self, gateway, cluster: str):
        super().__init__(gateway)
        self.cluster = cluster
        self.job_id = f"cluster {cluster}"  # for logs
        self.relay: OutputRelay | None = None
        self.pump: asyncio.Future | None = None

    async def start(self) -> None:
        """Check the cluster exists (ApiError 404 otherwise) and begin following it."""
        await self.gateway.ask(GetCluster(self.cluster))
        self.follower = asyncio.ensure_future(self._follow())

    async def _latest(self) -> str | None:
        return latest_job_id(await self.gateway.ask(ListJobs(cluster=self.cluster,
                                                             states=sorted(ACTIVE_JOB_STATES))))

    async def _follow(self) -> None:
        following = None
        while not self.closed:
            try:
                latest = await self._latest()
            except ApiError as exc:
                if exc.status == 404:
                    self.ended_reason = exc.message
                    break
                latest = following  # the master is busy: keep what we have
            if latest != following:
                self._stop_relay()
                following = latest
                if latest is not None:
                    log.info("relay for cluster %s now follows job %s", self.cluster, latest)
                    self.relay = OutputRelay(self.gateway, latest)
                    try:
                        await self.relay.start()
                        self.pump = asyncio.ensure_future(self._pump(self.relay))
                    except ApiError:
                        self._stop_relay()
                        following = None  # gone meanwhile: look again
            await asyncio.sleep(FOLLOW_INTERVAL_S)
        self._stop_relay()
        if not self.closed:
            await self.queue.put(None)

    async def _pump(self, relay: OutputRelay) -> None:
        async for batch in relay.batches():
            await self.queue.put(batch)

    def _stop_relay(self) -> None:
        if self.pump is not None:
            self.pump.cancel()
        if self.relay is not None:
            self.relay.close()
        self.relay = self.pump = None

    _release = _stop_relay


def subscription_from(handler: tornado.web.RequestHandler) -> Subscription:
    """The subscription a request's query asks for; ApiError 400 if it cannot be used."""
    try:
        return Subscription.parse(handler.get_query_argument("filter", None),
                                  handler.get_query_argument("sampleMSec", None))
    except SubscriptionError as exc:
        raise ApiError(400, str(exc)) from None


class SseOutputHandler(ApiHandler):
    """``GET /api/v1/jobs/{jobId}/output``: the job's output as server-sent events."""

    def make_relay(self, key: str):
        return OutputRelay(self.gateway, _check_job_id(key))

    async def get(self, key):
        select = subscription_from(self).sampler()
        self.relay = self.make_relay(key)
        await self.relay.start()
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.write(": connected\n\n")
        await self.flush()
        try:
            async for batch in self.relay.batches():
                events = select(batch, time.monotonic())
                if events:
                    self.write("".join(f"data: {codec.dumps(e)}\n\n" for e in events))
                    await self.flush()
            if self.relay.ended_reason:
                self.write(f"event: end\ndata: {codec.dumps({'reason': self.relay.ended_reason})}\n\n")
        except tornado.iostream.StreamClosedError:
            pass
        except Exception as exc:  # headers are out: end the stream, an error page is impossible
            log.warning("output stream of %s ended by %s: %s", self.relay.job_id, type(exc).__name__, exc)
        finally:
            self.relay.close()
        if not self.request.connection.stream.closed():
            self.finish()

    def on_connection_close(self):
        relay = getattr(self, "relay", None)
        if relay is not None:
            relay.close()


class WebSocketOutputHandler(tornado.websocket.WebSocketHandler):
    """``/api/v1/jobs/{jobId}/output/ws``: the job's output, one JSON event per message."""

    def initialize(self, gateway):
        self.gateway = gateway
        self.relay = None

    def make_relay(self, key: str):
        return OutputRelay(self.gateway, _check_job_id(key))

    async def open(self, key):
        try:
            self.select = subscription_from(self).sampler()
            self.relay = self.make_relay(key)
            await self.relay.start()
        except ApiError as exc:
            self.write_message(codec.dumps({"error": exc.message, "status": exc.status}))
            self.close(4000 + exc.status, exc.message[:120])
            return
        self.pump = asyncio.ensure_future(self._pump())

    async def _pump(self):
        try:
            async for batch in self.relay.batches():
                for event in self.select(batch, time.monotonic()):
                    await self.write_message(codec.dumps(event))
            if self.relay.ended_reason:
                self.close(1000, self.relay.ended_reason[:120])
        except tornado.websocket.WebSocketClosedError:
            pass
        finally:
            self.relay.close()

    def on_message(self, message):
        pass  # subscribers only listen

    def on_close(self):
        if self.relay is not None:
            self.relay.close()

    def check_origin(self, origin):
        return True


class SseClusterOutputHandler(SseOutputHandler):
    """``GET /api/v1/jobconnectbyname/{clusterName}``: the output of the cluster's latest
    active job as server-sent events, following it to newer jobs."""

    def make_relay(self, key: str):
        return ClusterOutputRelay(self.gateway, _check_name(key))


class WebSocketClusterOutputHandler(WebSocketOutputHandler):
    """``/api/v1/ws/jobconnectbyname/{clusterName}``: as ``SseClusterOutputHandler``, one
    JSON event per WebSocket message."""

    def make_relay(self, key: str):
        return ClusterOutputRelay(self.gateway, _check_name(key))
