"""AgentActor: one machine's agent, the parent of the WorkerActors that run there.

It lives in the agent's own actor system, so the workers survive a master crash.  It
registers with the master's scheduler (its offer plus the workers it already runs,
which is how a restarted master reattaches them), sends one heartbeat per interval
carrying every worker's status, reports a status change at once, and reports a
worker whose process died (ChildActorExited, e.g. after kill -9) as Failed.
"""
from __future__ import annotations

import logging
import time

from thespian.actors import ActorExitRequest, ChildActorExited

from actors.base import MantisActor
from actors.health_checker import HealthCheckerActor
from actors.messages import (
    AgentHeartbeat,
    ConnectMaster,
    Done,
    DrainWorker,
    ForgetWorkerHealth,
    GetAgentState,
    HealthVerdict,
    LaunchWorker,
    RegisterAgent,
    Rejected,
    ReRegister,
    RunWorker,
    StartAgent,
    StopWorkerOnAgent,
    UpdateUpstream,
    WatchWorkerHealth,
    WorkerReport,
    WorkerStatus,
)

# Workers are forked from this process: importing WorkerActor (the runtime and the job
# SDK with it) here lets every worker start without importing them again, sharing
# those pages with its siblings.
from actors.worker_actor import WorkerActor
from mantis.lifecycles.job_state import STAGE_SCALED_DOWN
from mantis.runtime.health_probes import ProbeTarget

log = logging.getLogger("mantis.agent")

TERMINAL = ("Completed", "Failed")


