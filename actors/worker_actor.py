"""WorkerActor: runs one worker of a job on its agent.

It loads the job's entry point, resolves its parameters, serves the stage's output on
the worker's assigned port and runs the pipeline on a thread of its own process (so
the actor stays free for control messages).  It reports StartInitiated and Started at
once, then a heartbeat with metrics every interval (the stage worker's counters, and
the process's pid, CPU and memory), and Completed or Failed when the pipeline ends.
An ActorExitRequest stops the pipeline and closes the port.
"""
from __future__ import annotations

import logging
import os

from actors.base import MantisActor
from actors.messages import RunWorker, UpdateUpstream, WorkerReport
from mantis.runtime.process_stats import ProcessStats
from mantis.runtime.worker_launch import build_stage_worker, worker_metrics

log = logging.getLogger("mantis.worker")


class WorkerActor(MantisActor):
    """One running worker: its stage's pipeline, its output port, reports to its agent."""

    ACCEPTS = {"new": (RunWorker,), "running": (UpdateUpstream,), "ended": (UpdateUpstream,)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.worker = None
        self.process_stats = None

    def receiveMsg_RunWorker(self, msg: RunWorker, sender):
        self.spec, self.agent = msg.spec, msg.agent
        self.process_stats = ProcessStats()
        self.parent_pid = os.getppid()
        self.phase = "running"
        self._report("StartInitiated")
        try:
            self.worker = build_stage_worker(self.spec)
            self.worker.start()
        except Exception as exc:  # user code may raise anything; the worker fails, not the agent
            self._end("Failed", f"could not start: {type(exc).__name__}: {exc}")
            return
        self._report("Started")
        log.info("worker %s (stage %d) started, output on port %d", self.spec.worker_key,
                 self.spec.stage, self.worker.port)
        self.start_ticking(msg.heartbeat_interval_s)

    def receiveMsg_UpdateUpstream(self, msg: UpdateUpstream, sender):
        if self.worker is not None and self.spec.stage > 1 and self.phase == "running":
            self.worker.update_upstream([tuple(e) for e in msg.endpoints], msg.upstream_finished)
            log.info("worker %s reads from %d upstream worker(s)%s", self.spec.worker_key, len(msg.endpoints),
                     "; the upstream stage has completed" if msg.upstream_finished else "")

    def metrics(self) -> dict:
        return worker_metrics(self.spec, self.worker, self.process_stats)

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

    def on_exit(self) -> None:
        self._stop()
