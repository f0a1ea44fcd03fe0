"""Autoscaling benchmark: the load_profile example through its profile, scaled by the Job Master.

A real master and agent run ``mantis.examples.load_profile`` (a source following
``--profile``, a stage costing ``--cost-ms`` per event) with stage 2 autoscaled by the
default strategy (OneStep, target utilisation 0.7) and ``--cooldown`` seconds of cooldown.
The script follows the stage's size, the job's events and the Job Master's decisions,
and reports, for the first step up of the profile:

- converge_s: seconds from the step to the last resize before the next step (the stable size);
- target_workers: the size that is needed, input rate / measured per-worker rate (events per
  busy second of stage 2, from its workers' metrics) / target utilisation;
- final_workers: the size at the end of the step; overshoot: the largest size in it above target;
- scale_actions (the whole run), reversals (direction changes while the load was steady);
- events_lost: events the source emitted that never reached the sink (with ``block``: 0).

Each figure is printed, then one JSON line.  Everything started is stopped on exit,
SIGTERM and Ctrl-C included.
"""
from __future__ import annotations

import argparse
import json
import math
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mantis import config as config_module  # noqa: E402
from mantis.autoscaling.job_master import job_from_view  # noqa: E402
from mantis.examples.load_profile import parse_profile, profile_events, sink_ids  # noqa: E402
from mantis.tooling.local_processes import LocalCluster, StopOnExit, api, wait_for  # noqa: E402

TARGET_UTILIZATION = 0.7  # OneStep's default
MACHINE = {"cpuCores": 0.5, "memoryMB": 128, "networkMbps": 16}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_range(n: int = 50) -> str:
    start = free_port()
    return f"{start}-{start + n - 1}" if start + n < 65000 else "31000-31049"


def definition(profile: str, cost_ms: float, cooldown_s: float, max_workers: int, sink_dir: Path) -> dict:
    return {"name": "autoscale", "url": "mantis.examples.load_profile:job",
            "parameters": [{"name": "profile", "value": profile}, {"name": "cost_ms", "value": cost_ms},
                           {"name": "sink_dir", "value": str(sink_dir)}],
            "schedulingInfo": {"stages": {
                "1": {"numberOfInstances": 1, "machineDefinition": MACHINE},
                "2": {"numberOfInstances": 1, "machineDefinition": MACHINE, "scalable": True,
                      "scalingPolicy": {"stage": 2, "min": 1, "max": max_workers, "increment": 1,
                                        "decrement": 1, "coolDownSecs": cooldown_s, "strategies": {}}}}}}


