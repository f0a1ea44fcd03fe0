"""Cron and the job SLA end to end: a real master process, its REST API, a real agent and
worker processes; subscribers come through the API's output stream."""
import time

import pytest

from mantis.tooling.local_processes import LocalCluster
from tests.sse_client import SseReader
from tests.support import make_config, wait_for

CLUSTER = {"name": "rules", "url": "mantis.examples.synthetic:job",
           "parameters": [{"name": "rate", "value": 20}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                               "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}}}


@pytest.fixture
def cluster(tmp_path):
    c = LocalCluster(make_config(tmp_path, **{"master.sla_tick_s": 0.5}), tmp_path)
    c.start()
    yield c
    c.stop()


def jobs(cluster) -> dict[str, dict]:
    status, listed = cluster.call("GET", "/api/v1/jobClusters/rules/jobs?activeOnly=false&compact=true")
    assert status == 200, listed
    return {j["jobId"]: j for j in listed["list"]}


def test_a_cron_cluster_submits_on_schedule_and_pauses_while_disabled(cluster):
    status, body = cluster.call("POST", "/api/v1/jobClusters", {**CLUSTER, "cronSpec": "not a spec"})
    assert status == 400 and "cronSpec" in body["error"], body
    status, body = cluster.call("POST", "/api/v1/jobClusters",
                                {**CLUSTER, "cronSpec": "*/2 * * ? * *", "cronPolicy": "KEEP_NEW", "slaMax": 5})
    assert status == 201 and (body["sla"]["min"], body["sla"]["max"]) == (0, 1), body
    wait_for(lambda: len(jobs(cluster)) >= 2, timeout=60, what="two jobs submitted by cron")
    assert {j["user"] for j in jobs(cluster).values()} == {"mantis-cron"}
    status, body = cluster.call("POST", "/api/v1/jobClusters/rules/actions/disableCluster", {"user": "t"})
    assert status == 204, body
    wait_for(lambda: all(j["state"] in ("Completed", "Failed") for j in jobs(cluster).values()), timeout=30,
             what="the disabled cluster's jobs ended")
    submitted = set(jobs(cluster))
    time.sleep(5)  # two or three moments of the spec
    assert set(jobs(cluster)) == submitted
    assert cluster.call("POST", "/api/v1/jobClusters/rules/actions/enableCluster", {"user": "t"})[0] == 204
    wait_for(lambda: set(jobs(cluster)) - submitted, timeout=30, what="cron submitting again once enabled")


def test_a_transient_job_lives_while_subscribed_through_the_api_and_is_killed_after(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    status, body = cluster.call("POST", "/api/v1/jobClusters/rules/jobs",
                                {"user": "t", "jobSla": {"durationType": "Transient"}, "subscriptionTimeoutSecs": 3})
    assert status == 201, body
    job_id = body["jobMetadata"]["jobId"]
    reader = SseReader(f"{cluster.url}/api/v1/jobs/{job_id}/output")
    try:
        wait_for(lambda: len(reader.events) > 0, timeout=60, what="events through the API")
        time.sleep(7)  # more than twice the timeout, subscribed all along
        assert cluster.call("GET", f"/api/v1/jobs/{job_id}")[1]["jobMetadata"]["state"] == "Launched"
    finally:
        reader.close()
    job = wait_for(lambda: (lambda j: j if j["state"] in ("Completed", "Failed") else None)(
        cluster.call("GET", f"/api/v1/jobs/{job_id}")[1]["jobMetadata"]), timeout=30,
        what="the job killed once unsubscribed")
    assert job["killReason"] == "SLA" and "subscriptionTimeoutSecs 3" in job["killMessage"]
