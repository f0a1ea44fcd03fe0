"""What a Prometheus scrape of the master costs as the number of jobs grows.

Starts a real multiprocTCPBase master (``mantis master``) and one process of
``--agents`` simulated agents on loopback, with a file store in a temp dir; submits
``--jobs`` jobs of ``--workers`` workers (spread over 4 clusters) through the REST API;
waits until ``/metrics`` itself counts every worker Started; then scrapes ``GET /metrics``
``--scrapes`` times one after the other and, for scale, lists ``GET /api/v1/jobs`` as many
times.  Prints the figures to stderr and ends with one JSON line on stdout: ``jobs,
workers, agents, scrape_p50_s, scrape_p99_s, scrape_bytes, scrape_samples, jobs_list_p50_s,
jobs_list_bytes``.  Every wait is bounded by ``--timeout``; SIGTERM or SIGINT stops the
master, the agents and removes the temp dir (``StopOnExit``).

    python3 scripts/bench_metrics.py [--jobs 500] [--workers 2] [--agents 20] [--scrapes 50]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from mantis import config as config_module  # noqa: E402
from mantis.tooling.local_processes import LocalCluster, StopOnExit, free_listen_port  # noqa: E402

CLUSTERS = 4


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def get(url: str) -> tuple[float, bytes]:
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as resp:
        body = resp.read()
    return time.perf_counter() - began, body


def started_workers(url: str) -> float:
    _, body = get(f"{url}/metrics")
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            if s.name == "mantis_workers" and s.labels.get("state") == "Started":
                return s.value
    return 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1)]


def run(args, tmp: Path, guard: StopOnExit, result: dict) -> None:
    total = args.jobs * args.workers
    per_agent = max(16, math.ceil(1.5 * total / args.agents))
    config = config_module.load(None, [
        f'store.path="{tmp / "store"}"', f"master.admin_port={free_listen_port()}",
        f"master.api_port={free_listen_port()}", f"agent.admin_port={free_listen_port()}",
        "master.local_agent=false", f'agent.ports="20000-{20000 + per_agent - 1}"',
        f"agent.disk_mb={per_agent + 1024}", "scheduler.agent_timeout_s=10"])
    cluster = guard.add(LocalCluster(config, tmp, agents=args.agents, agent_args=[
        "--simulate", str(args.agents), "--cpus", str(round(per_agent * 0.01 + 1, 2)),
        "--mem", str(per_agent + 1024)]), on_signal=None)
    log(f"starting a master and {args.agents} simulated agents (logs in {tmp})")
    cluster.start(timeout=args.timeout)
    machine = {"cpuCores": 0.01, "memoryMB": 1, "diskMB": 1, "networkMbps": 0, "numPorts": 1}
    for i in range(CLUSTERS):
        status, body = cluster.call("POST", "/api/v1/jobClusters", {
            "name": f"scraped_{i}", "url": "mantis.examples.synthetic:job",
            "schedulingInfo": {"stages": {"1": {"numberOfInstances": args.workers, "machineDefinition": machine}}}})
        assert status == 201, body
    log(f"submitting {args.jobs} jobs of {args.workers} workers")
    failures: list[str] = []

    def submit(share: range) -> None:
        for n in share:
            status, body = cluster.call("POST", f"/api/v1/jobClusters/scraped_{n % CLUSTERS}/jobs", {"user": "bench"})
            if status != 201:
                failures.append(f"{status} {body}")
                return

    threads = [threading.Thread(target=submit, args=(range(i, args.jobs, 4),)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.timeout)
    if failures:
        raise RuntimeError(f"submit refused: {failures[0]}")
    deadline = time.time() + args.timeout
    while started_workers(cluster.url) < total:
        if time.time() > deadline:
            raise RuntimeError(f"only {started_workers(cluster.url):.0f} of {total} workers Started")
        time.sleep(1.0)
    log(f"{total} workers Started; scraping /metrics {args.scrapes} times")
    scrapes, body = [], b""
    for _ in range(args.scrapes):
        seconds, body = get(f"{cluster.url}/metrics")
        scrapes.append(seconds)
    samples = sum(len(f.samples) for f in text_string_to_metric_families(body.decode()))
    lists, listed = [], b""
    for _ in range(args.scrapes):
        seconds, listed = get(f"{cluster.url}/api/v1/jobs")
        lists.append(seconds)
    result.update(scrape_p50_s=round(statistics.median(scrapes), 4), scrape_p99_s=round(percentile(scrapes, 99), 4),
                  scrape_bytes=len(body), scrape_samples=samples,
                  jobs_list_p50_s=round(statistics.median(lists), 4), jobs_list_bytes=len(listed))
    log(f"/metrics: p50 {result['scrape_p50_s'] * 1000:.1f} ms, p99 {result['scrape_p99_s'] * 1000:.1f} ms, "
        f"{len(body)} bytes, {samples} samples; GET /api/v1/jobs p50 {result['jobs_list_p50_s'] * 1000:.1f} ms, "
        f"{len(listed)} bytes")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    result: dict = {"jobs": args.jobs, "workers": args.jobs * args.workers, "agents": args.agents,
                    "scrape_p50_s": None, "scrape_p99_s": None, "scrape_bytes": None, "scrape_samples": None,
                    "jobs_list_p50_s": None, "jobs_list_bytes": None}
    tmp = Path(tempfile.mkdtemp(prefix="mantis-bench-metrics-"))
    code = 1
    try:
        with StopOnExit(tmp) as guard:
            try:
                run(args, tmp, guard, result)
                code = 0
            except Exception as error:  # report what failed with the figures so far
                result["error"] = f"{type(error).__name__}: {error}"
                guard.keep_tmp = True
                log(f"FAILED: {result['error']} (logs kept in {tmp})")
    except (SystemExit, KeyboardInterrupt):
        result["error"] = "interrupted"
    print(json.dumps(result))
    return code


if __name__ == "__main__":
    sys.exit(main())
