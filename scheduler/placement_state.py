"""The scheduler's placement state as a machine of the lifecycles' kind (see
``mantis/lifecycles/tables.py``): enum states, a table from (state, event) to the
handler that returns effects, one ``handle`` that stamps a stimulus id and tells a
bounded story per worker key, and a ``validate()`` of the invariants.

Each worker key the scheduler knows is in one placement state::

    Released ──requested──► Pending ──placed──► Launching ──confirmed──► Running
        ▲                      │                 │  ▲ relaunch-due          │
        │                      │                 │  └──────────┘            │
        └──── cancelled ───────┴── cancelled, ended, agent-lost ────────────┘

* **Pending**: a job asked for it; it waits for a placement round (the matcher).
* **Launching**: placed on an agent and sent there, not yet confirmed: no status of it
  came from its agent.  Past ``launch_confirm_s`` the launch is sent again.
* **Running**: its agent reported it (or reported it already running when it
  registered: ``restored``).  Its resources stay accounted in the pool until it ends.
* **Released**: not tracked (the state of a key never seen, and of one that ended);
  its record is dropped, its story stays.

The machine does no I/O: the SchedulerActor feeds it what its messages say and
carries out the effects it returns (``LaunchOnAgent``, ``StopOnAgent``,
``TellJobLaunched``, ``PassStatuses``, ``AskJobToMove``, ``AskAgentToRegister``) with
its batching.  Addresses are opaque values to it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mantis.lifecycles import tables
from mantis.lifecycles.tables import (
    Meta,
    Story,
    StoryEntry,
    Transition,
    TransitionRejected,
    TransitionTable,
    check,
    new_stimulus_id,
    run_transition,
    states_with,
)
from mantis.model.ids import parse_worker_key
from scheduler.placement import Placement

log = logging.getLogger("mantis.scheduler")

ENDED_STATUSES = ("Completed", "Failed")


class PlacementState(StrEnum):
    """Where a worker key stands in placement."""

    PENDING = "Pending"
    LAUNCHING = "Launching"
    RUNNING = "Running"
    RELEASED = "Released"


PENDING = PlacementState.PENDING
LAUNCHING = PlacementState.LAUNCHING
RUNNING = PlacementState.RUNNING
RELEASED = PlacementState.RELEASED

META_STATES: dict[PlacementState, frozenset[Meta]] = {
    PENDING: frozenset({Meta.ACTIVE}),
    LAUNCHING: frozenset({Meta.ACTIVE, Meta.RUNNING}),
    RUNNING: frozenset({Meta.ACTIVE, Meta.RUNNING}),
    RELEASED: frozenset({Meta.TERMINAL}),
}
# The states that hold resources on an agent (a record in ``placed``).
ON_AGENT = states_with(META_STATES, Meta.RUNNING)


# -- effects (what the actor carries out; never named like a message) -------------------

@dataclass(frozen=True)
class LaunchOnAgent:
    """Send the agent at ``agent`` a launch of ``spec`` (placed: agent, host, ports set)."""

    agent: Any
    spec: Any


@dataclass(frozen=True)
class StopOnAgent:
    """Tell the agent at ``agent`` to stop ``worker_key``."""

    agent: Any
    worker_key: str
    reason: str


@dataclass(frozen=True)
class TellJobLaunched:
    """Tell the job (its shard) at ``job`` where ``worker_key`` was launched."""

    job: Any
    worker_key: str
    agent_id: str
    host: str
    ports: list[int]


@dataclass(frozen=True)
class PassStatuses:
    """Pass ``items`` ((agent id, WorkerStatus) pairs) to the shard at ``shard``."""

    shard: Any
    items: list


@dataclass(frozen=True)
class AskJobToMove:
    """Ask the job at ``job`` to resubmit worker ``number`` (its agent is drained)."""

    job: Any
    job_id: str
    number: int
    user: str
    reason: str


@dataclass(frozen=True)
class AskAgentToRegister:
    """Tell the agent at ``agent`` to register again (it is not known here)."""

    agent: Any


@dataclass(frozen=True)
class TellUpstream:
    """Tell the agent at ``agent`` where the upstream workers of ``worker_key`` are."""

    agent: Any
    worker_key: str
    endpoints: list
    finished: bool


Effect = (LaunchOnAgent | StopOnAgent | TellJobLaunched | PassStatuses | AskJobToMove | AskAgentToRegister
          | TellUpstream)

# How long word of a worker's upstream waits for its agent to register with it.
HELD_UPSTREAM_S = 300.0


# -- records ---------------------------------------------------------------------------

@dataclass(slots=True)
class AgentRecord:
    """A registered agent: where to reach it, when it was last heard of, its offer."""

    address: Any
    last_seen: float
    offer: Any


@dataclass(eq=False, slots=True)
class WorkerPlacement:
    """One worker key's placement: its state, spec, job and (once placed) agent."""

    key: str
    state: PlacementState = RELEASED
    spec: Any = None
    job: Any = None
    agent_id: str = ""
    sent_at: float = 0.0  # when the launch was last sent (Launching)
    machine: PlacementMachine | None = field(default=None, repr=False)

    def validate(self) -> None:
        """This record's own rules (the machine's validate() checks the rest)."""
        if self.state in ON_AGENT:
            check(bool(self.agent_id), f"worker {self.key} is {self.state} with no agent")
        if self.state == PENDING:
            check(self.spec is not None, f"worker {self.key} is Pending with no spec")


