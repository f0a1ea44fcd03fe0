"""A worker as a plain command (``mantis worker``): how a Mesos task runs a worker.

No agent actor system: the spec comes in the environment (``MANTIS_WORKER_SPEC``, set
by the framework in the TaskInfo), the stage starts through the same code path as
under our agents (``worker_launch.build_stage_worker``), and the process's exit is
its lifecycle as Mesos reports it (exit 0: TASK_FINISHED, the stage completed; exit
1: TASK_FAILED; SIGTERM from a KILL: it stops and Mesos says TASK_KILLED).  Every
heartbeat interval it posts its metrics to the leading master (found again on each
post, so it follows a failover), whose answer says where its upstream workers are.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
import urllib.request

from mantis.ha import master_address
from mantis.runtime.process_stats import ProcessStats
from mantis.runtime.worker_launch import build_stage_worker, spec_from_json, worker_metrics

log = logging.getLogger("mantis.worker")

SPEC_VAR = "MANTIS_WORKER_SPEC"
HEARTBEAT_VAR = "MANTIS_HEARTBEAT_S"
REPORT_PATH = "/api/v1/mesos/workerReports"


def post_report(url: str, body: dict, timeout: float = 3.0) -> dict | None:
    """POST a worker report to the master at ``url``; its answer, or None if unreachable."""
    req = urllib.request.Request(url + REPORT_PATH, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return json.loads(resp.read() or b"null")
    except (OSError, ValueError):
        return None


def run_plain_worker(stop: threading.Event | None = None) -> int:
    """Run the worker in the environment until its stage ends or SIGTERM; the exit code."""
    spec = spec_from_json(os.environ[SPEC_VAR])
    heartbeat_s = float(os.environ.get(HEARTBEAT_VAR, "1.0"))
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stats = ProcessStats()
    try:
        worker = build_stage_worker(spec)
        worker.start()
    except Exception as exc:  # user code may raise anything: the task fails
        log.error("worker %s could not start: %s: %s", spec.worker_key, type(exc).__name__, exc)
        return 1
    log.info("worker %s (stage %d) started, output on port %d", spec.worker_key, spec.stage, worker.port)
    upstream = None
    try:
        while not stop.is_set():
            state = worker.state
            answer = post_report(master_address.master_url(), {
                "workerKey": spec.worker_key, "metrics": worker_metrics(spec, worker, stats)})
            if state == "completed":  # reported above with its final counters
                log.info("worker %s completed", spec.worker_key)
                return 0
            if state == "failed":
                log.error("worker %s failed: %s", spec.worker_key, worker.error)
                return 1
            if answer and spec.stage > 1:
                now = ([tuple(e) for e in answer.get("endpoints", [])], bool(answer.get("upstreamFinished")))
                if now != upstream and (now[0] or now[1]):
                    upstream = now
                    worker.update_upstream(*now)
                    log.info("worker %s reads from %d upstream worker(s)", spec.worker_key, len(now[0]))
            stop.wait(heartbeat_s)
        log.info("worker %s stopping (SIGTERM)", spec.worker_key)
        return 0
    finally:
        worker.stop(2.0)
