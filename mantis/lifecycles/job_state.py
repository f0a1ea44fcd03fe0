"""One job's lifecycle and its workers, as plain logic that returns effects.

``JobRecord`` holds everything the master knows of a job.  Every method that reacts to an
event changes the job and returns a list of *effects* (dataclasses below) for the
owner (the JobActor) to carry out: persist, ask the scheduler for a worker, stop a
worker, report the end.  Nothing here sends, sleeps or writes, so every rule can be
tested without an actor, and the actor stays a thin shell.

Job states (Mantis): Accepted -> Launched -> Terminating_normal | Terminating_abnormal
-> Completed | Failed.  A kill for reason Error or Lost ends Failed; any other reason
ends Completed.  A job with no running worker to wait for skips Terminating: it ends
at once through the table's ``complete`` or ``fail`` row (a finite job whose workers
all completed, a kill before any worker launched).

The job's and its workers' lifecycles are tables of handlers (``JOB_TABLE`` here,
``WORKER_TABLE`` in ``worker_state``; see ``mantis.lifecycles.tables``).  Each public method
is one stimulus: every transition it causes carries its stimulus id and is told in
the job's story (``JobRecord.story(key)``); with ``lifecycle.VALIDATE`` on, the job's
invariants are checked after each one.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mantis.config import WorkersConfig
from mantis.lifecycles import tables as lifecycle
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
from mantis.lifecycles.worker_state import (
    ACCEPTED,
    COMPLETED,
    LAUNCHED,
    RUNNING_STATES,
    START_INITIATED,
    STARTED,
    Worker,
    reported_event,
)
from mantis.model.definitions import JobDefinition, MachineDefinition
from mantis.model.ids import parse_worker_key

if TYPE_CHECKING:
    from mantis.lifecycles.migration import Migration

# mantis.lifecycles.migration extends JobRecord (rolling artifact updates) and imports
# this module; JobRecord imports it back where it is used, once both are loaded.


class JobState(StrEnum):
    """A job's state (Mantis' names, which stored records and the API carry as is)."""

    ACCEPTED = "Accepted"
    LAUNCHED = "Launched"
    TERMINATING_NORMAL = "Terminating_normal"
    TERMINATING_ABNORMAL = "Terminating_abnormal"
    COMPLETED = "Completed"
    FAILED = "Failed"


# The meta-states of each state, declared once (Mantis' JobState.META_STATES).
META_STATES: dict[JobState, frozenset[Meta]] = {
    JobState.ACCEPTED: frozenset({Meta.ACTIVE}),
    JobState.LAUNCHED: frozenset({Meta.ACTIVE}),
    JobState.TERMINATING_NORMAL: frozenset({Meta.TERMINATING}),
    JobState.TERMINATING_ABNORMAL: frozenset({Meta.TERMINATING}),
    JobState.COMPLETED: frozenset({Meta.TERMINAL}),
    JobState.FAILED: frozenset({Meta.TERMINAL}),
}

JOB_ACCEPTED = JobState.ACCEPTED
JOB_LAUNCHED = JobState.LAUNCHED
TERMINATING_NORMAL = JobState.TERMINATING_NORMAL
TERMINATING_ABNORMAL = JobState.TERMINATING_ABNORMAL
JOB_COMPLETED = JobState.COMPLETED
JOB_FAILED = JobState.FAILED

ACTIVE_JOB_STATES = states_with(META_STATES, Meta.ACTIVE)
TERMINATING_JOB_STATES = states_with(META_STATES, Meta.TERMINATING)
TERMINAL_JOB_STATES = states_with(META_STATES, Meta.TERMINAL)
ABNORMAL_KILL_REASONS = frozenset({"Error", "Lost"})
KILL_REASONS = ("Killed", "Normal", "Error", "Lost", "SLA", "RuntimeLimit")


_WORKERS = WorkersConfig()
EVENTS_KEPT = 100  # stored with the job on every write: a bounded tail
RECENT_EVENTS = 10  # shown with the job (and so in its status stream)

# Stage 0 is the Job Master (``mantis.autoscaling.job_master``): a worker the job gets when
# a stage is autoscaled, placed and replaced like any other, never scaled, and not
# counted among the owner's stages (``describe`` leaves it out of stageSizes).
JOB_MASTER_STAGE = 0
# What a Job Master (stage 0) asks for: it reads metrics and posts a resize now and then.
JOB_MASTER_MACHINE = MachineDefinition(cpu_cores=0.25, memory_mb=128.0, disk_mb=0.0, network_mbps=8.0, num_ports=1)
# Why a worker is released by a scale-down: its agent asks it to hand over its input first.
STAGE_SCALED_DOWN = "stage scaled down"


def autoscaled(definition: JobDefinition) -> bool:
    """True when some stage of ``definition`` is autoscaled, so the job gets a Job Master.

    As Mantis' StageScalingPolicy is enabled: the stage is scalable, its policy's
    ``max`` is above its ``min``, and the policy has ``strategies`` (an empty object
    means the default strategy, OneStep).  A policy without ``strategies`` bounds manual
    scaling only.
    """
    info = definition.scheduling_info
    if info is None:
        return False
    for stage in info.stages.values():
        policy = stage.scaling_policy or {}
        if (stage.scalable and "strategies" in policy
                and int(policy.get("max", 10_000)) > int(policy.get("min", 1))):
            return True
    return False
    for stage in info.stages.values():
        if stage.scalable:
            policy = stage.scaling_policy or {}
            if int(policy.get("max", 10_000)) > int(policy.get("min", 1)):
                return True
    return False


@dataclass(frozen=True)
class WorkerPolicy:
    """How the master judges and replaces workers (seconds).

    Backoff before a replacement steps through ``backoff_steps`` per (stage, index)
    and is forgotten after ``backoff_reset_s`` without failure; more than
    ``max_resubmits_per_hour`` error resubmits in an hour kills the job (reason Error).
    """

    # The defaults are the config's (``[workers]``), declared there once.
    heartbeat_timeout_s: float = _WORKERS.heartbeat_timeout_s
    startup_timeout_s: float = _WORKERS.startup_timeout_s
    backoff_steps: tuple[float, ...] = _WORKERS.backoff_steps_s
    backoff_reset_s: float = _WORKERS.backoff_reset_s
    max_resubmits_per_hour: int = _WORKERS.max_resubmits_per_hour
    terminate_timeout_s: float = _WORKERS.terminate_timeout_s
    archived_workers_kept: int = 100
    schedule_retry_s: float = 15.0

    @classmethod
    def from_config(cls, workers: WorkersConfig) -> WorkerPolicy:
        """The policy a config's ``[workers]`` section names."""
        return cls(heartbeat_timeout_s=float(workers.heartbeat_timeout_s),
                   startup_timeout_s=float(workers.startup_timeout_s),
                   backoff_steps=tuple(workers.backoff_steps_s),
                   backoff_reset_s=float(workers.backoff_reset_s),
                   max_resubmits_per_hour=int(workers.max_resubmits_per_hour),
                   terminate_timeout_s=float(workers.terminate_timeout_s))


