"""A job cluster's SLA: how many of its jobs run, and its cron schedule (Mantis' rules).

Pure logic on the caller's clock: nothing here reads the time, sends or stores.  The
JobClusterActor asks at its bookkeeping tick, when one of its jobs starts and after
one ends, and carries out the instructions it gets back (``SubmitJobs``, ``KillJobs``).

- **min**: fewer active jobs (counting submissions still being checked) than ``slaMin``:
  submit the difference from the cluster's definition.
- **max**: more than ``slaMax``.  With ``cronPolicy`` KEEP_NEW, walk the jobs newest
  first counting Launched ones; once ``slaMax`` are counted every older job is killed
  (so a new job replaces an old one only once it runs, as Mantis' SLAEnforcer does).
  With KEEP_EXISTING the newest submission is refused (``refusal``) and, should the
  cluster still run too many (its slaMax was lowered), the newest are killed.
- **cron**: a ``cronSpec`` submits one job each time it fires.  If a job of the cluster
  is still active then, KEEP_EXISTING skips this firing and KEEP_NEW submits anyway
  (max 1 then kills the old job once the new one runs).  A cron spec forces min 0 and
  max 1 (``JobClusterDefinition`` does that on decode).  A disabled cluster's cron is
  paused: nothing fires, and on enabling it waits for the spec's next moment (missed
  firings are not made up).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mantis.model.cron import CronSchedule
from mantis.model.definitions import JobClusterDefinition
from mantis.model.ids import parse_job_id

KEEP_EXISTING = "KEEP_EXISTING"
KEEP_NEW = "KEEP_NEW"
LAUNCHED = "Launched"


@dataclass(frozen=True)
class SubmitJobs:
    """Submit ``count`` jobs from the cluster's definition; ``by_cron`` tells a cron
    firing from slaMin (the submitting user differs, as in Mantis)."""

    count: int
    reason: str
    by_cron: bool = False


@dataclass(frozen=True)
class KillJobs:
    """Kill these jobs (reason SLA) and say why."""

    job_ids: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class CronSkipped:
    """The cron spec fired but the policy kept the running job (for the log)."""

    reason: str


Instruction = SubmitJobs | KillJobs | CronSkipped


@dataclass(frozen=True)
class ClusterSla:
    """The SLA terms of a cluster definition: min, max, cron spec and policy."""

    min: int = 0
    max: int = 0
    cron: CronSchedule | None = None
    policy: str = KEEP_EXISTING

    @classmethod
    def of(cls, definition: JobClusterDefinition) -> ClusterSla:
        """The terms ``definition`` states (its decode already forced min 0, max 1 for cron)."""
        cron = CronSchedule.parse(definition.cron_spec) if definition.cron_spec else None
        return cls(definition.sla_min, definition.sla_max, cron, definition.cron_policy)


def _newest_first(jobs: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(jobs.items(), key=lambda item: parse_job_id(item[0])[1], reverse=True)


def enforce(sla: ClusterSla, enabled: bool, jobs: dict[str, str], pending: int = 0) -> list[Instruction]:
    """What min and max ask for now.

    ``jobs`` maps each active job id to its state (Accepted or Launched); ``pending``
    counts submissions that have no id yet.  A disabled cluster is left alone (its
    actor kills its jobs and it takes no submits).
    """
    if not enabled:
        return []
    out: list[Instruction] = []
    active = len(jobs) + pending
    if sla.min and active < sla.min:
        out.append(SubmitJobs(sla.min - active, f"slaMin {sla.min}, {active} active"))
    if sla.max and len(jobs) > sla.max:
        newest = _newest_first(jobs)
        if sla.policy == KEEP_NEW:
            launched, kill = 0, []
            for job_id, state in newest:
                if launched >= sla.max:
                    kill.append(job_id)
                elif state == LAUNCHED:
                    launched += 1
            if kill:
                out.append(KillJobs(tuple(sorted(kill, key=lambda j: parse_job_id(j)[1])),
                                    f"slaMax {sla.max} with KEEP_NEW: newer jobs run"))
        else:
            kill = [job_id for job_id, _ in newest[:len(jobs) - sla.max]]
            out.append(KillJobs(tuple(sorted(kill, key=lambda j: parse_job_id(j)[1])),
                                f"slaMax {sla.max} with KEEP_EXISTING: older jobs are kept"))
    return out


def refusal(sla: ClusterSla, active: int) -> str | None:
    """Why a new submission is refused while ``active`` jobs run, or None to admit it
    (only KEEP_EXISTING at max refuses)."""
    if sla.max and sla.policy == KEEP_EXISTING and active >= sla.max:
        return f"already runs {active} job(s), its slaMax, and keeps them (cronPolicy KEEP_EXISTING)"
    return None


@dataclass
class CronClock:
    """When a cluster's cron spec fires next; ``None`` while paused or without a spec.

    Held in memory by the cluster's actor: after a master restart it waits for the
    spec's next moment from then (as after being enabled).
    """

    next_fire: float | None = None
    armed_for: str | None = field(default=None)  # the spec ``next_fire`` was computed for

    def due(self, sla: ClusterSla, enabled: bool, jobs: dict[str, str], now: float,
            pending: int = 0) -> list[Instruction]:
        """Advance to ``now``: what the cron asks for (at most one firing per call, however
        many moments passed), and the moment it fires next."""
        if sla.cron is None or not enabled:
            self.next_fire, self.armed_for = None, None  # paused: re-armed from when it runs again
            return []
        if self.next_fire is None or self.armed_for != sla.cron.spec:
            self.next_fire, self.armed_for = sla.cron.next_after(now), sla.cron.spec
            return []
        if now < self.next_fire:
            return []
        self.next_fire = sla.cron.next_after(now)
        running = len(jobs) + pending
        if running and sla.policy == KEEP_EXISTING:
            return [CronSkipped(f"cron {sla.cron.spec!r} fired while {running} job(s) run (KEEP_EXISTING)")]
        return [SubmitJobs(1, f"cron {sla.cron.spec!r}" + (" (KEEP_NEW replaces the running job)"
                                                             if running else ""), by_cron=True)]

    def seconds_to_next(self, now: float) -> float | None:
        """How long until the next firing (None: nothing armed)."""
        return None if self.next_fire is None else max(0.0, self.next_fire - now)
