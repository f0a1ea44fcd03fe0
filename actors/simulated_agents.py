"""SimulatedAgentsActor: N simulated agents in one actor, for control-plane scale tests.

Towards the master's scheduler each simulated agent behaves like a real AgentActor: it
registers (its offer and the workers it runs), sends one AgentHeartbeat per interval
with every worker's status (also its own liveness), reports status changes between
heartbeats, obeys LaunchWorker and StopWorkerOnAgent, and re-registers when a scheduler
does not know it.  No worker process runs: the workers and their faults are the
deterministic model in ``mantis/tooling/agent_simulation.py``; this actor only turns its
reports into messages, on a timer (wakeupAfter), under simpleSystemBase and
multiprocTCPBase alike.

``run_simulated_agents`` is the process around it (like ``run_agent``): its own actor
system, the actor, and the shared loop that follows the master.
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass, replace

from actors.actor_system import LOG_FORMAT, ask, start_actor_system
from actors.agent_runner import follow_master, offer_from_config, stop_on_sigterm
from actors.base import MantisActor
from actors.messages import (
    AgentHeartbeat,
    AgentOfferInfo,
    ConnectMaster,
    Done,
    LaunchWorker,
    ListAgents,
    RegisterAgent,
    Rejected,
    ReRegister,
    StopWorkerOnAgent,
    UpdateUpstream,
    WorkerStatus,
)
from mantis.config import Config
from mantis.tooling.agent_simulation import Faults, Fleet, Timing

log = logging.getLogger("mantis.sim")

GLOBAL_NAME = "mantis-simulated-agents"
ZONES = ("a", "b", "c")
LISTING_TIMEOUT_S = 5.0  # after this, an unanswered ListAgents counts as "knows nobody"


# -- messages of this actor (only the process that starts it and tests send them) ---------

@dataclass
class StartSimulatedAgents:
    """Runner -> SimulatedAgentsActor: host ``count`` agents ``<prefix>-0..``, each
    offering ``offer``'s resources (its id, hostname and zone are set per agent)."""

    count: int
    offer: AgentOfferInfo
    heartbeat_interval_s: float
    seed: int = 0
    fail_rate: float = 0.0
    silence_rate: float = 0.0
    silence_s: tuple = (3.0, 15.0)
    prefix: str = "sim"
    log_to_stderr: bool = False  # write event lines straight to stderr (see _log_straight_to_stderr)


@dataclass
class InjectFault:
    """Make something go wrong now: ``kind`` "fail" (``target`` a worker key) or
    "silence" (``target`` an agent id, for ``seconds``)."""

    kind: str
    target: str
    seconds: float = 0.0
    reason: str = "simulated fault: injected"


@dataclass
class KeepTicking:
    """Runner -> SimulatedAgentsActor, every second: restart the timer if it was lost."""


@dataclass
class GetSimulationState:
    """Ask for a summary: agents, workers by state, heartbeats sent, worst lateness."""


@dataclass
class GetWorkerStory:
    """Ask what happened to one simulated worker: [(time, what, detail)]."""

    worker_key: str


