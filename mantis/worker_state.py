"""The worker lifecycle (Mantis' table) and the record of one worker incarnation.

Accepted -> Launched -> StartInitiated -> Started -> Completed | Failed.  A worker is
one incarnation (``number``) filling one slot (``stage``, ``index``) of a job; when it
fails, ``job_state`` puts a new incarnation with a new number on the same index.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from mantis.ids import worker_key
from mantis.lifecycle import TransitionTable

ACCEPTED = "Accepted"
LAUNCHED = "Launched"
START_INITIATED = "StartInitiated"
STARTED = "Started"
COMPLETED = "Completed"
FAILED = "Failed"

WORKER_TABLE = TransitionTable(
    "worker",
    {
        ACCEPTED: {"launch": LAUNCHED, "fail": FAILED, "complete": COMPLETED},
        LAUNCHED: {"start_initiated": START_INITIATED, "started": STARTED,
                   "fail": FAILED, "complete": COMPLETED, "heartbeat": LAUNCHED},
        START_INITIATED: {"started": STARTED, "fail": FAILED, "complete": COMPLETED,
                          "heartbeat": START_INITIATED},
        STARTED: {"fail": FAILED, "complete": COMPLETED, "heartbeat": STARTED},
        COMPLETED: {},
        FAILED: {},
    },
)

# Workers in these states hold resources on an agent and must keep heartbeating.
RUNNING_STATES = frozenset({LAUNCHED, START_INITIATED, STARTED})
TERMINAL_STATES = frozenset({COMPLETED, FAILED})


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
    state: str = ACCEPTED
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

    def apply(self, event: str, now: float) -> str:
        """Move to the state the table gives for ``event``; raise TransitionRejected if none.

        Returns the previous state.  Timestamps of the new state are recorded here.
        """
        previous = self.state
        self.state = WORKER_TABLE.next_state(self.state, event, self.key)
        if self.state == LAUNCHED and previous == ACCEPTED:
            self.launched_at = now
            self.last_heartbeat = now
        elif self.state == STARTED and previous != STARTED:
            self.started_at = now
            self.last_heartbeat = now
        elif self.state in TERMINAL_STATES:
            self.ended_at = now
        if event == "heartbeat":
            self.last_heartbeat = now
        return previous

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Worker":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def describe(self) -> dict[str, Any]:
        """The worker as the API shows it (Mantis' field names)."""
        return {
            "workerId": self.key,
            "jobId": self.job_id,
            "stageNum": self.stage,
            "workerIndex": self.index,
            "workerNumber": self.number,
            "state": self.state,
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
        }
