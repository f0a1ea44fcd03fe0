"""A rolling artifact update, end to end: updateArtifact migrates a running job's workers.

Four workers with a readiness check, PERCENTAGE 50%: the master starts at most two
successors at a time, each old worker stops only once its successor is ready (the test
makes successors ready itself, after checking that their old worker still serves), the
job's output is read throughout and never stops, and the events tell the steps.
"""
from __future__ import annotations

import itertools
import time

from tests.sse_client import SseReader
from tests.support import wait_for

WORKERS, PERCENT = 4, 50
ALLOWED = 2  # ceil(4 * 50%)


def test_a_percentage_migration_with_readiness_never_stops_the_output_nor_moves_more_than_its_share(
        cluster, tmp_path):
    for n in range(1, WORKERS + 1):
        (tmp_path / f"ready-{n}").touch()  # the first incarnations are ready at once
    stage = {"numberOfInstances": WORKERS, "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128},
             "readinessChecks": [{"protocol": "HTTP", "path": "/ready", "intervalSeconds": 0.5,
                                  "timeoutSeconds": 0.5}]}
    definition = {"name": "rolling", "url": "tests.job_fixtures.health_jobs:job",
                  "parameters": [{"name": "flags", "value": str(tmp_path)}, {"name": "gate_ready", "value": True},
                                 {"name": "rate", "value": 40}],
                  "schedulingInfo": {"stages": {"1": stage}},
                  "migrationConfig": {"strategy": "PERCENTAGE",
                                      "configString": f'{{"percentToMove": {PERCENT}, "intervalMs": 500}}'}}
    assert cluster.call("POST", "/api/v1/jobClusters", definition)[0] == 201
    status, body = cluster.call("POST", "/api/v1/jobClusters/rolling/jobs", {"user": "e2e"})
    assert status == 201, body
    job_id = body["jobMetadata"]["jobId"]

    def job():
        """The job's view in our flat terms: its metadata, with its workers and version."""
        view = cluster.call("GET", f"/api/v1/jobs/{job_id}")[1]
        return {**view["jobMetadata"], "workers": view["workerMetadataList"], "version": view["version"]}

    wait_for(lambda: sum(w["state"] == "Started" for w in job()["workers"]) == WORKERS, timeout=60,
             what="4 workers Started")
    with SseReader(f"{cluster.url}/api/v1/jobs/{job_id}/output") as output:
        wait_for(lambda: len(output.events) > 20, timeout=30, what="output flowing")
        status, body = cluster.call("POST", "/api/v1/jobClusters/rolling/actions/updateArtifact",
                                    {"url": "tests.job_fixtures.health_jobs:job_v2", "version": "2", "user": "e2e"})
        assert status == 204, body

        most_in_flight, fewest_serving, held_while_old_served = 0, WORKERS, set()
        samples: list[tuple[float, int]] = []
        deadline = time.time() + 120
        while True:
            assert time.time() < deadline, f"migration did not complete: {job()['migration']}"
            j = job()
            samples.append((time.monotonic(), len(output.events)))
            live = {w["workerNumber"]: w for w in j["workers"]}
            serving = {w["workerIndex"] for w in live.values() if w["state"] == "Started"}
            moving = [w for w in live.values() if w["replaces"] is not None]
            fewest_serving = min(fewest_serving, len(serving))
            most_in_flight = max(most_in_flight, len(moving))
            for w in moving:
                if w["state"] == "StartInitiated" and w["metrics"].get("healthPort"):
                    # Running but not ready: its old worker must still be serving the slot.
                    old = live.get(w["replaces"])
                    assert old is not None and old["state"] == "Started", (w, old)
                    held_while_old_served.add(w["workerNumber"])
                    (tmp_path / f"ready-{w['workerNumber']}").touch()
            if j["migration"] and j["migration"]["state"] != "running":
                break
            time.sleep(0.2)
        # The old workers stop once the master has let them go: then only v2 is produced.
        wait_for(lambda: {e["artifact"] for e in output.events[-50:]} == {"v2"}, timeout=30,
                 what="only v2 output")
        samples.append((time.monotonic(), len(output.events)))

    j = job()
    assert j["migration"]["state"] == "completed", j["migration"]
    assert j["migration"]["moved"] == WORKERS
    assert j["jarUrl"] == "tests.job_fixtures.health_jobs:job_v2" and j["version"] == "2"
    assert sorted(w["workerIndex"] for w in j["workers"]) == list(range(WORKERS))
    assert all(w["workerNumber"] > WORKERS and w["url"] is None for w in j["workers"])
    # No slot ever went without a Started worker, and never more than the share moved at once.
    assert fewest_serving == WORKERS
    assert 1 <= most_in_flight <= ALLOWED
    assert held_while_old_served, "readiness never held a successor back"
    archived = cluster.call("GET", f"/api/v1/jobs/{job_id}/archivedWorkers")[1]["list"]
    assert sorted(w["workerNumber"] for w in archived) == list(range(1, WORKERS + 1))
    assert all(w["reason"].startswith("migrated to worker ") for w in archived)
    messages = [e["message"] for e in j["events"] if e["type"] == "migration"]
    assert messages[0].startswith("migration to tests.job_fixtures.health_jobs:job_v2 (version 2) started")
    assert sum(m.startswith("moving worker ") for m in messages) == WORKERS
    assert messages[-1].startswith(f"migration completed: {WORKERS} worker(s) moved")
    # The output never stopped: between samples (~0.2 s apart, 160 events/s) it grew,
    # but for flush-sized pauses adding up to under 3 s; and it went from v1 to v2 events.
    stalls = [b[0] - a[0] for a, b in itertools.pairwise(samples) if b[1] == a[1]]
    assert sum(stalls) < 3.0, f"output stalled for {sum(stalls):.1f}s across consecutive samples"
    artifacts = [e["artifact"] for e in output.events]
    assert artifacts[0] == "v1" and artifacts[-1] == "v2"
