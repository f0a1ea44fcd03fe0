"""Control-plane benchmark: many jobs through the real REST API, then a master crash.

Starts a real multiprocTCPBase master (``mantis master``, its own process and session)
on loopback ports with a file store in a temp dir, and either one real local agent
whose workers are real processes (the default) or, with ``--agents A``, one process of
A simulated agents (``mantis agent --simulate A``: workers that report StartInitiated,
Started and heartbeats without forking).  Then:

1. creates ``--clusters`` clusters (``mantis.examples.synthetic:job``, stage 1 with
   ``--workers`` instances, machine definitions small enough for the agents to hold
   every worker); a cluster and its jobs live in one shard of the master, so one
   cluster measures one shard, and several measure the master as a fleet uses it;
2. submits ``--jobs`` jobs, spread evenly over the clusters, from ``--clients``
   concurrent clients (threads, each with its own keep-alive HTTP connection) as fast
   as the API takes them;
3. meanwhile, and until every worker is Started, samples ``GET /api/v1/jobs?compact=true``
   latency (the compact listing is what a jobs page reads)
   and the agents' heartbeat processing lag (``heartbeatLagS`` in ``GET /api/v1/agents``,
   when the master reports it);
4. reads submit->Started per job from the master's own timestamps (the job's
   ``submittedAt`` to its last worker's ``startedAt``), and the master's processes and PSS;
5. kills every master process with SIGKILL, restarts the master on the same store and
   ports, and measures the time from the kill until every job is back with all of its
   workers Started and heard from by the new master, and how many workers were
   replaced meanwhile (any (job, stage, index) whose workerNumber changed).

Progress goes to stderr; stdout gets one line, a JSON object with ``jobs, workers,
submits_per_s, submit_to_started_p50_s, submit_to_started_p99_s, api_p99_s,
master_pss_mb, master_processes, recovery_s, workers_restarted`` and extra figures.
Every wait is bounded by ``--timeout`` (per phase); on a timeout or any failure the
figures so far are printed (``error`` says what failed) and the exit status is 1.
SIGTERM or SIGINT at any moment stops the master (all of its actor processes), the
agents and their workers, and removes the temp dir.

    python3 scripts/bench_control_plane.py [--jobs 100] [--workers 1] [--agents A]
        [--clients 4] [--clusters 8] [--seed 1] [--shards K] [--heartbeat-s 1] [--timeout 900]

e.g. ``--jobs 1000 --workers 10 --agents 100 --clients 8`` for 10,000 workers.
"""
from __future__ import annotations

import argparse
import http.client
import json
import math
import statistics
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mantis import config as config_module  # noqa: E402
from mantis.tooling.api_answers import job_id_of, job_workers, listed  # noqa: E402
from mantis.tooling.local_processes import LocalCluster, StopOnExit, free_listen_port, pss_mb  # noqa: E402

CLUSTER = "bench"  # the clusters are bench_0, bench_1, ...


def cluster_names(args) -> list[str]:
    """The benchmark's clusters, in the order jobs are dealt to them."""
    return [f"{CLUSTER}_{i}" for i in range(max(1, args.clusters))]
REQUEST_TIMEOUT_S = 30.0   # one API call; a slower answer counts as a failure (and as its latency)
SAMPLE_INTERVAL_S = 0.25   # between two GET /api/v1/jobs?compact=true samples
AGENTS_INTERVAL_S = 2.0    # between two GET /api/v1/agents samples
PROGRESS_INTERVAL_S = 5.0
HEADROOM = 1.5             # simulated agents offer this much more than the workers need in all


class BenchFailed(Exception):
    """A phase did not finish (timeout, refused request, master gone); the message says which."""


STARTED = time.time()