# -- handlers: handler(record, now, stimulus_id, **details) -> effects --------------------

def _m(rec: WorkerPlacement) -> PlacementMachine:
    assert rec.machine is not None
    return rec.machine


def _requested(rec: WorkerPlacement, now: float, sid: str, spec: Any, job: Any) -> list:
    rec.spec, rec.job = spec, job
    return []


def _requested_again(rec: WorkerPlacement, now: float, sid: str, spec: Any, job: Any) -> list:
    # A repeated request: the job never heard of the launch, so tell it again (with the
    # ports of the launch while it is unconfirmed, else with those the job holds).
    m = _m(rec)
    shown = rec.spec if rec.state == LAUNCHING and rec.spec is not None else spec
    agent = m.agents.get(rec.agent_id)
    host = agent.offer.hostname if agent is not None else ""
    return [TellJobLaunched(job, rec.key, rec.agent_id, host, list(shown.ports))]


def _placed(rec: WorkerPlacement, now: float, sid: str, agent_id: str, host: str, ports: list[int]) -> list:
    spec = rec.spec
    spec.agent_id, spec.host, spec.ports = agent_id, host, list(ports)
    rec.agent_id, rec.sent_at = agent_id, now
    m = _m(rec)
    return [LaunchOnAgent(m.agents[agent_id].address, spec),
            TellJobLaunched(rec.job, rec.key, agent_id, host, list(ports))]


def _relaunch(rec: WorkerPlacement, now: float, sid: str) -> list:
    spec = rec.spec
    rec.sent_at = now
    return [LaunchOnAgent(_m(rec).agents[spec.agent_id].address, spec),
            TellJobLaunched(rec.job, rec.key, spec.agent_id, spec.host, list(spec.ports))]


def _restored(rec: WorkerPlacement, now: float, sid: str, spec: Any, agent_id: str) -> list:
    _m(rec).placement.restore(spec)
    rec.agent_id = agent_id
    if rec.spec is None:
        rec.spec = spec
    return []


def _cancelled(rec: WorkerPlacement, now: float, sid: str, agent_id: str | None, reason: str) -> list:
    m = _m(rec)
    target = rec.agent_id or agent_id
    m.placement.release(rec.key)
    agent = m.agents.get(target) if target else None
    return [StopOnAgent(agent.address, rec.key, reason)] if agent is not None else []


def _ended(rec: WorkerPlacement, now: float, sid: str) -> list:
    _m(rec).placement.release(rec.key)
    return []


def _drained(rec: WorkerPlacement, now: float, sid: str, user: str, reply: list) -> list:
    m = _m(rec)
    job_id, number = parse_worker_key(rec.key)
    job = m.jobs.get(job_id)
    if job is None:
        return []
    reply.append(rec.key)
    # The job replaces the worker at once; the disabled agent gets no new one.
    return [AskJobToMove(job, job_id, number, user, f"agent {rec.agent_id} drained")]


_NOT_PLACED = "it is not placed on any agent yet"
_PLACED = "it is already placed on an agent"
_UNKNOWN = "the scheduler does not track it"