# -- effects ---------------------------------------------------------------------
# Effects are what the owner must do; they never share a name with an actor message
# (the JobActor turns PlaceWorker into the scheduler's ScheduleWorker message, and
# ReleaseWorker into CancelWorker).

@dataclass(frozen=True)
class Persist:
    """Write the job to the store before acknowledging anything else."""


@dataclass(frozen=True)
class PlaceWorker:
    """Ask the scheduler to place ``worker`` (it is Accepted and its backoff is over)."""

    worker: Worker


@dataclass(frozen=True)
class ReleaseWorker:
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


Effect = Persist | PlaceWorker | ReleaseWorker | JobEnded | WorkerReplaced


# -- the job table's handlers --------------------------------------------------------

def _kill(job: JobRecord, now: float, sid: str, reason: str, message: str) -> list[Effect]:
    """Terminating: stop every worker (withdrawing those never launched) and wait for
    the running ones to confirm."""
    job.kill_reason, job.kill_message = reason, message
    job.terminating_since = now
    return job._stop_all_workers(reason, now, sid) + [Persist()] + job._maybe_terminated(now, sid)


def _end_now(job: JobRecord, now: float, sid: str, reason: str, message: str) -> list[Effect]:
    """Completed or Failed at once: no worker is running, so there is nothing to wait
    for (a finite job whose workers all completed, a kill before any launch)."""
    job.kill_reason, job.kill_message = reason, message
    effects = job._stop_all_workers(reason, now, sid)
    job._ended(now)
    return effects + [Persist(), JobEnded(job.state, job.kill_reason)]


def _launched(job: JobRecord, now: float, sid: str) -> list[Effect]:
    """Every worker Started: the job runs from now (its SLA's clock starts here)."""
    job.started_at = now
    return []


def _terminated(job: JobRecord, now: float, sid: str) -> list[Effect]:
    """Every worker confirmed its stop (or timed out): the job has ended."""
    job._ended(now)
    return [Persist(), JobEnded(job.state, job.kill_reason)]


