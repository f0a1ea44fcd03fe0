"""JobClustersManagerActor: the registry of job clusters and the master's front door.

One per master (globalName ``mantis-clusters``).  On InitMaster it loads every cluster
from the store and starts one JobClusterActor for each, which recover their jobs.
Requests about a cluster or a job are routed to the cluster's actor with ``reply_to``
set, so the actor that does the work answers the asker.  It keeps the listing entries
of clusters and jobs that their actors push, to answer list requests at once.
"""
from __future__ import annotations

import logging
import time

from actors.base import MantisActor
from actors.messages import (ClusterSummary, CreateCluster, DeleteCluster, DescribeActors, Done,
                             GetCluster, InitMaster, JobRequest, JobSummary, ListClusters, ListJobs,
                             LoadCluster, Rejected, SubmitJob, UpdateCluster)
from mantis.cluster_state import JobCluster
from mantis.codec import ValidationError
from mantis.ids import parse_job_id
from mantis.store import open_store

log = logging.getLogger("mantis.clusters")

GLOBAL_NAME = "mantis-clusters"


class JobClustersManagerActor(MantisActor):
    """Registry of clusters; routes cluster and job requests to their actors."""

    ROUTED = (CreateCluster, UpdateCluster, GetCluster, ListClusters, DeleteCluster, SubmitJob,
              ListJobs, JobRequest, ClusterSummary, JobSummary, DescribeActors)
    ACCEPTS = {"new": (InitMaster,), "running": ROUTED}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clusters: dict[str, object] = {}  # name -> JobClusterActor address
        self.cluster_summaries: dict[str, dict] = {}
        self.job_summaries: dict[str, dict] = {}
        self.job_addresses: dict[str, object] = {}

    def receiveMsg_InitMaster(self, msg: InitMaster, sender):
        self.config, self.scheduler = msg.config, msg.scheduler
        store = open_store(msg.config.get("store", {}))
        recovered = 0
        for record in store.clusters():
            name = record["definition"]["name"]
            self._start_cluster(name, record, is_new=False)
            recovered += 1
        self.phase = "running"
        log.info("clusters manager running: recovered %d cluster(s) from %s", recovered,
                 store.describe())
        self.send(sender, Done({"recoveredClusters": recovered}))

    def _start_cluster(self, name: str, record: dict, is_new: bool, reply_to=None) -> None:
        from actors.job_cluster_actor import JobClusterActor

        address = self.createActor(JobClusterActor)
        self.clusters[name] = address
        self.send(address, LoadCluster(record, self.config, self.scheduler, is_new, reply_to))

    # -- clusters --------------------------------------------------------------------

    def receiveMsg_CreateCluster(self, msg: CreateCluster, sender):
        name = msg.definition.name
        if name in self.clusters:
            self.send(sender, Rejected(409, f"job cluster {name} already exists"))
            return
        cluster = JobCluster(definition=msg.definition, created_at=time.time(), updated_at=time.time())
        self._start_cluster(name, cluster.to_json(), is_new=True, reply_to=sender)

    def receiveMsg_ListClusters(self, msg, sender):
        self.send(sender, Done([self.cluster_summaries[n] for n in sorted(self.cluster_summaries)]))

    def receiveMsg_GetCluster(self, msg: GetCluster, sender):
        self._to_cluster(msg.name, msg, sender)

    def receiveMsg_UpdateCluster(self, msg: UpdateCluster, sender):
        self._to_cluster(msg.name, msg, sender)

    def receiveMsg_DeleteCluster(self, msg: DeleteCluster, sender):
        self._to_cluster(msg.name, msg, sender)

    def receiveMsg_SubmitJob(self, msg: SubmitJob, sender):
        self._to_cluster(msg.cluster, msg, sender)

    def _to_cluster(self, name: str, msg, sender) -> None:
        address = self.clusters.get(name)
        if address is None:
            self.send(sender, Rejected(404, f"job cluster {name} does not exist"))
            return
        msg.reply_to = sender
        self.send(address, msg)

    def receiveMsg_ClusterSummary(self, msg: ClusterSummary, sender):
        if msg.summary is None:  # deleted: the cluster actor exits after sending this
            self.cluster_summaries.pop(msg.name, None)
            self.clusters.pop(msg.name, None)
            log.info("job cluster %s deleted", msg.name)
        else:
            self.cluster_summaries[msg.name] = msg.summary
            self.clusters.setdefault(msg.name, sender)

    # -- jobs ------------------------------------------------------------------------

    def receiveMsg_JobSummary(self, msg: JobSummary, sender):
        self.job_summaries[msg.job_id] = msg.summary
        if msg.address is not None:
            self.job_addresses[msg.job_id] = msg.address
        if msg.summary.get("state") in ("Completed", "Failed"):
            self.job_addresses.pop(msg.job_id, None)

    def receiveMsg_ListJobs(self, msg: ListJobs, sender):
        jobs = []
        for job_id, summary in self.job_summaries.items():
            if msg.cluster and summary["clusterName"] != msg.cluster:
                continue
            if msg.states and summary["state"] not in msg.states:
                continue
            if not msg.include_ended and not msg.states and summary["state"] in ("Completed", "Failed"):
                continue
            jobs.append(summary)
        jobs.sort(key=lambda s: (s["clusterName"], int(s["jobId"].rpartition("-")[2])))
        self.send(sender, Done(jobs))

    def receiveMsg_JobRequest(self, msg: JobRequest, sender):
        try:
            cluster, _ = parse_job_id(msg.job_id)
        except ValidationError as exc:
            self.send(sender, Rejected(400, str(exc)))
            return
        # Always through the cluster actor: it alone knows whether the job's actor is
        # still there or the job is archived, so no request is sent to an exited actor.
        self._to_cluster(cluster, msg, sender)

    # -- admin -----------------------------------------------------------------------

    def receiveMsg_DescribeActors(self, msg, sender):
        actors = [{"actor": "JobClustersManagerActor", "address": str(self.myAddress),
                   "state": self.phase, "clusters": len(self.clusters)}]
        for name, address in sorted(self.clusters.items()):
            summary = self.cluster_summaries.get(name, {})
            actors.append({"actor": "JobClusterActor", "name": name, "address": str(address),
                           "state": summary.get("state", "loading"),
                           "activeJobs": summary.get("activeJobs", [])})
        for job_id, address in sorted(self.job_addresses.items()):
            summary = self.job_summaries.get(job_id, {})
            actors.append({"actor": "JobActor", "name": job_id, "address": str(address),
                           "state": summary.get("state"), "workers": summary.get("workers", {})})
        self.send(sender, Done(actors))
