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
    steps = [e["message"].split(" ")[0] for e in job["events"] if e["type"] == "migration"]
    assert steps == ["migration", "moving", "worker", "migration"]


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


def test_a_later_stage_successor_gets_its_upstream_only_once_ready(master, tmp_path):
    for n in (1, 2, 3):
        (tmp_path / f"ready-{n}").touch()
    ready = {"protocol": "COMMAND", "command": f"test -e {tmp_path}/ready-$MANTIS_WORKER_NUMBER",
             "intervalSeconds": 0.5, "timeoutSeconds": 0.5}
    machine = {"cpuCores": 1, "memoryMB": 128}
    master.create_cluster({**CLUSTER, "name": "two", "url": "tests.job_fixtures.health_jobs:two_stage",
                           "parameters": [{"name": "flags", "value": str(tmp_path)}, {"name": "rate", "value": 50}],
                           "schedulingInfo": {"stages": {
                               "1": {"numberOfInstances": 1, "machineDefinition": machine},
                               "2": {"numberOfInstances": 1, "machineDefinition": machine,
                                     "readinessChecks": [ready]}}}})
    job_id = master.submit("two")
    wait_for(lambda: len(master.started_workers(job_id)) == 2, timeout=30, what="both stages Started")
    master.done(UpdateArtifact("two", "tests.job_fixtures.health_jobs:two_stage_v2", "2", "t"))

    def live(number):
        return next((w for w in master.job(job_id)["workers"] if w["workerNumber"] == number), None)

    # ONE_WORKER: stage 1 moves first (worker 3, ready at once), then stage 2 (worker 4).
    wait_for(lambda: (live(4) or {}).get("metrics", {}).get("healthPort"), timeout=30,
             what="stage 2's successor running")
    since = live(2)["metrics"]["eventsIn"]
    wait_for(lambda: live(2)["metrics"]["eventsIn"] > since + 20, timeout=30, what="the old worker still fed")
    held = live(4)
    assert held["state"] == "StartInitiated" and held["replaces"] == 2
    assert held["metrics"].get("upstreamConnections", 0) == 0 and held["metrics"].get("eventsIn", 0) == 0
    (tmp_path / "ready-4").touch()
    job = wait_for(lambda: migrated(master, job_id), timeout=30, what="migration completed")
    assert sorted(w["workerNumber"] for w in job["workers"]) == [3, 4]
    wait_for(lambda: live(4)["metrics"].get("eventsIn", 0) > 0, timeout=30, what="stage 2's successor fed")