JOB_TABLE = TransitionTable(
    "job",
    {
        JOB_ACCEPTED: {"launch": Transition(JOB_LAUNCHED, _launched),
                       "kill_normal": Transition(TERMINATING_NORMAL, _kill),
                       "kill_abnormal": Transition(TERMINATING_ABNORMAL, _kill),
                       "fail": Transition(JOB_FAILED, _end_now),
                       "complete": Transition(JOB_COMPLETED, _end_now)},
        JOB_LAUNCHED: {"kill_normal": Transition(TERMINATING_NORMAL, _kill),
                       "kill_abnormal": Transition(TERMINATING_ABNORMAL, _kill),
                       "fail": Transition(JOB_FAILED, _end_now),
                       "complete": Transition(JOB_COMPLETED, _end_now)},
        TERMINATING_ABNORMAL: {"terminated": Transition(JOB_FAILED, _terminated)},
        TERMINATING_NORMAL: {"terminated": Transition(JOB_COMPLETED, _terminated)},
        JOB_COMPLETED: {},
        JOB_FAILED: {},
    },
    reasons={
        (JOB_LAUNCHED, "launch"): "it is already launched",
        **{(s, e): "the job is already terminating"
           for s in TERMINATING_JOB_STATES for e in ("launch", "kill_normal", "kill_abnormal", "fail", "complete")},
        **{(s, "terminated"): "the job is not terminating" for s in ACTIVE_JOB_STATES},
        **{(s, e): "the job has ended" for s in TERMINAL_JOB_STATES
           for e in ("launch", "kill_normal", "kill_abnormal", "fail", "complete", "terminated")},
    },
)


# -- the job ---------------------------------------------------------------------

