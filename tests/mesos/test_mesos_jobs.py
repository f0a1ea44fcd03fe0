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
    assert get_job(cluster, job_id)["state"] == "Completed"