def log(message: str) -> None:
    """A progress line on stderr, with the seconds since the start."""
    print(f"[{time.time() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], p: float) -> float | None:
    """The nearest-rank ``p``th percentile of ``values``; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(p / 100 * len(ordered)) - 1))]


def rounded(value, digits: int = 3):
    return None if value is None else round(value, digits)


class Client:
    """One keep-alive HTTP connection to the master's API (reconnects after an error).

    Each thread uses its own: ``http.client`` connections are not thread-safe, and
    separate connections are what concurrent clients look like to the server.
    """

    def __init__(self, url: str, timeout: float = REQUEST_TIMEOUT_S):
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port, self.timeout = host, int(port), timeout
        self.conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body=None) -> tuple[int, object]:
        """(status, decoded JSON body); raises OSError / HTTPException when the call fails."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        data = json.dumps(body).encode() if body is not None else None
        try:
            self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
            resp = self.conn.getresponse()
            raw = resp.read()
        except (OSError, http.client.HTTPException):
            self.close()  # the next call starts a fresh connection
            raise
        return resp.status, json.loads(raw or b"null")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def get_many(url: str, paths: list[str], clients: int, deadline: float) -> dict[str, object]:
    """GET every path (``clients`` connections in parallel); path -> body of the 200s.

    Paths that fail are left out (callers poll again); stops at ``deadline``.
    """
    results: dict[str, object] = {}
    todo = list(paths)
    lock = threading.Lock()

    def work():
        client = Client(url)
        try:
            while time.time() < deadline:
                with lock:
                    if not todo:
                        return
                    path = todo.pop()
                try:
                    status, body = client.call("GET", path)
                except (OSError, http.client.HTTPException):
                    continue
                if status == 200:
                    with lock:
                        results[path] = body
        finally:
            client.close()

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.time()) + REQUEST_TIMEOUT_S)
    return results


# -- setup ----------------------------------------------------------------------------

def cluster_definition(args, name: str) -> dict:
    """The benchmark's cluster: synthetic events, stage 1 with ``--workers`` instances.

    Real workers take 0.1 cpu and 64 MB each (they are processes); simulated ones ask for
    almost nothing, so that the simulated agents' offers are sized by worker count.
    """
    if args.agents:
        machine = {"cpuCores": 0.01, "memoryMB": 1, "diskMB": 1, "networkMbps": 0, "numPorts": 1}
    else:
        machine = {"cpuCores": 0.1, "memoryMB": 64, "diskMB": 10, "networkMbps": 1}
    return {"name": name, "url": "mantis.examples.synthetic:job",
            "parameters": [{"name": "rate", "value": 1}],
            "schedulingInfo": {"stages": {"1": {"numberOfInstances": args.workers, "machineDefinition": machine}}}}


def start_cluster(args, tmp: Path, guard: StopOnExit) -> LocalCluster:
    """The master and the agent(s), registered with ``guard`` before they start."""
    total_workers = args.jobs * args.workers
    overrides = [f'store.path="{tmp / "store"}"', f"master.admin_port={free_listen_port()}",
                 f"master.api_port={free_listen_port()}", f"agent.admin_port={free_listen_port()}",
                 "master.local_agent=false",
                 f"workers.heartbeat_interval_s={args.heartbeat_s}",
                 f"workers.heartbeat_timeout_s={max(30.0, 3 * args.heartbeat_s)}",
                 # An agent is lost after three missed heartbeats, not before its first.
                 f"scheduler.agent_timeout_s={max(5.0, 3 * args.heartbeat_s)}"]
    if args.shards is not None:
        overrides.append(f"master.shards={args.shards}")
    agent_args: list[str] = []
    if args.agents:
        # Each simulated agent offers room for HEADROOM times its share of the workers
        # (the machine definition above: 0.01 cpu, 1 MB, 1 MB disk, 1 port each), so the
        # bin-packing scheduler spreads them over most of the agents.
        per_agent = max(16, math.ceil(HEADROOM * total_workers / args.agents))
        overrides += [f'agent.ports="20000-{20000 + per_agent - 1}"', f"agent.disk_mb={per_agent + 1024}"]
        agent_args = ["--simulate", str(args.agents), "--seed", str(args.seed),
                      "--cpus", str(round(per_agent * 0.01 + 1, 2)), "--mem", str(per_agent + 1024)]
    else:
        # One real agent: room for every worker process (0.1 cpu, 64 MB each).
        overrides += ["agent.cpus=" + str(max(16, math.ceil(total_workers * 0.1 * 1.25))),
                      "agent.mem_mb=" + str(max(16384, total_workers * 64 * 2))]
    try:
        config = config_module.load(None, overrides)
    except config_module.ConfigError as error:
        raise BenchFailed(f"config: {error}" + (" (does this master have shards yet?)" if args.shards else ""))
    cluster = LocalCluster(config, tmp, agent_args=agent_args, agents=args.agents or 1)
    # Interrupted, the run is of no use: kill it all at once rather than wait for grace.
    guard.add(cluster, on_signal=cluster.kill9)
    log(f"starting the master{f' ({args.shards} shards)' if args.shards else ''} and "
        f"{f'{args.agents} simulated agents' if args.agents else 'one local agent'} (logs in {tmp})")
    start_master(cluster, args.timeout)
    log(f"master up at {cluster.url} (config {cluster.config_path})")
    cluster.agent.start()
    wait(lambda: len((cluster.call("GET", "/api/v1/agents")[1] or {}).get("list", [])) >= (args.agents or 1),
         args.timeout, f"{args.agents or 1} agent(s) registered", cluster, interval=0.5)
    log(f"agents registered: {cluster.call('GET', '/api/v1/agents')[1]['total']}")
    return cluster


