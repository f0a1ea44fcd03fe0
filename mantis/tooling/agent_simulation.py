"""A fleet of simulated agents as plain data: events in, reports out, no I/O.

Control-plane scale tests need agents that look real to the master (register, heartbeat,
report every worker's status with metrics) but run no worker processes.  ``Fleet`` is
that behaviour as a deterministic model, in the style of dask's worker state machine:
the caller feeds it events (``launch``, ``stop``, explicit faults) and the passage of
time (``tick(now)``), and gets back the reports its agents would send.  The actor shell
(``actors/simulated_agents.py``) only turns reports into messages.

Determinism: every random choice (start-up delays, metrics, faults) comes from one
``random.Random(seed)``, drawn in an order fixed by the inputs (agents in their given
order, workers in launch order, timers by due time then launch order).  The same seed
and the same calls with the same ``now`` values give the same reports, byte for byte.

A simulated worker goes Launched -> StartInitiated (``Timing.start_initiated_s`` after
the launch) -> Started (``Timing.started_s`` later), each delay jittered by +-50%, then
reports its status with small plausible metrics (including the ``port`` it serves on)
every heartbeat until it is stopped (Completed) or fails (Failed, with a reason).

Faults (``Faults``): at each of its agent's heartbeats, a Started worker fails with
probability ``fail_rate``; at each heartbeat, an agent goes silent with probability
``silence_rate`` for a time drawn from ``silence_s``.  A silent agent keeps its workers
running and still obeys launches and stops (as if only its reports were cut), but
sends nothing; its status changes are held and sent with its first heartbeat after the
silence.
"""
from __future__ import annotations

import heapq
import random
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

LAUNCHED, START_INITIATED, STARTED, COMPLETED, FAILED = (
    "Launched", "StartInitiated", "Started", "Completed", "Failed")
TERMINAL = (COMPLETED, FAILED)

# What a real worker dies of, for the reason of a simulated failure.
FAILURE_REASONS = (
    "simulated fault: worker process exited with code 137",
    "simulated fault: pipeline raised RuntimeError",
    "simulated fault: out of memory",
)


@dataclass
class Faults:
    """How often things go wrong.  Rates are probabilities per heartbeat interval."""

    fail_rate: float = 0.0        # per Started worker: it fails
    silence_rate: float = 0.0     # per agent: it stops heartbeating for a while
    silence_s: tuple[float, float] = (3.0, 15.0)  # how long a silence lasts (uniform)


@dataclass
class Timing:
    """How fast simulated agents and workers move (seconds)."""

    heartbeat_interval_s: float = 1.0
    start_initiated_s: float = 0.2    # launch -> StartInitiated (mean)
    started_s: float = 0.5            # StartInitiated -> Started (mean)


@dataclass(frozen=True)
class Status:
    """One worker's status as its agent reports it (the shape of a WorkerStatus)."""

    worker_key: str
    status: str
    reason: str = ""
    metrics: dict | None = None


@dataclass
class Report:
    """What one agent sends now: ``heartbeat`` (every worker's status, and the agent's
    own liveness) or, between heartbeats, only the statuses that changed."""

    agent_id: str
    statuses: list[Status]
    heartbeat: bool


@dataclass
class Event:
    """Something that happened in the fleet, for logs: ``what`` is a worker state, or
    launched / stopped / fault / silent / back."""

    at: float
    agent_id: str
    worker_key: str
    what: str
    detail: str = ""


@dataclass
class SimWorker:
    """A simulated worker: its spec (opaque, given at launch) and where it is in its life."""

    key: str
    agent_id: str
    spec: Any
    launched_at: float
    port: int
    pid: int
    events_per_s: float
    cpu_percent: float
    rss_mb: float
    state: str = LAUNCHED
    reason: str = ""
    started_at: float | None = None
    next_change_at: float | None = None
    story: list[tuple[float, str, str]] = field(default_factory=list)

    def status(self, now: float) -> Status:
        """This worker's status now, with metrics that grow plausibly with time."""
        running = self.state == STARTED
        up_s = max(0.0, now - self.started_at) if self.started_at is not None else 0.0
        events = int(self.events_per_s * up_s)
        state = "running" if running else "starting" if self.state not in TERMINAL else self.state.lower()
        metrics = {"pid": self.pid, "host": getattr(self.spec, "host", "") or "", "port": self.port,
                   "stage": getattr(self.spec, "stage", 1), "state": state,
                   "eventsIn": events, "eventsOut": events, "droppedEvents": 0, "queueDepth": 0,
                   "cpuPercent": self.cpu_percent if running else 0.0, "rssMB": self.rss_mb}
        return Status(self.key, self.state, self.reason, metrics)


