"""Job discovery, job status and last-submitted-job-id streams against a real master and agent,
read the way a Mantis client reads them (JobSchedulingInfo, Status, JobClusterInfo)."""
import asyncio
import http.client
import itertools
import json
import re
import socket
import urllib.parse

import tornado.httpclient
import tornado.websocket

from mantis.lifecycles.job_views import (
    HB_JOB_ID,
    completed_reason,
    epoch_ms,
    latest_job_id,
    scheduling_info,
    status_events,
    status_view,
)
from tests.sse_client import CLOSED, SseReader
from tests.support import wait_for

CLUSTER = {"name": "synth", "url": "mantis.examples.synthetic:job",
           "parameters": [{"name": "rate", "value": 20}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1, "scalable": True,
                                               "scalingPolicy": {"min": 1, "max": 3},
                                               "machineDefinition": {"cpuCores": 1, "memoryMB": 256}}}}}
WORKER_STATES = {"Accepted", "Launched", "StartInitiated", "Started", "Failed", "Completed"}
STATUS_FIELDS = {"jobId", "stageNum", "workerIndex", "workerNumber", "type", "message", "state", "reason",
                 "hostname", "timestamp", "payloads"}


# -- reading the payloads as a Mantis client does -----------------------------------------

def check_scheduling_info(info: dict) -> dict:
    """``info`` is a JobSchedulingInfo with every field of the type Mantis' classes declare."""
    assert isinstance(info["jobId"], str) and isinstance(info["workerAssignments"], dict), info
    for stage_key, stage in info["workerAssignments"].items():
        assert stage_key.isdigit() and stage["stage"] == int(stage_key), info
        assert isinstance(stage["numWorkers"], int) and isinstance(stage["hosts"], dict), info
        for number_key, host in stage["hosts"].items():
            assert host["workerNumber"] == int(number_key) and isinstance(host["workerIndex"], int), info
            assert host["state"] in WORKER_STATES, info
            assert isinstance(host["port"], list) and all(isinstance(p, int) for p in host["port"]), info
            assert isinstance(host["metricsPort"], int) and isinstance(host["customPort"], int), info
            assert host["host"] is None or isinstance(host["host"], str), info
    return info


def check_status(status: dict) -> dict:
    """``status`` is a Status with exactly Mantis' fields, of Mantis' types."""
    assert set(status) == STATUS_FIELDS, status
    assert isinstance(status["jobId"], str) and status["type"] in ("INFO", "WARN", "ERROR", "DEBUG", "HEARTBEAT")
    for field in ("stageNum", "workerIndex", "workerNumber", "timestamp"):
        assert isinstance(status[field], int) and not isinstance(status[field], bool), status
    assert status["timestamp"] > 10 ** 12, status  # epoch milliseconds
    assert status["reason"] in ("Normal", "Error", "Lost", "Killed", "Relaunched"), status
    assert isinstance(status["message"], str) and status["message"] and status["payloads"] == [], status
    return status


def is_job_level(status: dict) -> bool:
    return (status["stageNum"], status["workerIndex"], status["workerNumber"]) == (0, -1, -1)


def is_event_status(status: dict) -> bool:
    """One of the job's events told as a Status: ``"<EventType>: what happened"``."""
    return is_job_level(status) and re.match(r"^[A-Z][A-Za-z]+: ", status["message"]) is not None


def is_job_status(status: dict) -> bool:
    """The job's own Status: its state (and kill reason), not one of its events."""
    return is_job_level(status) and not is_event_status(status)


def started_hosts(info: dict, stage: str = "1") -> list[dict]:
    return [h for h in info["workerAssignments"][stage]["hosts"].values() if h["state"] == "Started"]


# -- driving the master -----------------------------------------------------------------

def submit(cluster) -> str:
    status, body = cluster.call("POST", "/api/v1/jobClusters/synth/jobs", {"user": "test"})
    assert status == 201, body
    return body.get("jobId") or body["jobMetadata"]["jobId"]