class SimulatedAgentsActor(MantisActor):
    """Hosts N simulated agents; every one of them talks to the scheduler as a real agent."""

    RUNNING = (ConnectMaster, LaunchWorker, StopWorkerOnAgent, ReRegister, UpdateUpstream,
               InjectFault, KeepTicking, GetSimulationState, GetWorkerStory, Done, Rejected)
    ACCEPTS = {"new": (StartSimulatedAgents,), "running": RUNNING}

    def receiveMsg_StartSimulatedAgents(self, msg: StartSimulatedAgents, sender):
        if msg.log_to_stderr:
            _log_straight_to_stderr()
        self.offers: dict[str, AgentOfferInfo] = {}
        for i in range(msg.count):
            agent_id = f"{msg.prefix}-{i}"
            # Zones round-robin so zone-balancing constraints have something to balance;
            # an attribute given explicitly wins.
            attributes = {"zone": ZONES[i % len(ZONES)], **msg.offer.attributes}
            self.offers[agent_id] = replace(msg.offer, agent_id=agent_id, hostname=f"{agent_id}.local",
                                            attributes=attributes)
        interval = msg.heartbeat_interval_s
        self.fleet = Fleet(list(self.offers), seed=msg.seed,
                           faults=Faults(msg.fail_rate, msg.silence_rate, tuple(msg.silence_s)),
                           timing=Timing(heartbeat_interval_s=interval), now=time.time())
        self.scheduler = None
        self.listing: float | None = None  # when we asked the scheduler which agents it knows
        self.registrations = 0
        self.upstream_updates = 0
        self.messages_sent = 0
        self.started_at = time.time()
        self.cpu_at_start = time.process_time()
        self.phase = "running"
        # Ticks finer than the heartbeat, so status changes go out soon after they happen
        # (as a real agent reports them at once), but coarse enough to batch them.
        self.tick_s = min(0.25, max(0.02, interval / 4))
        self.last_tick = time.time()
        self.timers_lost = 0
        self.start_ticking(self.tick_s)
        log.info("simulating %d agent(s) %s-0..%s-%d: %s cpus, %s MB each, heartbeat %.2fs, seed %d, "
                 "fail rate %g, silence rate %g", msg.count, msg.prefix, msg.prefix, msg.count - 1,
                 msg.offer.cpus, msg.offer.mem_mb, interval, msg.seed, msg.fail_rate, msg.silence_rate)
        self.send(sender, Done({"agents": list(self.offers)}))

    def receiveMessage(self, message, sender):
        super().receiveMessage(message, sender)
        if self.phase == "running":
            self._keep_ticking()

    def _keep_ticking(self) -> None:
        # Thespian loses a wakeup that falls due while a process drains an overfull send
        # queue (its tx-only mode returns the wakeup to a caller that drops it), and then
        # every agent here would go silent for good.  Any message that finds the timer
        # overdue starts a new one; the runner sends KeepTicking every second for that.
        if time.time() - self.last_tick > max(4 * self.tick_s, 1.0):
            self.timers_lost += 1
            log.warning("simulated agents: no tick for %.1fs (a lost wakeup, or no CPU); restarting the timer",
                        time.time() - self.last_tick)
            self.last_tick = time.time()
            self.start_ticking(self.tick_s)

    def receiveMsg_KeepTicking(self, msg, sender):
        pass  # receiveMessage checks the timer after every message

    # -- master link ----------------------------------------------------------------------

    def receiveMsg_ConnectMaster(self, msg: ConnectMaster, sender):
        changed = msg.scheduler != self.scheduler
        self.scheduler = msg.scheduler
        self.listing = None
        if msg.scheduler is not None and changed:
            self._register(list(self.offers))
        elif msg.scheduler is None and changed:
            log.warning("simulated agents: master unreachable, holding heartbeats")
        self.send(sender, Done())

    def receiveMsg_ReRegister(self, msg, sender):
        # ReRegister names no agent, and all our agents share this address: ask the
        # scheduler which agents it knows, then register the ones it does not.
        self.scheduler = sender
        if self.listing is None:
            self.listing = time.time()
            self._send(sender, ListAgents())

    def _known_agents_listed(self, agents: list) -> None:
        self.listing = None
        known = {a.get("agentId") for a in agents if isinstance(a, dict)}
        self._register([a for a in self.offers if a not in known])

    def _register(self, agent_ids: list[str]) -> None:
        now = time.time()
        for agent_id in agent_ids:
            if self.fleet.is_silent(agent_id, now):
                continue  # it registers when its silence ends and the scheduler asks again
            live = self.fleet.live_workers(agent_id)
            self._send(self.scheduler, RegisterAgent(self.offers[agent_id], [w.spec for w in live],
                                                     [self._status(w.status(now)) for w in live]))
            log.info("agent %s registering with %s (%d worker(s))", agent_id, self.scheduler, len(live))

    def receiveMsg_Done(self, msg: Done, sender):
        if isinstance(msg.body, list):
            self._known_agents_listed(msg.body)  # the answer to ListAgents
        elif isinstance(msg.body, dict) and "agentId" in msg.body:
            self.registrations += 1  # the scheduler's acknowledgement of a RegisterAgent

    def receiveMsg_Rejected(self, msg: Rejected, sender):
        log.warning("simulated agents: %s", msg.reason)
        if self.listing is not None and sender == self.scheduler:
            self._known_agents_listed([])  # the scheduler would not list: register them all

    # -- workers --------------------------------------------------------------------------

    def receiveMsg_LaunchWorker(self, msg: LaunchWorker, sender):
        if msg.spec.agent_id not in self.offers:
            log.warning("launch of %s for agent %r, which is not simulated here", msg.spec.worker_key,
                        msg.spec.agent_id)
            return
        self.fleet.launch(msg.spec.agent_id, msg.spec, time.time())  # False: a repeated launch
        self._log_events()

    def receiveMsg_StopWorkerOnAgent(self, msg: StopWorkerOnAgent, sender):
        agent_id = self.fleet.agent_of(msg.worker_key)
        if agent_id is None:
            log.info("stop of worker %s, which no simulated agent ever ran", msg.worker_key)
            return
        self.fleet.stop(agent_id, msg.worker_key, time.time(), msg.reason)
        self._log_events()

    def receiveMsg_UpdateUpstream(self, msg: UpdateUpstream, sender):
        self.upstream_updates += 1  # simulated workers read from nobody

    def receiveMsg_InjectFault(self, msg: InjectFault, sender):
        now = time.time()
        reply: Done | Rejected
        if msg.kind == "fail" and self.fleet.fail(msg.target, now, msg.reason):
            reply = Done({"failed": msg.target})
        elif msg.kind == "silence" and msg.target in self.offers:
            self.fleet.silence(msg.target, now, msg.seconds)
            reply = Done({"silent": msg.target, "seconds": msg.seconds})
        else:
            reply = Rejected(404, f"no live worker or agent {msg.target!r} for a {msg.kind!r} fault")
        self._log_events()
        self.send(sender, reply)

    # -- time -----------------------------------------------------------------------------

    def on_tick(self, now: float) -> None:
        self.last_tick = now
        if self.listing is not None and now - self.listing > LISTING_TIMEOUT_S:
            log.warning("simulated agents: no list of agents from %s; registering them all", self.scheduler)
            self._known_agents_listed([])
        reports = self.fleet.tick(now)
        self._log_events()
        if self.scheduler is None:
            return  # like a real agent without a master: nothing to report to
        for report in reports:
            self._send(self.scheduler, AgentHeartbeat(report.agent_id, [self._status(s) for s in report.statuses],
                                                      sent_at=time.time()))

    def _send(self, target, message) -> None:
        self.messages_sent += 1
        self.send(target, message)

    @staticmethod
    def _status(s) -> WorkerStatus:
        return WorkerStatus(s.worker_key, s.status, s.reason, s.metrics)

    def _log_events(self) -> None:
        # A worker's routine steps are counted into one line (tens of thousands of lines
        # a second at scale would cost more than simulating them); failures, agents'
        # silences and anything with a detail get a line each.
        routine: dict[str, int] = {}
        for e in self.fleet.take_events():
            if e.worker_key and not e.detail and e.what != "Failed":
                routine[e.what] = routine.get(e.what, 0) + 1
                log.debug("agent %s worker %s %s", e.agent_id, e.worker_key, e.what)
            elif e.worker_key:
                log.info("agent %s worker %s %s%s", e.agent_id, e.worker_key, e.what,
                         f": {e.detail}" if e.detail else "")
            else:
                log.info("agent %s %s%s", e.agent_id, e.what, f": {e.detail}" if e.detail else "")
        if routine:
            log.info("simulated workers: %s", ", ".join(f"{n} {what}" for what, n in sorted(routine.items())))

    # -- queries --------------------------------------------------------------------------

    def receiveMsg_GetSimulationState(self, msg, sender):
        now = time.time()
        f = self.fleet
        self.send(sender, Done({
            "agents": len(self.offers), "connected": self.scheduler is not None,
            "silent": [a for a in self.offers if f.is_silent(a, now)],
            "workers": f.counts(), "heartbeats": f.heartbeats, "messagesSent": self.messages_sent,
            "registrations": self.registrations, "upstreamUpdates": self.upstream_updates,
            "maxHeartbeatLatenessS": round(f.max_lateness_s, 3), "timersLost": self.timers_lost,
            # CPU of this process since the start (the whole test process under simpleSystemBase).
            "upS": round(now - self.started_at, 3),
            "cpuSeconds": round(time.process_time() - self.cpu_at_start, 3),
        }))

    def receiveMsg_GetWorkerStory(self, msg: GetWorkerStory, sender):
        self.send(sender, Done(self.fleet.story(msg.worker_key)))