@dataclass
class SimAgent:
    """A simulated agent: its live workers, the changes it has not reported yet, and
    when it next heartbeats (or until when it is silent)."""

    agent_id: str
    next_heartbeat: float
    workers: dict[str, SimWorker] = field(default_factory=dict)  # live ones, in launch order
    changes: list[Status] = field(default_factory=list)
    silent_until: float | None = None


class Fleet:
    """Simulated agents and their workers; see the module docstring.

    ``agent_ids`` are the agents, in a fixed order (it decides the order of random
    draws).  ``now`` is the start time: agents' first heartbeats are spread over the
    first interval so that they do not all report at once.
    """

    ENDED_KEPT = 50_000  # stories of ended workers kept for ``story`` (oldest dropped first)

    def __init__(self, agent_ids: list[str], seed: int = 0, faults: Faults | None = None,
                 timing: Timing | None = None, now: float = 0.0):
        self.rng = random.Random(seed)
        self.faults = faults or Faults()
        self.timing = timing or Timing()
        interval = self.timing.heartbeat_interval_s
        n = max(1, len(agent_ids))
        self.agents: dict[str, SimAgent] = {
            a: SimAgent(a, now + interval * (i + 1) / n) for i, a in enumerate(agent_ids)}
        self._where: dict[str, str] = {}                        # live worker key -> agent id
        self._ended: OrderedDict[str, SimWorker] = OrderedDict()  # ended workers, oldest first
        self._timers: list[tuple[float, int, str]] = []         # (due, launch seq, worker key)
        self._seq = 0
        self.events: deque[Event] = deque(maxlen=100_000)
        self.heartbeats = 0
        self.max_lateness_s = 0.0  # worst delay of a heartbeat behind its schedule

    # -- events in ----------------------------------------------------------------------

    def launch(self, agent_id: str, spec: Any, now: float) -> bool:
        """Start a worker for ``spec`` (anything with ``worker_key``; ``ports``, ``stage``
        and ``host`` are used when present).  False if the agent is not ours or already
        runs that worker (a repeated launch)."""
        agent = self.agents.get(agent_id)
        key = spec.worker_key
        if agent is None or key in self._where:
            return False
        ports = list(getattr(spec, "ports", None) or [])
        rng = self.rng
        w = SimWorker(key, agent_id, spec, now,
                      port=int(ports[0]) if ports else rng.randrange(32768, 61000),
                      pid=rng.randrange(1000, 4_000_000), events_per_s=round(rng.uniform(50, 500), 1),
                      cpu_percent=round(rng.uniform(1, 15), 1), rss_mb=round(rng.uniform(60, 120), 1))
        agent.workers[key] = w
        self._where[key] = agent_id
        self._note(w, now, "launched", f"port {w.port}")
        self._schedule(w, now + self._jitter(self.timing.start_initiated_s))
        return True

    def stop(self, agent_id: str, worker_key: str, now: float, reason: str = "") -> None:
        """Stop a worker: it is Completed at once.  A worker this agent does not run is
        reported Completed all the same (as a real agent does), so the master lets go."""
        agent = self.agents.get(agent_id)
        if agent is None:
            return
        w = agent.workers.get(worker_key)
        if w is None:
            agent.changes.append(Status(worker_key, COMPLETED, "not running on this agent"))
            self.events.append(Event(now, agent_id, worker_key, "stopped", "not running on this agent"))
            return
        self._end(w, now, COMPLETED, f"stopped: {reason}" if reason else "stopped")

    def fail(self, worker_key: str, now: float, reason: str = FAILURE_REASONS[0]) -> bool:
        """Fail a live worker now (an explicit fault); False if it is not live."""
        agent_id = self._where.get(worker_key)
        if agent_id is None:
            return False
        self._end(self.agents[agent_id].workers[worker_key], now, FAILED, reason)
        return True

    def silence(self, agent_id: str, now: float, duration_s: float) -> None:
        """Make an agent silent for ``duration_s`` (an explicit fault)."""
        agent = self.agents[agent_id]
        agent.silent_until = now + duration_s
        self.events.append(Event(now, agent_id, "", "silent", f"for {duration_s:.1f}s"))

    # -- time ---------------------------------------------------------------------------

    def tick(self, now: float) -> list[Report]:
        """Advance to ``now``: workers move on, faults strike, silences end; returns what
        each agent sends now (at most one report per agent)."""
        self._run_timers(now)
        reports = []
        interval = self.timing.heartbeat_interval_s
        for agent in self.agents.values():
            if agent.silent_until is not None:
                if now < agent.silent_until:
                    continue
                agent.silent_until = None
                agent.next_heartbeat = now  # a returning agent reports at once
                self.events.append(Event(now, agent.agent_id, "", "back", "heartbeating again"))
            if now >= agent.next_heartbeat:
                self.max_lateness_s = max(self.max_lateness_s, now - agent.next_heartbeat)
                agent.next_heartbeat += interval
                if agent.next_heartbeat <= now:  # fell more than an interval behind: no burst
                    agent.next_heartbeat = now + interval
                self._draw_faults(agent, now)
                if agent.silent_until is not None:
                    continue  # fell silent at this very heartbeat
                reports.append(Report(agent.agent_id, self._heartbeat_statuses(agent, now), True))
                self.heartbeats += 1
            elif agent.changes:
                reports.append(Report(agent.agent_id, agent.changes, False))
                agent.changes = []
        return reports

    def _heartbeat_statuses(self, agent: SimAgent, now: float) -> list[Status]:
        statuses, agent.changes = agent.changes, []
        # The changes come first, in the order they happened; a worker whose latest
        # change is already among them is not repeated.
        changed = {s.worker_key for s in statuses}
        statuses.extend(w.status(now) for k, w in agent.workers.items() if k not in changed)
        return statuses

    def _run_timers(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            due, _, key = heapq.heappop(self._timers)
            agent_id = self._where.get(key)
            w = self.agents[agent_id].workers[key] if agent_id else None
            if w is None or w.next_change_at != due:
                continue  # stopped or failed since this timer was set
            if w.state == LAUNCHED:
                self._move(w, due, START_INITIATED)
                self._schedule(w, due + self._jitter(self.timing.started_s))
            elif w.state == START_INITIATED:
                w.started_at = due
                w.next_change_at = None
                self._move(w, due, STARTED)

    def _draw_faults(self, agent: SimAgent, now: float) -> None:
        f = self.faults
        if f.fail_rate > 0:
            for w in [w for w in agent.workers.values() if w.state == STARTED]:
                if self.rng.random() < f.fail_rate:
                    self._end(w, now, FAILED, self.rng.choice(FAILURE_REASONS))
        if f.silence_rate > 0 and self.rng.random() < f.silence_rate:
            self.silence(agent.agent_id, now, self.rng.uniform(*f.silence_s))

    # -- worker state -------------------------------------------------------------------

    def _jitter(self, mean_s: float) -> float:
        return mean_s * self.rng.uniform(0.5, 1.5)

    def _schedule(self, w: SimWorker, due: float) -> None:
        w.next_change_at = due
        self._seq += 1
        heapq.heappush(self._timers, (due, self._seq, w.key))

    def _move(self, w: SimWorker, at: float, state: str, reason: str = "") -> None:
        w.state, w.reason = state, reason
        self.agents[w.agent_id].changes.append(w.status(at))
        self._note(w, at, state, reason)

    def _end(self, w: SimWorker, at: float, state: str, reason: str) -> None:
        w.next_change_at = None
        self._move(w, at, state, reason)
        del self.agents[w.agent_id].workers[w.key]
        del self._where[w.key]
        self._ended[w.key] = w
        while len(self._ended) > self.ENDED_KEPT:
            self._ended.popitem(last=False)

    def _note(self, w: SimWorker, at: float, what: str, detail: str = "") -> None:
        w.story.append((at, what, detail))
        self.events.append(Event(at, w.agent_id, w.key, what, detail))

    # -- queries ------------------------------------------------------------------------

    def is_silent(self, agent_id: str, now: float) -> bool:
        """Whether the agent is silent at ``now`` (it sends nothing, registrations included)."""
        until = self.agents[agent_id].silent_until
        return until is not None and now < until

    def live_workers(self, agent_id: str) -> list[SimWorker]:
        """The agent's workers that have not ended, in launch order (for registering)."""
        return list(self.agents[agent_id].workers.values())

    def agent_of(self, worker_key: str) -> str | None:
        """The agent that runs, or last ran, this worker; None if never seen (or forgotten)."""
        agent_id = self._where.get(worker_key)
        if agent_id is None and worker_key in self._ended:
            agent_id = self._ended[worker_key].agent_id
        return agent_id

    def story(self, worker_key: str) -> list[tuple[float, str, str]]:
        """What happened to a worker: ``(time, what, detail)`` in order; [] if unknown."""
        agent_id = self._where.get(worker_key)
        w = self.agents[agent_id].workers[worker_key] if agent_id else self._ended.get(worker_key)
        return list(w.story) if w else []

    def counts(self) -> dict[str, int]:
        """Live workers by state, and the number of ended workers remembered."""
        out: dict[str, int] = {}
        for agent in self.agents.values():
            for w in agent.workers.values():
                out[w.state] = out.get(w.state, 0) + 1
        for w in self._ended.values():
            out[w.state] = out.get(w.state, 0) + 1
        return out

    def take_events(self) -> list[Event]:
        """The events since the last call, oldest first (for logging)."""
        out = list(self.events)
        self.events.clear()
        return out