def latest_discovery(cluster):
    return cluster.call("GET", "/api/v1/jobClusters/synth/latestJobDiscoveryInfo")


def run_job(cluster) -> str:
    """A job of cluster synth with its one worker Started."""
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    job_id = submit(cluster)

    def started():
        status, info = latest_discovery(cluster)
        return status == 200 and info["jobId"] == job_id and len(started_hosts(info)) == 1

    wait_for(started, timeout=60, what="worker Started")
    return job_id


def kill(cluster, job_id, reason="done"):
    status, body = cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=test&reason={reason}")
    assert 200 <= status < 300, body


def accepts_connections(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=5):
        return True


def test_discovery_stream_sends_job_scheduling_info_and_follows_resubmit_scale_and_kill(cluster):
    job_id = run_job(cluster)
    with SseReader(f"{cluster.url}/api/v1/jobDiscoveryStream/{job_id}") as stream:
        assert stream.headers["Content-Type"].startswith("text/event-stream")
        _, first = stream.next(what="the first discovery event")
        check_scheduling_info(first)
        assert first["jobId"] == job_id and list(first["workerAssignments"]) == ["1"]
        stage = first["workerAssignments"]["1"]
        assert stage["numWorkers"] == 1
        ((number, w),) = stage["hosts"].items()
        assert w["state"] == "Started" and w["workerIndex"] == 0 and w["host"] and w["port"][0] > 0
        # A Mantis client connects to host:port[0]: the worker is there.
        assert accepts_connections(w["host"], w["port"][0])

        status, body = cluster.call("POST", f"/api/v1/jobs/{job_id}/actions/resubmitWorker",
                                    {"workerNumber": w["workerNumber"], "user": "test", "reason": "move"})
        assert 200 <= status < 300, body
        _, replaced = stream.next(
            lambda name, d: [h for h in started_hosts(d) if h["workerNumber"] != w["workerNumber"]],
            timeout=60, what="the replacement worker Started")
        ((new_number, new),) = replaced["workerAssignments"]["1"]["hosts"].items()
        assert new["workerIndex"] == 0 and int(new_number) > int(number) and new["port"]

        status, body = cluster.call("POST", f"/api/v1/jobs/{job_id}/actions/scaleStage",
                                    {"JobId": job_id, "StageNumber": 1, "NumWorkers": 2, "User": "test"})
        assert 200 <= status < 300, body
        _, scaled = stream.next(lambda name, d: len(started_hosts(d)) == 2, timeout=60, what="two workers Started")
        assert scaled["workerAssignments"]["1"]["numWorkers"] == 2
        assert sorted(h["workerIndex"] for h in started_hosts(scaled)) == [0, 1]
        assert all(accepts_connections(h["host"], h["port"][0]) for h in started_hosts(scaled))

        kill(cluster, job_id)
        name, end = stream.next(lambda name, d: name == "end", timeout=60, what="the end event")
        assert "Completed" in end["reason"]
        assert stream.next(what="the stream closing")[0] == CLOSED
        messages = [d for n, d in stream.seen if n == "message"]
        assert messages[-1]["workerAssignments"]["1"]["hosts"] == {}
        assert all(check_scheduling_info(d)["jobId"] == job_id for d in messages)
        # Between two events something changed: the stream never repeats itself.
        assert all(a != b for a, b in itertools.pairwise(messages))


