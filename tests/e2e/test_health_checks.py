"""Health and readiness checks, end to end: a real master, agent and worker processes.

The agent's health checker probes the workers; the fixture job
(``tests.job_fixtures.health_jobs``) misbehaves when the test drops a flag file named
after a worker number, so each test makes exactly worker 1 fail its check and watches
the master replace it (worker 2, resubmitOf 1) with the check's reason recorded.
"""
from __future__ import annotations

import socket

from tests.support import wait_for

FAST = {"gracePeriodSeconds": 0, "intervalSeconds": 0.5, "timeoutSeconds": 0.5, "maxConsecutiveFailures": 2}


def _create_and_submit(cluster, name, url, flags, stages=None, **params):
    stage = {"numberOfInstances": 1, "machineDefinition": {"cpuCores": 1, "memoryMB": 128, "numPorts": 2}}
    definition = {"name": name, "url": url,
                  "parameters": [{"name": "flags", "value": str(flags)},
                                 *({"name": k, "value": v} for k, v in params.items())],
                  "schedulingInfo": {"stages": stages or {"1": stage}}}
    status, body = cluster.call("POST", "/api/v1/jobClusters", definition)
    assert status == 201, body
    status, body = cluster.call("POST", f"/api/v1/jobClusters/{name}/jobs", {"user": "health"})
    assert status == 201, body
    return body["jobMetadata"]["jobId"]


def _worker(cluster, job_id, number):
    job = cluster.call("GET", f"/api/v1/jobs/{job_id}")[1]
    return next((w for w in job["workerMetadataList"] if w["workerNumber"] == number), None)


def _job_state(cluster, job_id):
    return cluster.call("GET", f"/api/v1/jobs/{job_id}")[1]["jobMetadata"]["state"]


def _stage_states(discovery, stage):
    """Worker states of ``stage`` in a JobSchedulingInfo, by worker number."""
    hosts = discovery["workerAssignments"][str(stage)]["hosts"]
    return [hosts[n]["state"] for n in sorted(hosts, key=int)]


def _started(cluster, job_id, number):
    w = _worker(cluster, job_id, number)
    return w if w is not None and w["state"] == "Started" else None


def _archived(cluster, job_id, number):
    archived = cluster.call("GET", f"/api/v1/jobs/{job_id}/archivedWorkers")[1]["list"]
    return next((w for w in archived if w["workerNumber"] == number), None)


def _replaced_for_failing(cluster, job_id, flag, expected_reason):
    """Worker 1 runs; ``flag`` makes it fail its check; it ends Failed with the check's
    reason, and worker 2 takes its index and starts (its own flag is absent)."""
    wait_for(lambda: _started(cluster, job_id, 1), timeout=60, what="worker 1 Started")
    flag.touch()
    old = wait_for(lambda: _archived(cluster, job_id, 1), timeout=30, what="worker 1 replaced")
    assert old["state"] == "Failed"
    assert old["reason"].startswith("unhealthy: health check "), old["reason"]
    assert expected_reason in old["reason"], old["reason"]
    new = wait_for(lambda: _started(cluster, job_id, 2), timeout=60, what="worker 2 Started")
    assert (new["workerIndex"], new["resubmitOf"], new["totalResubmitCount"]) == (0, 1, 1)


def test_a_failing_http_health_check_declared_by_the_job_replaces_its_worker(cluster, tmp_path):
    # The job's code declares the check; the worker runtime's /health answers it, and
    # the job's health hook turns it to 503 once sick-1 exists.
    job_id = _create_and_submit(cluster, "httpcheck", "tests.job_fixtures.health_jobs:declared_http", tmp_path)
    # (Its failures are 503s, or a reset while the sick worker is being stopped: either fails it.)
    _replaced_for_failing(cluster, job_id, tmp_path / "sick-1", "HTTP /health failed 2 time(s) in a row")


