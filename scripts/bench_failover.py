"""Failover benchmark: kill -9 the leading master while a 2-stage job streams.

Starts a real ZooKeeper on loopback, two masters electing a leader (ZooKeeper store,
session timeout 4 s), one agent following the leader, and a 2-stage keyed job.  Each
run kills every process of the leading master with SIGKILL and measures, from that
moment, how long until a standby leads and answers the job's API
(``leader_serving_s``) and until the job's output flows to a subscriber again
(``output_resumed_s``); then it waits past the heartbeat timeout and counts workers
that were replaced (``workers_restarted``, the target being 0).  The killed master is
restarted as the next run's standby.  The last line is one JSON object (medians over
the runs).  SIGTERM or SIGINT stops ZooKeeper, the masters (every actor process), the
agent and its workers, and removes the temp dir.

    python scripts/bench_failover.py [--runs 3] [--session-timeout 4]
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mantis import config as config_module  # noqa: E402
from mantis.tooling.api_answers import job_id_of, job_workers, started_workers  # noqa: E402
from mantis.tooling.local_processes import HaCluster, StopOnExit, api, wait_for  # noqa: E402
from mantis.tooling.zookeeper_server import ZooKeeperServer  # noqa: E402

JOB = {"name": "failover", "url": "mantis.examples.keyed_count:job",
       "parameters": [{"name": "rate", "value": 500}, {"name": "keys", "value": 20}],
       "schedulingInfo": {"stages": {
           "1": {"numberOfInstances": 1, "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}},
           "2": {"numberOfInstances": 2, "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}}}
HEARTBEAT_TIMEOUT_S = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_event_after(urls: list[str], job_id: str, since: float, deadline: float) -> float | None:
    """The time the first output event arrives from any master (redirects followed), or None."""
    while time.time() < deadline:
        for url in urls:
            try:
                with urllib.request.urlopen(f"{url}/api/v1/jobs/{job_id}/output", timeout=3) as resp:
                    for raw in resp:
                        if raw.startswith(b"data: "):
                            return time.time()
            except OSError:
                pass
        time.sleep(0.05)
    return None


def job_answers(url: str, job_id: str) -> bool:
    try:
        status, body = api(url, path=f"/api/v1/jobs/{job_id}", timeout=1)
    except OSError:
        return False
    return status == 200 and bool(job_workers(body))


def one_run(ha: HaCluster, job_id: str, run: int) -> dict:
    leader = ha.wait_leader(timeout=60)
    standbys = [i for i in range(len(ha.masters)) if i != leader]
    workers_before = {w["workerNumber"] for w in job_workers(ha.call("GET", f"/api/v1/jobs/{job_id}")[1])}
    agent_pids = set(ha.agent.pids())
    print(f"run {run}: killing master {leader} (every process, SIGKILL); standbys {standbys}", flush=True)
    resumed: dict = {}
    t0 = time.time()
    ha.masters[leader].kill9()
    reader = threading.Thread(target=lambda: resumed.update(
        at=first_event_after([ha.urls[i] for i in standbys], job_id, t0, t0 + 60)), daemon=True)
    reader.start()
    serving_at = None
    while time.time() < t0 + 60 and serving_at is None:
        for i in standbys:
            info = ha.info(i)
            if info and info.get("leader") and job_answers(ha.urls[i], job_id):
                serving_at = time.time()
                break
        else:
            time.sleep(0.05)
    reader.join(65)
    if serving_at is None or resumed.get("at") is None:
        raise SystemExit(f"run {run}: no failover within 60 s (logs in {ha.tmp})")
    print(f"run {run}: new leader serving after {serving_at - t0:.2f}s, output after {resumed['at'] - t0:.2f}s; "
          f"waiting {HEARTBEAT_TIMEOUT_S + 2}s past the heartbeat timeout to count replaced workers", flush=True)
    time.sleep(HEARTBEAT_TIMEOUT_S + 2)
    workers_after = {w["workerNumber"] for w in job_workers(ha.call("GET", f"/api/v1/jobs/{job_id}")[1])}
    restarted = len(workers_after - workers_before) + len(agent_pids - set(ha.agent.pids()))
    print(f"run {run}: workers restarted {restarted}; restarting master {leader} as a standby", flush=True)
    ha.masters[leader].start()
    wait_for(lambda: ha.info(leader), timeout=60, what=f"master {leader} back as a standby")
    return {"leader_serving_s": serving_at - t0, "output_resumed_s": resumed["at"] - t0,
            "workers_restarted": restarted}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--session-timeout", type=float, default=4.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mantis-failover-"))
    # Stops what was started (ZooKeeper last) whatever way this ends, SIGTERM included;
    # every service is registered before it starts.
    with StopOnExit(tmp) as guard:
        zookeeper = guard.add(ZooKeeperServer(tick_time_ms=500))
        zookeeper.start()
        config = config_module.load(None, [
            f"master.admin_port={free_port()}", f"agent.admin_port={free_port()}", "agent.cpus=8",
            "agent.mem_mb=8192", "master.local_agent=false", "agent.ports=\"24000-24099\"",
            f"leader_election.session_timeout_s={args.session_timeout}",
            "workers.heartbeat_interval_s=1.0", f"workers.heartbeat_timeout_s={HEARTBEAT_TIMEOUT_S}"])
        ha = HaCluster(config, tmp, zookeeper.hosts, masters=2)
        guard.add(ha, on_signal=ha.kill9)  # interrupted: no need to wait for graceful stops
        print(f"starting ZooKeeper {zookeeper.hosts}, 2 masters and an agent (logs in {tmp})", flush=True)
        ha.start()
        assert ha.call("POST", "/api/v1/jobClusters", JOB)[0] == 201
        job_id = job_id_of(ha.call("POST", "/api/v1/jobClusters/failover/jobs", {"user": "bench"})[1])
        wait_for(lambda: len(started_workers(ha.call("GET", f"/api/v1/jobs/{job_id}")[1])) == 3,
                 timeout=60, what="3 workers Started")
        print(f"job {job_id} streaming on 3 workers", flush=True)
        runs = [one_run(ha, job_id, n + 1) for n in range(args.runs)]
    result = {key: round(statistics.median(r[key] for r in runs), 2) for key in
              ("leader_serving_s", "output_resumed_s")}
    result["workers_restarted"] = sum(r["workers_restarted"] for r in runs)
    result["runs"] = [{k: round(v, 2) for k, v in r.items()} for r in runs]
    result["session_timeout_s"] = args.session_timeout
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
