"""Rolling artifact updates: moving a running job's workers to a new artifact.

When a cluster's artifact is updated (``updateArtifact`` without ``skipSubmit``), each
of its running jobs *migrates*: its definition takes the new entry point and version,
and its Started workers are moved one slot (stage, index) at a time, as the cluster's
``migrationConfig`` says (Mantis' strategies):

- ``ONE_WORKER``: one worker at a time, and only while every worker is running;
- ``PERCENTAGE`` (configString ``{"percentToMove": p, "intervalMs": t}``): at most
  ceil(p% of the workers) moving or not running at once, a new batch no sooner than
  ``t`` ms after the last.

Moving a worker starts its successor on the same slot first (``Worker.replaces`` names
the old number); the old worker stops only once the successor is Started, which with
readiness checks means ready.  So a slot is never without a running worker because of
the migration, and the output never stops.  A successor that fails before it is
Started stops the migration (state ``failed``, with the reason); the old worker keeps
running.  Every step is an event in the job's ``events`` list.

``percentage`` and ``one_worker`` are Mantis' rules as pure functions on a given clock;
``start``, ``step``, ``on_started`` and ``on_ended`` apply them to a JobRecord and
return the effects, like the JobRecord's own methods (this module extends it).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mantis.lifecycles.tables import TransitionRejected
from mantis.lifecycles.worker_state import STARTED, Worker
from mantis.model.migration_config import MigrationConfig

if TYPE_CHECKING:
    from mantis.lifecycles.job_state import Effect, JobRecord

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"


# -- Mantis' strategies: which waiting workers to move now --------------------------

def one_worker(waiting: list[int], running: int, total: int) -> list[int]:
    """One worker, and only while all ``total`` workers are running (none is moving)."""
    if not waiting or running < total:
        return []
    return waiting[:1]


def percentage(config: MigrationConfig, waiting: list[int], running: int, total: int,
               last_move_at: float | None, now: float) -> list[int]:
    """At most ceil(percent of ``total``) (at least 1) workers not running at once, the
    ones not running already counted; nothing within ``interval_s`` of the last move."""
    if not waiting or (last_move_at is not None and now - last_move_at < config.interval_s):
        return []
    allowed = min(len(waiting), max(1, math.ceil(total * config.percent_to_move / 100.0)))
    inactive = total - running
    if inactive >= allowed:
        return []
    return waiting[:allowed - inactive]


def choose(config: MigrationConfig, waiting: list[int], running: int, total: int,
           last_move_at: float | None, now: float) -> list[int]:
    """The workers ``config``'s strategy moves now (a prefix of ``waiting``)."""
    if config.strategy == "PERCENTAGE":
        return percentage(config, waiting, running, total, last_move_at, now)
    return one_worker(waiting, running, total)


# -- a job's migration -------------------------------------------------------------

