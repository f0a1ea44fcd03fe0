"""Control-plane messages between the master's actors, agents and workers.

Every message is a small picklable dataclass.  Requests that expect an answer carry
``reply_to`` when an actor forwards them on behalf of someone else, so the actor that
finally handles a request answers the original asker directly.  Every request is
answered with either its own reply type or ``Rejected`` (status + reason), so an asker
never waits for nothing.  Events never travel as actor messages.
"""
from __future__ import annotations

import reprlib
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from mantis.config import Config
from mantis.lifecycles.job_state import KILL_REASONS
from mantis.model.codec import ValidationError
from mantis.model.ids import parse_job_id

# -- answers ------------------------------------------------------------------------

@dataclass
class Rejected:
    """A request that was refused. ``status`` is an HTTP-like code: 400, 404, 409, 503."""

    status: int
    reason: str


@dataclass
class Done:
    """A request that succeeded; ``body`` is JSON-able data for the caller."""

    body: Any = None


# -- master wiring ----------------------------------------------------------------

@dataclass
class InitMaster:
    """Manager start-up: load the store, recover clusters and jobs, remember the scheduler."""

    config: Config
    scheduler: Any


@dataclass
class InitScheduler:
    """Scheduler start-up settings (agent timeout, placement tick)."""

    config: Config


# -- typed requests ------------------------------------------------------------------
#
# One message type per operation.  A request about a cluster or a job goes to the shard
# that hosts the cluster (``cluster_name``), where the cluster's or the job's hosted
# actor handles it and answers ``reply_to`` (or the sender) with Done (or a typed
# subclass of it) or Rejected.  ``validate()`` checks what can be checked without the
# actors; the gateway calls it before sending, so bad input is a 400 at once.


class ClusterRequest:
    """A request about one job cluster, named by ``name``."""

    name: str

    @property
    def cluster_name(self) -> str:
        return self.name

    def validate(self) -> None:
        """Raise ValidationError for a malformed request."""


class JobRequest:
    """A request about one job, named by ``job_id`` (``<cluster>-<n>``)."""

    job_id: str

    @property
    def cluster_name(self) -> str:
        return parse_job_id(self.job_id)[0]

    def validate(self) -> None:
        """Raise ValidationError for a malformed request (a job id that does not parse)."""
        parse_job_id(self.job_id)


@dataclass
class CreateCluster(ClusterRequest):
    definition: Any  # JobClusterDefinition
    reply_to: Any = None

    @property
    def cluster_name(self) -> str:
        return self.definition.name


@dataclass
class GetCluster(ClusterRequest):
    name: str
    reply_to: Any = None


@dataclass
class ReplaceCluster(ClusterRequest):
    """Replace the cluster's definition (PUT)."""

    name: str
    definition: Any  # JobClusterDefinition
    user: str = "unknown"
    reply_to: Any = None

    def validate(self) -> None:
        if self.definition.name != self.name:
            raise ValidationError(f"body names cluster {self.definition.name!r}, the path {self.name!r}")


@dataclass
class UpdateArtifact(ClusterRequest):
    """A new artifact for the cluster; unless ``skip_submit``, its running jobs migrate
    their workers to it (``mantis.lifecycles.migration``)."""

    name: str
    url: str
    version: str
    user: str = "unknown"
    reply_to: Any = None
    skip_submit: bool = False


@dataclass
class UpdateSchedulingInfo(ClusterRequest):
    """New scheduling info (stages, machines, constraints) for the cluster's jobs to come."""

    name: str
    scheduling_info: Any  # SchedulingInfo
    version: str | None = None
    user: str = "unknown"
    reply_to: Any = None


@dataclass
class UpdateMigrationStrategy(ClusterRequest):
    """How the cluster's running jobs move their workers (Mantis' WorkerMigrationConfig)."""

    name: str
    migration_config: dict = field(default_factory=dict)
    user: str = "unknown"
    reply_to: Any = None


@dataclass
class MigrateJob:
    """JobClusterActor -> JobActor: move the job's workers to artifact ``url``, as the
    cluster's ``migration_config`` says."""

    job_id: str
    url: str
    version: str
    migration_config: dict
    user: str = "unknown"


