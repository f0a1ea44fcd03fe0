"""Subscribers that stop reading a job's output cost the job nothing and the master a bounded buffer."""
import base64
import os
import socket

from mantis.tooling.local_processes import pss_mb
from tests.sse_client import SseReader
from tests.support import job_id_of, job_workers, wait_for

# What the master may grow by while the stalled subscribers are held open; the job has
# to produce several times as much output meanwhile, or the test could not tell.
MEMORY_BOUND_MB = 16
OUTPUT_PER_BOUND = 3

FAST_JOB = {"name": "fast", "url": "mantis.examples.synthetic:job",
            "parameters": [{"name": "rate", "value": 20000}, {"name": "keys", "value": 100}],
            "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                                "machineDefinition": {"cpuCores": 1, "memoryMB": 256}}}}}


def stalled_subscriber(master_url: str, request: bytes) -> socket.socket:
    """A connection that sends ``request`` and then never reads, through a tiny receive buffer."""
    host, port = master_url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(request)
    return sock


def sse_request(job_id: str) -> bytes:
    return f"GET /api/v1/jobs/{job_id}/output HTTP/1.1\r\nHost: master\r\n\r\n".encode()


def websocket_request(job_id: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (f"GET /api/v1/jobs/{job_id}/output/ws HTTP/1.1\r\nHost: master\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()


def worker_metrics(cluster, job_id):
    status, job = cluster.call("GET", f"/api/v1/jobs/{job_id}")
    assert status == 200, job
    (worker,) = job_workers(job)
    return worker["metrics"]


def test_stalled_subscribers_neither_slow_the_job_nor_grow_the_masters_memory(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", FAST_JOB)[0] == 201
    status, body = cluster.call("POST", "/api/v1/jobClusters/fast/jobs", {"user": "e2e"})
    assert status == 201, body
    job_id = job_id_of(body)
    wait_for(lambda: worker_metrics(cluster, job_id).get("eventsOut", 0) > 0, timeout=60, interval=0.5,
             what="the job producing")
    with SseReader(f"{cluster.url}/api/v1/jobs/{job_id}/output") as reader:
        wait_for(lambda: len(reader.events) > 1000, timeout=30, interval=0.2, what="the reader reading")
        stalled = [stalled_subscriber(cluster.url, sse_request(job_id)),
                   stalled_subscriber(cluster.url, websocket_request(job_id))]
        try:
            # Each subscriber has its own relay, so its own connection to the worker.
            wait_for(lambda: worker_metrics(cluster, job_id)["subscribers"] == 3, timeout=30, interval=0.5,
                     what="three subscribers at the worker")
            # Once the stalled subscribers' buffers are full the worker drops for them.
            first_drops = wait_for(lambda: worker_metrics(cluster, job_id)["droppedEvents"], timeout=60,
                                   interval=0.5, what="the worker dropping for the stalled subscribers")
            master_before = pss_mb([cluster.master.proc.pid])
            start = worker_metrics(cluster, job_id)
            read_before = len(reader.events)
            event_bytes = reader.lines_bytes / len(reader.events)
            enough = MEMORY_BOUND_MB * OUTPUT_PER_BOUND * 1024 * 1024 / event_bytes
            # The job keeps producing at its pace while nobody reads two of its streams.
            end = wait_for(lambda: (m := worker_metrics(cluster, job_id))["eventsOut"] - start["eventsOut"] > enough
                           and m, timeout=240, interval=1.0, what=f"{enough:.0f} more events produced")
            master_after = pss_mb([cluster.master.proc.pid])
            read_after = len(reader.events)
            assert end["subscribers"] == 3  # the stalled subscribers are still connected
        finally:
            for sock in stalled:
                sock.close()
    produced = end["eventsOut"] - start["eventsOut"]
    assert master_after - master_before < MEMORY_BOUND_MB, (master_before, master_after)
    # The reading subscriber kept receiving: the stalled ones did not hold the stream up.
    assert read_after - read_before > produced / 10
    # What the stalled subscribers did not take was dropped, and counted, at the worker.
    assert end["droppedEvents"] > first_drops
    assert cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=e2e&reason=done")[0] == 202
