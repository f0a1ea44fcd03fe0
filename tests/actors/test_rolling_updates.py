"""Artifact updates reach running jobs through the actors, over both system bases."""
from actors.messages import GetArchivedWorkers, ReplaceCluster, UpdateArtifact
from mantis.model.definitions import JobClusterDefinition
from tests.support import wait_for

V1, V2 = "tests.job_fixtures.health_jobs:job", "tests.job_fixtures.health_jobs:job_v2"
CLUSTER = {"name": "roll", "url": V1, "parameters": [{"name": "rate", "value": 20}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                               "machineDefinition": {"cpuCores": 1, "memoryMB": 128}}}}}


def running_job(master):
    master.create_cluster(CLUSTER)
    job_id = master.submit("roll")
    wait_for(lambda: master.started_workers(job_id), what="worker Started")
    return job_id


def migrated(master, job_id):
    job = master.job(job_id)
    return job if job["migration"] and job["migration"]["state"] == "completed" else None


def test_update_artifact_migrates_the_running_job_unless_skip_submit(master):
    job_id = running_job(master)
    master.done(UpdateArtifact("roll", V2, "2", "t", skip_submit=True))
    assert master.job(job_id)["url"] == V1 and master.job(job_id)["migration"] is None

    master.done(UpdateArtifact("roll", V2, "3", "t"))
    job = wait_for(lambda: migrated(master, job_id), timeout=30, what="migration completed")
    (w,) = job["workers"]
    assert (job["url"], job["version"], w["workerNumber"], w["state"]) == (V2, "3", 2, "Started")
    (old,) = master.done(GetArchivedWorkers(job_id))
    assert old["workerNumber"] == 1 and old["reason"].startswith("migrated to worker ")
    assert [e["message"].split(" ")[0] for e in job["events"]] == ["migration", "moving", "worker", "migration"]


def test_a_new_version_of_the_cluster_definition_migrates_the_running_job(master):
    job_id = running_job(master)
    master.done(ReplaceCluster("roll", JobClusterDefinition.from_json({**CLUSTER, "version": "7"}), "t"))
    job = wait_for(lambda: migrated(master, job_id), timeout=30, what="migration completed")
    assert job["version"] == "7" and [w["workerNumber"] for w in job["workers"]] == [2]


def test_a_migration_to_an_artifact_that_fails_stops_and_the_old_worker_keeps_running(master):
    job_id = running_job(master)
    master.done(UpdateArtifact("roll", "tests.job_fixtures.health_jobs:no_such_job", "2", "t"))

    def stopped():
        job = master.job(job_id)
        return job if job["migration"] and job["migration"]["state"] == "failed" else None

    job = wait_for(stopped, timeout=30, what="migration failed")
    assert "ended before it was ready" in job["migration"]["reason"]
    assert "no_such_job" in job["migration"]["reason"]
    (w,) = job["workers"]
    assert (w["workerNumber"], w["state"]) == (1, "Started")
    assert job["url"] == V1 and job["version"] == "1"  # back on what worked
    assert job["events"][-1]["message"].startswith("migration stopped: ")
