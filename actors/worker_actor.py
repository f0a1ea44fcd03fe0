"""WorkerActor: runs one worker of a job on its agent.

It loads the job's entry point, resolves its parameters, serves the stage's output on
the worker's assigned port and runs the pipeline on a thread of its own process (so
the actor stays free for control messages).  It reports StartInitiated and Started at
once, then a heartbeat with metrics every interval (the stage worker's counters, and
the process's pid, CPU and memory), and Completed or Failed when the pipeline ends.
An ActorExitRequest stops the pipeline and closes the port.

With an announce target, a Started worker also joins its stage's serverset in
ZooKeeper on its own session (``mantis.runtime.announcer``) and leaves it when it stops.

Every worker also serves its metrics on a port of its own (its ``metricsPort`` in the
heartbeat; ``mantis.runtime.worker_metrics``): ``/metrics.json``, the stage worker's
counters, CPU seconds, memory and the job's own metrics, which the Job Master reads, and
``/metrics`` in Prometheus' format.  A worker of stage 0 is the Job Master
(``mantis.autoscaling.job_master``): it runs no stage of the job, and its endpoint serves
its scaling decisions too.
"""
from __future__ import annotations

import logging
import os
import time

from actors.base import MantisActor
from actors.messages import DrainWorker, RunWorker, UpdateUpstream, WorkerReport
from mantis.autoscaling.job_master import JobMaster
from mantis.runtime.announcer import ServersetMember, member_record, stage_path
from mantis.runtime.health_endpoint import HealthEndpoint
from mantis.runtime.process_stats import ProcessStats, cpu_seconds, rss_mb
from mantis.runtime.stage_worker import StageWorker
from mantis.runtime.worker_launch import build_stage_worker, worker_metrics
from mantis.runtime.worker_metrics import WorkerMetricsServer

log = logging.getLogger("mantis.worker")