def test_a_failing_tcp_health_check_replaces_its_worker(cluster, tmp_path):
    # The job listens on its second port until close-1 exists; the stage checks that port.
    stage = {"numberOfInstances": 1, "machineDefinition": {"cpuCores": 1, "memoryMB": 128, "numPorts": 2},
             "healthChecks": [{"protocol": "TCP", "portIndex": 1, **FAST}]}
    job_id = _create_and_submit(cluster, "tcpcheck", "tests.job_fixtures.health_jobs:job", tmp_path,
                                stages={"1": stage})
    _replaced_for_failing(cluster, job_id, tmp_path / "close-1", "TCP port #1 failed 2 time(s) in a row")


def test_a_failing_command_health_check_replaces_its_worker(cluster, tmp_path):
    # The command runs on the agent with the worker's number in its environment.
    command = f"test ! -e {tmp_path}/sick-$MANTIS_WORKER_NUMBER"
    stage = {"numberOfInstances": 1, "machineDefinition": {"cpuCores": 1, "memoryMB": 128},
             "healthChecks": [{"protocol": "COMMAND", "command": {"value": command}, **FAST}]}
    job_id = _create_and_submit(cluster, "cmdcheck", "tests.job_fixtures.health_jobs:job", tmp_path,
                                stages={"1": stage})
    _replaced_for_failing(cluster, job_id, tmp_path / "sick-1", "exited 1")


def test_readiness_holds_a_worker_out_of_discovery_until_it_is_ready(cluster, tmp_path):
    # Stage 1 has a readiness check on /ready, which the job's hook answers only once
    # ready-<n> exists; stage 2 reads stage 1 through job discovery.
    stage1 = {"numberOfInstances": 1, "machineDefinition": {"cpuCores": 1, "memoryMB": 128},
              "readinessChecks": [{"protocol": "HTTP", "path": "/ready", "intervalSeconds": 0.5,
                                   "timeoutSeconds": 0.5}]}
    stage2 = {"numberOfInstances": 1, "machineDefinition": {"cpuCores": 1, "memoryMB": 128}}
    job_id = _create_and_submit(cluster, "readiness", "tests.job_fixtures.health_jobs:two_stage", tmp_path,
                                stages={"1": stage1, "2": stage2}, gate_ready=True)

    def held():
        w = _worker(cluster, job_id, 1)
        return w if w and w["state"] == "StartInitiated" and w["metrics"].get("port") else None

    w1 = wait_for(held, timeout=60, what="stage 1 running but held StartInitiated")
    w2 = wait_for(lambda: _started(cluster, job_id, 2), timeout=60, what="stage 2 Started")
    # The stage 1 worker really runs: its output port accepts connections...
    socket.create_connection(("127.0.0.1", w1["metrics"]["port"]), timeout=2).close()
    # ...but discovery does not offer it: not Started, and stage 2 was given no upstream.
    discovery = cluster.call("GET", "/api/v1/jobClusters/readiness/latestJobDiscoveryInfo")[1]
    assert _stage_states(discovery, 1) == ["StartInitiated"]
    assert _worker(cluster, job_id, 1)["state"] == "StartInitiated"
    assert w2["metrics"].get("upstreamConnections", 0) == 0
    assert _job_state(cluster, job_id) == "Accepted"  # not all Started

    (tmp_path / "ready-1").touch()
    wait_for(lambda: _started(cluster, job_id, 1), timeout=30, what="stage 1 Started once ready")
    discovery = cluster.call("GET", "/api/v1/jobClusters/readiness/latestJobDiscoveryInfo")[1]
    assert _stage_states(discovery, 1) == ["Started"]
    wait_for(lambda: (_worker(cluster, job_id, 2)["metrics"].get("upstreamConnections") or 0) >= 1,
             timeout=30, what="stage 2 connected to stage 1")
    wait_for(lambda: _job_state(cluster, job_id) == "Launched",
             timeout=30, what="job Launched")
