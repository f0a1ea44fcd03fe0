"""A real multiprocTCPBase master and agent: REST, output streams, crashes, restarts."""
import asyncio
import json
import os
import signal
import urllib.request

import tornado.websocket

from tests.sse_client import read_sse
from tests.support import job_id_of, job_state, listed, started_workers, wait_for

CLUSTER = {"name": "synth", "url": "mantis.examples.synthetic:job",
           "parameters": [{"name": "rate", "value": 50}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1, "scalable": True,
                                               "scalingPolicy": {"min": 1, "max": 3},
                                               "machineDefinition": {"cpuCores": 1, "memoryMB": 256}}}}}


def started(cluster, job_id, count=1):
    status, job = cluster.call("GET", f"/api/v1/jobs/{job_id}")
    workers = started_workers(job) if status == 200 else []
    return workers if len(workers) == count else None


def run_job(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    status, body = cluster.call("POST", "/api/v1/jobClusters/synth/jobs", {"user": "e2e"})
    assert status == 201, body
    wait_for(lambda: started(cluster, job_id_of(body)), timeout=30, what="worker Started")
    return job_id_of(body)


def read_ws(url, count, timeout=30):
    async def main():
        conn = await tornado.websocket.websocket_connect(url)
        events = []
        while len(events) < count:
            message = await asyncio.wait_for(conn.read_message(), timeout)
            assert message is not None, "websocket closed early"
            events.append(json.loads(message))
        conn.close()
        return events
    return asyncio.run(main())


def test_rest_api_lifecycle_create_submit_list_scale_kill(cluster):
    job_id = run_job(cluster)
    assert job_id == "synth-1"
    status, clusters = cluster.call("GET", "/api/v1/jobClusters")
    assert status == 200 and [c["name"] for c in listed(clusters)] == ["synth"]
    assert cluster.call("GET", "/api/v1/jobClusters/synth")[1]["activeJobs"] == [job_id]
    status, jobs = cluster.call("GET", "/api/v1/jobs")
    assert status == 200 and [job_id_of(j) for j in listed(jobs)] == [job_id]
    status, jobs = cluster.call("GET", "/api/v1/jobs?compact=true")
    assert status == 200 and [(j["jobId"], j["numWorkers"]) for j in listed(jobs)] == [(job_id, 1)]
    status, body = cluster.call("POST", f"/api/v1/jobs/{job_id}/actions/scaleStage",
                                {"JobId": job_id, "StageNumber": 1, "NumWorkers": 2, "User": "e2e"})
    assert status == 204, body
    wait_for(lambda: started(cluster, job_id, 2), timeout=30, what="2 workers Started")
    status, body = cluster.call("POST", "/api/v1/jobClusters/synth/actions/updateLabel",
                                {"labels": [{"name": "team", "value": "x"}], "user": "e2e"})
    assert status == 204 and body is None
    assert cluster.call("GET", "/api/v1/jobClusters/synth")[1]["labels"] == [{"name": "team", "value": "x"}]
    status, body = cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=e2e&reason=done")
    assert status == 202, body
    wait_for(lambda: job_state(cluster.call("GET", f"/api/v1/jobs/{job_id}")[1]) == "Completed",
             timeout=30, what="job Completed")
    # The listing is built from summaries the job actors push: it follows within moments.
    wait_for(lambda: listed(cluster.call("GET", "/api/v1/jobs")[1]) == [], timeout=10,
             what="the job gone from the list")
    ended = listed(cluster.call("GET", "/api/v1/jobs?jobState=Terminal&compact=true")[1])
    assert [(j["jobId"], j["state"]) for j in ended] == [(job_id, "Completed")]
    status, archived = cluster.call("GET", f"/api/v1/jobs/{job_id}/archivedWorkers")
    assert status == 200 and len(listed(archived)) == 2
    actors = cluster.call("GET", "/api/v1/admin/actors")[1]["actors"]
    kinds = {a["actor"] for a in actors}
    assert {"JobClustersManagerActor", "JobClusterActor", "SchedulerActor", "AgentActor"} <= kinds


def test_bad_input_gets_a_4xx_json_error_never_a_500(cluster):
    cases = [
        ("POST", "/api/v1/jobClusters", {"name": "x"}, 400, "url is required"),
        ("POST", "/api/v1/jobClusters", {**CLUSTER, "extra": 1}, 400, "unknown field"),
        ("POST", "/api/v1/jobClusters/nope/jobs", {}, 404, "does not exist"),
        ("GET", "/api/v1/jobs/not-a-job", None, 400, "not a job id"),
        ("GET", "/api/v1/jobs/synth-7", None, 404, "does not exist"),
        ("GET", "/api/v1/nowhere", None, 404, "no such resource"),
        ("POST", "/api/v1/jobs/synth-1/actions/scaleStage", {"StageNumber": "one", "NumWorkers": 1}, 400,
         "StageNumber"),
        ("POST", "/api/v1/jobClusters/synth/actions/frobnicate", {"user": "e2e"}, 404, "unknown cluster action"),
        ("POST", "/api/v1/jobClusters/synth/actions/disableCluster", {}, 400, "Must provide user"),
        ("DELETE", "/api/v1/jobs/synth-1?user=e2e", None, 400, "reason"),
        ("DELETE", "/api/v1/jobClusters/synth", None, 400, "user"),
    ]
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 409
    for method, path, body, code, text in cases:
        status, reply = cluster.call(method, path, body)
        assert status == code and text in reply["error"], (path, status, reply)
    req = urllib.request.Request(cluster.url + "/api/v1/jobClusters", data=b"{not json", method="POST")
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("invalid JSON accepted")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400 and "not valid JSON" in json.loads(exc.read())["error"]
    status, reply = cluster.call("POST", "/api/v1/jobClusters/synth/jobs",
                                 {"parameters": [{"name": "rate", "value": -5}]})
    assert status == 400 and "rate" in reply["error"]


def test_job_output_streams_over_sse_and_websocket(cluster):
    job_id = run_job(cluster)
    events = read_sse(f"{cluster.url}/api/v1/jobs/{job_id}/output", 20)
    assert len(events) == 20 and all("id" in e for e in events)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids)
    ws_url = cluster.url.replace("http", "ws") + f"/api/v1/jobs/{job_id}/output/ws"
    ws_events = read_ws(ws_url, 20)
    assert len(ws_events) == 20 and ws_events[-1]["id"] > ids[0]