def start_master(cluster: LocalCluster, timeout: float) -> None:
    """Start the master process and wait until its API answers."""
    cluster.master.start()
    wait(lambda: cluster.call("GET", "/api/v1/masterInfo")[0] == 200, timeout,
         f"the master's API at {cluster.url}", cluster, interval=0.2)


def check_alive(cluster: LocalCluster) -> None:
    """BenchFailed if the master's or the agent's main process has exited (no use waiting)."""
    for name, service in (("master", cluster.master), ("agent", cluster.agent)):
        if service.proc is not None and service.proc.poll() is not None:
            last = (service.output().strip().splitlines() or ["(no output)"])[-1]
            raise BenchFailed(f"the {name} process exited with status {service.proc.returncode}: {last}")


def wait(predicate, timeout: float, what: str, cluster: LocalCluster, interval: float = 0.5):
    """Poll ``predicate`` (API errors count as not yet) until truthy; BenchFailed after
    ``timeout`` or as soon as the master or agent process is gone."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        check_alive(cluster)
        try:
            value = predicate()
        except (OSError, http.client.HTTPException, ValueError):
            value = None
        if value:
            return value
        time.sleep(interval)
    raise BenchFailed(f"timed out after {timeout:g}s waiting for {what}")


# -- load and sampling -----------------------------------------------------------------

class Sampler(threading.Thread):
    """Measures ``GET /api/v1/jobs?compact=true`` latency back to back, and reads heartbeat lag.

    Runs from the first submit until every worker is Started: the latency that users
    see while the control plane is busiest.  A call that fails or times out counts as a
    sample of the time it took (an unanswered request is the worst latency, not none).
    """

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.stopping = threading.Event()
        self.latencies: list[float] = []
        self.errors = 0
        self.heartbeat_lags: list[float] = []

    def run(self) -> None:
        jobs, agents = Client(self.url), Client(self.url)
        next_agents = 0.0
        while not self.stopping.is_set():
            started = time.perf_counter()
            try:
                # The compact listing (Mantis' CompactJobInfo per active job) is what a
                # jobs page reads; the full listing is a job view per job, a heavier ask.
                status, _ = jobs.call("GET", "/api/v1/jobs?compact=true")
                self.errors += status != 200
            except (OSError, http.client.HTTPException, ValueError):
                self.errors += 1
            self.latencies.append(time.perf_counter() - started)
            if time.time() >= next_agents:
                next_agents = time.time() + AGENTS_INTERVAL_S
                try:
                    status, body = agents.call("GET", "/api/v1/agents")
                    if status == 200:
                        self.heartbeat_lags += [a["heartbeatLagS"] for a in body["list"]
                                                if isinstance(a.get("heartbeatLagS"), (int, float))]
                except (OSError, http.client.HTTPException, ValueError):
                    pass
            self.stopping.wait(SAMPLE_INTERVAL_S)
        jobs.close()
        agents.close()


def submit_jobs(url: str, args, deadline: float) -> tuple[list[str], float, int]:
    """Submit ``--jobs`` jobs from ``--clients`` threads; (job ids, seconds taken, retries).

    A refused submit (5xx, connection error) is retried after a short pause, since the
    point is how fast the API takes them; a 4xx means a broken request and fails the run.
    """
    job_ids: list[str] = []
    remaining = [args.jobs]
    names = cluster_names(args)
    retries = [0]
    failure: list[str] = []
    lock = threading.Lock()

    def client_loop():
        client = Client(url)
        try:
            while not failure and time.time() < deadline:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                    name = names[remaining[0] % len(names)]
                while not failure and time.time() < deadline:
                    try:
                        status, body = client.call("POST", f"/api/v1/jobClusters/{name}/jobs", {"user": "bench"})
                    except (OSError, http.client.HTTPException, ValueError):
                        status, body = None, None
                    if status == 201:
                        with lock:
                            job_ids.append(job_id_of(body))
                        break
                    if status is not None and 400 <= status < 500:
                        failure.append(f"submit refused: {status} {body}")
                        return
                    with lock:
                        retries[0] += 1
                    time.sleep(0.2)
        finally:
            client.close()

    started = time.time()
    threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(args.clients)]
    for t in threads:
        t.start()
    shown = 0
    while any(t.is_alive() for t in threads) and time.time() < deadline + REQUEST_TIMEOUT_S:
        time.sleep(0.2)
        if len(job_ids) >= shown + max(25, args.jobs // 10):
            shown = len(job_ids)
            log(f"  submitted {shown}/{args.jobs} ({shown / (time.time() - started):.1f}/s)")
    elapsed = time.time() - started
    if failure:
        raise BenchFailed(failure[0])
    return job_ids, elapsed, retries[0]


def started_jobs(cluster: LocalCluster, job_ids: list[str], workers: int) -> int:
    """How many of ``job_ids`` the compact listing shows with all ``workers`` workers Started."""
    status, jobs = cluster.call("GET", "/api/v1/jobs?compact=true")
    if status != 200:
        return 0
    wanted = set(job_ids)
    return sum(1 for j in listed(jobs) if j["jobId"] in wanted and j["statesSummary"].get("Started", 0) == workers)


def wait_all_started(cluster: LocalCluster, job_ids: list[str], workers: int, timeout: float, what: str) -> None:
    """Poll the job listing until every job has all of its workers Started; progress lines."""
    deadline = time.time() + timeout
    last_shown = 0.0
    count = 0
    while time.time() < deadline:
        check_alive(cluster)
        try:
            count = started_jobs(cluster, job_ids, workers)
        except (OSError, http.client.HTTPException, ValueError):
            count = 0
        if count == len(job_ids):
            return
        if time.time() - last_shown >= PROGRESS_INTERVAL_S:
            last_shown = time.time()
            log(f"  {what}: {count}/{len(job_ids)} jobs with all workers Started")
        time.sleep(0.5)
    raise BenchFailed(f"timed out after {timeout:g}s: {what}: {count}/{len(job_ids)} jobs with all workers Started")


def worker_numbers(jobs: dict[str, dict]) -> dict[tuple, int]:
    """(job id, stage, index) -> workerNumber over the jobs' current workers."""
    return {(job_id_of(job), w["stageNum"], w["workerIndex"]): w["workerNumber"]
            for job in jobs.values() for w in job_workers(job)}


