"""ShardActor: one of the master's K processes hosting job clusters and their jobs.

A cluster and all of its jobs live in the shard ``shard_of(name, K)`` (a stable hash of
the cluster name), as hosted actors (``actors.hosting``): ``cluster:<name>`` and
``job:<jobId>``.  The API sends a request straight to the shard that owns it; the shard
routes it by its content (``cluster_name``, ``job_id``, a worker key) to the hosted
actor, which answers the asker.

Each received message is one turn: route, let the hosted actors handle what is queued,
make every store write of the turn durable with one grouped write (one fsync or one
ZooKeeper transaction), and only then send what the turn produced.  If that write
fails, nothing the affected clusters said in the turn leaves the shard (their answers
become 503s) and those clusters are loaded again from the store, so their in-memory
state is the durable one.

The shard has one store client for all its actors.  Started by the manager, which
restarts it if its process dies; a new shard loads its clusters and jobs from the store
and the jobs reattach the workers the agents still run.
"""
from __future__ import annotations

import logging
import os
import time
import zlib

from thespian.actors import ActorExitRequest, WakeupMessage

from actors.base import MantisActor
from actors.hosting import Envelope, Host, MessageBatch
from actors.job_cluster_actor import JobClusterActor
from actors.messages import (
    CancelWorker,
    ClusterRequest,
    CreateCluster,
    DescribeActors,
    DescribeJobs,
    Done,
    EntryPointChecked,
    GetTimings,
    InitShard,
    JobRequest,
    LoadCluster,
    Rejected,
    ShardContext,
    ShardReady,
    StatusBatch,
    WorkerLaunched,
    WorkerStatusBatch,
)
from mantis.lifecycles.cluster_state import JobCluster
from mantis.lifecycles.job_state import JobRecord
from mantis.model.codec import ValidationError
from mantis.model.ids import parse_job_id, parse_worker_key
from mantis.sdk.entry_point_policy import allowed_packages, refusal
from mantis.stores import open_store
from mantis.stores.file_store import StoreError
from mantis.stores.group_commit import GroupCommitStore
from mantis.timings import Timing

log = logging.getLogger("mantis.shard")

_TIMER = "shard-timer"
_CONTINUE = "shard-continue"
_RELOAD = "shard-reload"
_COMMIT = "shard-commit"


def shard_of(cluster_name: str, count: int) -> int:
    """The shard (0 .. count-1) hosting ``cluster_name``: stable across processes and restarts."""
    return zlib.crc32(cluster_name.encode("utf-8")) % max(1, count)


def cluster_actor_name(cluster: str) -> str:
    return f"cluster:{cluster}"


def job_actor_name(job_id: str) -> str:
    return f"job:{job_id}"


class _TrackedStore:
    """The shard's store as its hosted actors see it: remembers which actor wrote what."""

    WRITES = ("put_cluster", "delete_cluster", "put_job", "archive_job")

    def __init__(self, store, host: Host):
        self._store, self._host = store, host
        self.writers: set[str] = set()

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if name in self.WRITES:
            def write(*args, **kwargs):
                if self._host.current is not None:
                    self.writers.add(self._host.current)
                return attr(*args, **kwargs)
            return write
        return attr