PLACEMENT_TABLE = TransitionTable(
    "worker placement",
    {
        RELEASED: {"requested": Transition(PENDING, _requested),
                   "restored": Transition(RUNNING, _restored),
                   "cancelled": Transition(RELEASED, _cancelled)},
        PENDING: {"requested": Transition(PENDING, _requested),
                  "placed": Transition(LAUNCHING, _placed),
                  "restored": Transition(RUNNING, _restored),
                  "cancelled": Transition(RELEASED)},
        LAUNCHING: {"requested": Transition(LAUNCHING, _requested_again),
                    "confirmed": Transition(RUNNING),
                    "relaunch-due": Transition(LAUNCHING, _relaunch),
                    "cancelled": Transition(RELEASED, _cancelled),
                    "ended": Transition(RELEASED, _ended),
                    "agent-lost": Transition(RELEASED),
                    "agent-drained": Transition(LAUNCHING, _drained)},
        RUNNING: {"requested": Transition(RUNNING, _requested_again),
                  "confirmed": Transition(RUNNING),
                  "cancelled": Transition(RELEASED, _cancelled),
                  "ended": Transition(RELEASED, _ended),
                  "agent-lost": Transition(RELEASED),
                  "agent-drained": Transition(RUNNING, _drained)},
    },
    reasons={
        **{(RELEASED, e): _UNKNOWN for e in ("placed", "confirmed", "relaunch-due", "ended", "agent-lost",
                                             "agent-drained")},
        **{(PENDING, e): _NOT_PLACED for e in ("confirmed", "relaunch-due", "ended", "agent-lost",
                                               "agent-drained")},
        (LAUNCHING, "placed"): _PLACED,
        (LAUNCHING, "restored"): _PLACED,
        (RUNNING, "placed"): _PLACED,
        (RUNNING, "restored"): _PLACED,
        (RUNNING, "relaunch-due"): "its agent confirmed it already",
    },
)


# -- the machine -------------------------------------------------------------------------

