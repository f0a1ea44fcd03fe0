"""The worker lifecycle (Mantis' table) and the record of one worker incarnation.

Accepted -> Launched -> StartInitiated -> Started -> Completed | Failed.  A worker is
one incarnation (``number``) filling one slot (``stage``, ``index``) of a job; when it
fails, ``job_state`` puts a new incarnation with a new number on the same index.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from mantis.lifecycles.tables import (
    Meta,
    Story,
    Transition,
    TransitionRejected,
    TransitionTable,
    check,
    in_order,
    new_stimulus_id,
    run_transition,
    states_with,
)
from mantis.model.ids import worker_key


class WorkerState(StrEnum):
    """A worker incarnation's state, in lifecycle order (the order is used: a report
    of a state at or behind the known one is only a heartbeat)."""

    ACCEPTED = "Accepted"
    LAUNCHED = "Launched"
    START_INITIATED = "StartInitiated"
    STARTED = "Started"
    COMPLETED = "Completed"
    FAILED = "Failed"


# The meta-states of each state, declared once (Mantis' WorkerState.META_STATES).
META_STATES: dict[WorkerState, frozenset[Meta]] = {
    WorkerState.ACCEPTED: frozenset({Meta.ACTIVE}),
    WorkerState.LAUNCHED: frozenset({Meta.ACTIVE, Meta.RUNNING}),
    WorkerState.START_INITIATED: frozenset({Meta.ACTIVE, Meta.RUNNING}),
    WorkerState.STARTED: frozenset({Meta.ACTIVE, Meta.RUNNING}),
    WorkerState.COMPLETED: frozenset({Meta.TERMINAL}),
    WorkerState.FAILED: frozenset({Meta.TERMINAL}),
}

ACCEPTED = WorkerState.ACCEPTED
LAUNCHED = WorkerState.LAUNCHED
START_INITIATED = WorkerState.START_INITIATED
STARTED = WorkerState.STARTED
COMPLETED = WorkerState.COMPLETED
FAILED = WorkerState.FAILED

# Workers in these states hold resources on an agent and must keep heartbeating.
RUNNING_STATES = states_with(META_STATES, Meta.RUNNING)
TERMINAL_STATES = states_with(META_STATES, Meta.TERMINAL)
# The states a worker goes through before it ends, in order.
PROGRESS = [s for s in WorkerState if s not in TERMINAL_STATES]

# What an agent's report of a state means as an event (reports of Accepted or
# Launched make no sense from an agent: the master decides those).
REPORTED_EVENTS = {START_INITIATED: "start_initiated", STARTED: "started", COMPLETED: "complete",
                   FAILED: "fail"}


def reported_event(key: str, state: WorkerState, status: str) -> str:
    """The event an agent's report of ``status`` is for a worker in ``state``.

    A heartbeat, or a repeat of a state the worker already reached (agents report each
    worker's status every interval, and again when they re-register), is "heartbeat".
    """
    if status == "Heartbeat":
        return "heartbeat"
    try:
        reported = WorkerState(status)
    except ValueError:
        raise TransitionRejected(f"worker {key}: unknown status {status!r}") from None
    if reported in PROGRESS and PROGRESS.index(reported) <= PROGRESS.index(state):
        return "heartbeat"
    if reported not in REPORTED_EVENTS:
        raise TransitionRejected(f"worker {key}: unknown status {status!r}")
    return REPORTED_EVENTS[reported]


# -- handlers: what each transition does besides changing the state -------------------

def _launched(w: Worker, now: float, sid: str, agent_id: str, host: str | None, ports: list[int]) -> list:
    w.launched_at = now
    w.last_heartbeat = now  # the startup grace period runs from here
    w.agent_id, w.host, w.ports = agent_id, host, list(ports)
    return []


def _progressed(w: Worker, now: float, sid: str, metrics: dict | None = None) -> list:
    if metrics is not None:
        w.metrics = metrics
    return []


def _started(w: Worker, now: float, sid: str, metrics: dict | None = None) -> list:
    w.started_at = now
    w.last_heartbeat = now
    return _progressed(w, now, sid, metrics)


def _ended(w: Worker, now: float, sid: str, reason: str = "", metrics: dict | None = None) -> list:
    w.ended_at = now
    w.reason = reason or str(w.state)
    return _progressed(w, now, sid, metrics)


def _heartbeat(w: Worker, now: float, sid: str, metrics: dict | None = None) -> list:
    w.last_heartbeat = now
    return _progressed(w, now, sid, metrics)


def _unlaunched_heartbeat(w: Worker, now: float, sid: str, metrics: dict | None = None) -> list:
    # A report for a worker the master has not seen launched yet (its launch notice is
    # still on the way, or was lost in a master restart): nothing to refresh.
    return []


# Any live worker can end, launched or not.
_END_ROWS = {"fail": Transition(FAILED, _ended), "complete": Transition(COMPLETED, _ended)}

WORKER_TABLE = TransitionTable(
    "worker",
    {
        ACCEPTED: {"launch": Transition(LAUNCHED, _launched), **_END_ROWS,
                   "heartbeat": Transition(ACCEPTED, _unlaunched_heartbeat)},
        LAUNCHED: {"start_initiated": Transition(START_INITIATED, _progressed),
                   "started": Transition(STARTED, _started), **_END_ROWS,
                   "heartbeat": Transition(LAUNCHED, _heartbeat)},
        START_INITIATED: {"started": Transition(STARTED, _started), **_END_ROWS,
                          "heartbeat": Transition(START_INITIATED, _heartbeat)},
        STARTED: {**_END_ROWS, "heartbeat": Transition(STARTED, _heartbeat)},
        COMPLETED: {},
        FAILED: {},
    },
    reasons={
        (ACCEPTED, "start_initiated"): "it has not been launched on an agent",
        (ACCEPTED, "started"): "it has not been launched on an agent",
        (LAUNCHED, "launch"): "it is already launched",
        (START_INITIATED, "launch"): "it is already launched",
        (START_INITIATED, "start_initiated"): "a repeat is a heartbeat",
        (STARTED, "launch"): "it is already launched",
        (STARTED, "start_initiated"): "it has already started",
        (STARTED, "started"): "a repeat is a heartbeat",
        **{(s, e): "the worker has ended" for s in TERMINAL_STATES
           for e in ("launch", "start_initiated", "started", "heartbeat", "fail", "complete")},
    },
    untold=frozenset({"heartbeat"}),
)


@dataclass
class Worker:
    """One worker incarnation and what the master knows of it.

    Times are epoch seconds.  ``ready_at`` is when a (replacement) worker may be
    placed, after its backoff; ``requested`` says the scheduler has been asked.
    """

    job_id: str
    stage: int
    index: int
    number: int
    state: WorkerState = ACCEPTED
    resubmit_of: int | None = None
    resubmit_count: int = 0
    agent_id: str | None = None
    host: str | None = None
    ports: list[int] = field(default_factory=list)
    reason: str = ""
    accepted_at: float = 0.0
    ready_at: float = 0.0
    launched_at: float | None = None
    started_at: float | None = None
    ended_at: float | None = None
    last_heartbeat: float | None = None
    requested: bool = False
    requested_at: float = 0.0
    metrics: dict = field(default_factory=dict)
    # The artifact (entry point) this incarnation runs; None: the job's current one.  Set
    # on the workers a migration moves away from (``mantis.lifecycles.migration``).
    url: str | None = None
    # During a migration: the number of the worker this one takes over from once Started.
    replaces: int | None = None

    @property
    def key(self) -> str:
        """The platform-wide id of this incarnation."""
        return worker_key(self.job_id, self.number)

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_running(self) -> bool:
        return self.state in RUNNING_STATES

    def handle(self, event: str, now: float, *, story: Story | None = None,
               stimulus_id: str | None = None, **details: Any) -> list:
        """Apply ``event`` through WORKER_TABLE (its handler records the timestamps and
        details of the new state); raise TransitionRejected if the table has no row.

        ``story`` (the job's) gets the transition under this worker's key.  Returns the
        handler's effects (a worker's handlers have none: the job decides them).
        """
        return run_transition(WORKER_TABLE, self, event, now, key=self.key, story=story,
                              stimulus_id=stimulus_id or new_stimulus_id(event), **details)

    def validate(self) -> None:
        """Check this worker's invariants; raise InvariantViolation if one is broken."""
        check(isinstance(self.state, WorkerState), f"worker {self.key}: state {self.state!r} is not a WorkerState")
        check(not self.is_running or bool(self.agent_id),
              f"worker {self.key}: {self.state} but on no agent")
        check(self.state == ACCEPTED or self.launched_at is not None or self.is_terminal,
              f"worker {self.key}: {self.state} without a launch time")
        check(self.state != STARTED or self.started_at is not None,
              f"worker {self.key}: Started without a start time")
        check(not self.is_terminal or self.ended_at is not None,
              f"worker {self.key}: {self.state} without an end time")
        check(in_order(self.accepted_at, self.launched_at, self.started_at, self.ended_at),
              f"worker {self.key}: times out of order (accepted {self.accepted_at}, launched "
              f"{self.launched_at}, started {self.started_at}, ended {self.ended_at})")

    def to_json(self) -> dict[str, Any]:
        """The stored form (plain strings, so records stay readable by any version)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["state"] = str(self.state)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Worker:
        """A worker from its stored form."""
        names = {f.name for f in fields(cls)}
        worker = cls(**{k: v for k, v in data.items() if k in names})
        worker.state = WorkerState(worker.state)
        return worker

    def describe(self) -> dict[str, Any]:
        """The worker as the API shows it (Mantis' field names)."""
        return {
            "workerId": self.key,
            "jobId": self.job_id,
            "stageNum": self.stage,
            "workerIndex": self.index,
            "workerNumber": self.number,
            "state": str(self.state),
            "reason": self.reason,
            "resubmitOf": self.resubmit_of,
            "totalResubmitCount": self.resubmit_count,
            "agentId": self.agent_id,
            "host": self.host,
            "ports": list(self.ports),
            "acceptedAt": self.accepted_at,
            "launchedAt": self.launched_at,
            "startedAt": self.started_at,
            "completedAt": self.ended_at,
            "lastHeartbeatAt": self.last_heartbeat,
            "metrics": dict(self.metrics),
            "url": self.url,
            "replaces": self.replaces,
        }