class WorkerActor(MantisActor):
    """One running worker: its stage's pipeline, its output port, reports to its agent."""

    ACCEPTS = {"new": (RunWorker,), "running": (UpdateUpstream, DrainWorker), "ended": (UpdateUpstream, DrainWorker)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.worker = None
        self.process_stats = None
        self.member: ServersetMember | None = None
        self.health_endpoint: HealthEndpoint | None = None
        self.metrics_server: WorkerMetricsServer | None = None

    def receiveMsg_RunWorker(self, msg: RunWorker, sender):
        self.spec, self.agent = msg.spec, msg.agent
        self.process_stats = ProcessStats()
        self.parent_pid = os.getppid()
        self.phase = "running"
        self._report("StartInitiated")
        try:
            self.metrics_server = self._serve_metrics()
        except OSError as exc:  # no port for metrics: the worker still runs, unscaled
            log.warning("worker %s: no metrics endpoint (%s)", self.spec.worker_key, exc)
        if self.spec.stage == 0:
            self.worker = JobMaster(self.spec.job_id)
            self.worker.start()
            self._report("Started")
            log.info("worker %s is the job master of %s", self.spec.worker_key, self.spec.job_id)
            self.start_ticking(msg.heartbeat_interval_s)
            return
        try:
            self.worker = build_stage_worker(self.spec)
            job, context = self.worker.job, self.worker.context
            self.worker.start()
            self.health_endpoint = self._health_endpoint(job, context)
        except Exception as exc:  # user code may raise anything; the worker fails, not the agent
            self._end("Failed", f"could not start: {type(exc).__name__}: {exc}")
            return
        checks = {"health": [c.to_json() for c in job.health_checks],
                  "readiness": [c.to_json() for c in job.readiness_checks]}
        self._report("Started", checks=checks)
        log.info("worker %s (stage %d) started, output on port %d, metrics on port %s", self.spec.worker_key,
                 self.spec.stage, self.worker.port, self.metrics_server.port if self.metrics_server else "-")
        if msg.announce is not None:
            self.member = ServersetMember(
                msg.announce, stage_path(msg.announce.root, self.spec.job_id, self.spec.stage),
                member_record(self.spec.host or "127.0.0.1", self.worker.port, self.spec.index))
            self.member.start()
        self.start_ticking(msg.heartbeat_interval_s)

    def _health_endpoint(self, job, context) -> HealthEndpoint:
        """The runtime's /health and /ready: the pipeline runs, and the job's hooks agree."""
        def running() -> bool:
            return self.worker is not None and self.worker.state in ("created", "running")

        def health() -> bool:
            return running() and (job.health is None or bool(job.health(context)))

        def ready() -> bool:
            return running() and (job.ready is None or bool(job.ready(context)))

        # A free port, reported as the healthPort metric: the assigned ports are the job's
        # (its output, and whatever else it listens on); only the agent next to it probes this.
        return HealthEndpoint(health, ready, host="127.0.0.1", port=0)

    def _serve_metrics(self) -> WorkerMetricsServer:
        """This worker's metrics endpoint, on a free port reported as ``metricsPort``: the
        ports the scheduler assigned are the job's own (its output, and whatever else it
        listens on, as a TCP health check's ``portIndex`` may point at), as Mantis keeps a
        worker's metricsPort apart from its ports."""
        labels = {"job_id": self.spec.job_id, "stage": self.spec.stage, "worker_index": self.spec.index,
                  "worker_number": self.spec.number}
        return WorkerMetricsServer(self.snapshot, labels, port=0)

    def receiveMsg_UpdateUpstream(self, msg: UpdateUpstream, sender):
        if self.worker is not None and self.spec.stage > 1 and self.phase == "running":
            self.worker.update_upstream([tuple(e) for e in msg.endpoints], msg.upstream_finished)
            log.info("worker %s reads from %d upstream worker(s)%s", self.spec.worker_key, len(msg.endpoints),
                     "; the upstream stage has completed" if msg.upstream_finished else "")

    def receiveMsg_DrainWorker(self, msg: DrainWorker, sender):
        """Scaled away: hand over the input (blocking this actor, at most ``timeout_s``), then end."""
        if self.phase != "running":
            return
        drained = isinstance(self.worker, StageWorker) and self.worker.drain(msg.timeout_s)
        log.info("worker %s %s", self.spec.worker_key,
                 "drained: every event sent to it was handed on" if drained else "ends without draining")
        self._end("Completed", f"{msg.reason}{'' if drained else ' (not drained)'}")

    def metrics(self) -> dict:
        m = worker_metrics(self.spec, self.worker, self.process_stats)
        if self.health_endpoint is not None:
            m["healthPort"] = self.health_endpoint.port
        if self.metrics_server is not None:
            m["metricsPort"] = self.metrics_server.port
        return m

    def snapshot(self) -> dict:
        """What the metrics endpoint serves (on its own threads): counters that only grow
        and gauges, read without disturbing the heartbeat's CPU share."""
        m = {"pid": os.getpid(), "workerKey": self.spec.worker_key, "cpuSeconds": round(cpu_seconds(), 3),
             "rssMB": round(rss_mb(), 1), "at": time.time()}
        worker = self.worker
        if worker is not None:
            m.update(worker.metrics().to_json())
            if isinstance(worker, JobMaster):
                m["decisions"] = worker.decisions()
        return m

    def _report(self, status: str, reason: str = "", checks: dict | None = None) -> None:
        self.send(self.agent, WorkerReport(self.spec.worker_key, status, reason, self.metrics(), checks))

    def on_tick(self, now: float) -> None:
        if self.phase != "running":
            return
        if os.getppid() != self.parent_pid:
            # Our agent's process is gone (killed, or its system shut down mid-launch):
            # a worker never outlives its agent, so it cannot run unseen and unmanaged.
            log.warning("worker %s: agent process gone, exiting", self.spec.worker_key)
            self._stop()
            os._exit(0)
        state = self.worker.state
        if state == "completed":
            self._end("Completed", "stage completed")
        elif state == "failed":
            self._end("Failed", self.worker.error or "pipeline failed")
        else:
            self._report("Heartbeat")

    def _end(self, status: str, reason: str) -> None:
        self.phase = "ended"
        self.stop_ticking()
        self._stop()
        log.info("worker %s %s: %s", self.spec.worker_key, status, reason)
        self._report(status, reason)

    def _stop(self) -> None:
        if self.member is not None:  # leave the serverset before the port closes
            self.member.stop()
            self.member = None
        if self.health_endpoint is not None:
            self.health_endpoint.close()
            self.health_endpoint = None
        if self.worker is not None:
            self.worker.stop(2.0)
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None

    def on_exit(self) -> None:
        self._stop()