class PlacementMachine:
    """Every worker key's placement state, the jobs and agents it involves, and the pool.

    ``pending`` (request order), ``placed`` (Launching and Running, placement order) and
    ``unconfirmed`` (the Launching ones) index the records by state.
    """

    def __init__(self, *, launch_confirm_s: float = 5.0, orphan_grace_s: float = 30.0,
                 started_at: float | None = None, placement: Placement | None = None):
        self.launch_confirm_s = float(launch_confirm_s)
        self.orphan_grace_s = float(orphan_grace_s)
        self.started_at = time.time() if started_at is None else started_at
        self.placement = placement or Placement()
        self.jobs: dict[str, Any] = {}             # job id -> its JobActor (shard) address
        self.agents: dict[str, AgentRecord] = {}
        self.heartbeat_lag: dict[str, float] = {}  # agent id -> seconds its last heartbeat waited
        # worker key -> (when, endpoints, finished): upstream word for workers whose agent
        # has not registered with this scheduler yet (``upstream``).
        self.held_upstreams: dict[str, tuple[float, list, bool]] = {}
        self.pending: dict[str, WorkerPlacement] = {}
        self.placed: dict[str, WorkerPlacement] = {}
        self.unconfirmed: dict[str, WorkerPlacement] = {}
        # Bounded: the last 20 transitions of the last 1,000 worker keys touched (a
        # story costs about a kilobyte per key).
        self.log = Story(per_key=20, max_keys=1_000)
        # True while a placement round files its assignments: the matcher has written
        # them all into the pool at once, so the rules hold again only at its end.
        self._in_round = False

    # -- the one entry ----------------------------------------------------------------

    def handle(self, key: str, event: str, now: float | None = None, *, stimulus_id: str | None = None,
               **details: Any) -> list:
        """Apply ``event`` to worker ``key`` through PLACEMENT_TABLE and return the effects,
        or raise TransitionRejected with the reason (recorded in the story)."""
        rec = self.pending.get(key) or self.placed.get(key) or WorkerPlacement(key, machine=self)
        before = rec.state
        effects = run_transition(PLACEMENT_TABLE, rec, event, time.time() if now is None else now,
                                 key=key, story=self.log, stimulus_id=stimulus_id or new_stimulus_id(event),
                                 **details)
        after = rec.state
        if after != before:
            self._file(rec, before)
        if tables.VALIDATE and not self._in_round:
            self.validate()
        return effects

    def _file(self, rec: WorkerPlacement, before: PlacementState) -> None:
        """Move ``rec`` to the index of its new state."""
        key = rec.key
        if before == PENDING:
            del self.pending[key]
        elif before in ON_AGENT and rec.state not in ON_AGENT:
            del self.placed[key]
        if before == LAUNCHING:
            del self.unconfirmed[key]
        if rec.state == PENDING:
            self.pending[key] = rec
        elif rec.state in ON_AGENT:
            self.placed[key] = rec
            if rec.state == LAUNCHING:
                self.unconfirmed[key] = rec

    def _try(self, key: str, event: str, now: float, stimulus_id: str, **details: Any) -> list:
        """``handle``, with a rejection being a no-op (it is in the story)."""
        try:
            return self.handle(key, event, now, stimulus_id=stimulus_id, **details)
        except TransitionRejected:
            return []

    def state_of(self, key: str) -> PlacementState:
        rec = self.pending.get(key) or self.placed.get(key)
        return rec.state if rec is not None else RELEASED

    def story(self, *keys: str) -> list[StoryEntry]:
        """What happened to these worker keys, oldest first."""
        return self.log.story(*keys)

    # -- what the actor's messages say --------------------------------------------------

    def register_job(self, job_id: str, job: Any) -> None:
        self.jobs[job_id] = job

    def unregister_job(self, job_id: str) -> None:
        self.jobs.pop(job_id, None)

    def request(self, spec: Any, job: Any, now: float | None = None) -> list:
        """A job asks for a worker (ScheduleWorker)."""
        self.jobs[spec.job_id] = job
        return self.handle(spec.worker_key, "requested", now, stimulus_id=new_stimulus_id("schedule"),
                           spec=spec, job=job)

    def cancel(self, key: str, agent_id: str | None, reason: str, now: float | None = None) -> list:
        """A job no longer wants a worker (CancelWorker)."""
        return self.handle(key, "cancelled", now, stimulus_id=new_stimulus_id("cancel"),
                           agent_id=agent_id, reason=reason)

    def place_round(self, now: float | None = None) -> list:
        """One matcher round over every pending worker."""
        if not self.pending:
            return []
        now = time.time() if now is None else now
        specs = [rec.spec for rec in self.pending.values()]
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
        sid = new_stimulus_id("place")
        effects: list = []
        self._in_round = True
        try:
            for a in assignments:
                effects += self.handle(a.worker_key, "placed", now, stimulus_id=sid, agent_id=a.agent_id,
                                       host=a.hostname, ports=list(a.ports))
        finally:
            self._in_round = False
        if tables.VALIDATE:
            self.validate()
        return effects

    def register_agent(self, offer: Any, address: Any, workers: list, statuses: list,
                       now: float | None = None) -> tuple[bool, list]:
        """An agent registers with its offer and the workers it already runs; returns
        whether it was known and the effects (its statuses passed on)."""
        now = time.time() if now is None else now
        known = offer.agent_id in self.agents
        self.agents[offer.agent_id] = AgentRecord(address, now, offer)
        self.placement.add_agent(offer)
        sid = new_stimulus_id("register-agent")
        told: list = []
        for spec in workers:
            if spec.worker_key not in self.placed:
                self.handle(spec.worker_key, "restored", now, stimulus_id=sid, spec=spec,
                            agent_id=offer.agent_id)
            held = self.held_upstreams.pop(spec.worker_key, None)
            if held is not None:
                told.append(TellUpstream(address, spec.worker_key, held[1], held[2]))
        return known, self.statuses(offer.agent_id, statuses, now, stimulus_id=sid) + told

    def upstream(self, key: str, endpoints: list, finished: bool, now: float | None = None) -> list:
        """Where worker ``key``'s upstream workers are: told to its agent at once, or, while
        no agent has registered with it, held (the latest word) and told when one does.

        A recovered job tells its workers before their agents are back with this scheduler,
        and tells a worker again only when its upstream changes: dropped, the word would
        leave the worker reading from nobody.  Word older than HELD_UPSTREAM_S is dropped
        (the worker's agent never came back)."""
        now = time.time() if now is None else now
        rec = self.placed.get(key)
        agent = self.agents.get(rec.agent_id) if rec is not None else None
        if agent is not None:
            return [TellUpstream(agent.address, key, endpoints, finished)]
        self.held_upstreams[key] = (now, endpoints, finished)
        for stale in [k for k, (at, _, _) in self.held_upstreams.items() if now - at > HELD_UPSTREAM_S]:
            del self.held_upstreams[stale]
        return []

    def heartbeat(self, agent_id: str, address: Any, statuses: list, sent_at: float | None,
                  now: float | None = None) -> list:
        """An agent's heartbeat; an unknown agent is asked to register again."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return [AskAgentToRegister(address)]  # we restarted or had declared it lost
        now = time.time() if now is None else now
        agent.last_seen = now
        agent.address = address
        if sent_at is not None:
            self.heartbeat_lag[agent_id] = max(0.0, now - sent_at)
        return self.statuses(agent_id, statuses, now)

    def statuses(self, agent_id: str, statuses: list, now: float | None = None, *,
                 stimulus_id: str | None = None) -> list:
        """Workers' statuses from an agent: confirm launches, release ended workers, and
        pass them on to the shards of their jobs (orphans past the grace are stopped)."""
        now = time.time() if now is None else now
        sid = stimulus_id or new_stimulus_id("status")
        effects: list = []
        outgoing: dict[str, tuple[Any, list]] = {}
        for status in statuses:
            key = status.worker_key
            ended = status.status in ENDED_STATUSES
            rec = self.placed.get(key)
            if ended:
                if rec is not None:
                    self.handle(key, "ended", now, stimulus_id=sid)
                elif key in self.pending:
                    self._try(key, "ended", now, sid)
                else:
                    self.placement.release(key)
            elif rec is not None and rec.state == LAUNCHING:
                self.handle(key, "confirmed", now, stimulus_id=sid)
            job_id, _ = parse_worker_key(key)
            shard = self.jobs.get(job_id)
            if shard is not None:
                outgoing.setdefault(str(shard), (shard, []))[1].append((agent_id, status))
            elif (now - self.started_at > self.orphan_grace_s
                  and not ended and agent_id in self.agents):
                log.info("stopping orphan worker %s on agent %s", key, agent_id)
                effects.append(StopOnAgent(self.agents[agent_id].address, key, "its job is gone"))
        effects += [PassStatuses(shard, items) for shard, items in outgoing.values()]
        return effects

    def lose_silent_agents(self, now: float, timeout_s: float, failed_status: Any) -> list:
        """Declare lost every agent silent past ``timeout_s``; ``failed_status(key, text)``
        builds the Failed status each of their workers is reported with."""
        effects: list = []
        for agent_id, agent in list(self.agents.items()):
            if now - agent.last_seen > timeout_s:
                effects += self.agent_lost(agent_id, now - agent.last_seen, failed_status, now)
        return effects

    def agent_lost(self, agent_id: str, silent_s: float, failed_status: Any, now: float | None = None) -> list:
        """Forget an agent: its workers are released and reported Failed."""
        now = time.time() if now is None else now
        del self.agents[agent_id]
        keys = self.placement.remove_agent(agent_id)
        log.warning("agent %s lost after %.1fs of silence; %d worker(s) on it", agent_id, silent_s, len(keys))
        sid = new_stimulus_id("agent-lost")
        for key in keys:
            if key in self.placed:
                self.handle(key, "agent-lost", now, stimulus_id=sid)
        # Any record still on the agent (the pool did not account for it) goes too.
        for key in [k for k, rec in self.placed.items() if rec.agent_id == agent_id]:
            self.handle(key, "agent-lost", now, stimulus_id=sid)
            keys.append(key)
        text = f"agent {agent_id} lost"
        return self.statuses(agent_id, [failed_status(k, text) for k in keys], now, stimulus_id=sid)

    def relaunch_unconfirmed(self, now: float) -> list:
        """Send again a launch its agent has not reported on: a lost message must not
        leave a worker placed on paper but running nowhere (agents ignore duplicates)."""
        again: dict[str, list[str]] = {}
        effects: list = []
        sid = ""
        for key, rec in list(self.unconfirmed.items()):
            if now - rec.sent_at > self.launch_confirm_s:
                sid = sid or new_stimulus_id("relaunch")
                again.setdefault(rec.agent_id, []).append(key)
                effects += self.handle(key, "relaunch-due", now, stimulus_id=sid)
        for agent_id, keys in again.items():
            log.warning("agent %s: no word on %d launched worker(s) after %.1fs (%s%s); launching again",
                        agent_id, len(keys), self.launch_confirm_s, keys[0], " .." if len(keys) > 1 else "")
        return effects

    def set_agent(self, agent_id: str, action: str, user: str, now: float | None = None) -> tuple[list[str], list]:
        """Disable, enable or drain a registered agent; returns the keys asked to move
        (drain) and the effects."""
        if action == "enable":
            self.placement.enable_agent(agent_id)
        else:
            self.placement.disable_agent(agent_id)
        moved: list[str] = []
        effects: list = []
        if action == "drain":
            sid = new_stimulus_id("drain")
            for key, rec in list(self.placed.items()):
                if rec.agent_id == agent_id:
                    effects += self.handle(key, "agent-drained", now, stimulus_id=sid, user=user, reply=moved)
        return moved, effects

    # -- queries ------------------------------------------------------------------------

    def pending_view(self) -> list[dict]:
        """The pending workers as the API shows them (``/api/v1/pendingWorkers``)."""
        reasons = self.placement.pending_reasons
        return [{"workerId": key, "jobId": rec.spec.job_id, "stage": rec.spec.stage,
                 "reasons": reasons.get(key, ["waiting for the next placement round"])}
                for key, rec in self.pending.items()]

    def agents_view(self, now: float) -> list[dict]:
        """Every agent as the API shows it (``/api/v1/agents``)."""
        agents = self.placement.snapshot()
        for a in agents:
            info = self.agents.get(a["agentId"])
            a["lastHeartbeatAgoS"] = round(now - info.last_seen, 3) if info else None
            lag = self.heartbeat_lag.get(a["agentId"])
            a["heartbeatLagS"] = round(lag, 4) if lag is not None else None
        return agents

    def workers_on(self, agent_id: str) -> list[str]:
        return sorted(k for k, rec in self.placed.items() if rec.agent_id == agent_id)

    # -- invariants ---------------------------------------------------------------------

    def validate(self) -> None:
        """Raise InvariantViolation unless every rule holds:

        * a key is in exactly one state: in ``pending`` or ``placed``, never both, and
          the index it is in matches its record's state; ``unconfirmed`` is exactly the
          Launching records;
        * a Launching or Running key has an agent, and that agent is registered;
        * the pool accounts for exactly the placed keys, each on its record's agent, and
          never for a pending one; every agent of the pool is registered and the other
          way round.
        """
        both = self.pending.keys() & self.placed.keys()
        check(not both, f"worker(s) {sorted(both)} are both pending and placed")
        for key, rec in self.pending.items():
            check(rec.key == key and rec.state == PENDING, f"worker {key} is indexed Pending but is {rec.state}")
            check(key not in self.placement.pool, f"pending worker {key} holds resources in the pool")
        for key, rec in self.placed.items():
            check(rec.key == key and rec.state in ON_AGENT, f"worker {key} is indexed placed but is {rec.state}")
            check(rec.agent_id in self.agents,
                  f"worker {key} is {rec.state} on agent {rec.agent_id!r}, which is not registered")
            where = self.placement.pool.placement(key)
            check(where is not None and where.agent_id == rec.agent_id,
                  f"worker {key} is {rec.state} on {rec.agent_id} but the pool has it on "
                  f"{where.agent_id if where else 'no agent'}")
            check((rec.state == LAUNCHING) == (key in self.unconfirmed),
                  f"worker {key} is {rec.state} but {'not ' if key not in self.unconfirmed else ''}unconfirmed")
        check(self.unconfirmed.keys() <= self.placed.keys(), "an unconfirmed worker is not placed")
        pool_agents = {a.agent_id for a in self.placement.pool.agents()}
        check(pool_agents == set(self.agents),
              f"the pool's agents {sorted(pool_agents)} are not the registered ones {sorted(self.agents)}")
        in_pool = {k for a in self.placement.pool.agents() for k in a.workers}
        extra = in_pool - self.placed.keys()
        check(not extra, f"the pool accounts for worker(s) {sorted(extra)} that are not placed")
        for rec in self.placed.values():
            rec.validate()
        for rec in self.pending.values():
            rec.validate()