class ShardActor(MantisActor):
    """Hosts the clusters (and their jobs) whose names hash to this shard."""

    host: Host
    store: GroupCommitStore

    ACCEPTS = {"new": (InitShard,)}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.started = False  # InitShard handled: the host, store and context exist
        self._armed_at: float | None = None  # monotonic time the real wakeup is set for
        # Monotonic times the wakeups for a group commit and for the rest of a long
        # queue were set (None: not set).  Thespian drops wakeups that fall due while a
        # process has a thousand sends queued, so one overdue by a second is re-set.
        self._commit_armed: float | None = None
        self._continue_armed: float | None = None
        self._commit_due = False    # the commit's wakeup has come: commit in this turn
        self.loaded = False  # its clusters were read from the store (a failed read is retried)
        self.write_timing = Timing("store_write_seconds")  # each durable group write, for /metrics

    # -- start-up -------------------------------------------------------------------------

    def receiveMsg_InitShard(self, msg: InitShard, sender):
        self.index, self.count, self.config = msg.index, msg.count, msg.config
        self.manager, self.scheduler, self.checker = msg.manager, msg.scheduler, msg.checker
        self.host = Host(self, self.myAddress, peers=lambda: [self.manager, self.scheduler, self.checker])
        self.store = GroupCommitStore(open_store(msg.config.store, writer=f"shard-{msg.index}"))
        self.tracked = _TrackedStore(self.store, self.host)
        self.context = ShardContext(msg.config, msg.scheduler, msg.manager, msg.checker, self.tracked)
        self.commit_delay_s = float(msg.config.master.commit_delay_s)
        self.phase = "running"
        self.started = True
        clusters = self._load_clusters()
        self._turn()
        jobs = sum(1 for name in self.host.actors if name.startswith("job:"))
        log.info("shard %d/%d running: %d cluster(s), %d job(s) from %s", self.index, self.count,
                 clusters, jobs, self.store.describe())
        self.send(sender, ShardReady(self.index, clusters, jobs))

    def _load_clusters(self) -> int:
        """Host every stored cluster of this shard; returns how many.  If the store cannot
        be read, the shard answers 503 for its clusters and tries again every second."""
        try:
            records = self.store.clusters()
        except Exception as exc:  # noqa: BLE001  the store is down: try again on a timer
            log.error("shard %d: cannot read clusters: %s; trying again in 1s", self.index, exc)
            self.wakeupAfter(1.0, payload=_RELOAD)
            return 0
        loaded = 0
        for record in records:
            name = record["definition"]["name"]
            if shard_of(name, self.count) != self.index:
                continue
            self.host.create(JobClusterActor, cluster_actor_name(name))
            self.host.deliver(cluster_actor_name(name), LoadCluster(record, self.context), self.myAddress)
            loaded += 1
        self.loaded = True
        return loaded

    # -- turns ----------------------------------------------------------------------------

    def receiveMessage(self, message, sender):
        if not self.started or isinstance(message, InitShard):
            return super().receiveMessage(message, sender)
        if isinstance(message, MessageBatch):
            for m in message.messages:
                self._route(m, sender)
        else:
            self._route(message, sender)
        self._turn()
        return None

    def _turn(self) -> None:
        self.host.run_timers()
        more = self.host.drain()
        now = time.monotonic()
        if self._commit_due or (self._commit_armed is not None and now - self._commit_armed > 1.0):
            self._commit()
        elif self._commit_armed is not None:
            pass  # a commit is due shortly: this turn's writes and messages go with it
        elif self.store.pending and self.commit_delay_s > 0:
            # Group commit: wait a moment so that the turns arriving meanwhile share one
            # write (and a record changed in several of them is written once).  Every
            # message of these turns is held until then, so none can show a change
            # that is not durable yet.
            self._commit_armed = now
            self.wakeupAfter(self.commit_delay_s, payload=_COMMIT)
        else:
            self._commit()
        if more and (self._continue_armed is None or now - self._continue_armed > 1.0):
            self._continue_armed = now
            self.wakeupAfter(0, payload=_CONTINUE)
        self._arm_timer()

    def _commit(self) -> None:
        """Make the held writes durable, then let the held messages out."""
        self._commit_armed, self._commit_due = None, False
        failed = self.host.end_turn(self._make_durable)
        if failed:
            self._reload(failed)

    def _make_durable(self) -> set[str]:
        """Flush the turn's writes as one group; the hosted actors of every cluster whose
        write failed (the cluster and all its jobs) if it failed, else nothing."""

        writers, self.tracked.writers = self.tracked.writers, set()
        if not self.store.pending:
            return set()
        try:
            began = time.monotonic()
            self.store.flush()
            self.write_timing.observe(time.monotonic() - began)
            return set()
        except StoreError as exc:
            clusters = {self._cluster_of(name) for name in writers}
            log.error("shard %d: store write failed (%s); reloading cluster(s) %s", self.index, exc,
                      ", ".join(sorted(clusters)))
            return {name for name in self.host.actors if self._cluster_of(name) in clusters}

    @staticmethod
    def _cluster_of(actor_name: str) -> str:
        kind, _, rest = actor_name.partition(":")
        if kind == "job":
            return parse_job_id(rest)[0]
        return rest

    def _reload(self, failed: set[str]) -> None:
        """Put the clusters of ``failed`` back to their last durable state.
        From the records the store client knows to be durable, not from a read: the
        store just failed, and a half-broken store may not show what it holds.
        """

        clusters = {self._cluster_of(name) for name in failed}
        for name in failed:
            self.host.remove(name)
        self.host.queue = type(self.host.queue)(
            item for item in self.host.queue if self._cluster_of(item[0]) not in clusters)
        for cluster in sorted(clusters):
            record = self.store.durable(("cluster", cluster))
            if record is None:
                continue  # created in the failed turn: it never existed
            jobs = [self.store.durable(("job", cluster, job_id)) for job_id in record.get("activeJobs", [])]
            actor = cluster_actor_name(cluster)
            self.host.create(JobClusterActor, actor)
            self.host.deliver(actor, LoadCluster(record, self.context, jobs=[j for j in jobs if j]),
                              self.myAddress)
        self._turn()

    def _arm_timer(self) -> None:
        due = self.host.timers.next_due()
        if due is None:
            return
        now = time.monotonic()
        if self._armed_at is not None and self._armed_at <= due and self._armed_at > now - 1.0:
            return  # the armed wakeup comes first and will re-arm for this one
        self._armed_at = due
        self.wakeupAfter(max(0.0, due - now), payload=_TIMER)

    # -- routing ----------------------------------------------------------------------------

    def _route(self, message, sender) -> None:
        if isinstance(message, Envelope):
            self.host.deliver(message.to, message.message, message.sender or sender)
        elif isinstance(message, WakeupMessage):
            if message.payload == _TIMER:
                self._armed_at = None
            elif message.payload == _CONTINUE:
                self._continue_armed = None
            elif message.payload == _COMMIT:
                self._commit_due = True  # this turn commits
            elif message.payload == _RELOAD and not self.loaded:
                self._load_clusters()
        elif isinstance(message, CreateCluster):
            name = message.definition.name
            actor = cluster_actor_name(name)
            if not self.loaded:  # a stored cluster of that name may not be known yet
                self.send(message.reply_to or sender,
                          Rejected(503, f"shard {self.index} has not read its clusters from the store yet"))
                return
            if actor in self.host.actors:
                self.send(message.reply_to or sender, Rejected(409, f"job cluster {name} already exists"))
                return
            refused = refusal(message.definition.url, allowed_packages(self.config.access.allowed_packages))
            if refused is not None:
                self.send(message.reply_to or sender, Rejected(400, refused))
                return
            cluster = JobCluster(definition=message.definition, created_at=time.time(), updated_at=time.time())
            cluster.record_jar(cluster.created_at)
            record = cluster.to_json()
            self.host.create(JobClusterActor, actor)
            self.host.deliver(actor, LoadCluster(record, self.context, is_new=True,
                                                 reply_to=message.reply_to or sender), self.myAddress)
        elif isinstance(message, JobRequest):
            self._route_job_request(message, sender)
        elif isinstance(message, DescribeJobs):
            self.send(message.reply_to or sender, Done(self._describe_jobs(message)))
        elif isinstance(message, ClusterRequest):
            self._to_cluster(message.cluster_name, message, sender)
        elif isinstance(message, StatusBatch):
            self._route_statuses(message)
        elif isinstance(message, WorkerLaunched):
            job_id, _ = parse_worker_key(message.worker_key)
            if job_actor_name(job_id) in self.host.actors:
                self.host.deliver(job_actor_name(job_id), message, sender)
            else:  # placed after the job ended (or moved): release it
                self.send(self.scheduler, CancelWorker(message.worker_key, message.agent_id, "job not running"))
        elif isinstance(message, EntryPointChecked):
            self.host.deliver(message.token[0], message, sender)
        elif isinstance(message, DescribeActors):
            self.send(message.reply_to or sender, Done(self.describe()))
        elif isinstance(message, GetTimings):
            self.send(message.reply_to or sender, Done({"storeWrite": self.write_timing.snapshot()}))
        elif isinstance(message, ActorExitRequest):
            log.info("shard %d exiting", self.index)
            self.store.close()  # its session or log lock, at once rather than at process exit
        elif isinstance(message, (Done, Rejected)):
            if isinstance(message, Rejected):
                log.warning("shard %d: %s", self.index, message.reason)
        else:
            self.send(sender, Rejected(400, f"ShardActor does not route {type(message).__name__}"))

    def _to_cluster(self, cluster: str, message, sender) -> None:
        actor = cluster_actor_name(cluster)
        reply_to = getattr(message, "reply_to", None) or sender
        if not self.loaded:
            self.send(reply_to, Rejected(503, f"shard {self.index} has not read its clusters from the store yet"))
        elif actor not in self.host.actors:
            self.send(reply_to, Rejected(404, f"job cluster {cluster} does not exist"))
        else:
            self.host.deliver(actor, message, sender)

    def _route_job_request(self, message: JobRequest, sender) -> None:
        try:
            cluster, _ = parse_job_id(message.job_id)
        except ValidationError as exc:
            self.send(getattr(message, "reply_to", None) or sender, Rejected(400, str(exc)))
            return
        actor = job_actor_name(message.job_id)
        if actor in self.host.actors:
            self.host.deliver(actor, message, sender)
        else:  # ended (archived) or unknown: the cluster knows which
            self._to_cluster(cluster, message, sender)

    def _route_statuses(self, batch: StatusBatch) -> None:
        by_job: dict[tuple[str, str], list] = {}
        for agent_id, status in batch.items:
            job_id, _ = parse_worker_key(status.worker_key)
            by_job.setdefault((job_id, agent_id), []).append(status)
        for (job_id, agent_id), statuses in by_job.items():
            actor = job_actor_name(job_id)
            if actor in self.host.actors:
                self.host.deliver(actor, WorkerStatusBatch(job_id, agent_id, statuses), self.myAddress)

    def _describe_jobs(self, message: DescribeJobs) -> dict:
        """Each named job of the cluster as GetJob describes it, read here in one turn: the
        hosted job actors for active jobs, the store's archive for ended ones."""
        described = {}
        for job_id in message.job_ids:
            actor = self.host.actors.get(job_actor_name(job_id))
            if actor is not None and getattr(actor, "job", None) is not None:
                described[job_id] = actor.job.describe()
                continue
            try:
                cluster, _ = parse_job_id(job_id)
                record = self.store.archived_job(cluster, job_id) if cluster == message.name else None
            except (ValidationError, OSError, StoreError):
                record = None
            if record is not None:
                described[job_id] = JobRecord.from_json(record).describe()
        return described

    # -- admin ------------------------------------------------------------------------------

    def describe(self) -> dict:
        """The shard and its hosted actors, for the admin view."""
        actors = []
        for name, actor in sorted(self.host.actors.items()):
            entry = {"actor": type(actor).__name__, "name": name.partition(":")[2],
                     "address": str(actor.myAddress), "state": getattr(actor, "phase", "?")}
            describe = getattr(actor, "describe_actor", None)
            if describe is not None:
                entry.update(describe())
            actors.append(entry)
        return {"actor": "ShardActor", "index": self.index, "address": str(self.myAddress),
                "pid": os.getpid(), "state": self.phase, "hosted": len(self.host.actors), "handled": self.host.handled,
                "handlerFailures": self.host.failures, "timers": len(self.host.timers),
                "loaded": self.loaded, "actors": actors}
