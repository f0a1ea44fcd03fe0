"""What /metrics asks the actors, over both system bases: the manager counts jobs and
workers by state, the scheduler and every shard answer their latency histograms, and an
entry point outside the allowed packages is refused when a cluster names it."""
from __future__ import annotations

from actors.messages import CountJobs, CreateCluster, GetShards, GetTimings, KillJob, Rejected
from mantis.model.definitions import JobClusterDefinition
from tests.support import wait_for

CLUSTER = {"name": "counted", "url": "mantis.examples.synthetic:job", "parameters": [{"name": "rate", "value": 5}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 2,
                                               "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}}}


def count(bucket_list) -> float:
    return dict((le, n) for le, n in bucket_list)["+Inf"]


def test_manager_counts_jobs_and_running_workers_by_state(master):
    assert master.done(CountJobs()) == {"jobs": {}, "workers": {}}
    master.create_cluster(CLUSTER)
    job_id = master.submit("counted")
    counts = wait_for(lambda: (c := master.done(CountJobs()))["workers"] == {"Started": 2} and c,
                      what="two Started workers counted")
    assert counts["jobs"] == {"Launched": 1}
    master.done(KillJob(job_id, "Killed", "test", "t"))
    counts = wait_for(lambda: (c := master.done(CountJobs()))["jobs"] == {"Completed": 1} and c,
                      what="the job counted Completed")
    assert counts["workers"] == {}  # an ended job's workers are not load


def test_scheduler_and_every_shard_answer_their_timings(master):
    master.create_cluster(CLUSTER)
    master.submit("counted")
    wait_for(lambda: len(master.started_workers("counted-1")) == 2, what="two workers Started")
    rounds = master.done(GetTimings(), to="scheduler")["placementRound"]
    assert count(rounds["buckets"]) >= 1 and rounds["sum"] >= 0
    shards = master.done(GetShards())["shards"]
    writes = [master.system.ask(shard, GetTimings(), 10.0).body["storeWrite"] for shard in shards]
    assert len(writes) == master.config.master.shards
    assert sum(count(w["buckets"]) for w in writes) >= 2  # the cluster's creation and the job's submission


def test_an_entry_point_outside_the_allowed_packages_is_refused_at_create(master):
    reply = master.ask(CreateCluster(JobClusterDefinition.from_json({**CLUSTER, "url": "subprocess:run"})))
    assert isinstance(reply, Rejected) and reply.status == 400 and "not in an allowed package" in reply.reason