@dataclass
class Migration:
    """One migration of a job, as stored with the job."""

    from_url: str
    from_version: str
    to_url: str
    to_version: str
    strategy: str
    percent_to_move: int
    interval_s: float
    started_at: float
    state: str = RUNNING
    last_move_at: float | None = None
    moved: int = 0
    ended_at: float | None = None
    reason: str = ""
    # Numbers of the workers still to move (those live when it started, and successors
    # of an earlier migration that it replaced); a worker leaves the list once moved.
    pending: list[int] = field(default_factory=list)

    @property
    def config(self) -> MigrationConfig:
        return MigrationConfig(self.strategy, self.percent_to_move, self.interval_s)

    def to_json(self) -> dict[str, Any]:
        """The stored form (also what the API shows)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Migration:
        return cls(**data)


def _event(job: JobRecord, now: float, message: str, **details: Any) -> None:
    job.add_event(now, "migration", message, **details)


def start(job: JobRecord, url: str, version: str, config: MigrationConfig, now: float,
          sid: str) -> list[Effect]:
    """Begin moving ``job`` to artifact ``url`` (``version``): every live worker is to
    move, even with the same ``url`` (a new version of the same entry point).  A running
    migration is replaced by this one.  Rejected for a job that is not active, or that
    already runs this url and version."""
    from mantis.lifecycles.job_state import Persist

    if not job.is_active:
        raise TransitionRejected(f"job {job.job_id}: cannot migrate in state {job.state}")
    old_url, old_version = job.definition.url or "", job.definition.version or ""
    if (url, version) == (old_url, old_version) and (job.migration is None or job.migration.state != RUNNING):
        raise TransitionRejected(f"job {job.job_id} already runs {url} version {version}")
    for w in job.workers.values():
        if w.url is None:
            w.url = old_url  # what it was launched with, now that the job's url changes
    job.definition = replace(job.definition, url=url, version=version)
    job.migration = Migration(old_url, old_version, url, version, config.strategy, config.percent_to_move,
                              config.interval_s, started_at=now, pending=sorted(job.workers))
    _event(job, now, f"migration to {url} (version {version}) started, strategy {config.strategy}",
           strategy=config.strategy, percentToMove=config.percent_to_move, intervalS=config.interval_s)
    return [Persist()] + step(job, now, sid)


def _successor_of(job: JobRecord, w: Worker) -> Worker | None:
    return next((x for x in job.workers.values() if x.replaces == w.number), None)


def step(job: JobRecord, now: float, sid: str) -> list[Effect]:
    """Move the workers the strategy allows now; complete the migration when none is left."""
    from mantis.lifecycles.job_state import Persist

    m = job.migration
    if m is None or m.state != RUNNING or not job.is_active:
        return []
    m.pending = [n for n in m.pending if n in job.workers]  # ended ones need no move
    old = [job.workers[n] for n in m.pending if job.workers[n].replaces is None]
    if not old and not any(w.replaces is not None for w in job.workers.values()):
        m.state, m.ended_at = COMPLETED, now
        _event(job, now, f"migration completed: {m.moved} worker(s) moved to {m.to_url}", moved=m.moved)
        return [Persist()]
    waiting = [w for w in sorted(old, key=lambda w: (w.stage, w.index))
               if w.state == STARTED and _successor_of(job, w) is None]
    # Running: slots whose worker is Started and not being moved (a move in flight counts
    # as not running, so the strategies never let more than their share be in motion).
    slots = [w for w in job.workers.values() if w.replaces is None]
    running = sum(1 for w in slots if w.state == STARTED and _successor_of(job, w) is None)
    chosen = choose(m.config, [w.number for w in waiting], running, len(slots), m.last_move_at, now)
    if not chosen:
        return []
    m.last_move_at = now
    for number in chosen:
        w = job.workers[number]
        new = job._new_worker(w.stage, w.index, now)
        new.replaces = w.number
        _event(job, now, f"moving worker {w.key} to {new.key}", old=w.key, new=new.key,
               stage=w.stage, index=w.index)
    return [Persist()] + job._due_schedules(now)


def on_started(job: JobRecord, w: Worker, now: float, sid: str) -> list[Effect]:
    """``w`` just became Started: if it is a successor, its old worker stops now."""
    from mantis.lifecycles.job_state import Persist, ReleaseWorker

    if w.replaces is None:
        return step(job, now, sid)
    old = job.workers.get(w.replaces)
    w.replaces = None
    effects: list[Effect] = [Persist()]
    if old is not None:
        reason = f"migrated to worker {w.key}"
        job._worker_event(old, "complete", now, sid, reason=reason)
        job._archive_worker(old)
        effects.append(ReleaseWorker(old.key, old.agent_id, reason))
        if job.migration is not None and old.number in job.migration.pending:
            job.migration.pending.remove(old.number)
            job.migration.moved += 1
        _event(job, now, f"worker {w.key} is ready; {old.key} stopped", old=old.key, new=w.key)
    return effects + step(job, now, sid)


def on_ended(job: JobRecord, w: Worker, now: float, sid: str) -> bool:
    """``w`` ended (already archived).  True when the migration dealt with it, so the
    job must not replace it: a successor that failed stops the migration (its old worker
    keeps the slot); an old worker that ended while moving leaves the slot to its successor."""
    if w.replaces is not None:
        m = job.migration
        if m is not None and m.state == RUNNING:
            m.state, m.ended_at = FAILED, now
            m.reason = f"worker {w.key} ended before it was ready: {w.reason}"
            _roll_back(job, m)
            _event(job, now, f"migration stopped: {m.reason}; replacements run {m.from_url} again",
                   worker=w.key)
        return True
    successor = _successor_of(job, w)
    if successor is not None:
        successor.replaces = None
        _event(job, now, f"worker {w.key} ended while moving; {successor.key} takes its slot",
               old=w.key, new=successor.key)
        return True
    return False


def _roll_back(job: JobRecord, m: Migration) -> None:
    """After a failed migration the job's artifact is the old one again, so a worker
    replaced later runs what worked; workers already moved keep the new artifact."""
    for x in job.workers.values():
        x.url = None if x.number in m.pending else m.to_url
    m.pending = []
    job.definition = replace(job.definition, url=m.from_url, version=m.from_version)