@dataclass
class UpdateSla(ClusterRequest):
    name: str
    sla_min: int = 0
    sla_max: int = 0
    cron_spec: str | None = None
    cron_policy: str = "KEEP_EXISTING"
    user: str = "unknown"
    reply_to: Any = None


@dataclass
class UpdateLabels(ClusterRequest):
    name: str
    labels: list = field(default_factory=list)  # of Label
    user: str = "unknown"
    reply_to: Any = None


@dataclass
class UpdateJobSla(ClusterRequest):
    name: str
    job_sla: Any = None  # JobSla
    user: str = "unknown"
    reply_to: Any = None


@dataclass
class EnableCluster(ClusterRequest):
    name: str
    user: str = "unknown"
    reply_to: Any = None


@dataclass
class DisableCluster(ClusterRequest):
    """Disable the cluster: no submits, and its running jobs are killed."""

    name: str
    user: str = "unknown"
    reply_to: Any = None


@dataclass
class DescribeJobs(ClusterRequest):
    """The API's view of several jobs of one cluster at once (a job list's page): the
    shard answers ``{jobId: description}`` for those that exist, active or ended."""

    name: str
    job_ids: list = field(default_factory=list)
    reply_to: Any = None


@dataclass
class DeleteCluster(ClusterRequest):
    name: str
    user: str = "unknown"
    reply_to: Any = None


@dataclass
class SubmitJob(ClusterRequest):
    cluster: str
    definition: Any  # JobDefinition
    reply_to: Any = None

    @property
    def cluster_name(self) -> str:
        return self.cluster


@dataclass
class ListClusters:
    pass


@dataclass
class CountJobs:
    """Ask the manager for jobs counted by state, and the workers of running jobs counted
    by state (``{"jobs": {...}, "workers": {...}}``), for ``GET /metrics``: counts, not
    every summary."""


@dataclass
class ListJobs:
    cluster: str | None = None
    states: list | None = None
    include_ended: bool = False


@dataclass
class GetJob(JobRequest):
    job_id: str
    reply_to: Any = None


@dataclass
class GetJobEvents(JobRequest):
    """The job's events, oldest first: state changes, kills, scaling (who and why),
    worker replacements.  Answered with Done(list of events)."""

    job_id: str
    reply_to: Any = None


@dataclass
class GetArchivedWorkers(JobRequest):
    job_id: str
    reply_to: Any = None


@dataclass
class KillJob(JobRequest):
    job_id: str
    reason: str = "Killed"
    message: str = ""
    user: str = "unknown"
    reply_to: Any = None

    def validate(self) -> None:
        super().validate()
        if self.reason not in KILL_REASONS:
            raise ValidationError(f"killReason must be one of {', '.join(KILL_REASONS)}")


@dataclass
class ScaleStage(JobRequest):
    job_id: str
    stage: int
    count: int
    user: str = "unknown"
    reason: str = ""
    reply_to: Any = None

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.stage, int) or self.stage < 1:
            raise ValidationError("StageNumber must be an integer >= 1")
        if not isinstance(self.count, int) or not 0 <= self.count <= 10_000:
            raise ValidationError("NumWorkers must be an integer from 0 to 10000")


@dataclass
class ResubmitWorker(JobRequest):
    job_id: str
    number: int
    user: str = "unknown"
    reason: str = ""
    reply_to: Any = None

    def validate(self) -> None:
        super().validate()
        if not isinstance(self.number, int) or self.number < 1:
            raise ValidationError("workerNumber must be an integer >= 1")


@dataclass
class WatchJob(JobRequest):
    """Tell the sender about the job's changes for ``lease_s`` seconds (send again to
    renew).  Answered at once with a JobChanged, then one on every change that a
    watcher acts on (a state, a worker placed, started, replaced or gone); the last
    has ``final`` set."""

    job_id: str
    lease_s: float = 15.0
    reply_to: Any = None


@dataclass
class JobChanged:
    """A watched job as ``GetJob`` describes it; ``final``: it has ended, no more follow."""

    job_id: str
    job: dict
    final: bool = False


@dataclass
class WatchCluster(ClusterRequest):
    """Tell the sender which of the cluster's jobs is the latest active one, at once and
    whenever that changes, for ``lease_s`` seconds (send again to renew)."""

    name: str
    lease_s: float = 15.0
    reply_to: Any = None