class AgentActor(MantisActor):
    """Runs workers on this host and reports them to whichever master leads."""

    RUNNING = (ConnectMaster, LaunchWorker, StopWorkerOnAgent, ReRegister, WorkerReport,
               UpdateUpstream, GetAgentState, HealthVerdict, Done, Rejected)
    ACCEPTS = {"new": (StartAgent,), "running": RUNNING}

    def receiveMsg_StartAgent(self, msg: StartAgent, sender):
        self.offer = msg.offer
        self.heartbeat_interval_s = msg.heartbeat_interval_s
        self.worker_silence_s = msg.worker_silence_s
        self.announce = msg.announce
        self.scheduler = None
        self.workers: dict[str, dict] = {}  # key -> {spec, address, status, reason, metrics, seen, stopping}
        self.health_checker = None  # created with the first worker that has checks
        self.phase = "running"
        self.start_ticking(self.heartbeat_interval_s)
        log.info("agent %s started: %s cpus, %s MB, ports %s, attributes %s", self.offer.agent_id,
                 self.offer.cpus, self.offer.mem_mb, self.offer.ports, self.offer.attributes)
        self.send(sender, Done({"agentId": self.offer.agent_id}))

    # -- master link ------------------------------------------------------------------

    def receiveMsg_ConnectMaster(self, msg: ConnectMaster, sender):
        changed = msg.scheduler != self.scheduler
        self.scheduler = msg.scheduler
        if msg.scheduler is not None and changed:
            self._register()
        elif msg.scheduler is None and changed:
            log.warning("agent %s: master unreachable, holding heartbeats", self.offer.agent_id)
        self.send(sender, Done())

    def receiveMsg_ReRegister(self, msg, sender):
        self.scheduler = sender
        self._register()

    def _register(self) -> None:
        live = [w for w in self.workers.values() if w["status"] not in TERMINAL]
        self.send(self.scheduler, RegisterAgent(self.offer, [w["spec"] for w in live],
                                                [self._status(w, w["status"]) for w in live]))
        log.info("agent %s registering with %s (%d worker(s))", self.offer.agent_id, self.scheduler, len(live))

    def _status(self, w: dict, status: str) -> WorkerStatus:
        return WorkerStatus(w["spec"].worker_key, status, w["reason"], dict(w["metrics"]))

    def _report(self, statuses: list) -> None:
        if self.scheduler is not None and statuses:
            self.send(self.scheduler, AgentHeartbeat(self.offer.agent_id, statuses, sent_at=time.time()))

    # -- workers ----------------------------------------------------------------------

    def receiveMsg_LaunchWorker(self, msg: LaunchWorker, sender):
        spec = msg.spec
        if spec.worker_key in self.workers:
            return  # a repeated launch (master retry) of a worker we already run
        address = self.createActor(WorkerActor)
        self.workers[spec.worker_key] = {"spec": spec, "address": address, "status": "Launched",
                                         "reason": "", "metrics": {}, "seen": time.time(),
                                         "stopping": None}
        self.send(address, RunWorker(spec, self.myAddress, self.heartbeat_interval_s, self.announce))
        log.info("agent %s launching worker %s (%s)", self.offer.agent_id, spec.worker_key, spec.entry_point)

    def receiveMsg_WorkerReport(self, msg: WorkerReport, sender):
        w = self.workers.get(msg.worker_key)
        if w is None:
            return
        w["seen"] = time.time()
        w["metrics"] = msg.metrics
        if msg.status == "Heartbeat" or msg.status == w["status"]:
            return
        if msg.status == "Started" and self._watch_health(w, msg):
            return  # held as StartInitiated until its readiness checks pass
        w["status"], w["reason"] = msg.status, msg.reason
        log.info("worker %s %s %s", msg.worker_key, msg.status, msg.reason)
        self._report([self._status(w, msg.status)])
        if msg.status in TERMINAL:
            self.workers.pop(msg.worker_key, None)
            self._forget_health(msg.worker_key)
            self.send(w["address"], ActorExitRequest())

    # -- health and readiness checks --------------------------------------------------

    def _watch_health(self, w: dict, msg: WorkerReport) -> bool:
        """If the worker has checks (its stage's, or its job code's), hand them to the
        health checker and hold its Started report until the checker says it is ready."""
        spec, declared = w["spec"], msg.checks or {}
        health = list(spec.health_checks) + list(declared.get("health", []))
        readiness = list(spec.readiness_checks) + list(declared.get("readiness", []))
        if not health and not readiness:
            return False
        if self.health_checker is None:
            self.health_checker = self.createActor(HealthCheckerActor)
        metrics = msg.metrics or {}
        target = ProbeTarget(
            host="127.0.0.1", ports=tuple(spec.ports), output_port=metrics.get("port"),
            health_port=metrics.get("healthPort"),
            env={"MANTIS_WORKER_ID": spec.worker_key, "MANTIS_JOB_ID": spec.job_id,
                 "MANTIS_WORKER_INDEX": str(spec.index), "MANTIS_WORKER_NUMBER": str(spec.number),
                 "MANTIS_WORKER_PID": str(metrics.get("pid", "")),
                 "MANTIS_WORKER_PORT": str(metrics.get("port", ""))})
        w["held"] = True
        self.send(self.health_checker, WatchWorkerHealth(spec.worker_key, health, readiness, target))
        return True

    def _forget_health(self, key: str) -> None:
        if self.health_checker is not None:
            self.send(self.health_checker, ForgetWorkerHealth(key))

    def receiveMsg_HealthVerdict(self, msg: HealthVerdict, sender):
        w = self.workers.get(msg.worker_key)
        if w is None or w["status"] in TERMINAL or w["stopping"] is not None:
            return
        if msg.verdict == "ready":
            if w.get("held"):
                w["held"] = False
                w["status"], w["reason"] = "Started", ""
                log.info("worker %s ready: Started", msg.worker_key)
                self._report([self._status(w, "Started")])
            return
        # Unhealthy: report it Failed with the reason (the master replaces it), then stop it.
        reason = f"unhealthy: {msg.reason}"
        log.info("agent %s replacing worker %s: %s", self.offer.agent_id, msg.worker_key, reason)
        w["status"], w["reason"] = "Failed", reason
        self._report([self._status(w, "Failed")])
        self.workers.pop(msg.worker_key, None)
        self._forget_health(msg.worker_key)
        self.send(w["address"], ActorExitRequest())

    def receiveMsg_UpdateUpstream(self, msg: UpdateUpstream, sender):
        w = self.workers.get(msg.worker_key)
        if w is not None:
            self.send(w["address"], msg)

    def receiveMsg_StopWorkerOnAgent(self, msg: StopWorkerOnAgent, sender):
        w = self.workers.get(msg.worker_key)
        if w is None:
            self._report([WorkerStatus(msg.worker_key, "Completed", "not running on this agent")])
            return
        first = w["stopping"] is None
        w["stopping"] = msg.reason
        self._forget_health(msg.worker_key)
        log.info("agent %s stopping worker %s: %s", self.offer.agent_id, msg.worker_key, msg.reason)
        if msg.reason == STAGE_SCALED_DOWN and first:
            # Scaled away: it hands over what it was sent, reports Completed, then exits.
            self.send(w["address"], DrainWorker(msg.worker_key, msg.reason))
        else:
            self.send(w["address"], ActorExitRequest())

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender):
        if msg.childAddress == self.health_checker:
            log.warning("agent %s: health checker exited; a new one starts with the next worker",
                        self.offer.agent_id)
            self.health_checker = None
            return
        for key, w in list(self.workers.items()):
            if w["address"] == msg.childAddress:
                del self.workers[key]
                self._forget_health(key)
                if w["stopping"] is not None:
                    status, reason = "Completed", f"stopped: {w['stopping']}"
                else:
                    status, reason = "Failed", "worker process exited unexpectedly"
                log.info("worker %s exited: %s", key, reason)
                w["reason"] = reason
                self._report([self._status(w, status)])
                return

    def on_tick(self, now: float) -> None:
        fresh = [self._status(w, w["status"]) for w in self.workers.values()
                 if now - w["seen"] <= self.worker_silence_s and w["status"] not in TERMINAL]
        if self.scheduler is not None:
            # Sent even with no workers: the heartbeat is also the agent's own liveness.
            self.send(self.scheduler, AgentHeartbeat(self.offer.agent_id, fresh, sent_at=time.time()))

    def receiveMsg_GetAgentState(self, msg, sender):
        self.send(sender, Done({
            "agentId": self.offer.agent_id, "connected": self.scheduler is not None,
            "workers": {k: {"status": w["status"], "metrics": w["metrics"]} for k, w in self.workers.items()},
        }))

    def receiveMsg_Done(self, msg, sender):
        pass

    def receiveMsg_Rejected(self, msg, sender):
        log.warning("agent %s: %s", self.offer.agent_id, msg.reason)