def test_worker_killed_with_kill_9_is_replaced_and_output_resumes(cluster):
    job_id = run_job(cluster)
    (w,) = started(cluster, job_id)
    pid = w["metrics"]["pid"]
    os.kill(pid, signal.SIGKILL)
    (new,) = wait_for(lambda: [x for x in (started(cluster, job_id) or []) if x["workerNumber"] == 2],
                      timeout=30, what="replacement worker Started")
    assert new["workerIndex"] == 0 and new["resubmitOf"] == 1 and new["metrics"]["pid"] != pid
    events = read_sse(f"{cluster.url}/api/v1/jobs/{job_id}/output", 5)
    assert len(events) == 5


def test_master_killed_with_kill_9_recovers_jobs_and_reattaches_workers(cluster):
    job_id = run_job(cluster)
    (w,) = started(cluster, job_id)
    cluster.master.kill9()
    cluster.start_master()
    status, job = cluster.call("GET", f"/api/v1/jobs/{job_id}")
    assert status == 200 and job_state(job) == "Launched"
    assert cluster.call("GET", "/api/v1/jobClusters/synth")[0] == 200
    # The agent re-registers with the new master; the same worker (number and pid) reattaches.
    wait_for(lambda: cluster.call("GET", "/api/v1/agents")[1]["list"], timeout=20, what="agent re-registered")
    import time
    time.sleep(6)  # past the heartbeat timeout: a worker not reattached would be replaced by now
    (again,) = wait_for(lambda: started(cluster, job_id), timeout=20, what="worker still Started")
    assert again["workerNumber"] == w["workerNumber"] and again["metrics"]["pid"] == w["metrics"]["pid"]
    events = read_sse(f"{cluster.url}/api/v1/jobs/{job_id}/output", 5)
    assert len(events) == 5
    assert job_id_of(cluster.call("POST", "/api/v1/jobClusters/synth/jobs", {})[1]) == "synth-2"