@dataclass
class ClusterChanged:
    """A watched cluster's latest active job (None when it has none); ``final``: deleted."""

    name: str
    latest_job_id: str | None
    final: bool = False


# -- typed replies (each a Done, so a caller that wants the body has it) ----------------

class JobSubmitted(Done):
    """SubmitJob was accepted and the job's record is durable."""

    def __init__(self, job_id: str):
        super().__init__({"jobId": job_id})
        self.job_id = job_id


class JobKilled(Done):
    """KillJob was accepted: the job is terminating (or ended) with its kill reason."""

    def __init__(self, job_id: str, state: str):
        super().__init__({"jobId": job_id, "state": state})
        self.job_id, self.state = job_id, state


class StageScaled(Done):
    """ScaleStage was applied: the stage now wants ``num_workers`` workers."""

    def __init__(self, job_id: str, stage: int, num_workers: int):
        super().__init__({"jobId": job_id, "stage": stage, "numWorkers": num_workers})
        self.job_id, self.stage, self.num_workers = job_id, stage, num_workers


class WorkerResubmitted(Done):
    """ResubmitWorker was applied: worker ``number`` is being replaced."""

    def __init__(self, job_id: str, number: int):
        super().__init__({"jobId": job_id, "resubmitted": number})
        self.job_id, self.number = job_id, number


# -- shards ---------------------------------------------------------------------------

@dataclass
class ShardContext:
    """What a hosted cluster or job actor needs from its shard (delivered in-process only:
    ``store`` is the shard's one store client)."""

    config: Config
    scheduler: Any
    manager: Any
    checker: Any
    store: Any


@dataclass
class InitShard:
    """Manager -> ShardActor: host the clusters whose names hash to ``index`` of ``count``."""

    index: int
    count: int
    config: Config
    scheduler: Any
    manager: Any
    checker: Any = None


@dataclass
class ShardReady:
    """ShardActor -> manager: the shard has loaded its clusters and jobs."""

    index: int
    clusters: int
    jobs: int


@dataclass
class GetShards:
    """Ask the manager for the shards' addresses, in index order (answered with Done)."""


# -- cluster <-> job ----------------------------------------------------------------

@dataclass
class StartJob:
    """Cluster -> new hosted JobActor: run this job from its stored ``record`` (new or recovered)."""

    job_id: str
    cluster: str
    record: dict
    context: Any = None  # ShardContext


@dataclass
class JobSummary:
    """JobActor -> manager: the job's listing entry changed (only the latest one matters)."""

    job_id: str
    cluster: str
    summary: dict
    address: Any = None

    def coalesce_key(self):
        return ("job", self.job_id)


@dataclass
class JobFinished:
    """JobActor -> cluster: the job ended and is archived; the actor may go."""

    job_id: str
    state: str


@dataclass
class LoadCluster:
    """Shard -> hosted JobClusterActor: own this cluster (new or recovered)."""

    record: dict
    context: Any  # ShardContext
    is_new: bool = False
    reply_to: Any = None
    jobs: list | None = None  # the active jobs' records; None: read them from the store


@dataclass
class ClusterSummary:
    """JobClusterActor -> manager: the cluster's listing entry changed (None: deleted)."""

    name: str
    summary: dict | None

    def coalesce_key(self):
        return ("cluster", self.name)


# -- scheduler ----------------------------------------------------------------------

@dataclass
class WorkerSpec:
    """Everything an agent needs to run one worker, and the scheduler to place it."""

    worker_key: str
    job_id: str
    stage: int
    index: int
    number: int
    entry_point: str
    parameters: dict
    cpus: float
    mem_mb: float
    disk_mb: float
    network_mbps: float
    num_ports: int
    hard_constraints: list = field(default_factory=list)
    soft_constraints: list = field(default_factory=list)
    ports: list = field(default_factory=list)
    host: str = ""
    agent_id: str = ""
    workers_in_stage: int = 1
    # The stage's health and readiness checks (``mantis.model.checks``, JSON forms).
    health_checks: list = field(default_factory=list)
    readiness_checks: list = field(default_factory=list)


