"""End to end with ``resource_manager = "mesos"`` against the Mesos double: the same
behaviour as with our own agents, the workers being Mesos tasks."""
from __future__ import annotations

from collections import defaultdict

from mantis.examples.keyed_count import expected_counts
from tests.e2e.test_multi_stage_job import archived_by_stage, get_job, submit_keyed_count, wait_completed
from tests.sse_client import SseReader


def test_a_two_stage_keyed_job_on_mesos_streams_exact_counts_to_its_subscriber(mesos_master, double):
    cluster = mesos_master
    limit, keys = 6_000, 30
    job_id = submit_keyed_count(cluster, rate=2000, keys=keys, limit=limit)
    with SseReader(f"{cluster.url}/api/v1/jobs/{job_id}/output") as output:
        wait_completed(cluster, job_id)
        assert output.ended.wait(30), "the output stream did not end with the job"
    final = {u["user"]: u["count"] for u in output.events if u.get("final")}
    assert final == dict(expected_counts(limit, keys))
    by_stage = archived_by_stage(cluster, job_id)
    assert sum(w["metrics"]["eventsIn"] for w in by_stage[2]) == limit
    # Every worker ran as a Mesos task of the double, launched from its offers, and finished.
    accepts = [c for c in double.state()["calls"] if c["type"] == "ACCEPT"]
    launched = [t for c in accepts for op in c["body"]["accept"]["operations"] for t in op["launch"]["task_infos"]]
    assert len(launched) == 3 and all(t["task_id"]["value"].startswith(job_id) for t in launched)
    assert all(w["state"] == "Completed" for ws in by_stage.values() for w in ws)
    owners = defaultdict(set)
    for u in output.events:
        owners[u["user"]].add(u["workerNumber"])
    assert all(len(n) == 1 for n in owners.values())
    assert get_job(cluster, job_id)["jobMetadata"]["state"] == "Completed"
    # Every status update that needed it was acknowledged.
    (framework,) = double.state()["frameworks"].values()
    assert framework["unacked"] == 0


def running(double) -> dict:
    return {tid: t for tid, t in double.state()["tasks"].items() if t["state"] == "TASK_RUNNING"}


def test_scaling_a_stage_up_and_down_launches_and_kills_mesos_tasks(mesos_master, double):
    from mantis.tooling.api_answers import job_workers
    from mantis.tooling.local_processes import wait_for
    from tests.e2e.test_multi_stage_job import stage_workers, streaming

    cluster = mesos_master
    job_id = submit_keyed_count(cluster, rate=500, keys=50, limit=0, max_counters=4)
    wait_for(lambda: streaming(cluster, job_id), timeout=60, interval=0.5, what="streaming")

    def scale(n):
        status, body = cluster.call("POST", f"/api/v1/jobs/{job_id}/actions/scaleStage",
                                    {"JobId": job_id, "StageNumber": 2, "NumWorkers": n, "User": "e2e"})
        assert status == 204, body

    scale(4)
    wait_for(lambda: len(running(double)) == 5 and len(stage_workers(get_job(cluster, job_id), 2)) == 4
             and all(w["state"] == "Started" for w in job_workers(get_job(cluster, job_id))),
             timeout=60, interval=0.5, what="four counters as Mesos tasks")
    scale(1)
    wait_for(lambda: len(running(double)) == 2 and len(stage_workers(get_job(cluster, job_id), 2)) == 1,
             timeout=60, interval=0.5, what="one counter left")
    kills = [c["body"]["kill"]["task_id"]["value"] for c in double.state()["calls"] if c["type"] == "KILL"]
    assert len(set(kills)) == 3  # a stop may be repeated (the job retries until the worker ends)
    assert cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=e2e&reason=test")[0] == 202
    wait_for(lambda: not running(double), timeout=30, what="the job's tasks killed")


def test_hard_constraints_on_mesos_agent_attributes_are_honoured_and_explained_when_unmet(mesos_master, double):
    from mantis.tooling.local_processes import wait_for

    cluster = mesos_master

    def submit(name, zone):
        definition = {"name": name, "url": "mantis.examples.synthetic:job",
                      "schedulingInfo": {"stages": {"1": {"numberOfInstances": 2,
                                                          "machineDefinition": {"cpuCores": 1, "memoryMB": 128},
                                                          "hardConstraints": [["zone", "IS", zone]]}}}}
        assert cluster.call("POST", "/api/v1/jobClusters", definition)[0] == 201
        return cluster.call("POST", f"/api/v1/jobClusters/{name}/jobs", {})[1]["jobMetadata"]["jobId"]

    in_b = submit("inzoneb", "b")
    wait_for(lambda: len([t for tid, t in running(double).items() if tid.startswith(in_b)]) == 2, timeout=60,
             interval=0.5, what="two tasks")
    assert {t["agent_id"] for tid, t in running(double).items() if tid.startswith(in_b)} == {"agent-b"}
    nowhere = submit("inzonec", "c")
    pending = wait_for(lambda: [p for p in cluster.call("GET", "/api/v1/pendingWorkers")[1]["list"]
                                if p["jobId"] == nowhere and "zone" in " ".join(p["reasons"])],
                       timeout=30, interval=0.5, what="why the zone-c workers wait")
    assert any("agent-a" in r or "agent-b" in r or "zone" in r for r in pending[0]["reasons"])
    assert not [tid for tid in running(double) if tid.startswith(nowhere)]
    for job_id in (in_b, nowhere):
        assert cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=e2e&reason=test")[0] == 202
    wait_for(lambda: not running(double), timeout=30, what="the tasks killed")


def test_mesos_workers_are_found_by_discovery_on_the_ports_of_their_tasks(mesos_master, double):
    from mantis.tooling.local_processes import wait_for
    from tests.e2e.test_multi_stage_job import streaming

    cluster = mesos_master
    job_id = submit_keyed_count(cluster, rate=500, keys=20, limit=0)
    wait_for(lambda: streaming(cluster, job_id), timeout=60, interval=0.5, what="streaming")
    status, info = cluster.call("GET", "/api/v1/jobClusters/keyed/latestJobDiscoveryInfo")
    assert status == 200 and info["jobId"] == job_id
    tasks = running(double)
    found = [w for stage in info["workerAssignments"].values() for w in stage["hosts"].values()]
    assert len(found) == 3 and set(info["workerAssignments"]) == {"1", "2"}
    for w in found:
        task = tasks[f"{job_id}/w{w['workerNumber']}"]
        # The port the matcher took from the offer: in the task's resources, in its
        # environment (PORT0), and served by the worker process.
        assert w["port"][0] == task["ports"][0] and w["host"] == "127.0.0.1"
        env = {v["name"]: v["value"] for v in task["info"]["command"]["environment"]["variables"]}
        assert f'"ports":[{w["port"][0]}]' in env["MANTIS_WORKER_SPEC"]
    assert cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=e2e&reason=test")[0] == 202
    wait_for(lambda: not running(double), timeout=30, what="the job's tasks killed")