def phase_figures(sizes: list[tuple[float, int]], start: float, end: float) -> dict:
    """Size changes inside [start, end): converge time, last size, peak, actions, reversals."""
    before = [s for t, s in sizes if t < start]
    inside = [(t, s) for t, s in sizes if start <= t < end]
    size = before[-1] if before else (inside[0][1] if inside else 0)
    changes, directions = [], []
    for t, s in inside:
        if s != size:
            changes.append(t)
            directions.append(1 if s > size else -1)
            size = s
    reversals = sum(1 for a, b in zip(directions, directions[1:], strict=False) if a != b)
    return {"converge_s": round(changes[-1] - start, 1) if changes else 0.0,
            "final": size, "peak": max([s for _, s in inside] or [size]),
            "low": min([s for _, s in inside] or [size]), "actions": len(changes), "reversals": reversals}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="100:20s,400:70s,100:50s")
    parser.add_argument("--cost-ms", type=float, default=5.0)
    parser.add_argument("--cooldown", type=float, default=10.0)
    parser.add_argument("--max-workers", type=int, default=6)
    args = parser.parse_args()
    steps = parse_profile(args.profile)
    if len(steps) < 2 or steps[1][0] <= steps[0][0]:
        parser.error("the profile's second step must be a step up (e.g. 100:20s,400:70s,100:50s)")
    tmp = Path(tempfile.mkdtemp(prefix="mantis-autoscale-"))
    with StopOnExit(tmp) as guard:
        config = config_module.load(None, [
            f'store.path="{tmp / "store"}"', f"master.admin_port={free_port()}",
            f"master.api_port={free_port()}", f"agent.admin_port={free_port()}", f'agent.ports="{free_range()}"',
            "agent.cpus=8", "agent.mem_mb=8192", "master.local_agent=false",
            "workers.heartbeat_interval_s=0.5", "workers.heartbeat_timeout_s=6", "workers.check_interval_s=0.5"])
        cluster = LocalCluster(config, tmp)
        guard.add(cluster, on_signal=cluster.kill9)  # interrupted: no graceful stops to wait for
        print(f"starting a master and an agent (logs in {tmp})", flush=True)
        cluster.start()
        sink_dir = tmp / "sink"
        sink_dir.mkdir()
        spec = definition(args.profile, args.cost_ms, args.cooldown, args.max_workers, sink_dir)
        assert cluster.call("POST", "/api/v1/jobClusters", spec)[0] == 201
        submitted = cluster.call("POST", "/api/v1/jobClusters/autoscale/jobs", {"user": "bench"})[1]
        job_id = submitted["jobMetadata"]["jobId"]

        def job() -> dict:
            """The job as the Job Master reads it: state, workers, stageSizes."""
            return job_from_view(cluster.call("GET", f"/api/v1/jobs/{job_id}")[1])

        def emitted(j: dict) -> float:
            return sum(w["metrics"].get("user", {}).get("emitted", 0) for w in j["workers"] if w["stageNum"] == 1)

        wait_for(lambda: emitted(job()) > 0, timeout=90, interval=0.2, what="the source to start")
        t0 = time.monotonic()
        print(f"job {job_id}: profile {args.profile} started", flush=True)
        sizes: list[tuple[float, int]] = []
        rates: list[float] = []
        decisions: list[dict] = []
        length = sum(d for _, d in steps)
        step_at, drop_at = steps[0][1], steps[0][1] + steps[1][1]
        deadline = t0 + length + 90
        state = "Launched"
        while time.monotonic() < deadline:
            j = job()
            state = j["state"]
            t = time.monotonic() - t0
            if state in ("Completed", "Failed"):
                break
            size = int(j["stageSizes"].get("2", 0))
            if not sizes or sizes[-1][1] != size:
                print(f"  t={t:6.1f}s  stage 2: {size} worker(s)", flush=True)
            sizes.append((t, size))
            stage2 = [w for w in j["workers"] if w["stageNum"] == 2 and w["state"] == "Started"]
            busy = sum(w["metrics"].get("busySeconds", 0) for w in stage2)
            events = sum(w["metrics"].get("eventsIn", 0) for w in stage2)
            if busy > 1.0:
                rates.append(events / busy)
            master = [w for w in j["workers"] if w["stageNum"] == 0 and w["state"] == "Started"]
            if master and master[0]["metrics"].get("metricsPort"):
                m = master[0]["metrics"]
                try:
                    decisions = api(f"http://{m.get('host', '127.0.0.1')}:{m['metricsPort']}", "GET",
                                    "/metrics.json", timeout=2)[1].get("decisions", decisions)
                except Exception:  # the Job Master may be between incarnations: keep the last
                    pass
            time.sleep(0.5)
        events_doc = cluster.call("GET", f"/api/v1/jobs/{job_id}/events")[1]
        ids = sink_ids(sink_dir)  # before the temp folder goes with the services
    total = profile_events(args.profile)
    lost = total - len(set(ids))
    duplicates = len(ids) - len(set(ids))
    per_worker = statistics.median(rates) if rates else float("nan")
    target = max(1, math.ceil(steps[1][0] / per_worker / TARGET_UTILIZATION - 1e-9)) if rates else -1
    down_target = max(1, math.ceil(steps[2][0] / per_worker / TARGET_UTILIZATION - 1e-9)) if (
        rates and len(steps) > 2) else -1
    up = phase_figures(sizes, step_at, drop_at)
    down = phase_figures(sizes, drop_at, length + 60)
    # A reversal while the load is steady: a direction change inside one step of the profile.
    steady_reversals = up["reversals"] + down["reversals"] + phase_figures(sizes, 0, step_at)["reversals"]
    scaled = [e for e in events_doc.get("list", []) if e["type"] == "StageScaled"]
    held: dict[str, int] = {}
    for d in decisions:
        if d.get("heldBack"):
            held[d["heldBack"]] = held.get(d["heldBack"], 0) + 1
    print(f"job ended {state}; measured {per_worker:.1f} events per busy second per worker "
          f"(cost {args.cost_ms} ms -> {1000 / args.cost_ms:.0f})")
    print(f"step up to {steps[1][0]:.0f}/s: target {target} workers, reached {up['final']}, peak {up['peak']} "
          f"(overshoot {max(up['peak'] - target, 0)}), converged {up['converge_s']}s after the step "
          f"({up['actions']} resize(s), {up['reversals']} reversal(s))")
    if len(steps) > 2:
        print(f"drop to {steps[2][0]:.0f}/s: target {down_target}, reached {down['final']}, converged "
              f"{down['converge_s']}s after the drop ({down['actions']} resize(s), {down['reversals']} reversal(s))")
    for e in scaled:
        print(f"  {e['message']}")
    print(f"Job Master decisions (last {len(decisions)}): held back {held}")
    print(f"events: {total} emitted, {len(set(ids))} reached the sink, {lost} lost, {duplicates} duplicates")
    print(json.dumps({"converge_s": up["converge_s"], "target_workers": target, "final_workers": up["final"],
                      "scale_actions": len(scaled), "reversals": steady_reversals, "events_lost": lost,
                      "cooldown_s": args.cooldown, "overshoot": max(up["peak"] - target, 0),
                      "down_target_workers": down_target, "down_final_workers": down["final"],
                      "down_converge_s": down["converge_s"], "per_worker_rate": round(per_worker, 1),
                      "duplicates": duplicates, "job_state": state}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
