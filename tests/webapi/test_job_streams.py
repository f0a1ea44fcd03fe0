"""Job discovery, job status and last-submitted-job-id streams against a real master and agent."""
import http.client
import itertools
import json
import urllib.parse

from tests.sse_client import CLOSED, SseReader
from tests.support import wait_for
from webapi.job_streams import discovery_snapshot, latest_job_id, status_snapshot

CLUSTER = {"name": "synth", "url": "mantis.examples.synthetic:job",
           "parameters": [{"name": "rate", "value": 20}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1, "scalable": True,
                                               "scalingPolicy": {"min": 1, "max": 3},
                                               "machineDefinition": {"cpuCores": 1, "memoryMB": 256}}}}}


def submit(cluster) -> str:
    status, body = cluster.call("POST", "/api/v1/jobClusters/synth/jobs", {"user": "test"})
    assert status == 201, body
    return body["jobId"]


def started_workers(cluster, job_id, count=1):
    status, job = cluster.call("GET", f"/api/v1/jobs/{job_id}")
    workers = [w for w in job["workers"] if w["state"] == "Started"] if status == 200 else []
    return workers if len(workers) == count else None


def run_job(cluster) -> str:
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    job_id = submit(cluster)
    wait_for(lambda: started_workers(cluster, job_id), timeout=60, what="worker Started")
    return job_id


def started_in_stage_1(data) -> list:
    return [w for w in data["stages"]["1"] if w["state"] == "Started"]


def test_discovery_stream_gives_worker_addresses_and_follows_resubmit_scale_and_kill(cluster):
    job_id = run_job(cluster)
    (worker,) = started_workers(cluster, job_id)
    with SseReader(f"{cluster.url}/api/v1/jobDiscoveryStream/{job_id}") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        _, first = stream.next(what="the first discovery event")
        assert first["jobId"] == job_id and list(first["stages"]) == ["1"]
        (w,) = first["stages"]["1"]
        port = worker["metrics"].get("port") or worker["ports"][0]
        assert w == {"workerIndex": 0, "workerNumber": worker["workerNumber"], "host": worker["host"],
                     "port": port, "state": "Started", "metricsPort": worker["metrics"]["metricsPort"]}
        assert w["host"] and isinstance(w["port"], int) and w["port"] > 0

        status, body = cluster.call("POST", f"/api/v1/jobs/{job_id}/actions/resubmitWorker",
                                    {"workerNumber": w["workerNumber"], "user": "test", "reason": "move"})
        assert status == 200, body
        _, replaced = stream.next(
            lambda name, d: [x for x in started_in_stage_1(d) if x["workerNumber"] != w["workerNumber"]],
            timeout=60, what="the replacement worker Started")
        (new,) = replaced["stages"]["1"]
        assert new["workerIndex"] == 0 and new["workerNumber"] > w["workerNumber"] and new["port"]

        status, body = cluster.call("POST", f"/api/v1/jobs/{job_id}/actions/scaleStage",
                                    {"JobId": job_id, "StageNumber": 1, "NumWorkers": 2, "User": "test"})
        assert status == 200, body
        _, scaled = stream.next(lambda name, d: len(started_in_stage_1(d)) == 2, timeout=60,
                                what="two workers Started")
        assert [x["workerIndex"] for x in scaled["stages"]["1"]] == [0, 1]
        assert all(x["host"] and x["port"] for x in scaled["stages"]["1"])

        assert cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=test&reason=done")[0] == 200
        _, final = stream.next(lambda name, d: name == "message" and d["state"] == "Completed", timeout=60,
                               what="the Completed job")
        assert final["stages"] == {"1": []}
        name, end = stream.next(what="the end event")
        assert name == "end" and "Completed" in end["reason"]
        assert stream.next(what="the stream closing")[0] == CLOSED
        # Between two events something changed: the stream never repeats itself.
        messages = [d for n, d in stream.seen if n == "message"]
        assert all(a != b for a, b in itertools.pairwise(messages))


