"""The agent's health checker inside one actor system, over both system bases."""
from actors.messages import GetArchivedWorkers
from tests.support import wait_for

FAST = {"gracePeriodSeconds": 0, "intervalSeconds": 0.5, "timeoutSeconds": 0.5, "maxConsecutiveFailures": 2}


def cluster(name, tmp_path, **stage):
    return {"name": name, "url": "tests.job_fixtures.health_jobs:job",
            "parameters": [{"name": "flags", "value": str(tmp_path)}, {"name": "rate", "value": 10}],
            "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                                "machineDefinition": {"cpuCores": 1, "memoryMB": 128},
                                                **stage}}}}


def worker(master, job_id, number):
    return next((w for w in master.job(job_id)["workers"] if w["workerNumber"] == number), None)


def test_a_worker_failing_its_command_check_is_replaced_with_the_reason(master, tmp_path):
    command = f"test ! -e {tmp_path}/sick-$MANTIS_WORKER_NUMBER"
    master.create_cluster(cluster("cmd", tmp_path, healthChecks=[{"protocol": "COMMAND", "command": command,
                                                                   **FAST}]))
    job_id = master.submit("cmd")
    wait_for(lambda: master.started_workers(job_id), what="worker 1 Started")
    (tmp_path / "sick-1").touch()
    wait_for(lambda: master.done(GetArchivedWorkers(job_id)), timeout=20, what="worker 1 replaced")
    (old,) = master.done(GetArchivedWorkers(job_id))
    assert old["state"] == "Failed"
    assert old["reason"] == (f"unhealthy: health check COMMAND {command!r} failed 2 time(s) in a row: "
                             f"command {command!r} exited 1")
    wait_for(lambda: (worker(master, job_id, 2) or {}).get("state") == "Started", timeout=20,
             what="worker 2 Started")


def test_a_worker_is_started_only_once_its_readiness_check_passes(master, tmp_path):
    check = {"protocol": "COMMAND", "command": f"test -e {tmp_path}/ready-$MANTIS_WORKER_NUMBER",
             "intervalSeconds": 0.5, "timeoutSeconds": 0.5}
    master.create_cluster(cluster("ready", tmp_path, readinessChecks=[check]))
    job_id = master.submit("ready")
    wait_for(lambda: (worker(master, job_id, 1) or {}).get("metrics", {}).get("healthPort"),
             what="worker 1 running")
    # Several probes fail meanwhile (one every 0.5 s); the worker stays StartInitiated.
    wait_for(lambda: (worker(master, job_id, 1) or {}).get("metrics", {}).get("eventsOut", 0) > 10,
             what="worker 1 producing")
    assert worker(master, job_id, 1)["state"] == "StartInitiated"
    assert master.job(job_id)["state"] == "Accepted"
    (tmp_path / "ready-1").touch()
    wait_for(lambda: master.started_workers(job_id), timeout=20, what="worker 1 Started once ready")
