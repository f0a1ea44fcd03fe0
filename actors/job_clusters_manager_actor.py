"""JobClustersManagerActor: the master's shards, its listings and its front door.

One per master (globalName ``mantis-clusters``).  On InitMaster it replays the store's
write-ahead logs, starts the EntryPointCheckerActor and K ShardActors (``master.shards``),
each of which loads the clusters that hash to it; it answers InitMaster once every
shard is up.  A shard whose process dies is started again at once, and loads its
clusters and jobs from the store (their workers are reattached, not restarted).

It keeps the listing entries of clusters and jobs that the hosted actors push (latest
value only, batched per shard turn), to answer list requests at once.  The API sends
requests about one cluster or job straight to its shard (``GetShards``); a request
sent here instead is forwarded to the shard, which answers the asker directly.
"""
from __future__ import annotations

import logging

from actors.base import MantisActor
from actors.entry_point_checker import EntryPointCheckerActor
from actors.messages import (
    ClusterRequest,
    ClusterSummary,
    CountJobs,
    DescribeActors,
    Done,
    GetShards,
    InitEntryPointChecker,
    InitMaster,
    InitShard,
    JobRequest,
    JobSummary,
    ListClusters,
    ListJobs,
    Rejected,
    ShardReady,
)
from actors.shard_actor import ShardActor, shard_of
from mantis.model.codec import ValidationError
from mantis.model.ids import parse_job_id
from mantis.stores.file_store import FileStore

log = logging.getLogger("mantis.clusters")

GLOBAL_NAME = "mantis-clusters"
ENDED = ("Completed", "Failed")