def _log_straight_to_stderr() -> None:
    """Send this actor's log lines to its process's stderr (the runner's), not to Thespian.

    Under multiprocTCPBase every log record is a message to Thespian's logger process.
    Thousands of worker events a second would fill this process's send queue, and past
    ~950 queued sends Thespian only transmits, delays heartbeats and loses wakeups.
    """
    if any(getattr(h, "mantis_direct", False) for h in log.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    setattr(handler, "mantis_direct", True)  # noqa: B010  (marks our own handler; logging has no slot for it)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


# -- the process around it ------------------------------------------------------------------

def start_simulated_agents(asys, config: Config, count: int, seed: int = 0, fail_rate: float = 0.0,
                           silence_rate: float = 0.0, prefix: str = "sim"):
    """Create and start a SimulatedAgentsActor in ``asys`` hosting ``count`` agents, each
    offering the ``agent`` config section's resources; returns its address."""
    address = asys.createActor(SimulatedAgentsActor, globalName=f"{GLOBAL_NAME}-{prefix}")
    ask(asys, address, StartSimulatedAgents(
        count, offer_from_config(config["agent"]), float(config["workers"]["heartbeat_interval_s"]),
        seed=seed, fail_rate=fail_rate, silence_rate=silence_rate, prefix=prefix,
        log_to_stderr=config["master"]["actor_system_base"] == "multiprocTCPBase"))
    return address


def run_simulated_agents(config: Config, master_url: str, count: int, seed: int = 0, fail_rate: float = 0.0,
                         silence_rate: float = 0.0, prefix: str = "sim",
                         stop: threading.Event | None = None) -> None:
    """Run ``count`` simulated agents until ``stop`` is set or SIGTERM: their own actor
    system (on the ``agent`` section's admin port), one SimulatedAgentsActor, and the
    loop that follows the master (a fixed URL or the leader in ZooKeeper) as
    ``run_agent`` does."""
    stop = stop_on_sigterm(stop)
    a = config["agent"]
    asys = start_actor_system(config["master"]["actor_system_base"], int(a["admin_port"]),
                              config["master"]["host"])
    try:
        actor = start_simulated_agents(asys, config, count, seed, fail_rate, silence_rate, prefix)
        log.info("simulated agents %s-0..%s-%d up (admin port %s), following %s", prefix, prefix, count - 1,
                 a["admin_port"], master_url)
        follow_master(asys, actor, config, master_url, stop, f"{prefix}-*",
                      every_poll=lambda: asys.tell(actor, KeepTicking()))
    finally:
        asys.shutdown()
