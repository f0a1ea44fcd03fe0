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
    AgentGone,
    AgentHeartbeat,
    CancelWorker,
    DescribeActors,
    Done,
    GetPending,
    GetTimings,
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
    WorkerStatus,
)
from mantis.timings import Timing
from scheduler.placement_state import (
    AskAgentToRegister,
    AskJobToMove,
    LaunchOnAgent,
    PassStatuses,
    PlacementMachine,
    StopOnAgent,
    TellJobLaunched,
    TellUpstream,
)

log = logging.getLogger("mantis.scheduler")

GLOBAL_NAME = "mantis-scheduler"


def _failed(worker_key: str, reason: str) -> WorkerStatus:
    return WorkerStatus(worker_key, "Failed", reason)


class SchedulerActor(MantisActor):
    """Placement of workers onto registered agents."""

    ACCEPTS = {
        "new": (InitScheduler,),
        "running": (RegisterJob, UnregisterJob, ScheduleWorker, CancelWorker, RegisterAgent,
                    AgentHeartbeat, GetPending, ListAgents, AgentAction, UpdateUpstream, DescribeActors,
                    GetTimings, AgentGone, Done, Rejected),
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.place_soon = False
        self.round_timing = Timing("placement_round_seconds")

    def receiveMsg_InitScheduler(self, msg: InitScheduler, sender):
        cfg = msg.config.scheduler
        self.agent_timeout_s = float(cfg.agent_timeout_s)
        self.machine = PlacementMachine(launch_confirm_s=float(cfg.launch_confirm_s),
                                        orphan_grace_s=float(cfg.orphan_grace_s), started_at=time.time())
        self.BATCH_WINDOW_S = float(cfg.batch_window_s)
        self.placed_at = 0.0  # monotonic time of the last placement round
        self.place_soon = False
        self.phase = "running"
        self.start_ticking(float(cfg.tick_s))
        log.info("scheduler running: agent timeout %.1fs", self.agent_timeout_s)
        heartbeat_s = float(msg.config.workers.heartbeat_interval_s)
        if self.agent_timeout_s < 2 * heartbeat_s:
            log.warning("scheduler.agent_timeout_s (%.1fs) is under two heartbeat intervals (%.1fs): "
                        "agents will be declared lost between heartbeats", self.agent_timeout_s, heartbeat_s)
        self.send(sender, Done())

    def _carry_out(self, effects: list) -> None:
        """Send what the placement machine decided, batched per peer and window."""
        for e in effects:
            if isinstance(e, PassStatuses):
                self.send_batched(e.shard, StatusBatch(e.items))
            elif isinstance(e, LaunchOnAgent):
                self.send_batched(e.agent, LaunchWorker(e.spec))
            elif isinstance(e, TellJobLaunched):
                self.send_batched(e.job, WorkerLaunched(e.worker_key, e.agent_id, e.host, e.ports))
            elif isinstance(e, StopOnAgent):
                self.send_batched(e.agent, StopWorkerOnAgent(e.worker_key, e.reason))
            elif isinstance(e, AskJobToMove):
                self.send_batched(e.job, ResubmitWorker(e.job_id, e.number, e.user, e.reason,
                                                        reply_to=self.myAddress))
            elif isinstance(e, AskAgentToRegister):
                self.send(e.agent, ReRegister())
            elif isinstance(e, TellUpstream):
                self.send_batched(e.agent, UpdateUpstream(e.worker_key, e.endpoints, e.finished))
            else:
                raise TypeError(f"unknown placement effect {e!r}")

    # -- jobs -----------------------------------------------------------------------------

    def receiveMsg_RegisterJob(self, msg: RegisterJob, sender):
        self.machine.register_job(msg.job_id, sender)

    def receiveMsg_UnregisterJob(self, msg: UnregisterJob, sender):
        self.machine.unregister_job(msg.job_id)

    def receiveMsg_ScheduleWorker(self, msg: ScheduleWorker, sender):
        self._carry_out(self.machine.request(msg.spec, sender))
        if msg.spec.worker_key in self.machine.pending:
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
        self._carry_out(self.machine.cancel(msg.worker_key, msg.agent_id, msg.reason))

    def receiveMsg_UpdateUpstream(self, msg: UpdateUpstream, sender):
        self._carry_out(self.machine.upstream(msg.worker_key, msg.endpoints, msg.upstream_finished))

    def _place(self) -> None:
        self.place_soon = False
        self.placed_at = time.monotonic()
        effects = self.machine.place_round()
        self.round_timing.observe(time.monotonic() - self.placed_at)
        self._carry_out(effects)

    # -- agents ---------------------------------------------------------------------------

    def receiveMsg_RegisterAgent(self, msg: RegisterAgent, sender):
        offer = msg.offer
        known, effects = self.machine.register_agent(offer, sender, msg.workers, msg.statuses)
        log.info("agent %s %s: %s cpus, %s MB, %d running worker(s)", offer.agent_id,
                 "re-registered" if known else "registered", offer.cpus, offer.mem_mb, len(msg.workers))
        self._carry_out(effects)
        self.send(sender, Done({"agentId": offer.agent_id}))
        self.place_soon = True

    def receiveMsg_AgentHeartbeat(self, msg: AgentHeartbeat, sender):
        self._carry_out(self.machine.heartbeat(msg.agent_id, sender, msg.statuses, msg.sent_at))

    def receiveMsg_AgentGone(self, msg: AgentGone, sender):
        # A resource manager knows an agent is gone (Mesos' FAILURE) before any timeout.
        if msg.agent_id in self.machine.agents:
            log.warning("agent %s gone: %s", msg.agent_id, msg.reason)
            self._carry_out(self.machine.agent_lost(msg.agent_id, 0.0, _failed))
            self.place_soon = True

    def on_tick(self, now: float) -> None:
        self._carry_out(self.machine.lose_silent_agents(now, self.agent_timeout_s, _failed))
        self._carry_out(self.machine.relaunch_unconfirmed(now))
        self._place()

    # -- queries --------------------------------------------------------------------------

    def receiveMsg_GetPending(self, msg, sender):
        self.send(sender, Done(self.machine.pending_view()))

    def receiveMsg_ListAgents(self, msg, sender):
        self.send(sender, Done(self.machine.agents_view(time.time())))

    def receiveMsg_AgentAction(self, msg: AgentAction, sender):
        if msg.agent_id not in self.machine.agents:
            self.send(sender, Rejected(404, f"agent {msg.agent_id} is not registered"))
            return
        if msg.action not in ("disable", "enable", "drain"):
            self.send(sender, Rejected(404, f"unknown agent action {msg.action!r} (disable, enable, drain)"))
            return
        moved, effects = self.machine.set_agent(msg.agent_id, msg.action, msg.user)
        self._carry_out(effects)
        done = {"disable": "disabled", "enable": "enabled", "drain": "drained"}[msg.action]
        log.info("agent %s %s by %s%s", msg.agent_id, done, msg.user,
                 f"; moving {len(moved)} worker(s)" if moved else "")
        self.send(sender, Done({"agentId": msg.agent_id, "action": msg.action, "movedWorkers": moved}))
        self.place_soon = True

    def receiveMsg_GetTimings(self, msg, sender):
        self.send(msg.reply_to or sender, Done({"placementRound": self.round_timing.snapshot()}))

    def receiveMsg_DescribeActors(self, msg, sender):
        m = self.machine
        actors = [{"actor": "SchedulerActor", "address": str(self.myAddress), "state": self.phase,
                   "pendingWorkers": len(m.pending), "placedWorkers": len(m.placed)}]
        for agent_id, agent in sorted(m.agents.items()):
            actors.append({"actor": "AgentActor", "name": agent_id, "address": str(agent.address),
                           "state": "registered", "lastSeen": agent.last_seen,
                           "workers": m.workers_on(agent_id)})
        self.send(sender, Done(actors))

    def receiveMsg_Done(self, msg, sender):
        pass

    def receiveMsg_Rejected(self, msg, sender):
        log.warning("scheduler: %s", msg.reason)