@dataclass
class ScheduleWorker:
    """JobActor -> scheduler: place this worker."""

    spec: WorkerSpec


@dataclass
class CancelWorker:
    """JobActor -> scheduler: withdraw the request or stop the running worker."""

    worker_key: str
    agent_id: str | None
    reason: str


@dataclass
class RegisterJob:
    """JobActor -> scheduler: route statuses of this job's workers to me."""

    job_id: str


@dataclass
class UnregisterJob:
    job_id: str


@dataclass
class WorkerLaunched:
    """Scheduler -> JobActor: the worker was placed and sent to its agent."""

    worker_key: str
    agent_id: str
    host: str
    ports: list


@dataclass
class WorkerStatus:
    """A worker's status as its agent reports it: StartInitiated, Started, Completed,
    Failed or Heartbeat, with the worker's metrics (events, drops, pid)."""

    worker_key: str
    status: str
    reason: str = ""
    metrics: dict | None = None


@dataclass
class WorkerStatusBatch:
    """Scheduler -> JobActor: statuses of this job's workers from one agent heartbeat."""

    job_id: str
    agent_id: str
    statuses: list  # of WorkerStatus


@dataclass
class StatusBatch:
    """Scheduler -> shard, once per flush interval: every status for the shard's jobs,
    as (agent id, WorkerStatus) pairs in the order the agents reported them."""

    items: list


@dataclass
class GetPending:
    """Ask the scheduler for the pending workers and why each is still pending."""


@dataclass
class ListAgents:
    pass


@dataclass
class AgentAction:
    """Operator -> scheduler: ``disable`` (no new workers), ``enable``, or ``drain``
    (disable, then move every worker away by resubmitting it elsewhere)."""

    agent_id: str
    action: str
    user: str = "unknown"


# -- agents -------------------------------------------------------------------------

@dataclass
class AgentOfferInfo:
    """What an agent offers, in Mesos' offer shape."""

    agent_id: str
    hostname: str
    cpus: float
    mem_mb: float
    disk_mb: float
    network_mbps: float
    ports: list  # [(begin, end)]
    attributes: dict = field(default_factory=dict)


@dataclass
class RegisterAgent:
    """Agent -> scheduler: I am here with these resources and these running workers."""

    offer: AgentOfferInfo
    workers: list  # of WorkerSpec, with their latest status in ``running``
    statuses: list = field(default_factory=list)  # of WorkerStatus


@dataclass
class AgentHeartbeat:
    """Agent -> scheduler, once per interval: every worker's status in one message."""

    agent_id: str
    statuses: list  # of WorkerStatus
    sent_at: float | None = None  # the agent's clock when sent, for the master's heartbeat lag


@dataclass
class ReRegister:
    """Scheduler -> agent: I do not know you (I restarted); register again."""


@dataclass
class StartAgent:
    """Agent process -> AgentActor: your identity, resources and timing."""

    offer: AgentOfferInfo
    heartbeat_interval_s: float
    worker_silence_s: float
    announce: Any = None  # mantis.runtime.announcer.AnnounceTarget: where workers announce themselves


@dataclass
class ConnectMaster:
    """Agent process -> AgentActor: the master's scheduler is at ``scheduler``."""

    scheduler: Any


@dataclass
class LaunchWorker:
    """Scheduler -> agent: start this worker."""

    spec: WorkerSpec


@dataclass
class StopWorkerOnAgent:
    """Scheduler -> agent: stop this worker."""

    worker_key: str
    reason: str


@dataclass
class DrainWorker:
    """Agent -> worker: the stage is scaled down and this worker goes; hand over what was
    sent to it first (``StageWorker.drain``), at most ``timeout_s``, then end."""

    worker_key: str
    reason: str
    timeout_s: float = 10.0


@dataclass
class GetAgentState:
    pass


@dataclass
class UpdateUpstream:
    """JobActor -> scheduler -> agent -> WorkerActor: where the previous stage's workers
    now are, as (worker id, host, port); sent whenever that set changes.
    ``upstream_finished``: the previous stage has completed (a finite job), so no worker
    will ever appear there again."""

    worker_key: str
    endpoints: list
    upstream_finished: bool = False


# -- agent <-> worker ---------------------------------------------------------------

