"""WorkerActor: runs one worker of a job on its agent.

It loads the job's entry point, resolves its parameters, serves the stage's output on
the worker's assigned port and runs the pipeline on a thread of its own process (so
the actor stays free for control messages).  It reports StartInitiated and Started at
once, then a heartbeat with metrics every interval (the stage worker's counters, and
the process's pid, CPU and memory), and Completed or Failed when the pipeline ends.
An ActorExitRequest stops the pipeline and closes the port.

Every worker also serves its metrics at ``/metrics.json`` on a port of its own (its
``metricsPort`` in the heartbeat): the stage worker's counters, CPU seconds, memory and
the job's own metrics, which the Job Master reads.  A worker of stage 0 is the Job
Master (``mantis.autoscaling.job_master``): it runs no stage of the job, and its
endpoint serves its scaling decisions too.
"""
from __future__ import annotations

import logging
import os
import time

from actors.base import MantisActor
from actors.messages import DrainWorker, RunWorker, UpdateUpstream, WorkerReport
from mantis.autoscaling.job_master import JobMaster
from mantis.runtime.process_stats import ProcessStats, cpu_seconds, rss_mb
from mantis.runtime.stage_worker import StageWorker
from mantis.runtime.worker_metrics import WorkerMetricsServer
from mantis.sdk.job_dsl import Context, load_job, resolve_parameters

log = logging.getLogger("mantis.worker")


class WorkerActor(MantisActor):
    """One running worker: its stage's pipeline, its output port, reports to its agent."""

    ACCEPTS = {"new": (RunWorker,), "running": (UpdateUpstream, DrainWorker), "ended": (UpdateUpstream, DrainWorker)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.worker = None
        self.process_stats = None
        self.metrics_server = None

    def receiveMsg_RunWorker(self, msg: RunWorker, sender):
        self.spec, self.agent = msg.spec, msg.agent
        self.process_stats = ProcessStats()
        self.parent_pid = os.getppid()
        self.phase = "running"
        self._report("StartInitiated")
        try:
            self.metrics_server = WorkerMetricsServer(self.snapshot)
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
            job = load_job(self.spec.entry_point)
            params = resolve_parameters(job, self.spec.parameters)
            context = Context(job_id=self.spec.job_id, worker_index=self.spec.index,
                              worker_number=self.spec.number, stage_number=self.spec.stage,
                              parameters=params, workers_in_stage=self.spec.workers_in_stage)
            self.worker = self._stage_worker(job, context, self.spec.ports[0] if self.spec.ports else 0)
            self.worker.start()
        except Exception as exc:  # user code may raise anything; the worker fails, not the agent
            self._end("Failed", f"could not start: {type(exc).__name__}: {exc}")
            return
        self._report("Started")
        log.info("worker %s (stage %d) started, output on port %d", self.spec.worker_key,
                 self.spec.stage, self.worker.port)
        self.start_ticking(msg.heartbeat_interval_s)

    def _stage_worker(self, job, context, port: int):
        try:
            return StageWorker(job, context, host="0.0.0.0", port=port)
        except OSError as exc:
            # A process outside the scheduler's knowledge holds the offered port; serve on
            # any free one and report it, rather than fail and be replaced onto the same port.
            log.warning("worker %s: port %d unavailable (%s); using a free port", self.spec.worker_key,
                        port, exc.strerror)
            return StageWorker(job, context, host="0.0.0.0", port=0)

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
        m = {"pid": os.getpid(), "host": self.spec.host or "127.0.0.1"}
        if self.metrics_server is not None:
            m["metricsPort"] = self.metrics_server.port
        if self.process_stats is not None:
            m.update(self.process_stats.sample())
        if self.worker is not None:
            m.update(self.worker.metrics().to_json())
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

    def _report(self, status: str, reason: str = "") -> None:
        self.send(self.agent, WorkerReport(self.spec.worker_key, status, reason, self.metrics()))

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
        if self.worker is not None:
            self.worker.stop(2.0)
        if self.metrics_server is not None:
            self.metrics_server.close()
            self.metrics_server = None

    def on_exit(self) -> None:
        self._stop()
