"""One job's lifecycle and its workers, as plain logic that returns effects.

``Job`` holds everything the master knows of a job.  Every method that reacts to an
event changes the job and returns a list of *effects* (dataclasses below) for the
owner (the JobActor) to carry out: persist, ask the scheduler for a worker, stop a
worker, report the end.  Nothing here sends, sleeps or writes, so every rule can be
tested without an actor, and the actor stays a thin shell.

Job states (Mantis): Accepted -> Launched -> Terminating_normal | Terminating_abnormal
-> Completed | Failed.  A kill for reason Error or Lost ends Failed; any other reason
ends Completed.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mantis.definitions import JobDefinition
from mantis.lifecycle import TransitionRejected, TransitionTable
from mantis.worker_state import (ACCEPTED, COMPLETED, FAILED, LAUNCHED, RUNNING_STATES,
                                 START_INITIATED, STARTED, Worker)

JOB_ACCEPTED = "Accepted"
JOB_LAUNCHED = "Launched"
TERMINATING_NORMAL = "Terminating_normal"
TERMINATING_ABNORMAL = "Terminating_abnormal"
JOB_COMPLETED = "Completed"
JOB_FAILED = "Failed"

JOB_TABLE = TransitionTable(
    "job",
    {
        JOB_ACCEPTED: {"launch": JOB_LAUNCHED, "kill_normal": TERMINATING_NORMAL,
                       "kill_abnormal": TERMINATING_ABNORMAL, "fail": JOB_FAILED,
                       "complete": JOB_COMPLETED},
        JOB_LAUNCHED: {"kill_normal": TERMINATING_NORMAL, "kill_abnormal": TERMINATING_ABNORMAL,
                       "fail": JOB_FAILED, "complete": JOB_COMPLETED},
        TERMINATING_ABNORMAL: {"terminated": JOB_FAILED},
        TERMINATING_NORMAL: {"terminated": JOB_COMPLETED},
        JOB_COMPLETED: {},
        JOB_FAILED: {},
    },
)

# How far along a worker is; a reported status at or behind the known one is a heartbeat.
_RANK = {ACCEPTED: 0, LAUNCHED: 1, START_INITIATED: 2, STARTED: 3}

ACTIVE_JOB_STATES = frozenset({JOB_ACCEPTED, JOB_LAUNCHED})
ABNORMAL_KILL_REASONS = frozenset({"Error", "Lost"})
KILL_REASONS = ("Killed", "Normal", "Error", "Lost", "SLA", "RuntimeLimit")


@dataclass(frozen=True)
class WorkerPolicy:
    """How the master judges and replaces workers (seconds).

    Backoff before a replacement steps through ``backoff_steps`` per (stage, index)
    and is forgotten after ``backoff_reset_s`` without failure; more than
    ``max_resubmits_per_hour`` error resubmits in an hour kills the job (reason Error).
    """

    heartbeat_timeout_s: float = 10.0
    startup_timeout_s: float = 60.0
    backoff_steps: tuple[float, ...] = (0, 5, 10, 30, 60, 120, 600)
    backoff_reset_s: float = 300.0
    max_resubmits_per_hour: int = 100
    terminate_timeout_s: float = 10.0
    archived_workers_kept: int = 100
    schedule_retry_s: float = 15.0


# -- effects ---------------------------------------------------------------------

@dataclass(frozen=True)
class Persist:
    """Write the job to the store before acknowledging anything else."""


@dataclass(frozen=True)
class ScheduleWorker:
    """Ask the scheduler to place ``worker`` (it is Accepted and its backoff is over)."""

    worker: Worker


@dataclass(frozen=True)
class StopWorker:
    """Stop a running worker on its agent, or withdraw a pending request."""

    worker_key: str
    agent_id: str | None
    reason: str


@dataclass(frozen=True)
class JobEnded:
    """The job reached Completed or Failed: archive it and tell the cluster."""

    state: str
    reason: str


@dataclass(frozen=True)
class WorkerReplaced:
    """A worker failed and a new incarnation took its index (for logs and metrics)."""

    old: str
    new: str
    reason: str
    delay_s: float


# -- the job ---------------------------------------------------------------------

@dataclass
class Job:
    """A job: its definition, its state, its live workers and their history."""

    job_id: str
    cluster: str
    definition: JobDefinition
    state: str = JOB_ACCEPTED
    submitted_at: float = 0.0
    ended_at: float | None = None
    kill_reason: str = ""
    kill_message: str = ""
    terminating_since: float | None = None
    workers: dict[int, Worker] = field(default_factory=dict)
    archived_workers: list[Worker] = field(default_factory=list)
    next_worker_number: int = 1
    stage_sizes: dict[int, int] = field(default_factory=dict)
    backoff: dict[str, list[float]] = field(default_factory=dict)  # "stage:index" -> [step, last failure]
    error_resubmits: deque = field(default_factory=deque)
    policy: WorkerPolicy = field(default_factory=WorkerPolicy, repr=False)

    # -- creation and recovery ---------------------------------------------------

    @classmethod
    def submit(cls, job_id: str, cluster: str, definition: JobDefinition,
               now: float) -> tuple["Job", list]:
        """A new Accepted job with one Accepted worker per stage instance."""
        job = cls(job_id=job_id, cluster=cluster, definition=definition, submitted_at=now)
        for stage_number, stage in sorted(definition.scheduling_info.stages.items()):
            job.stage_sizes[stage_number] = stage.number_of_instances
            for index in range(stage.number_of_instances):
                job._new_worker(stage_number, index, now)
        return job, [Persist()] + job._due_schedules(now)

    def recover(self, now: float) -> list:
        """After a master restart: give live workers a fresh heartbeat grace period.

        Running workers are kept (their agents re-report them); Accepted ones are asked
        for again, since the scheduler's pending queue died with the old master.
        """
        effects: list = []
        for w in self.workers.values():
            if w.is_running:
                w.last_heartbeat = now
                if w.launched_at is not None and w.state != STARTED:
                    w.launched_at = now
            elif w.state == ACCEPTED:
                w.requested = False
        if self.state in (TERMINATING_NORMAL, TERMINATING_ABNORMAL):
            self.terminating_since = now
            effects += [StopWorker(w.key, w.agent_id, self.kill_reason) for w in self.workers.values()]
        return effects + self._due_schedules(now)

    # -- queries -----------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_JOB_STATES

    @property
    def is_terminal(self) -> bool:
        return JOB_TABLE.is_terminal(self.state)

    def upstream_endpoints(self, stage: int) -> list[tuple[str, str, int]]:
        """(worker id, host, port) of the Started workers of stage ``stage - 1``: where a
        worker of ``stage`` reads from.  Empty for stage 1 (it reads the source)."""
        return sorted((w.key, w.host or "127.0.0.1", int(w.metrics["port"]))
                      for w in self.workers.values()
                      if w.stage == stage - 1 and w.state == STARTED and w.metrics.get("port"))

    def upstream_finished(self, stage: int) -> bool:
        """True when ``stage`` reads from a stage that has completed (every worker of it
        completed on its own): a worker of ``stage`` will get no more input."""
        return self._stage_finished(stage - 1)

    def worker_by_key(self, key: str) -> Worker | None:
        number = int(key.rpartition("/w")[2]) if "/w" in key else -1
        w = self.workers.get(number)
        return w if w is not None and w.key == key else None

    # -- worker events -----------------------------------------------------------

    def worker_launched(self, key: str, agent_id: str, host: str, ports: list[int],
                        now: float) -> list:
        """The scheduler placed a worker on an agent (a repeat of a known launch is ignored)."""
        w = self._live_worker(key)
        if w.state != ACCEPTED and w.agent_id == agent_id:
            return []
        w.apply("launch", now)
        w.agent_id, w.host, w.ports = agent_id, host, list(ports)
        return [Persist()]

    def worker_status(self, key: str, status: str, now: float, reason: str = "",
                      metrics: dict | None = None) -> list:
        """An agent reported a worker's status: StartInitiated, Started, Completed, Failed,
        or Heartbeat.  A status for an unknown or already-ended worker is rejected."""
        w = self._live_worker(key)
        if status == "Heartbeat" or _RANK.get(status, 99) <= _RANK.get(w.state, 99):
            # A heartbeat, or a repeat of a status we already have (agents report each
            # worker's status every interval, and again when they re-register).
            if w.is_running:
                w.last_heartbeat = now
                if metrics is not None:
                    w.metrics = metrics
            return []
        event = {START_INITIATED: "start_initiated", STARTED: "started", COMPLETED: "complete",
                 FAILED: "fail"}.get(status)
        if event is None:
            raise TransitionRejected(f"worker {key}: unknown status {status!r}")
        previous = w.apply(event, now)
        if metrics is not None:
            w.metrics = metrics
        if w.is_terminal:
            w.reason = reason or w.state
            return self._worker_ended(w, now)
        effects: list = []
        if (event == "started" and self.state == JOB_ACCEPTED
                and all(x.state == STARTED for x in self.workers.values())):
            self.state = JOB_TABLE.next_state(self.state, "launch", self.job_id)
        if previous != w.state:
            effects.append(Persist())
        return effects

    def _worker_ended(self, w: Worker, now: float) -> list:
        self._archive_worker(w)
        effects: list = [Persist()]
        if not self.is_active:
            return effects + self._maybe_terminated(now)
        if w.state == COMPLETED:
            # A worker that finished on its own leaves its slot empty; when all are empty
            # the job has completed (a finite job).
            if self._stage_finished(w.stage):
                effects += self._release_unfed(w.stage + 1, now)
            return effects + self._completed_if_empty(now)
        if self._stage_finished(w.stage - 1):
            # Its input has ended for good: a replacement would wait forever for data.
            w.reason = f"{w.reason}; not replaced: stage {w.stage - 1} has completed"
            return effects + self._completed_if_empty(now)
        return effects + self._replace(w, now)

    def _stage_finished(self, stage: int) -> bool:
        """True when ``stage`` exists and its every worker completed (a finite stage is done)."""
        return (stage >= 1 and self.stage_sizes.get(stage, 0) > 0
                and not any(x.stage == stage for x in self.workers.values()))

    def _release_unfed(self, stage: int, now: float) -> list:
        """Workers of ``stage`` not yet Started when their upstream stage completed: they
        could never connect to it, so they end now (Completed, with the reason)."""
        effects: list = []
        for x in [x for x in self.workers.values() if x.stage == stage and x.state != STARTED]:
            x.apply("complete", now)
            x.reason = f"stage {stage - 1} completed before this worker started"
            self._archive_worker(x)
            if x.agent_id:
                effects.append(StopWorker(x.key, x.agent_id, x.reason))
        return effects

    def _completed_if_empty(self, now: float) -> list:
        if self.workers:
            return []
        return self.kill("Normal", "all workers completed", now)

    def _replace(self, old: Worker, now: float) -> list:
        slot = f"{old.stage}:{old.index}"
        step, last = self.backoff.get(slot, [0, 0.0])
        if last and now - last > self.policy.backoff_reset_s:
            step = 0
        delay = self.policy.backoff_steps[min(int(step), len(self.policy.backoff_steps) - 1)]
        self.backoff[slot] = [step + 1, now]
        self.error_resubmits.append(now)
        while self.error_resubmits and now - self.error_resubmits[0] > 3600:
            self.error_resubmits.popleft()
        if len(self.error_resubmits) > self.policy.max_resubmits_per_hour:
            return self.kill("Error", f"more than {self.policy.max_resubmits_per_hour} "
                                      "worker resubmits in an hour", now)
        new = self._new_worker(old.stage, old.index, now, resubmit_of=old,
                               ready_at=now + delay)
        return [WorkerReplaced(old.key, new.key, old.reason, delay), Persist()] + self._due_schedules(now)

    # -- periodic checks ----------------------------------------------------------

    def tick(self, now: float) -> list:
        """Heartbeat and startup timeouts, replacements whose backoff is over, and a
        termination that waited too long for its workers."""
        effects: list = []
        for w in list(self.workers.values()):
            if w.state in (LAUNCHED, START_INITIATED):
                silent = now - (w.last_heartbeat or w.launched_at or now)
                limit = max(self.policy.heartbeat_timeout_s, 0.0)
                if now - (w.launched_at or now) > self.policy.startup_timeout_s and silent > limit:
                    effects += self._fail_silent(w, now, "startup timed out")
            elif w.state == STARTED and now - (w.last_heartbeat or now) > self.policy.heartbeat_timeout_s:
                effects += self._fail_silent(w, now, "heartbeat timeout")
        if (self.terminating_since is not None and self.workers
                and now - self.terminating_since > self.policy.terminate_timeout_s):
            for w in list(self.workers.values()):
                w.reason = "not confirmed stopped before the termination timeout"
                w.apply("fail", now)
                self._archive_worker(w)
            effects += [Persist()] + self._maybe_terminated(now)
        return effects + self._due_schedules(now)

    def _fail_silent(self, w: Worker, now: float, reason: str) -> list:
        w.apply("fail", now)
        w.reason = reason
        return [StopWorker(w.key, w.agent_id, reason)] + self._worker_ended(w, now)

    # -- operator actions ---------------------------------------------------------

    def kill(self, reason: str, message: str, now: float) -> list:
        """Terminate the job; reason Error or Lost ends it Failed, others Completed."""
        event = "kill_abnormal" if reason in ABNORMAL_KILL_REASONS else "kill_normal"
        self.state = JOB_TABLE.next_state(self.state, event, self.job_id)
        self.kill_reason, self.kill_message = reason, message
        self.terminating_since = now
        effects: list = []
        for w in list(self.workers.values()):
            if w.state == ACCEPTED:
                w.apply("complete", now)
                w.reason = "job killed before launch"
                self._archive_worker(w)
            effects.append(StopWorker(w.key, w.agent_id, f"job killed: {reason}"))
        return effects + [Persist()] + self._maybe_terminated(now)

    def scale_stage(self, stage: int, count: int, now: float) -> list:
        """Set a stage's number of workers: new indexes are added, the highest removed."""
        if not self.is_active:
            raise TransitionRejected(f"job {self.job_id}: cannot scale in state {self.state}")
        if stage not in self.stage_sizes:
            raise TransitionRejected(f"job {self.job_id} has no stage {stage}")
        info = self.definition.scheduling_info.stages[stage]
        policy = info.scaling_policy or {}
        lo, hi = int(policy.get("min", 0)), int(policy.get("max", 10_000))
        if not info.scalable:
            raise TransitionRejected(f"job {self.job_id}: stage {stage} is not scalable")
        if not lo <= count <= hi:
            raise TransitionRejected(f"job {self.job_id}: stage {stage} must keep {lo}..{hi} workers")
        effects: list = []
        current = self.stage_sizes[stage]
        for index in range(current, count):
            self._new_worker(stage, index, now)
        for w in [w for w in self.workers.values() if w.stage == stage and w.index >= count]:
            effects.append(StopWorker(w.key, w.agent_id, "stage scaled down"))
            w.apply("complete", now)
            w.reason = "stage scaled down"
            self._archive_worker(w)
        self.stage_sizes[stage] = count
        return effects + [Persist()] + self._due_schedules(now)

    def resubmit_worker(self, number: int, reason: str, now: float) -> list:
        """Replace worker ``number`` by a new incarnation on its index, without backoff."""
        if not self.is_active:
            raise TransitionRejected(f"job {self.job_id}: cannot resubmit in state {self.state}")
        w = self.workers.get(number)
        if w is None:
            raise TransitionRejected(f"job {self.job_id} has no live worker number {number}")
        w.apply("fail", now)
        w.reason = f"resubmitted: {reason}"
        self._archive_worker(w)
        new = self._new_worker(w.stage, w.index, now, resubmit_of=w, ready_at=now)
        return ([StopWorker(w.key, w.agent_id, w.reason), WorkerReplaced(w.key, new.key, w.reason, 0.0),
                 Persist()] + self._due_schedules(now))

    # -- helpers --------------------------------------------------------------------

    def _live_worker(self, key: str) -> Worker:
        w = self.worker_by_key(key)
        if w is None:
            raise TransitionRejected(f"worker {key}: not a live worker of job {self.job_id}")
        return w

    def _new_worker(self, stage: int, index: int, now: float, resubmit_of: Worker | None = None,
                    ready_at: float | None = None) -> Worker:
        w = Worker(job_id=self.job_id, stage=stage, index=index, number=self.next_worker_number,
                   accepted_at=now, ready_at=now if ready_at is None else ready_at)
        if resubmit_of is not None:
            w.resubmit_of = resubmit_of.number
            w.resubmit_count = resubmit_of.resubmit_count + 1
        self.next_worker_number += 1
        self.workers[w.number] = w
        return w

    def _archive_worker(self, w: Worker) -> None:
        self.workers.pop(w.number, None)
        self.archived_workers.append(w)
        del self.archived_workers[:-self.policy.archived_workers_kept]

    def _due_schedules(self, now: float) -> list:
        effects = []
        if not self.is_active:
            return effects
        for w in self.workers.values():
            if w.state != ACCEPTED or w.ready_at > now:
                continue
            # Asked long ago and still not launched: ask again (the scheduler treats a
            # repeated request as idempotent), so a lost message cannot strand a worker.
            if not w.requested or now - w.requested_at > self.policy.schedule_retry_s:
                w.requested, w.requested_at = True, now
                effects.append(ScheduleWorker(w))
        return effects

    def _maybe_terminated(self, now: float) -> list:
        if self.state not in (TERMINATING_NORMAL, TERMINATING_ABNORMAL) or self.workers:
            return []
        self.state = JOB_TABLE.next_state(self.state, "terminated", self.job_id)
        self.ended_at = now
        self.terminating_since = None
        return [Persist(), JobEnded(self.state, self.kill_reason)]

    # -- encoding -------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The stored form of the job (the store's layout, not the API's)."""
        return {
            "jobId": self.job_id, "cluster": self.cluster, "definition": self.definition.to_json(),
            "state": self.state, "submittedAt": self.submitted_at, "endedAt": self.ended_at,
            "killReason": self.kill_reason, "killMessage": self.kill_message,
            "terminatingSince": self.terminating_since,
            "workers": [w.to_json() for w in self.workers.values()],
            "archivedWorkers": [w.to_json() for w in self.archived_workers],
            "nextWorkerNumber": self.next_worker_number,
            "stageSizes": {str(k): v for k, v in self.stage_sizes.items()},
            "backoff": self.backoff, "errorResubmits": list(self.error_resubmits),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], policy: WorkerPolicy | None = None) -> "Job":
        workers = [Worker.from_json(w) for w in data["workers"]]
        return cls(
            job_id=data["jobId"], cluster=data["cluster"],
            definition=JobDefinition.from_json(data["definition"]), state=data["state"],
            submitted_at=data["submittedAt"], ended_at=data.get("endedAt"),
            kill_reason=data.get("killReason", ""), kill_message=data.get("killMessage", ""),
            terminating_since=data.get("terminatingSince"),
            workers={w.number: w for w in workers},
            archived_workers=[Worker.from_json(w) for w in data.get("archivedWorkers", [])],
            next_worker_number=data["nextWorkerNumber"],
            stage_sizes={int(k): v for k, v in data["stageSizes"].items()},
            backoff=data.get("backoff", {}), error_resubmits=deque(data.get("errorResubmits", [])),
            policy=policy or WorkerPolicy(),
        )

    def describe(self) -> dict[str, Any]:
        """The job as the API shows it."""
        d = self.definition
        return {
            "jobId": self.job_id, "clusterName": self.cluster, "state": self.state,
            "user": d.user, "version": d.version, "url": d.url,
            "submittedAt": self.submitted_at, "endedAt": self.ended_at,
            "killReason": self.kill_reason or None, "killMessage": self.kill_message or None,
            "parameters": [p.to_json() for p in d.parameters or []],
            "labels": [label.to_json() for label in d.labels],
            "jobSla": d.job_sla.to_json() if d.job_sla else None,
            "stageSizes": {str(k): v for k, v in self.stage_sizes.items()},
            "schedulingInfo": d.scheduling_info.to_json() if d.scheduling_info else None,
            "workers": [w.describe() for w in sorted(self.workers.values(), key=lambda w: (w.stage, w.index))],
        }


__all__ = [
    "Job", "WorkerPolicy", "Persist", "ScheduleWorker", "StopWorker", "JobEnded", "WorkerReplaced",
    "JOB_TABLE", "KILL_REASONS", "RUNNING_STATES",
]
