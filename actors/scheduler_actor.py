"""SchedulerActor: agents, their offers, pending workers and placement.

One per master (globalName ``mantis-scheduler``).  Agents register with their offer
(Mesos' shape) and the workers they already run, then send one heartbeat per interval
carrying every worker's status; the scheduler routes statuses to the JobActors, places
pending workers with the matcher in ``scheduler/`` and tells agents to launch or stop
workers.  An agent silent past its timeout is lost: its workers are reported Failed
so their jobs replace them elsewhere.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict

from actors.base import MantisActor
from actors.messages import (AgentAction, AgentHeartbeat, JobRequest, UpdateUpstream, CancelWorker, DescribeActors, Done, GetPending,
                             InitScheduler, LaunchWorker, ListAgents, RegisterAgent, RegisterJob,
                             Rejected, ReRegister, ScheduleWorker, StopWorkerOnAgent, UnregisterJob,
                             WorkerLaunched, WorkerSpec, WorkerStatus, WorkerStatusBatch)
from scheduler.placement import Placement

log = logging.getLogger("mantis.scheduler")

GLOBAL_NAME = "mantis-scheduler"


class SchedulerActor(MantisActor):
    """Placement of workers onto registered agents."""

    ACCEPTS = {
        "new": (InitScheduler,),
        "running": (RegisterJob, UnregisterJob, ScheduleWorker, CancelWorker, RegisterAgent,
                    AgentHeartbeat, GetPending, ListAgents, AgentAction, UpdateUpstream, DescribeActors,
                    Done, Rejected),
    }

    def receiveMsg_InitScheduler(self, msg: InitScheduler, sender):
        cfg = msg.config.get("scheduler", {})
        self.agent_timeout_s = float(cfg.get("agent_timeout_s", 5.0))
        self.orphan_grace_s = float(cfg.get("orphan_grace_s", 15.0))
        self.started_at = time.time()
        self.placement = Placement()
        self.jobs: dict[str, object] = {}          # job id -> JobActor address
        self.agents: dict[str, dict] = {}          # agent id -> {address, last_seen, offer}
        self.pending: dict[str, tuple[WorkerSpec, object]] = {}  # key -> (spec, job actor)
        self.placed: dict[str, str] = {}           # worker key -> agent id
        # Launches an agent has not yet confirmed: key -> (spec, job actor, sent at).
        self.unconfirmed: dict[str, tuple[WorkerSpec, object, float]] = {}
        self.launch_confirm_s = float(cfg.get("launch_confirm_s", 5.0))
        self.phase = "running"
        self.start_ticking(float(cfg.get("tick_s", 1.0)))
        log.info("scheduler running: agent timeout %.1fs", self.agent_timeout_s)
        self.send(sender, Done())

    # -- jobs -----------------------------------------------------------------------------

    def receiveMsg_RegisterJob(self, msg: RegisterJob, sender):
        self.jobs[msg.job_id] = sender

    def receiveMsg_UnregisterJob(self, msg: UnregisterJob, sender):
        self.jobs.pop(msg.job_id, None)

    def receiveMsg_ScheduleWorker(self, msg: ScheduleWorker, sender):
        self.jobs[msg.spec.job_id] = sender
        key = msg.spec.worker_key
        if key in self.placed:
            # A repeated request: the job never heard of the launch, so tell it again.
            agent_id = self.placed[key]
            spec = self.unconfirmed.get(key, (msg.spec,))[0]
            host = self.agents[agent_id]["offer"].hostname if agent_id in self.agents else ""
            self.send(sender, WorkerLaunched(key, agent_id, host, list(spec.ports)))
            return
        self.pending[key] = (msg.spec, sender)
        self._place()

    def receiveMsg_CancelWorker(self, msg: CancelWorker, sender):
        self.unconfirmed.pop(msg.worker_key, None)
        if self.pending.pop(msg.worker_key, None) is not None:
            return
        agent_id = self.placed.pop(msg.worker_key, None) or msg.agent_id
        self.placement.release(msg.worker_key)
        agent = self.agents.get(agent_id) if agent_id else None
        if agent is not None:
            self.send(agent["address"], StopWorkerOnAgent(msg.worker_key, msg.reason))

    def receiveMsg_UpdateUpstream(self, msg: UpdateUpstream, sender):
        agent = self.agents.get(self.placed.get(msg.worker_key, ""))
        if agent is not None:
            self.send(agent["address"], msg)

    def _place(self) -> None:
        if not self.pending:
            return
        specs = [spec for spec, _ in self.pending.values()]
        assignments = self.placement.place(specs)
        for a in assignments:
            spec, job = self.pending.pop(a.worker_key)
            spec.agent_id, spec.host, spec.ports = a.agent_id, a.hostname, list(a.ports)
            self.placed[spec.worker_key] = a.agent_id
            self.send(self.agents[a.agent_id]["address"], LaunchWorker(spec))
            self.send(job, WorkerLaunched(spec.worker_key, a.agent_id, a.hostname, list(a.ports)))
            self.unconfirmed[spec.worker_key] = (spec, job, time.time())
            log.info("worker %s placed on agent %s ports %s", spec.worker_key, a.agent_id, a.ports)

    # -- agents ---------------------------------------------------------------------------

    def receiveMsg_RegisterAgent(self, msg: RegisterAgent, sender):
        offer = msg.offer
        known = offer.agent_id in self.agents
        self.agents[offer.agent_id] = {"address": sender, "last_seen": time.time(), "offer": offer}
        self.placement.add_agent(offer)
        for spec in msg.workers:
            if spec.worker_key not in self.placed:
                self.placement.restore(spec)
                self.placed[spec.worker_key] = offer.agent_id
        log.info("agent %s %s: %s cpus, %s MB, %d running worker(s)", offer.agent_id,
                 "re-registered" if known else "registered", offer.cpus, offer.mem_mb, len(msg.workers))
        self._route(offer.agent_id, msg.statuses)
        self.send(sender, Done({"agentId": offer.agent_id}))
        self._place()

    def receiveMsg_AgentHeartbeat(self, msg: AgentHeartbeat, sender):
        agent = self.agents.get(msg.agent_id)
        if agent is None:
            self.send(sender, ReRegister())  # we restarted or had declared it lost
            return
        agent["last_seen"] = time.time()
        agent["address"] = sender
        self._route(msg.agent_id, msg.statuses)

    def _route(self, agent_id: str, statuses: list) -> None:
        by_job: dict[str, list] = defaultdict(list)
        for status in statuses:
            self.unconfirmed.pop(status.worker_key, None)
            by_job[status.worker_key.rpartition("/w")[0]].append(status)
            if status.status in ("Completed", "Failed"):
                self.placed.pop(status.worker_key, None)
                self.placement.release(status.worker_key)
        for job_id, batch in by_job.items():
            job = self.jobs.get(job_id)
            if job is not None:
                self.send(job, WorkerStatusBatch(job_id, agent_id, batch))
            elif time.time() - self.started_at > self.orphan_grace_s:
                for status in batch:
                    if status.status not in ("Completed", "Failed"):
                        log.info("stopping orphan worker %s on agent %s", status.worker_key, agent_id)
                        self.send(self.agents[agent_id]["address"],
                                  StopWorkerOnAgent(status.worker_key, "its job is gone"))

    def on_tick(self, now: float) -> None:
        for agent_id, agent in list(self.agents.items()):
            if now - agent["last_seen"] > self.agent_timeout_s:
                self._agent_lost(agent_id, now - agent["last_seen"])
        self._relaunch_unconfirmed(now)
        self._place()

    def _relaunch_unconfirmed(self, now: float) -> None:
        """Send again a launch its agent has not reported on: a lost message must not
        leave a worker placed on paper but running nowhere (agents ignore duplicates)."""
        for key, (spec, job, sent_at) in list(self.unconfirmed.items()):
            agent = self.agents.get(spec.agent_id)
            if agent is None:
                del self.unconfirmed[key]
            elif now - sent_at > self.launch_confirm_s:
                log.warning("worker %s: no word from agent %s after %.1fs; launching again", key,
                            spec.agent_id, now - sent_at)
                self.send(agent["address"], LaunchWorker(spec))
                self.send(job, WorkerLaunched(key, spec.agent_id, spec.host, list(spec.ports)))
                self.unconfirmed[key] = (spec, job, now)

    def _agent_lost(self, agent_id: str, silent_s: float) -> None:
        del self.agents[agent_id]
        keys = self.placement.remove_agent(agent_id)
        log.warning("agent %s lost after %.1fs of silence; %d worker(s) on it", agent_id, silent_s, len(keys))
        lost = [WorkerStatus(k, "Failed", f"agent {agent_id} lost") for k in keys]
        for k in keys:
            self.placed.pop(k, None)
            self.unconfirmed.pop(k, None)
        self._route(agent_id, lost)

    # -- queries --------------------------------------------------------------------------

    def receiveMsg_GetPending(self, msg, sender):
        reasons = self.placement.pending_reasons
        self.send(sender, Done([{"workerId": key, "jobId": spec.job_id, "stage": spec.stage,
                                 "reasons": reasons.get(key, ["waiting for the next placement round"])}
                                for key, (spec, _) in self.pending.items()]))

    def receiveMsg_ListAgents(self, msg, sender):
        now = time.time()
        agents = self.placement.snapshot()
        for a in agents:
            info = self.agents.get(a["agentId"])
            a["lastHeartbeatAgoS"] = round(now - info["last_seen"], 3) if info else None
        self.send(sender, Done(agents))

    def receiveMsg_AgentAction(self, msg: AgentAction, sender):
        if msg.agent_id not in self.agents:
            self.send(sender, Rejected(404, f"agent {msg.agent_id} is not registered"))
            return
        if msg.action not in ("disable", "enable", "drain"):
            self.send(sender, Rejected(404, f"unknown agent action {msg.action!r} (disable, enable, drain)"))
            return
        if msg.action == "enable":
            self.placement.enable_agent(msg.agent_id)
        else:
            self.placement.disable_agent(msg.agent_id)
        moved = []
        if msg.action == "drain":
            for key, agent_id in list(self.placed.items()):
                job_id, _, number = key.rpartition("/w")
                if agent_id == msg.agent_id and job_id in self.jobs:
                    # The job replaces the worker at once; the disabled agent gets no new one.
                    self.send(self.jobs[job_id], JobRequest(job_id, "resubmitWorker", {
                        "number": int(number), "user": msg.user, "reason": f"agent {agent_id} drained"},
                        reply_to=self.myAddress))
                    moved.append(key)
        done = {"disable": "disabled", "enable": "enabled", "drain": "drained"}[msg.action]
        log.info("agent %s %s by %s%s", msg.agent_id, done, msg.user,
                 f"; moving {len(moved)} worker(s)" if moved else "")
        self.send(sender, Done({"agentId": msg.agent_id, "action": msg.action, "movedWorkers": moved}))
        self._place()

    def receiveMsg_DescribeActors(self, msg, sender):
        actors = [{"actor": "SchedulerActor", "address": str(self.myAddress), "state": self.phase,
                   "pendingWorkers": len(self.pending), "placedWorkers": len(self.placed)}]
        for agent_id, agent in sorted(self.agents.items()):
            actors.append({"actor": "AgentActor", "name": agent_id, "address": str(agent["address"]),
                           "state": "registered", "lastSeen": agent["last_seen"],
                           "workers": sorted(k for k, a in self.placed.items() if a == agent_id)})
        self.send(sender, Done(actors))

    def receiveMsg_Done(self, msg, sender):
        pass

    def receiveMsg_Rejected(self, msg, sender):
        log.warning("scheduler: %s", msg.reason)