@dataclass
class JobRecord:
    """A job: its definition, its state, its live workers and their history.

    Its machine's entry is ``handle`` (job events); worker events go through
    ``Worker.handle`` with this job's story.  The public methods below are the
    stimuli: each stamps one stimulus id on every transition it causes.
    """

    job_id: str
    cluster: str
    definition: JobDefinition
    state: JobState = JOB_ACCEPTED
    submitted_at: float = 0.0
    started_at: float | None = None  # when it became Launched
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
    # The job's events, oldest first (the last EVENTS_KEPT): state changes, kills, scaling
    # with who asked and why, worker replacements, migration steps; plain dicts {"at",
    # "type", "message", ...}, stored with the job.
    events: list[dict[str, Any]] = field(default_factory=list, repr=False)
    # What happened to the job and its workers, in memory only (not in the record).
    # The last 20 transitions of the job and of each of its latest 64 workers: enough to
    # tell what happened lately, small enough for ten thousand jobs in one master.
    log: Story = field(default_factory=lambda: Story(per_key=20, max_keys=64), repr=False, compare=False)
    # A rolling artifact update in progress or the last one (mantis.lifecycles.migration).
    migration: Migration | None = None

    # -- the machine -------------------------------------------------------------

    def handle(self, event: str, now: float, *, stimulus_id: str | None = None, **details) -> list[Effect]:
        """Apply a job event through JOB_TABLE; raise TransitionRejected if not allowed.
        A change of state is one of the job's events."""
        before = self.state
        effects = self._transition(event, now, stimulus_id=stimulus_id, **details)
        if self.state != before:
            why = details.get("message") or details.get("reason") or event
            self.add_event(now, "JobStateChanged", f"job {before} -> {self.state}: {why}",
                           **{"from": str(before), "to": str(self.state)})
        return effects

    def add_event(self, now: float, kind: str, message: str, **details: Any) -> None:
        """Record one of the job's events (``GET /api/v1/jobs/{id}/events``), keeping the last EVENTS_KEPT."""
        self.events.append({"at": now, "type": kind, "message": message, **details})
        del self.events[:-EVENTS_KEPT]

    def _transition(self, event: str, now: float, *, stimulus_id: str | None = None, **details) -> list[Effect]:
        return run_transition(JOB_TABLE, self, event, now, key=self.job_id, story=self.log,
                              stimulus_id=stimulus_id or new_stimulus_id(event), **details)

    def story(self, *keys: str) -> list[StoryEntry]:
        """What happened to the job (its id) and to workers (their keys), oldest first."""
        return self.log.story(*(keys or (self.job_id,)))

    def describe_story(self, limit: int = 20) -> list[dict[str, Any]]:
        """The last ``limit`` transitions of the job and its live workers, oldest first,
        as the admin view shows them."""
        entries = self.story(self.job_id, *(w.key for w in self.workers.values()))
        return [{"stimulusId": e.stimulus_id, "key": e.key, "event": e.event, "from": e.before,
                 "to": e.after, "at": e.at, "note": e.note} for e in entries[-limit:]]

    def validate(self) -> None:
        """Check the job's invariants; raise InvariantViolation if one is broken."""
        check(isinstance(self.state, JobState), f"job {self.job_id}: state {self.state!r} is not a JobState")
        slots: set[tuple[int, int]] = set()
        for number, w in self.workers.items():
            check(w.number == number and w.job_id == self.job_id,
                  f"job {self.job_id}: worker {w.key} filed under number {number}")
            check(number < self.next_worker_number,
                  f"job {self.job_id}: worker {w.key} numbered past {self.next_worker_number - 1}")
            check(not w.is_terminal, f"job {self.job_id}: ended worker {w.key} is still live")
            check(0 <= w.index < self.stage_sizes.get(w.stage, 0),
                  f"job {self.job_id}: worker {w.key} on ({w.stage}, {w.index}) outside the stage sizes "
                  f"{self.stage_sizes}")
            if w.replaces is not None:  # a migration's successor shares its old worker's slot
                old = self.workers.get(w.replaces)
                check(old is not None and (old.stage, old.index) == (w.stage, w.index),
                      f"job {self.job_id}: worker {w.key} replaces {w.replaces}, not live on its slot")
            else:
                check((w.stage, w.index) not in slots,
                      f"job {self.job_id}: two live workers on (stage {w.stage}, index {w.index})")
                slots.add((w.stage, w.index))
            w.validate()
        if self.state in TERMINAL_JOB_STATES:
            check(not self.workers, f"job {self.job_id}: {self.state} with {len(self.workers)} live worker(s)")
            check(self.ended_at is not None and self.terminating_since is None,
                  f"job {self.job_id}: {self.state} without an end time, or still terminating")
        elif self.state in TERMINATING_JOB_STATES:
            check(self.terminating_since is not None, f"job {self.job_id}: {self.state} since no time")
        else:
            check(self.ended_at is None and self.terminating_since is None,
                  f"job {self.job_id}: active but ended or terminating")

    def _checked(self, effects: list[Effect]) -> list[Effect]:
        """The end of a stimulus: the job must be consistent again (checked when on)."""
        if lifecycle.VALIDATE:
            self.validate()
        return effects

    def _worker_event(self, w: Worker, event: str, now: float, stimulus_id: str, **details) -> None:
        w.handle(event, now, story=self.log, stimulus_id=stimulus_id, **details)

    # -- creation and recovery ---------------------------------------------------

    @classmethod
    def submit(cls, job_id: str, cluster: str, definition: JobDefinition,
               now: float) -> tuple[JobRecord, list[Effect]]:
        """A new Accepted job with one Accepted worker per stage instance."""
        job = cls(job_id=job_id, cluster=cluster, definition=definition, submitted_at=now)
        # A job gets its definition merged with its cluster's, which always has scheduling info.
        assert definition.scheduling_info is not None, "job definition not merged with its cluster's"
        sizes = {n: stage.number_of_instances for n, stage in definition.scheduling_info.stages.items()}
        if autoscaled(definition):
            sizes[JOB_MASTER_STAGE] = 1
        for stage_number, count in sorted(sizes.items()):
            job.stage_sizes[stage_number] = count
            for index in range(count):
                job._new_worker(stage_number, index, now)
        job.log.record(StoryEntry(new_stimulus_id("submit"), job_id, "submit", "", str(job.state), now))
        job.add_event(now, "JobSubmitted", f"job submitted by {definition.user or 'unknown'} with "
                      + ", ".join(f"stage {n}: {c}" for n, c in sorted(job.stage_sizes.items()) if n)
                      + ("; a Job Master autoscales it" if JOB_MASTER_STAGE in job.stage_sizes else ""))
        return job, job._checked([Persist()] + job._due_schedules(now))

    def recover(self, now: float) -> list[Effect]:
        """After a master restart: give live workers a fresh heartbeat grace period.

        Running workers are kept (their agents re-report them); Accepted ones are asked
        for again, since the scheduler's pending queue died with the old master.  This
        is not a transition (nothing was reported), so it changes times directly.
        """
        effects: list[Effect] = []
        for w in self.workers.values():
            if w.is_running:
                w.last_heartbeat = now
                if w.launched_at is not None and w.state != STARTED:
                    w.launched_at = now
            elif w.state == ACCEPTED:
                w.requested = False
        if self.state in TERMINATING_JOB_STATES:
            self.terminating_since = now
            effects += [ReleaseWorker(w.key, w.agent_id, self.kill_reason) for w in self.workers.values()]
        return self._checked(effects + self._due_schedules(now))

    # -- queries -----------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_JOB_STATES

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_JOB_STATES

    def upstream_endpoints(self, stage: int) -> list[tuple[str, str, int]]:
        """(worker id, host, port) of the Started workers of stage ``stage - 1``: where a
        worker of ``stage`` reads from.  Empty for stage 1 (it reads the source; stage 0
        is the Job Master, which serves no events)."""
        if stage <= 1:
            return []
        return sorted((w.key, w.host or "127.0.0.1", int(w.metrics["port"]))
                      for w in self.workers.values()
                      if w.stage == stage - 1 and w.state == STARTED and w.metrics.get("port"))

    def output_subscribers(self) -> int:
        """How many subscribers the job's output has: the ``subscribers`` metric of the
        last stage's Started workers, as their latest heartbeats reported it."""
        last = max(self.stage_sizes, default=0)
        return sum(int(w.metrics.get("subscribers", 0) or 0) for w in self.workers.values()
                   if w.stage == last and w.state == STARTED)

    def upstream_finished(self, stage: int) -> bool:
        """True when ``stage`` reads from a stage that has completed (every worker of it
        completed on its own): a worker of ``stage`` will get no more input."""
        return self._stage_finished(stage - 1)

    def worker_by_key(self, key: str) -> Worker | None:
        """The live worker with this key, or None (ended, another job's, or malformed)."""
        try:
            _, number = parse_worker_key(key)
        except ValueError:
            return None
        w = self.workers.get(number)
        return w if w is not None and w.key == key else None

    # -- worker events -----------------------------------------------------------

    def worker_launched(self, key: str, agent_id: str, host: str, ports: list[int],
                        now: float, stimulus_id: str | None = None) -> list[Effect]:
        """The scheduler placed a worker on an agent (a repeat of a known launch is ignored)."""
        sid = stimulus_id or new_stimulus_id("worker-launched")
        w = self._live_worker(key, "launch", now, sid)
        if w.state != ACCEPTED and w.agent_id == agent_id:
            return []
        self._worker_event(w, "launch", now, sid, agent_id=agent_id, host=host, ports=ports)
        return self._checked([Persist()])

    def worker_status(self, key: str, status: str, now: float, reason: str = "",
                      metrics: dict | None = None, stimulus_id: str | None = None) -> list[Effect]:
        """An agent reported a worker's status: StartInitiated, Started, Completed, Failed,
        or Heartbeat.  A status for an unknown or already-ended worker is rejected."""
        sid = stimulus_id or new_stimulus_id("worker-status")
        w = self._live_worker(key, f"status {status}", now, sid)
        try:
            event = reported_event(key, w.state, status)
        except TransitionRejected as exc:
            self._log_rejected(key, f"status {status}", str(w.state), exc, now, sid)
            raise
        if event == "heartbeat":
            self._worker_event(w, event, now, sid, metrics=metrics)
            return self._checked([])
        if event in ("fail", "complete"):
            self._worker_event(w, event, now, sid, reason=reason, metrics=metrics)
            return self._checked(self._worker_ended(w, now, sid))
        self._worker_event(w, event, now, sid, metrics=metrics)
        effects: list[Effect] = [Persist()]
        if event == "started":
            from mantis.lifecycles import migration
            effects += migration.on_started(self, w, now, sid)
        if (event == "started" and self.state == JOB_ACCEPTED
                and all(x.state == STARTED for x in self.workers.values())):
            effects += self.handle("launch", now, stimulus_id=sid)
        return self._checked(effects)

    def _worker_ended(self, w: Worker, now: float, sid: str) -> list[Effect]:
        self._archive_worker(w)
        effects: list[Effect] = [Persist()]
        if not self.is_active:
            return effects + self._maybe_terminated(now, sid)
        if w.stage == JOB_MASTER_STAGE:
            return effects + self._replace(w, now, sid)  # the job still runs: it needs its Job Master
        if w.state == COMPLETED:
            # A worker that finished on its own leaves its slot empty; when all are empty
            # the job has completed (a finite job).
            if self._stage_finished(w.stage):
                effects += self._release_unfed(w.stage + 1, now, sid)
            return effects + self._completed_if_empty(now, sid)
        from mantis.lifecycles import migration
        if migration.on_ended(self, w, now, sid):
            return effects + migration.step(self, now, sid)
        if self._stage_finished(w.stage - 1):
            # Its input has ended for good: a replacement would wait forever for data.
            w.reason = f"{w.reason}; not replaced: stage {w.stage - 1} has completed"
            return effects + self._completed_if_empty(now, sid)
        return effects + self._replace(w, now, sid)

    def _stage_finished(self, stage: int) -> bool:
        """True when ``stage`` exists and its every worker completed (a finite stage is done)."""
        return (stage >= 1 and self.stage_sizes.get(stage, 0) > 0
                and not any(x.stage == stage for x in self.workers.values()))

    def _release_unfed(self, stage: int, now: float, sid: str) -> list[Effect]:
        """Workers of ``stage`` not yet Started when their upstream stage completed: they
        could never connect to it, so they end now (Completed, with the reason)."""
        effects: list[Effect] = []
        for x in [x for x in self.workers.values() if x.stage == stage and x.state != STARTED]:
            why = f"stage {stage - 1} completed before this worker started"
            self._worker_event(x, "complete", now, sid, reason=why)
            self._archive_worker(x)
            if x.agent_id:
                effects.append(ReleaseWorker(x.key, x.agent_id, x.reason))
        return effects

    def _completed_if_empty(self, now: float, sid: str) -> list[Effect]:
        if any(w.stage != JOB_MASTER_STAGE for w in self.workers.values()):
            return []
        effects: list[Effect] = []
        for w in list(self.workers.values()):  # the Job Master has nothing left to scale
            self._worker_event(w, "complete", now, sid, reason="every processing stage completed")
            self._archive_worker(w)
            effects.append(ReleaseWorker(w.key, w.agent_id, w.reason))
        # Nothing is left to stop, so the job completes at once (no Terminating step).
        return effects + self.handle("complete", now, stimulus_id=sid, reason="Normal",
                                     message="all workers completed")

    def _replace(self, old: Worker, now: float, sid: str) -> list[Effect]:
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
            return self._kill("Error", f"more than {self.policy.max_resubmits_per_hour} "
                                       "worker resubmits in an hour", now, sid)
        new = self._new_worker(old.stage, old.index, now, resubmit_of=old,
                               ready_at=now + delay)
        self.add_event(now, "WorkerReplaced",
                       f"worker {old.number} (stage {old.stage}, index {old.index}) {old.state}: {old.reason}; "
                       f"replaced by worker {new.number} after {delay:.0f}s",
                       stage=old.stage, workerIndex=old.index, oldWorkerNumber=old.number,
                       newWorkerNumber=new.number, reason=old.reason, delayS=delay)
        effects: list[Effect] = [WorkerReplaced(old.key, new.key, old.reason, delay), Persist()]
        return effects + self._due_schedules(now)

    # -- periodic checks ----------------------------------------------------------

    def tick(self, now: float, stimulus_id: str | None = None) -> list[Effect]:
        """Heartbeat and startup timeouts, replacements whose backoff is over, and a
        termination that waited too long for its workers."""
        sid = stimulus_id or new_stimulus_id("tick")
        effects: list[Effect] = []
        for w in list(self.workers.values()):
            if w.state in (LAUNCHED, START_INITIATED):
                silent = now - (w.last_heartbeat or w.launched_at or now)
                limit = max(self.policy.heartbeat_timeout_s, 0.0)
                if now - (w.launched_at or now) > self.policy.startup_timeout_s and silent > limit:
                    effects += self._fail_silent(w, now, "startup timed out", sid)
            elif w.state == STARTED and now - (w.last_heartbeat or now) > self.policy.heartbeat_timeout_s:
                effects += self._fail_silent(w, now, "heartbeat timeout", sid)
        if (self.terminating_since is not None and self.workers
                and now - self.terminating_since > self.policy.terminate_timeout_s):
            for w in list(self.workers.values()):
                self._worker_event(w, "fail", now, sid,
                                   reason="not confirmed stopped before the termination timeout")
                self._archive_worker(w)
            effects += [Persist()] + self._maybe_terminated(now, sid)
        from mantis.lifecycles import migration
        effects += migration.step(self, now, sid)
        return self._checked(effects + self._due_schedules(now))

    def _fail_silent(self, w: Worker, now: float, reason: str, sid: str) -> list[Effect]:
        self._worker_event(w, "fail", now, sid, reason=reason)
        return [ReleaseWorker(w.key, w.agent_id, reason)] + self._worker_ended(w, now, sid)

    # -- operator actions ---------------------------------------------------------

    def kill(self, reason: str, message: str, now: float, stimulus_id: str | None = None,
             user: str = "") -> list[Effect]:
        """Terminate the job; reason Error or Lost ends it Failed, others Completed."""
        self.add_event(now, "JobKilled", f"kill requested by {user or 'unknown'}: {reason}"
                       + (f" ({message})" if message else ""), user=user, reason=reason)
        return self._checked(self._kill(reason, message, now, stimulus_id or new_stimulus_id("kill")))

    def _kill(self, reason: str, message: str, now: float, sid: str) -> list[Effect]:
        abnormal = reason in ABNORMAL_KILL_REASONS
        if self.is_active and all(w.state == ACCEPTED for w in self.workers.values()):
            # No worker runs, so none has a stop to confirm: the job ends at once.
            event = "fail" if abnormal else "complete"
        else:
            event = "kill_abnormal" if abnormal else "kill_normal"
        return self.handle(event, now, stimulus_id=sid, reason=reason, message=message)

    def _stop_all_workers(self, reason: str, now: float, sid: str) -> list[Effect]:
        """Ask every live worker to stop; those never launched end here (Completed)."""
        effects: list[Effect] = []
        for w in list(self.workers.values()):
            if w.state == ACCEPTED:
                self._worker_event(w, "complete", now, sid, reason="job killed before launch")
                self._archive_worker(w)
            effects.append(ReleaseWorker(w.key, w.agent_id, f"job killed: {reason}"))
        return effects

    def scale_stage(self, stage: int, count: int, now: float, stimulus_id: str | None = None,
                    user: str = "", reason: str = "") -> list[Effect]:
        """Set a stage's number of workers: new indexes are added, the highest removed.
        The resize is one of the job's events, with who asked (``user``) and why."""
        if not self.is_active:
            raise TransitionRejected(f"job {self.job_id}: cannot scale in state {self.state}")
        if stage == JOB_MASTER_STAGE or stage not in self.stage_sizes:
            raise TransitionRejected(f"job {self.job_id} has no stage {stage}")
        assert self.definition.scheduling_info is not None  # merged on submit, see submit()
        info = self.definition.scheduling_info.stages[stage]
        policy = info.scaling_policy or {}
        lo, hi = int(policy.get("min", 0)), int(policy.get("max", 10_000))
        if not info.scalable:
            raise TransitionRejected(f"job {self.job_id}: stage {stage} is not scalable")
        if not lo <= count <= hi:
            raise TransitionRejected(f"job {self.job_id}: stage {stage} must keep {lo}..{hi} workers")
        sid = stimulus_id or new_stimulus_id("scale")
        effects: list[Effect] = []
        current = self.stage_sizes[stage]
        for index in range(current, count):
            self._new_worker(stage, index, now)
        for w in [w for w in self.workers.values() if w.stage == stage and w.index >= count]:
            effects.append(ReleaseWorker(w.key, w.agent_id, STAGE_SCALED_DOWN))
            self._worker_event(w, "complete", now, sid, reason=STAGE_SCALED_DOWN)
            self._archive_worker(w)
        self.stage_sizes[stage] = count
        if count != current:
            self.add_event(now, "StageScaled", f"stage {stage} scaled {'up' if count > current else 'down'} "
                           f"from {current} to {count} workers by {user or 'unknown'}"
                           + (f": {reason}" if reason else ""),
                           stage=stage, fromWorkers=current, toWorkers=count, user=user, reason=reason)
        return self._checked(effects + [Persist()] + self._due_schedules(now))

    def resubmit_worker(self, number: int, reason: str, now: float,
                        stimulus_id: str | None = None) -> list[Effect]:
        """Replace worker ``number`` by a new incarnation on its index, without backoff."""
        if not self.is_active:
            raise TransitionRejected(f"job {self.job_id}: cannot resubmit in state {self.state}")
        w = self.workers.get(number)
        if w is None:
            raise TransitionRejected(f"job {self.job_id} has no live worker number {number}")
        sid = stimulus_id or new_stimulus_id("resubmit")
        self._worker_event(w, "fail", now, sid, reason=f"resubmitted: {reason}")
        self._archive_worker(w)
        new = self._new_worker(w.stage, w.index, now, resubmit_of=w, ready_at=now)
        self.add_event(now, "WorkerResubmitted", f"worker {w.number} (stage {w.stage}, index {w.index}) "
                       f"resubmitted as worker {new.number}: {reason}", stage=w.stage, workerIndex=w.index,
                       oldWorkerNumber=w.number, newWorkerNumber=new.number, reason=reason)
        effects: list[Effect] = [ReleaseWorker(w.key, w.agent_id, w.reason),
                                 WorkerReplaced(w.key, new.key, w.reason, 0.0),
                                 Persist()]
        return self._checked(effects + self._due_schedules(now))

    # -- helpers --------------------------------------------------------------------

    def _live_worker(self, key: str, event: str, now: float, sid: str) -> Worker:
        w = self.worker_by_key(key)
        if w is None:
            exc = TransitionRejected(f"worker {key}: not a live worker of job {self.job_id}")
            self._log_rejected(key, event, "not live", exc, now, sid)
            raise exc
        return w

    def _log_rejected(self, key: str, event: str, state: str, exc: Exception, now: float, sid: str) -> None:
        self.log.record(StoryEntry(sid, key, event, state, None, now, f"rejected: {exc}"))

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

    def _due_schedules(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        if not self.is_active:
            return effects
        for w in self.workers.values():
            if w.state != ACCEPTED or w.ready_at > now:
                continue
            # Asked long ago and still not launched: ask again (the scheduler treats a
            # repeated request as idempotent), so a lost message cannot strand a worker.
            if not w.requested or now - w.requested_at > self.policy.schedule_retry_s:
                w.requested, w.requested_at = True, now
                effects.append(PlaceWorker(w))
        return effects

    def _maybe_terminated(self, now: float, sid: str) -> list[Effect]:
        if self.state not in TERMINATING_JOB_STATES or self.workers:
            return []
        return self.handle("terminated", now, stimulus_id=sid)

    def _ended(self, now: float) -> None:
        self.ended_at = now
        self.terminating_since = None

    # -- encoding -------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The stored form of the job (the store's layout, not the API's)."""
        return {
            "jobId": self.job_id, "cluster": self.cluster, "definition": self.definition.to_json(),
            "state": str(self.state), "submittedAt": self.submitted_at, "startedAt": self.started_at,
            "endedAt": self.ended_at, "killReason": self.kill_reason, "killMessage": self.kill_message,
            "terminatingSince": self.terminating_since,
            "workers": [w.to_json() for w in self.workers.values()],
            "archivedWorkers": [w.to_json() for w in self.archived_workers],
            "nextWorkerNumber": self.next_worker_number,
            "stageSizes": {str(k): v for k, v in self.stage_sizes.items()},
            "backoff": self.backoff, "errorResubmits": list(self.error_resubmits),
            "migration": self.migration.to_json() if self.migration else None,
            "events": list(self.events),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], policy: WorkerPolicy | None = None) -> JobRecord:
        from mantis.lifecycles.migration import Migration
        workers = [Worker.from_json(w) for w in data["workers"]]
        return cls(
            job_id=data["jobId"], cluster=data["cluster"],
            definition=JobDefinition.from_json(data["definition"]), state=JobState(data["state"]),
            submitted_at=data["submittedAt"], started_at=data.get("startedAt"), ended_at=data.get("endedAt"),
            kill_reason=data.get("killReason", ""), kill_message=data.get("killMessage", ""),
            terminating_since=data.get("terminatingSince"),
            workers={w.number: w for w in workers},
            archived_workers=[Worker.from_json(w) for w in data.get("archivedWorkers", [])],
            next_worker_number=data["nextWorkerNumber"],
            stage_sizes={int(k): v for k, v in data["stageSizes"].items()},
            backoff=data.get("backoff", {}), error_resubmits=deque(data.get("errorResubmits", [])),
            policy=policy or WorkerPolicy(),
            migration=Migration.from_json(data["migration"]) if data.get("migration") else None,
            events=list(data.get("events", [])),
        )

    def describe(self) -> dict[str, Any]:
        """The job as the API shows it."""
        d = self.definition
        return {
            "jobId": self.job_id, "clusterName": self.cluster, "state": str(self.state),
            "user": d.user, "version": d.version, "url": d.url,
            "submittedAt": self.submitted_at, "startedAt": self.started_at, "endedAt": self.ended_at,
            "killReason": self.kill_reason or None, "killMessage": self.kill_message or None,
            "parameters": [p.to_json() for p in d.parameters or []],
            "labels": [label.to_json() for label in d.labels],
            "jobSla": d.job_sla.to_json() if d.job_sla else None,
            "stageSizes": {str(k): v for k, v in self.stage_sizes.items() if k != JOB_MASTER_STAGE},
            "schedulingInfo": d.scheduling_info.to_json() if d.scheduling_info else None,
            "subscriptionTimeoutSecs": d.subscription_timeout_secs,
            "nextWorkerNumber": self.next_worker_number,
            "workers": [w.describe() for w in sorted(self.workers.values(),
                                                     key=lambda w: (w.stage, w.index, w.number))],
            "jobMaster": JOB_MASTER_MACHINE.to_json() if JOB_MASTER_STAGE in self.stage_sizes else None,
            "migration": self.migration.to_json() if self.migration else None,
            "events": self.events[-50:],
            "recentEvents": self.events[-RECENT_EVENTS:],
        }


__all__ = [
    "ACTIVE_JOB_STATES",
    "JOB_TABLE",
    "KILL_REASONS",
    "META_STATES",
    "RUNNING_STATES",
    "Effect",
    "JobRecord",
    "JobEnded",
    "JobState",
    "Persist",
    "PlaceWorker",
    "ReleaseWorker",
    "WorkerPolicy",
    "WorkerReplaced",
]
