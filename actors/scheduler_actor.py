"""SchedulerActor: agents, their offers, pending workers and placement.

One per master (globalName ``mantis-scheduler``).  Agents register with their offer
(Mesos' shape) and the workers they already run, then send one heartbeat per interval
carrying every worker's status; the scheduler passes statuses on to the shards that
host the workers' jobs, places pending workers with the matcher in ``scheduler/`` and
tells agents to launch or stop workers.  An agent silent past its timeout is lost: its
workers are reported Failed so their jobs replace them elsewhere.

At scale the messages are what costs (Thespian's send path slows with every queued
send), so the scheduler works in windows of ``batch_window_s``: what it sends to one
shard or one agent within a window goes as one batch (statuses reach each shard as
StatusBatches in one message, not one message per job per heartbeat), and the
placement requests of a window are placed in one round.
"""
from __future__ import annotations

import logging
import time

from actors.base import MantisActor
from actors.messages import (
    AgentAction,
    AgentHeartbeat,
    CancelWorker,
    DescribeActors,
    Done,
    GetPending,
    InitScheduler,
    LaunchWorker,
    ListAgents,
    RegisterAgent,
    RegisterJob,
    Rejected,
    ReRegister,
    ResubmitWorker,
    ScheduleWorker,
    StatusBatch,
    StopWorkerOnAgent,
    UnregisterJob,
    UpdateUpstream,
    WorkerLaunched,
    WorkerSpec,
    WorkerStatus,
)
from mantis.model.ids import parse_worker_key
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.place_soon = False

    def receiveMsg_InitScheduler(self, msg: InitScheduler, sender):
        cfg = msg.config.scheduler
        self.agent_timeout_s = float(cfg.agent_timeout_s)
        self.orphan_grace_s = float(cfg.orphan_grace_s)
        self.started_at = time.time()
        self.placement = Placement()
        self.jobs: dict[str, object] = {}          # job id -> JobActor address
        self.agents: dict[str, dict] = {}          # agent id -> {address, last_seen, offer}
        self.pending: dict[str, tuple[WorkerSpec, object]] = {}  # key -> (spec, job actor)
        self.placed: dict[str, str] = {}           # worker key -> agent id
        # Launches an agent has not yet confirmed: key -> (spec, job actor, sent at).
        self.unconfirmed: dict[str, tuple[WorkerSpec, object, float]] = {}
        self.launch_confirm_s = float(cfg.launch_confirm_s)
        self.BATCH_WINDOW_S = float(cfg.batch_window_s)
        self.placed_at = 0.0  # monotonic time of the last placement round
        self.place_soon = False
        self.heartbeat_lag: dict[str, float] = {}  # agent id -> seconds its last heartbeat waited
        self.phase = "running"
        self.start_ticking(float(cfg.tick_s))
        log.info("scheduler running: agent timeout %.1fs", self.agent_timeout_s)
        heartbeat_s = float(msg.config.workers.heartbeat_interval_s)
        if self.agent_timeout_s < 2 * heartbeat_s:
            log.warning("scheduler.agent_timeout_s (%.1fs) is under two heartbeat intervals (%.1fs): "
                        "agents will be declared lost between heartbeats", self.agent_timeout_s, heartbeat_s)
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
            self.send_batched(sender, WorkerLaunched(key, agent_id, host, list(spec.ports)))
            return
        self.pending[key] = (msg.spec, sender)
        self.place_soon = True

    def after_message(self) -> None:
        if not self.place_soon:
            return
        # One placement round per window for every request that came meanwhile.
        waited = time.monotonic() - self.placed_at
        if waited >= self.BATCH_WINDOW_S:
            self._place()
        else:
            self.wake_within(self.BATCH_WINDOW_S - waited)

    def receiveMsg_CancelWorker(self, msg: CancelWorker, sender):
        self.unconfirmed.pop(msg.worker_key, None)
        if self.pending.pop(msg.worker_key, None) is not None:
            return
        agent_id = self.placed.pop(msg.worker_key, None) or msg.agent_id
        self.placement.release(msg.worker_key)
        agent = self.agents.get(agent_id) if agent_id else None
        if agent is not None:
            self.send_batched(agent["address"], StopWorkerOnAgent(msg.worker_key, msg.reason))

    def receiveMsg_UpdateUpstream(self, msg: UpdateUpstream, sender):
        agent = self.agents.get(self.placed.get(msg.worker_key, ""))
        if agent is not None:
            self.send_batched(agent["address"], msg)

    def _place(self) -> None:
        self.place_soon = False
        self.placed_at = time.monotonic()
        if not self.pending:
            return
        specs = [spec for spec, _ in self.pending.values()]
        started = time.perf_counter()
        assignments = self.placement.place(specs)
        if assignments:
            # One line per round: a line per worker, thousands a second at scale, costs
            # the actor more than placing them (each is a message to the log process).
            log.info("placed %d worker(s) on %d agent(s) in %.1f ms (%s%s); %d still pending",
                     len(assignments), len({a.agent_id for a in assignments}),
                     (time.perf_counter() - started) * 1000, assignments[0].worker_key,
                     f" .. {assignments[-1].worker_key}" if len(assignments) > 1 else "",
                     len(self.pending) - len(assignments))
        for a in assignments:
            spec, job = self.pending.pop(a.worker_key)
            spec.agent_id, spec.host, spec.ports = a.agent_id, a.hostname, list(a.ports)
            self.placed[spec.worker_key] = a.agent_id
            self.send_batched(self.agents[a.agent_id]["address"], LaunchWorker(spec))
            self.send_batched(job, WorkerLaunched(spec.worker_key, a.agent_id, a.hostname, list(a.ports)))
            self.unconfirmed[spec.worker_key] = (spec, job, time.time())
            log.debug("worker %s placed on agent %s ports %s", spec.worker_key, a.agent_id, a.ports)

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
        self.place_soon = True

    def receiveMsg_AgentHeartbeat(self, msg: AgentHeartbeat, sender):
        agent = self.agents.get(msg.agent_id)
        if agent is None:
            self.send(sender, ReRegister())  # we restarted or had declared it lost
            return
        now = time.time()
        agent["last_seen"] = now
        agent["address"] = sender
        if msg.sent_at is not None:
            self.heartbeat_lag[msg.agent_id] = max(0.0, now - msg.sent_at)
        self._route(msg.agent_id, msg.statuses)

    def _route(self, agent_id: str, statuses: list) -> None:
        """Pass statuses on to the shards of their jobs (batched per window)."""
        outgoing: dict[str, tuple[object, list]] = {}
        for status in statuses:
            self.unconfirmed.pop(status.worker_key, None)
            if status.status in ("Completed", "Failed"):
                self.placed.pop(status.worker_key, None)
                self.placement.release(status.worker_key)
            job_id, _ = parse_worker_key(status.worker_key)
            shard = self.jobs.get(job_id)
            if shard is not None:
                outgoing.setdefault(str(shard), (shard, []))[1].append((agent_id, status))
            elif (time.time() - self.started_at > self.orphan_grace_s
                  and status.status not in ("Completed", "Failed") and agent_id in self.agents):
                log.info("stopping orphan worker %s on agent %s", status.worker_key, agent_id)
                self.send_batched(self.agents[agent_id]["address"],
                                  StopWorkerOnAgent(status.worker_key, "its job is gone"))
        for shard, items in outgoing.values():
            self.send_batched(shard, StatusBatch(items))

    def on_tick(self, now: float) -> None:
        for agent_id, agent in list(self.agents.items()):
            if now - agent["last_seen"] > self.agent_timeout_s:
                self._agent_lost(agent_id, now - agent["last_seen"])
        self._relaunch_unconfirmed(now)
        self._place()

    def _relaunch_unconfirmed(self, now: float) -> None:
        """Send again a launch its agent has not reported on: a lost message must not
        leave a worker placed on paper but running nowhere (agents ignore duplicates)."""
        again: dict[str, list[str]] = {}
        for key, (spec, job, sent_at) in list(self.unconfirmed.items()):
            agent = self.agents.get(spec.agent_id)
            if agent is None:
                del self.unconfirmed[key]
            elif now - sent_at > self.launch_confirm_s:
                again.setdefault(spec.agent_id, []).append(key)
                self.send_batched(agent["address"], LaunchWorker(spec))
                self.send_batched(job, WorkerLaunched(key, spec.agent_id, spec.host, list(spec.ports)))
                self.unconfirmed[key] = (spec, job, now)
        for agent_id, keys in again.items():
            log.warning("agent %s: no word on %d launched worker(s) after %.1fs (%s%s); launching again",
                        agent_id, len(keys), self.launch_confirm_s, keys[0], " .." if len(keys) > 1 else "")

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
            lag = self.heartbeat_lag.get(a["agentId"])
            a["heartbeatLagS"] = round(lag, 4) if lag is not None else None
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
                job_id, number = parse_worker_key(key)
                if agent_id == msg.agent_id and job_id in self.jobs:
                    # The job replaces the worker at once; the disabled agent gets no new one.
                    self.send_batched(self.jobs[job_id], ResubmitWorker(
                        job_id, number, msg.user, f"agent {agent_id} drained", reply_to=self.myAddress))
                    moved.append(key)
        done = {"disable": "disabled", "enable": "enabled", "drain": "drained"}[msg.action]
        log.info("agent %s %s by %s%s", msg.agent_id, done, msg.user,
                 f"; moving {len(moved)} worker(s)" if moved else "")
        self.send(sender, Done({"agentId": msg.agent_id, "action": msg.action, "movedWorkers": moved}))
        self.place_soon = True

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
