"""Job discovery and status as server-sent events: what changes, pushed as it changes.

Three streams, each one JSON object per ``data:`` line (camelCase, as Mantis names them):

- ``GET /api/v1/jobDiscoveryStream/{jobId}``: where the job's workers are, per stage
  (``discovery_snapshot``);
- ``GET /api/v1/jobStatusStream/{jobId}``: the job's state and every worker's state
  (``status_snapshot``);
- ``GET /api/v1/lastSubmittedJobIdStream/{clusterName}``: the cluster's latest job that
  is still active (``{"clusterName", "jobId"}``, ``jobId`` null when there is none).

The actors push nothing to the API, so each subscriber has its own loop that asks them
through the gateway every ``POLL_INTERVAL_S`` and writes an event only when the
snapshot differs from the last one written; the first snapshot is written at once.  A
comment line every ``KEEPALIVE_S`` of silence keeps proxies (and clients detecting a
dead master) from giving up on an idle stream.  The loop ends when the client goes.

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

from actors.messages import GetCluster, GetJob, ListJobs
from mantis import codec
from mantis.ids import parse_job_id
from mantis.job_state import ACTIVE_JOB_STATES
from webapi.gateway import ApiError
from webapi.handlers import ApiHandler, _check_job_id, _check_name

log = logging.getLogger("mantis.job_streams")

POLL_INTERVAL_S = 0.5
KEEPALIVE_S = 10.0
TERMINAL_JOB_STATES = frozenset({"Completed", "Failed"})


def _worker_port(worker: dict) -> int | None:
    # The port the worker reports serving on wins over the one it was offered: a worker
    # whose offered port was taken serves on another and says so in its metrics.
    port = worker["metrics"].get("port") or (worker["ports"] or [None])[0]
    return int(port) if port else None


def discovery_snapshot(job: dict) -> dict:
    """Where ``job``'s workers are (``job`` as ``GET /api/v1/jobs/{id}`` shows it).

    ``{"jobId", "state", "stages": {"<n>": [{"workerIndex", "workerNumber", "host",
    "port", "state"}, ...]}}``: every stage of the job is present (an empty list while
    it has no worker), its workers ordered by index.  ``host``/``port`` are null until
    the worker is placed.  Metrics that change with every heartbeat are left out, so
    equal snapshots mean nothing a consumer connects to has changed.
    """
    stages: dict[str, list] = {str(n): [] for n in sorted(int(k) for k in job.get("stageSizes") or {})}
    for w in job["workers"]:
        stages.setdefault(str(w["stageNum"]), []).append({
            "workerIndex": w["workerIndex"], "workerNumber": w["workerNumber"],
            "host": w["host"] or w["metrics"].get("host"), "port": _worker_port(w), "state": w["state"],
        })
    for workers in stages.values():
        workers.sort(key=lambda w: (w["workerIndex"], w["workerNumber"]))
    return {"jobId": job["jobId"], "state": job["state"], "stages": stages}


def status_snapshot(job: dict) -> dict:
    """The job's state and each worker's (``job`` as ``GET /api/v1/jobs/{id}`` shows it).

    ``{"jobId", "state", "killReason", "killMessage", "workers": [{"stageNum",
    "workerIndex", "workerNumber", "state", "reason"}, ...]}``, workers ordered by stage
    and index.  A terminal job lists no workers (they are archived by then).
    """
    workers = [{"stageNum": w["stageNum"], "workerIndex": w["workerIndex"], "workerNumber": w["workerNumber"],
                "state": w["state"], "reason": w["reason"]} for w in job["workers"]]
    workers.sort(key=lambda w: (w["stageNum"], w["workerIndex"], w["workerNumber"]))
    return {"jobId": job["jobId"], "state": job["state"], "killReason": job.get("killReason"),
            "killMessage": job.get("killMessage"), "workers": workers}


def latest_job_id(jobs: list[dict]) -> str | None:
    """The id with the highest job number among ``jobs`` (summaries with ``jobId``), None if empty."""
    ids = [j["jobId"] for j in jobs]
    return max(ids, key=lambda job_id: parse_job_id(job_id)[1]) if ids else None


class PollingSseHandler(ApiHandler):
    """Base of the streams: validate, first snapshot (4xx JSON on failure), then events on change.

    A subclass names its stream (``stream``), validates the path argument (``check``)
    and returns ``(snapshot, final)`` from ``snapshot``; ``final`` True ends the stream
    after that snapshot is sent.  ``snapshot`` raises ApiError like any handler: a 404
    once streaming ends the stream (the job or cluster is gone), other errors (a busy
    master's 503) are tried again at the next poll.
    """

    stream = "stream"

    def initialize(self, gateway):
        super().initialize(gateway)
        self._gone = asyncio.Event()

    def check(self, key: str) -> str:
        raise NotImplementedError

    async def snapshot(self, key: str) -> tuple[dict, bool]:
        raise NotImplementedError

    async def get(self, key):
        key = self.check(key)
        current, final = await self.snapshot(key)
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        log.info("%s subscriber for %s connected from %s", self.stream, key, self.request.remote_ip)
        why = "client disconnected"
        try:
            await self._send(f"data: {codec.dumps(current)}\n\n")
            last = current
            while not final:
                if await self._client_gone_within(POLL_INTERVAL_S):
                    break
                try:
                    current, final = await self.snapshot(key)
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
        log.info("%s subscriber for %s from %s disconnected: %s", self.stream, key, self.request.remote_ip, why)
        if not self.request.connection.stream.closed():
            self.finish()

    async def _send(self, text: str) -> None:
        self.write(text)
        await self.flush()
        self._last_write = time.monotonic()

    async def _client_gone_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._gone.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def on_connection_close(self):
        self._gone.set()


class JobDiscoveryStreamHandler(PollingSseHandler):
    """``GET /api/v1/jobDiscoveryStream/{jobId}``: ``discovery_snapshot`` on every change."""

    stream = "jobDiscoveryStream"

    def check(self, key):
        return _check_job_id(key)

    async def snapshot(self, key):
        job = await self.gateway.ask(GetJob(key))
        return discovery_snapshot(job), job["state"] in TERMINAL_JOB_STATES


class JobStatusStreamHandler(PollingSseHandler):
    """``GET /api/v1/jobStatusStream/{jobId}``: ``status_snapshot`` on every change."""

    stream = "jobStatusStream"

    def check(self, key):
        return _check_job_id(key)

    async def snapshot(self, key):
        job = await self.gateway.ask(GetJob(key))
        return status_snapshot(job), job["state"] in TERMINAL_JOB_STATES


class LastSubmittedJobIdStreamHandler(PollingSseHandler):
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