def heard_since(job: dict, workers: int, since: float) -> bool:
    """Whether the job has ``workers`` workers, all Started, each heard from after ``since``.

    After a restart the master loads Started workers from its store; only a heartbeat
    it processed itself (``lastHeartbeatAt``, epoch ms) says the worker is really back.
    """
    current = job_workers(job)
    return len(current) == workers and all(
        w["state"] == "Started" and (w.get("lastHeartbeatAt") or 0) >= since * 1000 for w in current)


# -- the run --------------------------------------------------------------------------

def run(args, tmp: Path, guard: StopOnExit, result: dict) -> None:
    """The benchmark; fills ``result`` as figures come in (so a failure still reports them)."""
    cluster = start_cluster(args, tmp, guard)
    for name in cluster_names(args):
        status, body = cluster.call("POST", "/api/v1/jobClusters", cluster_definition(args, name))
        if status != 201:
            raise BenchFailed(f"cluster {name} not created: {status} {body}")

    log(f"submitting {args.jobs} jobs of {args.workers} worker(s) from {args.clients} clients")
    sampler = Sampler(cluster.url)
    sampler.start()
    try:
        job_ids, submit_s, retries = submit_jobs(cluster.url, args, time.time() + args.timeout)
        result["submits_per_s"] = round(len(job_ids) / submit_s, 2)
        result["submit_retries"] = retries
        result["jobs_submitted"] = len(job_ids)
        log(f"submitted {len(job_ids)} jobs in {submit_s:.1f}s ({result['submits_per_s']}/s, {retries} retries)")
        if len(job_ids) < args.jobs:
            raise BenchFailed(f"timed out after {args.timeout:g}s submitting: {len(job_ids)}/{args.jobs} accepted")
        wait_all_started(cluster, job_ids, args.workers, args.timeout, "starting")
    finally:
        sampler.stopping.set()
        sampler.join(REQUEST_TIMEOUT_S + 1)
        result["api_p99_s"] = rounded(percentile(sampler.latencies, 99))
        result["api_p50_s"] = rounded(percentile(sampler.latencies, 50))
        result["api_samples"] = len(sampler.latencies)
        result["api_errors"] = sampler.errors
        result["heartbeat_lag_max_s"] = rounded(max(sampler.heartbeat_lags, default=None))
        result["heartbeat_lag_p99_s"] = rounded(percentile(sampler.heartbeat_lags, 99))
    log(f"every worker Started; GET /api/v1/jobs?compact=true p99 {result['api_p99_s']}s over {len(sampler.latencies)} "
        f"samples ({sampler.errors} failed); heartbeat lag "
        + (f"max {result['heartbeat_lag_max_s']}s p99 {result['heartbeat_lag_p99_s']}s"
           if sampler.heartbeat_lags else "not reported by this master"))

    deadline = time.time() + args.timeout
    jobs = get_many(cluster.url, [f"/api/v1/jobs/{j}" for j in job_ids], args.clients, deadline)
    if len(jobs) < len(job_ids):
        raise BenchFailed(f"could not read {len(job_ids) - len(jobs)} jobs")
    jobs = {job_id_of(body): body for body in jobs.values()}
    # The API's times are epoch milliseconds.
    latencies = [(max(w["startedAt"] for w in job_workers(job)) - job["jobMetadata"]["submittedAt"]) / 1000
                 for job in jobs.values()]
    result["submit_to_started_p50_s"] = rounded(statistics.median(latencies))
    result["submit_to_started_p99_s"] = rounded(percentile(latencies, 99))
    result["submit_to_started_max_s"] = rounded(max(latencies))
    master_pids, agent_pids = cluster.master.pids(), cluster.agent.pids()
    result["master_processes"] = len(master_pids)
    result["master_pss_mb"] = round(pss_mb(master_pids), 1)
    result["agent_processes"] = len(agent_pids)
    result["agent_pss_mb"] = round(pss_mb(agent_pids), 1)
    log(f"submit->Started p50 {result['submit_to_started_p50_s']}s p99 {result['submit_to_started_p99_s']}s "
        f"max {result['submit_to_started_max_s']}s; master {len(master_pids)} processes "
        f"{result['master_pss_mb']} MB PSS; agent {len(agent_pids)} processes {result['agent_pss_mb']} MB PSS")

    before = worker_numbers(jobs)
    log(f"killing all {len(master_pids)} master processes (SIGKILL) and restarting the master")
    killed_at = time.time()
    deadline = killed_at + args.timeout
    cluster.master.kill9()
    start_master(cluster, args.timeout)
    result["master_restart_s"] = round(time.time() - killed_at, 2)
    log(f"master answering again after {result['master_restart_s']}s; waiting for every worker")
    wait_all_started(cluster, job_ids, args.workers, max(1.0, deadline - time.time()), "recovering")
    # The listing may show workers Started from the store: wait until the new master has
    # heard from every one of them (or from its replacement).
    pending, after = set(job_ids), {}
    while pending:
        check_alive(cluster)
        if time.time() >= deadline:
            raise BenchFailed(f"timed out after {args.timeout:g}s: {len(pending)} jobs not heard from "
                              f"after the restart")
        bodies = get_many(cluster.url, [f"/api/v1/jobs/{j}" for j in pending], args.clients, deadline)
        for body in bodies.values():
            if heard_since(body, args.workers, killed_at):
                after[job_id_of(body)] = body
                pending.discard(job_id_of(body))
        if pending:
            time.sleep(0.5)
    result["recovery_s"] = round(time.time() - killed_at, 2)
    now = worker_numbers(after)
    result["workers_restarted"] = sum(1 for key, number in before.items() if now.get(key) != number)
    log(f"every job back with all workers Started {result['recovery_s']}s after the kill; "
        f"{result['workers_restarted']} workers restarted")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1, help="workers per job (stage 1 instances)")
    parser.add_argument("--agents", type=int, default=0,
                        help="simulated agents in one process (default: one real local agent)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent submitting clients")
    parser.add_argument("--clusters", type=int, default=8, help="clusters the jobs are spread over")
    parser.add_argument("--heartbeat-s", type=float, default=1.0, help="workers' and agents' heartbeat interval")
    parser.add_argument("--seed", type=int, default=1, help="the simulated agents' seed")
    parser.add_argument("--shards", type=int, default=None, help="master.shards (default: the master's own)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed to each phase")
    args = parser.parse_args()
    if min(args.jobs, args.workers, args.clients) < 1 or args.agents < 0:
        parser.error("--jobs, --workers and --clients must be at least 1")
    result = {"jobs": args.jobs, "workers": args.jobs * args.workers, "agents": args.agents or None,
              "clients": args.clients, "clusters": args.clusters, "heartbeat_s": args.heartbeat_s,
              "shards": args.shards,
              "submits_per_s": None, "submit_to_started_p50_s": None, "submit_to_started_p99_s": None,
              "api_p99_s": None, "master_pss_mb": None, "master_processes": None,
              "recovery_s": None, "workers_restarted": None}
    tmp = Path(tempfile.mkdtemp(prefix="mantis-bench-"))
    code = 1
    try:
        with StopOnExit(tmp) as guard:
            # Runs last, after the master and the agents are stopped (last registered first).
            guard.on_exit(lambda: log("stopped the master, the agents and their workers"))
            try:
                run(args, tmp, guard, result)
                code = 0
            except BenchFailed as error:
                result["error"] = str(error)
                guard.keep_tmp = True
                log(f"FAILED: {error} (logs kept in {tmp})")
            except (SystemExit, KeyboardInterrupt):
                result["error"] = "interrupted"
                code = 143 if guard.signalled == 15 else 130
                log("interrupted: stopping everything")
                raise
            except Exception as error:  # a bug or an answer of an unexpected shape
                traceback.print_exc()
                result["error"] = f"{type(error).__name__}: {error}"
                guard.keep_tmp = True
                log(f"FAILED: {result['error']} (logs kept in {tmp})")
    except (SystemExit, KeyboardInterrupt):
        pass  # everything is stopped; report below
    finally:
        try:
            print(json.dumps(result), flush=True)
        except OSError:
            pass  # nobody reads stdout any more
    return code


if __name__ == "__main__":
    sys.exit(main())