def test_status_stream_over_sse_sends_one_status_per_change_and_the_kill(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    job_id = submit(cluster)
    with SseReader(f"{cluster.url}/api/v1/jobStatusStream/{job_id}") as stream:
        _, first = stream.next(what="the first status")
        assert is_job_status(check_status(first)) and first["jobId"] == job_id
        assert first["state"] in ("Accepted", "Launched")
        _, running = stream.next(lambda name, d: d["state"] == "Started", timeout=60, what="the worker Started")
        assert running["stageNum"] == 1 and running["workerIndex"] == 0 and running["workerNumber"] >= 1
        assert running["hostname"] and running["type"] == "INFO"

        kill(cluster, job_id, reason="enough")
        _, final = stream.next(lambda name, d: name == "message" and is_job_status(d) and d["state"] == "Completed",
                               timeout=60, what="the job Completed")
        assert final["reason"] == "Killed" and "enough" in final["message"]
        # The job's events follow its own status (the kill, the state changes), then the end.
        name, end = stream.next(lambda name, d: name == "end" or not is_event_status(d), what="the end event")
        assert name == "end" and "Completed" in end["reason"]
        assert stream.next(what="the stream closing")[0] == CLOSED
    statuses = [check_status(d) for n, d in stream.seen if n == "message" and not is_event_status(d)]
    events = [d["message"] for n, d in stream.seen if n == "message" and is_event_status(d)]
    assert any(e.startswith("JobKilled: ") and "enough" in e for e in events), events
    # The job's states arrive in lifecycle order (events may merge steps, never reorder them).
    order = ["Accepted", "Launched", "Terminating_normal", "Completed"]
    job_states = [order.index(s["state"]) for s in statuses if is_job_status(s)]
    assert job_states == sorted(job_states) and len(set(job_states)) == len(job_states)
    # The worker's own states too, ending with its Completed before the job's.
    worker_statuses = [s for s in statuses if not is_job_status(s)]
    assert "Started" in [s["state"] for s in worker_statuses]
    # The worker's end is told from its archived record (its own reason), not guessed.
    last = worker_statuses[-1]
    assert last["state"] == "Completed" and "no longer part of the job" not in last["message"], last
    assert statuses.index(final) == len(statuses) - 1


async def read_ws(conn, statuses: list, match, timeout: float = 60.0):
    """Read Status messages into ``statuses`` until one matches (returned) or the socket closes (None)."""
    async def until():
        while True:
            message = await conn.read_message()
            if message is None:
                return None
            statuses.append(json.loads(message))
            if match(statuses[-1]):
                return statuses[-1]
    return await asyncio.wait_for(until(), timeout)


def ws_url(cluster, path: str) -> str:
    return cluster.url.replace("http://", "ws://") + path


def test_status_stream_over_websocket_sends_statuses_and_closes_when_the_job_ends(cluster):
    job_id = run_job(cluster)

    async def scenario():
        conn = await tornado.websocket.websocket_connect(ws_url(cluster, f"/api/v1/jobStatusStream/{job_id}"))
        statuses: list = []
        # The first snapshot: the job's status, then its one worker's.
        await read_ws(conn, statuses, lambda s: len(statuses) == 2, timeout=30)
        job, worker = statuses
        assert is_job_status(job) and job["state"] == "Launched"
        assert (worker["stageNum"], worker["workerIndex"], worker["state"]) == (1, 0, "Started")
        await asyncio.to_thread(kill, cluster, job_id, "bye")
        final = await read_ws(conn, statuses, lambda s: is_job_status(s) and s["state"] == "Completed")
        assert final["reason"] == "Killed"
        assert await read_ws(conn, statuses, lambda s: False, timeout=30) is None
        assert conn.close_code == 1000 and "Completed" in conn.close_reason
        return statuses

    statuses = asyncio.run(scenario())
    assert all(check_status(s)["jobId"] == job_id for s in statuses)
    assert [s["state"] for s in statuses if s["workerNumber"] == statuses[1]["workerNumber"]][-1] == "Completed"


def test_streams_of_an_ended_job_send_its_final_state_and_end(cluster):
    job_id = run_job(cluster)
    kill(cluster, job_id)
    # A status stream opened before the job ends runs until it has ended.
    with SseReader(f"{cluster.url}/api/v1/jobStatusStream/{job_id}") as stream:
        stream.next(lambda name, d: name == CLOSED, timeout=60, what="the job to end")
    with SseReader(f"{cluster.url}/api/v1/jobStatusStream/{job_id}") as stream:
        name, data = stream.next(what="the only status")
        assert name == "message" and is_job_status(check_status(data)) and data["state"] == "Completed"
        assert stream.next(what="the end event")[0] == "end"
        assert stream.next(what="the stream closing")[0] == CLOSED
    with SseReader(f"{cluster.url}/api/v1/jobDiscoveryStream/{job_id}") as stream:
        name, data = stream.next(what="the only discovery event")
        assert name == "message" and check_scheduling_info(data)["workerAssignments"]["1"]["hosts"] == {}
        assert stream.next(what="the end event")[0] == "end"

    async def over_ws():
        conn = await tornado.websocket.websocket_connect(ws_url(cluster, f"/api/v1/jobStatusStream/{job_id}"))
        statuses: list = []
        assert await read_ws(conn, statuses, lambda s: False, timeout=30) is None
        return statuses, conn.close_code

    statuses, code = asyncio.run(over_ws())
    assert code == 1000 and [s["state"] for s in statuses] == ["Completed"]


def test_last_submitted_job_id_sends_job_cluster_info_following_submits_and_kills(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    status, body = latest_discovery(cluster)
    assert status == 404 and "no active job" in body["error"]
    with SseReader(f"{cluster.url}/api/v1/lastSubmittedJobIdStream/synth") as stream:
        assert stream.next(what="the first event") == ("message", {"name": "synth", "jobId": None})
        first = submit(cluster)
        assert stream.next(what="the first job")[1] == {"name": "synth", "jobId": first} and first == "synth-1"
        second = submit(cluster)
        assert stream.next(what="the second job")[1]["jobId"] == second == "synth-2"
        status, body = latest_discovery(cluster)
        assert status == 200 and check_scheduling_info(body)["jobId"] == second, body
        assert list(body["workerAssignments"]) == ["1"]
        kill(cluster, second)
        assert stream.next(timeout=60, what="back to the first job")[1]["jobId"] == first
        kill(cluster, first)
        assert stream.next(timeout=60, what="no active job")[1]["jobId"] is None
    assert [d for _, d in stream.seen] == [{"name": "synth", "jobId": j}
                                           for j in (None, "synth-1", "synth-2", "synth-1", None)]


def test_send_hb_makes_quiet_streams_send_mantis_heartbeats(cluster):
    job_id = run_job(cluster)
    paths = {"discovery": f"jobDiscoveryStream/{job_id}?sendHB=true",
             "status": f"jobStatusStream/{job_id}?sendHB=true",
             "lastSubmitted": "lastSubmittedJobIdStream/synth?sendHB=true"}
    readers = {k: SseReader(f"{cluster.url}/api/v1/{p}") for k, p in paths.items()}
    # Without sendHB, a quiet stream keeps alive with comment lines only: no heartbeat events.
    plain = SseReader(f"{cluster.url}/api/v1/jobDiscoveryStream/{job_id}")
    try:
        def heartbeat(kind, predicate):
            return readers[kind].next(lambda name, d: predicate(d), timeout=45, what=f"a {kind} heartbeat")[1]

        assert heartbeat("discovery", lambda d: d["jobId"] == HB_JOB_ID) == {"jobId": HB_JOB_ID,
                                                                           "workerAssignments": {}}
        assert heartbeat("lastSubmitted", lambda d: d["jobId"] == HB_JOB_ID) == {"name": HB_JOB_ID,
                                                                               "jobId": HB_JOB_ID}
        hb = check_status(heartbeat("status", lambda d: d["type"] == "HEARTBEAT"))
        assert hb["jobId"] == job_id and is_job_status(hb) and hb["state"] == "Launched"
        # The plain stream was opened last: by now it has been quiet past a keepalive too.
        heartbeat("discovery", lambda d: True)
        assert len(plain.events) == 1 and plain.events[0]["jobId"] == job_id and not plain.ended.is_set()
    finally:
        plain.close()
        for reader in readers.values():
            reader.close()


def get_raw(url, headers=None):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        conn.request("GET", parts.path, headers=headers or {})
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
        ("lastSubmittedJobIdStream/bad%20name", 400, "clusterName"),
        ("jobClusters/nocluster/latestJobDiscoveryInfo", 404, "does not exist"),
    ]
    for path, code, text in cases:
        status, content_type, body = get_raw(f"{cluster.url}/api/v1/{path}")
        assert status == code and content_type.startswith("application/json"), (path, status, body)
        assert text in body["error"] and body["status"] == code, (path, body)

    # Over WebSocket, the same answer comes before the upgrade.
    async def ws_error(path):
        try:
            await tornado.websocket.websocket_connect(ws_url(cluster, f"/api/v1/{path}"))
        except tornado.httpclient.HTTPClientError as exc:
            return exc.code, json.loads(exc.response.body)
        raise AssertionError(f"{path} upgraded")

    for path, code in (("jobStatusStream/synth-9", 404), ("jobStatusStream/not_a_job", 400)):
        status, body = asyncio.run(ws_error(path))
        assert status == code and body["status"] == code and body["error"], (path, body)


def test_a_subscriber_leaving_is_noticed_and_its_polling_stops(cluster):
    job_id = run_job(cluster)
    stream = SseReader(f"{cluster.url}/api/v1/jobStatusStream/{job_id}")
    stream.next(what="the first event")
    stream.close()
    wait_for(lambda: f"jobStatusStream subscriber for {job_id} from 127.0.0.1 disconnected: client disconnected"
             in cluster.master.output(), timeout=30, what="the master noticing the subscriber left")

    async def leave_ws():
        conn = await tornado.websocket.websocket_connect(ws_url(cluster, f"/api/v1/jobStatusStream/{job_id}"))
        assert await conn.read_message()
        conn.close()

    asyncio.run(leave_ws())
    wait_for(lambda: f"jobStatusStream WebSocket subscriber for {job_id} from 127.0.0.1 disconnected: client "
             "disconnected" in cluster.master.output(), timeout=30, what="the master noticing the WebSocket left")


# -- the views, on the job actor's own job shape (no processes) -----------------------------

def api_worker(stage, index, number, state, host="10.0.0.1", ports=(31000,), metrics=None, reason="", **times):
    return {"workerId": f"j-1/w{number}", "jobId": "j-1", "stageNum": stage, "workerIndex": index,
            "workerNumber": number, "state": state, "reason": reason, "host": host, "ports": list(ports),
            "metrics": metrics or {}, "acceptedAt": None, "launchedAt": None, "startedAt": None,
            "completedAt": None, **times}


NOW_MS = 1_700_000_099_000  # a fixed clock


def api_job(state="Launched", workers=(), **extra):
    return {"jobId": "j-1", "state": state, "submittedAt": 1_700_000_000.5, "endedAt": None,
            "killReason": None, "killMessage": None, "stageSizes": {"1": 1, "2": 2}, "workers": list(workers),
            **extra}


def test_scheduling_info_lists_every_stage_and_puts_the_port_the_worker_serves_on_first():
    job = api_job(workers=[
        api_worker(2, 1, 4, "Started", ports=(31000, 31001), metrics={"port": 31999, "eventsIn": 5}),
        api_worker(2, 0, 3, "Accepted", host=None, ports=()),
        api_worker(1, 0, 1, "Started"),
    ])
    info = check_scheduling_info(scheduling_info(job))
    assert info == {"jobId": "j-1", "workerAssignments": {
        "1": {"stage": 1, "numWorkers": 1, "hosts": {
            "1": {"host": "10.0.0.1", "port": [31000], "state": "Started", "workerIndex": 0, "workerNumber": 1,
                  "metricsPort": -1, "customPort": -1}}},
        "2": {"stage": 2, "numWorkers": 2, "hosts": {
            "3": {"host": None, "port": [], "state": "Accepted", "workerIndex": 0, "workerNumber": 3,
                  "metricsPort": -1, "customPort": -1},
            "4": {"host": "10.0.0.1", "port": [31999, 31000, 31001], "state": "Started", "workerIndex": 1,
                  "workerNumber": 4, "metricsPort": -1, "customPort": -1}}},
    }}
    # A heartbeat's new counters are not a change.
    job["workers"][0]["metrics"]["eventsIn"] = 500
    assert scheduling_info(job) == info
    job["workers"] = []
    assert {k: s["hosts"] for k, s in scheduling_info(job)["workerAssignments"].items()} == {"1": {}, "2": {}}


def test_status_events_tell_the_first_view_then_only_what_changed():
    started = api_worker(1, 0, 1, "Started", startedAt=1_700_000_010.0)
    job = api_job(workers=[started])
    first = status_events(None, job, {}, now_ms=NOW_MS)
    assert [(s["workerNumber"], s["state"]) for s in first] == [(-1, "Launched"), (1, "Started")]
    assert all(check_status(s) for s in first)
    assert first[0]["timestamp"] == NOW_MS  # the record does not date a Launched job: now
    assert first[1]["timestamp"] == 1_700_000_010_000 and first[1]["hostname"] == "10.0.0.1"
    view = status_view(job)
    assert status_events(view, job, {}, now_ms=NOW_MS) == []
    # Worker 1 is resubmitted: it leaves the job (archived Failed), worker 2 takes its place.
    job2 = api_job(workers=[api_worker(1, 0, 2, "Accepted", host=None, acceptedAt=1_700_000_020.0)])
    archived = {1: api_worker(1, 0, 1, "Failed", reason="resubmitted: move", completedAt=1_700_000_019.0)}
    changed = [check_status(s) for s in status_events(view, job2, archived, now_ms=NOW_MS)]
    assert [(s["workerNumber"], s["state"], s["reason"], s["type"]) for s in changed] == [
        (1, "Failed", "Relaunched", "ERROR"), (2, "Accepted", "Normal", "INFO")]
    assert "resubmitted: move" in changed[0]["message"] and changed[0]["timestamp"] == 1_700_000_019_000
    # Killed: the workers end first, then the job, with the kill's reason and message.
    done = api_job(state="Completed", endedAt=1_700_000_030.0, killReason="Killed", killMessage="enough")
    ended = [check_status(s) for s in status_events(status_view(job2), done, {}, now_ms=NOW_MS)]
    assert [(s["workerNumber"], s["state"]) for s in ended] == [(2, "Completed"), (-1, "Completed")]
    assert ended[-1]["reason"] == "Killed" and "enough" in ended[-1]["message"]
    assert ended[-1]["timestamp"] == 1_700_000_030_000


def test_free_text_reasons_map_onto_mantis_completed_reasons():
    assert completed_reason("Failed", "resubmitted: move") == "Relaunched"
    assert completed_reason("Failed", "heartbeat missed for 30s") == "Lost"
    assert completed_reason("Failed", "exit code 1") == "Error"
    assert completed_reason("Completed", "job killed before launch") == "Killed"
    assert completed_reason("Completed", "stage scaled down") == "Normal"
    assert completed_reason("Completed", "SLA") == "Killed"
    assert completed_reason("Started", "") == "Normal"


def test_times_are_integer_epoch_milliseconds_and_latest_job_id():
    assert epoch_ms(1_700_000_000.1234) == 1_700_000_000_123 and epoch_ms(None) is None
    assert epoch_ms(1_700_000_000_123) == 1_700_000_000_123  # already milliseconds
    assert latest_job_id([{"jobId": "a-9"}, {"jobId": "a-10"}, {"jobId": "a-2"}]) == "a-10"
    assert latest_job_id([]) is None