class JobClustersManagerActor(MantisActor):
    """The shards, the checker and the listings of clusters and jobs."""

    ROUTED = (ClusterRequest, JobRequest)
    RUNNING = (*ROUTED, ListClusters, ListJobs, CountJobs, ClusterSummary, JobSummary, DescribeActors, GetShards,
               ShardReady, Done, Rejected)
    ACCEPTS = {"new": (InitMaster,), "starting": (ShardReady, ClusterSummary, JobSummary, Done, Rejected),
               "running": RUNNING}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.shards: list = []
        self.ready: set[int] = set()
        self.cluster_summaries: dict[str, dict] = {}
        self.job_summaries: dict[str, dict] = {}
        self.job_addresses: dict[str, object] = {}
        self.restarts = 0

    def receiveMsg_InitMaster(self, msg: InitMaster, sender):
        self.config, self.scheduler = msg.config, msg.scheduler
        store = msg.config.store
        if store.type == "file":
            # Before any shard opens the store: logs of shards that no longer exist too.
            FileStore.replay_all(store.path)
        self.count = max(1, int(msg.config.master.shards))
        self.checker = self.createActor(EntryPointCheckerActor)
        self.send(self.checker, InitEntryPointChecker(msg.config))
        self.shards = [self._start_shard(i) for i in range(self.count)]
        self.phase = "starting"
        self._init_asker = sender

    def _start_shard(self, index: int):
        address = self.createActor(ShardActor)
        self.send(address, InitShard(index, self.count, self.config, self.scheduler, self.myAddress, self.checker))
        return address

    def receiveMsg_ShardReady(self, msg: ShardReady, sender):
        self.ready.add(msg.index)
        log.info("shard %d ready: %d cluster(s), %d job(s)", msg.index, msg.clusters, msg.jobs)
        if self.phase == "starting" and len(self.ready) == self.count:
            self.phase = "running"
            log.info("clusters manager running with %d shard(s): %d cluster(s) recovered", self.count,
                     len(self.cluster_summaries))
            self.send(self._init_asker, Done({"recoveredClusters": len(self.cluster_summaries),
                                              "shards": self.count}))

    def on_child_exited(self, address) -> None:
        for index, shard in enumerate(self.shards):
            if shard == address and not self.exiting:
                self.restarts += 1
                log.warning("shard %d exited unexpectedly; starting it again (it reloads from the store)", index)
                self.ready.discard(index)
                self.shards[index] = self._start_shard(index)
                return
        if address == getattr(self, "checker", None) and not self.exiting:
            log.warning("entry point checker exited unexpectedly; starting it again")

            self.checker = self.createActor(EntryPointCheckerActor)
            self.send(self.checker, InitEntryPointChecker(self.config))

    def receiveMsg_GetShards(self, msg, sender):
        self.send(sender, Done({"shards": list(self.shards), "restarts": self.restarts}))

    # -- requests about one cluster or job: to its shard ---------------------------------

    def receiveMsg_ClusterRequest(self, msg, sender):
        self._forward(msg, sender)

    def receiveMsg_JobRequest(self, msg, sender):
        self._forward(msg, sender)

    def _forward(self, msg, sender) -> None:
        try:
            name = msg.cluster_name
        except ValidationError as exc:
            self.send(sender, Rejected(400, str(exc)))
            return
        if msg.reply_to is None:
            msg.reply_to = sender
        self.send(self.shards[shard_of(name, self.count)], msg)

    # -- listings --------------------------------------------------------------------------

    def receiveMsg_ClusterSummary(self, msg: ClusterSummary, sender):
        if msg.summary is None:  # deleted
            self.cluster_summaries.pop(msg.name, None)
            log.info("job cluster %s deleted", msg.name)
        else:
            self.cluster_summaries[msg.name] = msg.summary

    def receiveMsg_JobSummary(self, msg: JobSummary, sender):
        self.job_summaries[msg.job_id] = msg.summary
        if msg.address is not None:
            self.job_addresses[msg.job_id] = msg.address
        if msg.summary.get("state") in ENDED:
            self.job_addresses.pop(msg.job_id, None)

    def receiveMsg_ListClusters(self, msg, sender):
        self.send(sender, Done([self.cluster_summaries[n] for n in sorted(self.cluster_summaries)]))

    def receiveMsg_ListJobs(self, msg: ListJobs, sender):
        jobs = []
        for summary in self.job_summaries.values():
            if msg.cluster and summary["clusterName"] != msg.cluster:
                continue
            if msg.states and summary["state"] not in msg.states:
                continue
            if not msg.include_ended and not msg.states and summary["state"] in ENDED:
                continue
            jobs.append(summary)
        jobs.sort(key=lambda s: (s["clusterName"], parse_job_id(s["jobId"])[1]))
        self.send(sender, Done(jobs))

    def receiveMsg_CountJobs(self, msg: CountJobs, sender):
        jobs: dict[str, int] = {}
        workers: dict[str, int] = {}
        for summary in self.job_summaries.values():
            state = summary["state"]
            jobs[state] = jobs.get(state, 0) + 1
            if state in ENDED:
                continue  # an ended job's workers are history, not load
            for worker_state, count in (summary.get("workers") or {}).items():
                workers[worker_state] = workers.get(worker_state, 0) + int(count)
        self.send(sender, Done({"jobs": jobs, "workers": workers}))

    # -- admin -----------------------------------------------------------------------------

    def receiveMsg_DescribeActors(self, msg, sender):
        actors = [{"actor": "JobClustersManagerActor", "address": str(self.myAddress), "state": self.phase,
                   "clusters": len(self.cluster_summaries), "shards": len(self.shards),
                   "shardRestarts": self.restarts},
                  {"actor": "EntryPointCheckerActor", "address": str(self.checker), "state": "running"}]
        for index, shard in enumerate(self.shards):
            actors.append({"actor": "ShardActor", "name": str(index), "address": str(shard),
                           "state": "running" if index in self.ready else "starting"})
        for name in sorted(self.cluster_summaries):
            summary = self.cluster_summaries[name]
            actors.append({"actor": "JobClusterActor", "name": name, "state": summary.get("state", "loading"),
                           "activeJobs": summary.get("activeJobs", [])})
        for job_id, address in sorted(self.job_addresses.items()):
            summary = self.job_summaries.get(job_id, {})
            actors.append({"actor": "JobActor", "name": job_id, "address": str(address),
                           "state": summary.get("state"), "workers": summary.get("workers", {})})
        self.send(sender, Done(actors))