@dataclass
class RunWorker:
    """AgentActor -> WorkerActor: load and run the job's stage."""

    spec: WorkerSpec
    agent: Any
    heartbeat_interval_s: float = 1.0
    announce: Any = None  # AnnounceTarget, or None: the worker is not announced in ZooKeeper


@dataclass
class WatchWorkerHealth:
    """AgentActor -> HealthCheckerActor: a worker started; run these checks against it."""

    worker_key: str
    health: list
    readiness: list
    target: Any  # mantis.runtime.health_probes.ProbeTarget


@dataclass
class ForgetWorkerHealth:
    """AgentActor -> HealthCheckerActor: the worker has gone; stop checking it."""

    worker_key: str


@dataclass
class HealthVerdict:
    """HealthCheckerActor -> AgentActor: a worker became ``ready``, or ``unhealthy`` (why)."""

    worker_key: str
    verdict: str
    reason: str = ""


@dataclass
class WorkerReport:
    """WorkerActor -> AgentActor: status change or heartbeat with metrics."""

    worker_key: str
    status: str
    reason: str = ""
    metrics: dict = field(default_factory=dict)
    # With Started: the checks the job's code declares ({"health": [...], "readiness": [...]},
    # JSON forms), which the agent runs besides its stage's.
    checks: dict | None = None


@dataclass
class Tick:
    """A wakeupAfter payload; ``generation`` lets an actor ignore stale timers."""

    generation: int = 0


# -- admin --------------------------------------------------------------------------

@dataclass
class GetTimings:
    """Ask the scheduler or a shard for its latency histograms (``mantis.timings`` snapshots),
    for ``GET /metrics``."""

    reply_to: Any = None


@dataclass
class DescribeActors:
    """Ask an actor for itself and its children (admin endpoint)."""

    reply_to: Any = None


# -- entry point checks -------------------------------------------------------------

@dataclass
class InitEntryPointChecker:
    """EntryPointCheckerActor start-up: the master's config (``[master]
    entry_point_check_timeout_s`` and ``entry_point_cache_s``); answered with Done."""

    config: Config


@dataclass
class CheckEntryPoint:
    """Ask the EntryPointCheckerActor whether the job at ``url`` loads and ``parameters``
    resolve against it, checked in a child process.  Answered with EntryPointChecked
    carrying the same ``token`` (the asker's own correlation value, passed back untouched)."""

    url: str
    parameters: dict
    token: Any = None
    reply_to: Any = None


@dataclass
class EntryPointChecked:
    """The answer to CheckEntryPoint: ``error`` is None when the entry point is good, else
    the one-line reason it was refused (load or parameter error, timeout, crash)."""

    token: Any
    error: str | None


# -- how messages print ------------------------------------------------------------
#
# Thespian formats every message it sends or receives for its debug log, whether or
# not that log is on, and a dataclass's own repr of a batch of ten thousand statuses
# costs more than sending it.  Every message here prints briefly instead.

_brief = reprlib.Repr()
_brief.maxlevel, _brief.maxlist, _brief.maxdict, _brief.maxstring, _brief.maxother = 2, 3, 3, 40, 60


def brief_repr(message) -> str:
    """``Type(field=value, ...)`` with long values cut short: cheap for any size."""
    return f"{type(message).__name__}(" + ", ".join(
        f"{f.name}={_brief.repr(getattr(message, f.name, None))}" for f in fields(message)) + ")"



# -- Mesos as the resource manager (scheduler/mesos_manager.py) -------------------------

@dataclass
class AgentGone:
    """Resource manager -> scheduler: this agent is gone (a Mesos FAILURE); replace its workers."""

    agent_id: str
    reason: str


@dataclass
class InitMesos:
    """Master -> MesosFrameworkActor: subscribe with ``config.mesos``, register offers with ``scheduler``."""

    config: Any
    scheduler: Any


@dataclass
class MesosWorkerReport:
    """A Mesos task's worker -> (API) -> MesosFrameworkActor: its metrics; the answer says
    where its upstream workers are."""

    worker_key: str
    metrics: dict


for _cls in list(globals().values()):
    if isinstance(_cls, type) and is_dataclass(_cls) and _cls.__module__ == __name__:
        _cls.__repr__ = brief_repr  # type: ignore[method-assign]
