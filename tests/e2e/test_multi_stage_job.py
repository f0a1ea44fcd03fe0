"""A keyed multi-stage job run by the master: workers stream to workers across processes."""
from mantis.examples.keyed_count import expected_counts
from tests.support import wait_for

LIMIT, KEYS = 20_000, 50


def test_keyed_count_over_two_workers_gives_the_single_process_counts(cluster):
    definition = {"name": "keyed", "url": "mantis.examples.keyed_count:job",
                  "parameters": [{"name": "rate", "value": 4000}, {"name": "keys", "value": KEYS},
                                 {"name": "limit", "value": LIMIT}],
                  "schedulingInfo": {"stages": {
                      "1": {"numberOfInstances": 1, "machineDefinition": {"cpuCores": 1, "memoryMB": 128}},
                      "2": {"numberOfInstances": 2, "machineDefinition": {"cpuCores": 1, "memoryMB": 128}}}}}
    assert cluster.call("POST", "/api/v1/jobClusters", definition)[0] == 201
    job_id = cluster.call("POST", "/api/v1/jobClusters/keyed/jobs", {})[1]["jobId"]

    def job_completed():
        status, job = cluster.call("GET", f"/api/v1/jobs/{job_id}")
        return job["state"] == "Completed"

    wait_for(job_completed, timeout=90, interval=0.5, what="the finite job to complete")
    archived = cluster.call("GET", f"/api/v1/jobs/{job_id}/archivedWorkers")[1]
    by_stage = {}
    for w in archived:
        by_stage.setdefault(w["stageNum"], []).append(w)
    assert sorted(by_stage) == [1, 2] and len(by_stage[2]) == 2
    assert all(w["state"] == "Completed" for w in archived), [(w["workerId"], w["reason"]) for w in archived]
    # Every event the source made crossed to exactly one stage-2 worker: none lost, none doubled.
    stage2_in = sum(w["metrics"]["eventsIn"] for w in by_stage[2])
    assert stage2_in == sum(expected_counts(LIMIT, KEYS).values())
    assert all(w["metrics"]["eventsIn"] > 0 for w in by_stage[2])
