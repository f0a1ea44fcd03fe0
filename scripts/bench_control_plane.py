"""Control-plane benchmark: 100 one-worker jobs on the local agent.

Starts a real multiprocTCPBase master and agent on loopback ports, creates a cluster,
submits N jobs as fast as the API takes them, waits until every worker is Started,
then prints submit-to-Started latency (from the master's own timestamps), jobs
accepted per second, and the master's process count and memory (PSS, shared pages
counted once).  The last line is one JSON object.

    python scripts/bench_control_plane.py [--jobs 100]
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mantis import config as config_module  # noqa: E402
from mantis.local_processes import LocalCluster, pss_mb, wait_for  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="mantis-bench-"))
    config = config_module.load(None, [
        f'store.path="{tmp / "store"}"', f"master.admin_port={free_port()}", f"master.api_port={free_port()}",
        f"agent.admin_port={free_port()}", "agent.cpus=16", "agent.mem_mb=16384", "master.local_agent=false",
        "workers.heartbeat_interval_s=1.0", "workers.heartbeat_timeout_s=30"])
    cluster = LocalCluster(config, tmp)
    print(f"starting master and agent (logs in {tmp})", flush=True)
    cluster.start()
    try:
        status, body = cluster.call("POST", "/api/v1/jobClusters", {
            "name": "bench", "url": "mantis.examples.synthetic:job",
            "parameters": [{"name": "rate", "value": 1}],
            "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1, "machineDefinition": {
                "cpuCores": 0.1, "memoryMB": 64, "diskMB": 10, "networkMbps": 1}}}}})
        assert status == 201, body
        t0 = time.time()
        job_ids = []
        for i in range(args.jobs):
            status, body = cluster.call("POST", "/api/v1/jobClusters/bench/jobs", {"user": "bench"})
            assert status == 201, body
            job_ids.append(body["jobId"])
            if (i + 1) % 25 == 0:
                print(f"  submitted {i + 1}/{args.jobs}", flush=True)
        accept_s = time.time() - t0
        print(f"submitted {args.jobs} jobs in {accept_s:.2f}s; waiting for every worker to start", flush=True)

        def all_started():
            status, jobs = cluster.call("GET", "/api/v1/jobs?clusterName=bench")
            started = sum(1 for j in jobs if j["workers"].get("Started") == 1)
            return started == args.jobs or print(f"  {started}/{args.jobs} started", flush=True)

        wait_for(all_started, timeout=600, interval=2.0, what="all workers Started")
        latencies = []
        for job_id in job_ids:
            job = cluster.call("GET", f"/api/v1/jobs/{job_id}")[1]
            latencies.append(job["workers"][0]["startedAt"] - job["submittedAt"])
        master_pids = cluster.master.pids()
        agent_pids = cluster.agent.pids()
        result = {
            "submit_to_started_p50_s": round(statistics.median(latencies), 3),
            "submit_to_started_p99_s": round(percentile(latencies, 99), 3),
            "jobs_accepted_per_s": round(args.jobs / accept_s, 1),
            "master_pss_mb": round(pss_mb(master_pids), 1),
            "master_processes": len(master_pids),
        }
        print(f"submit->Started p50 {result['submit_to_started_p50_s']}s, "
              f"p99 {result['submit_to_started_p99_s']}s, max {max(latencies):.3f}s")
        print(f"jobs accepted: {result['jobs_accepted_per_s']}/s")
        print(f"master: {len(master_pids)} processes, {result['master_pss_mb']} MB PSS; "
              f"agent: {len(agent_pids)} processes, {pss_mb(agent_pids):.1f} MB PSS")
        print(json.dumps(result))
        return 0
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