def test_status_stream_shows_worker_states_and_the_kill(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    job_id = submit(cluster)
    with SseReader(f"{cluster.url}/api/v1/jobStatusStream/{job_id}") as stream:
        _, first = stream.next(what="the first status event")
        assert first["jobId"] == job_id and first["state"] in ("Accepted", "Launched")
        _, running = stream.next(lambda name, d: [w for w in d["workers"] if w["state"] == "Started"],
                                 timeout=60, what="the worker Started")
        (w,) = running["workers"]
        assert w["stageNum"] == 1 and w["workerIndex"] == 0 and w["workerNumber"] >= 1
        assert set(w) == {"stageNum", "workerIndex", "workerNumber", "state", "reason"}

        status, body = cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=test&reason=enough")
        assert status == 200, body
        _, final = stream.next(lambda name, d: name == "message" and d["state"] == "Completed", timeout=60,
                               what="the job Completed")
        assert final["killReason"] == "Killed" and final["killMessage"] == "enough"
        assert stream.next(what="the end event")[0] == "end"
        assert stream.next(what="the stream closing")[0] == CLOSED
    states = [d["state"] for n, d in stream.seen if n == "message"]
    assert states[0] in ("Accepted", "Launched") and states[-1] == "Completed"
    # The job's states arrive in lifecycle order (events may merge steps, never reorder them).
    order = ["Accepted", "Launched", "Terminating_normal", "Completed"]
    assert [order.index(s) for s in states] == sorted(order.index(s) for s in states)


def test_status_stream_of_an_ended_job_sends_its_final_state_and_ends(cluster):
    job_id = run_job(cluster)
    assert cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=test")[0] == 200
    wait_for(lambda: cluster.call("GET", f"/api/v1/jobs/{job_id}")[1]["state"] == "Completed",
             timeout=60, what="job Completed")
    for path in ("jobStatusStream", "jobDiscoveryStream"):
        with SseReader(f"{cluster.url}/api/v1/{path}/{job_id}") as stream:
            name, data = stream.next(what=f"{path}'s only event")
            assert name == "message" and data["state"] == "Completed"
            assert stream.next(what="the end event")[0] == "end"
            assert stream.next(what="the stream closing")[0] == CLOSED


def latest_discovery(cluster):
    return cluster.call("GET", "/api/v1/jobClusters/synth/latestJobDiscoveryInfo")


def test_last_submitted_job_id_follows_submits_and_kills(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    status, body = latest_discovery(cluster)
    assert status == 404 and "no active job" in body["error"]
    with SseReader(f"{cluster.url}/api/v1/lastSubmittedJobIdStream/synth") as stream:
        assert stream.next(what="the first event") == ("message", {"clusterName": "synth", "jobId": None})
        first = submit(cluster)
        assert stream.next(what="the first job")[1]["jobId"] == first == "synth-1"
        second = submit(cluster)
        assert stream.next(what="the second job")[1]["jobId"] == second == "synth-2"
        status, body = latest_discovery(cluster)
        assert status == 200 and body["jobId"] == second and list(body["stages"]) == ["1"], body
        assert cluster.call("DELETE", f"/api/v1/jobs/{second}?user=test")[0] == 200
        assert stream.next(timeout=60, what="back to the first job")[1]["jobId"] == first
        assert cluster.call("DELETE", f"/api/v1/jobs/{first}?user=test")[0] == 200
        assert stream.next(timeout=60, what="no active job")[1]["jobId"] is None
    assert [d["jobId"] for _, d in stream.seen] == [None, "synth-1", "synth-2", "synth-1", None]


def get_raw(url):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", parts.path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), json.loads(response.read())
    finally:
        conn.close()


def test_unknown_jobs_and_clusters_are_json_errors_never_a_500(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    cases = [
        ("jobDiscoveryStream/synth-9", 404, "does not exist"),
        ("jobStatusStream/synth-9", 404, "does not exist"),
        ("jobDiscoveryStream/nocluster-1", 404, "does not exist"),
        ("lastSubmittedJobIdStream/nocluster", 404, "does not exist"),
        ("jobStatusStream/not_a_job", 400, "not a job id"),
        ("lastSubmittedJobIdStream/bad-name", 400, "clusterName"),
        ("jobClusters/nocluster/latestJobDiscoveryInfo", 404, "does not exist"),
    ]
    for path, code, text in cases:
        status, content_type, body = get_raw(f"{cluster.url}/api/v1/{path}")
        assert status == code and content_type.startswith("application/json"), (path, status, body)
        assert text in body["error"] and body["status"] == code, (path, body)


def test_a_subscriber_leaving_is_noticed_and_its_polling_stops(cluster):
    job_id = run_job(cluster)
    stream = SseReader(f"{cluster.url}/api/v1/jobStatusStream/{job_id}")
    stream.next(what="the first event")
    stream.close()
    wait_for(lambda: f"jobStatusStream subscriber for {job_id} from 127.0.0.1 disconnected: client disconnected"
             in cluster.master.output(), timeout=30, what="the master noticing the subscriber left")


# -- the snapshots, on the API's own job shape (no processes) ---------------------------

def api_worker(stage, index, number, state, host="10.0.0.1", ports=(31000,), metrics=None, reason=""):
    return {"workerId": f"j-1/w{number}", "jobId": "j-1", "stageNum": stage, "workerIndex": index,
            "workerNumber": number, "state": state, "reason": reason, "host": host, "ports": list(ports),
            "metrics": metrics or {}}


def test_discovery_snapshot_lists_every_stage_and_prefers_the_port_the_worker_serves_on():
    job = {"jobId": "j-1", "state": "Launched", "stageSizes": {"1": 1, "2": 2}, "workers": [
        api_worker(2, 1, 4, "Started", metrics={"port": 31999, "eventsIn": 5, "metricsPort": 31998}),
        api_worker(2, 0, 3, "Accepted", host=None, ports=()),
        api_worker(1, 0, 1, "Started"),
    ]}
    assert discovery_snapshot(job) == {"jobId": "j-1", "state": "Launched", "stages": {
        "1": [{"workerIndex": 0, "workerNumber": 1, "host": "10.0.0.1", "port": 31000, "state": "Started",
               "metricsPort": None}],
        "2": [{"workerIndex": 0, "workerNumber": 3, "host": None, "port": None, "state": "Accepted",
               "metricsPort": None},
              {"workerIndex": 1, "workerNumber": 4, "host": "10.0.0.1", "port": 31999, "state": "Started",
               "metricsPort": 31998}],
    }}
    # A heartbeat's new counters are not a change.
    job["workers"][0]["metrics"]["eventsIn"] = 500
    assert discovery_snapshot(job)["stages"]["2"][1]["port"] == 31999
    job["workers"] = []
    assert discovery_snapshot(job)["stages"] == {"1": [], "2": []}


def test_status_snapshot_and_latest_job_id():
    job = {"jobId": "j-1", "state": "Launched", "killReason": None, "killMessage": None, "workers": [
        api_worker(1, 0, 2, "Started"), api_worker(1, 0, 1, "Failed", reason="lost")]}
    assert status_snapshot(job)["workers"] == [
        {"stageNum": 1, "workerIndex": 0, "workerNumber": 1, "state": "Failed", "reason": "lost"},
        {"stageNum": 1, "workerIndex": 0, "workerNumber": 2, "state": "Started", "reason": ""}]
    assert latest_job_id([{"jobId": "a-9"}, {"jobId": "a-10"}, {"jobId": "a-2"}]) == "a-10"
    assert latest_job_id([]) is None
