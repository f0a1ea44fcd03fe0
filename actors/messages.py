"""Control-plane messages between the master's actors, agents and workers.

Every message is a small picklable dataclass.  Requests that expect an answer carry
``reply_to`` when an actor forwards them on behalf of someone else, so the actor that
finally handles a request answers the original asker directly.  Every request is
answered with either its own reply type or ``Rejected`` (status + reason), so an asker
never waits for nothing.  Events never travel as actor messages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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

    config: dict
    scheduler: Any


@dataclass
class InitScheduler:
    """Scheduler start-up settings (agent timeout, placement tick)."""

    config: dict


# -- cluster requests (to JobClustersManagerActor) ----------------------------------

@dataclass
class CreateCluster:
    definition: Any  # JobClusterDefinition


@dataclass
class UpdateCluster:
    """Apply ``change`` (a function name on the cluster actor and its arguments) to a cluster."""

    name: str
    action: str
    args: dict = field(default_factory=dict)
    reply_to: Any = None


@dataclass
class GetCluster:
    name: str
    reply_to: Any = None


@dataclass
class ListClusters:
    pass


@dataclass
class DeleteCluster:
    name: str
    user: str = "unknown"
    reply_to: Any = None


# -- job requests ------------------------------------------------------------------

@dataclass
class SubmitJob:
    cluster: str
    definition: Any  # JobDefinition
    reply_to: Any = None


@dataclass
class ListJobs:
    cluster: str | None = None
    states: list | None = None
    include_ended: bool = False


@dataclass
class JobRequest:
    """A request about one job, routed manager -> cluster -> job.

    ``action`` is one of: get, kill, scaleStage, resubmitWorker, archivedWorkers, workers.
    """

    job_id: str
    action: str
    args: dict = field(default_factory=dict)
    reply_to: Any = None


# -- cluster <-> job ----------------------------------------------------------------

@dataclass
class StartJob:
    """Cluster -> new JobActor: run this job from its stored ``record`` (new or recovered)."""

    job_id: str
    cluster: str
    record: dict
    config: dict = field(default_factory=dict)
    scheduler: Any = None


@dataclass
class JobSummary:
    """JobActor -> cluster -> manager: the job's listing entry changed."""

    job_id: str
    cluster: str
    summary: dict
    address: Any = None


@dataclass
class JobFinished:
    """JobActor -> cluster: the job ended and is archived; the actor is exiting."""

    job_id: str
    state: str


@dataclass
class LoadCluster:
    """Manager -> JobClusterActor: own this cluster (new or recovered)."""

    record: dict
    config: dict
    scheduler: Any
    is_new: bool = False
    reply_to: Any = None


@dataclass
class ClusterSummary:
    """JobClusterActor -> manager: the cluster's listing entry changed (None: deleted)."""

    name: str
    summary: dict | None


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


@dataclass
class ReRegister:
    """Scheduler -> agent: I do not know you (I restarted); register again."""


@dataclass
class StartAgent:
    """Agent process -> AgentActor: your identity, resources and timing."""

    offer: AgentOfferInfo
    heartbeat_interval_s: float
    worker_silence_s: float


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


@dataclass
class WorkerReport:
    """WorkerActor -> AgentActor: status change or heartbeat with metrics."""

    worker_key: str
    status: str
    reason: str = ""
    metrics: dict = field(default_factory=dict)


@dataclass
class Tick:
    """A wakeupAfter payload; ``generation`` lets an actor ignore stale timers."""

    generation: int = 0


# -- admin --------------------------------------------------------------------------

@dataclass
class DescribeActors:
    """Ask an actor for itself and its children (admin endpoint)."""

    reply_to: Any = None


# -- entry point checks -------------------------------------------------------------

@dataclass
class InitEntryPointChecker:
    """EntryPointCheckerActor start-up: the master's config (``[master]
    entry_point_check_timeout_s`` and ``entry_point_cache_s``); answered with Done."""

    config: dict


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
