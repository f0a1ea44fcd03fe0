"""Benchmark the data plane: source -> map/filter -> keyed count -> sink, one OS process per stage.

Two runs of the same flow over the same events:

1. distributed: each stage is a ``StageWorker`` in its own process (multiprocessing,
   spawn), talking over real sockets on 127.0.0.1, and the sink is a subscriber
   process reading the last stage's output::

       [stage 1: source] -> [stage 2: filter+map, keyed by user] -> [stage 3: running count]
           -> [sink: subscriber]

   ``--layout source-with-map`` runs the source and the filter+map in one stage (stage
   1 workers run the source and stage 1's operators), so three processes.
2. one process, plain reactivex, per-event operators (filter, map, group_by + scan):
   the ceiling a single core reaches with the idiomatic per-event form.

and two references, measured in the same run on the same events:

3. the limit: the same four processes (source, two relays, sink) passing the same
   frames (the source's batches of 1,000 events as stage frames) over plain sockets,
   with no operators: the relays forward each frame's bytes as they are, the sink
   decodes them to count the events.  It is what four processes on this machine pass
   before any operator runs (making the events and moving the frames), so our
   end-to-end rate is reported as a fraction of it.
4. bytewax 0.21 on the same flow (filter, map, key by user, running count), one
   worker in a process of its own, as bytewax runs by default; skipped with a message
   if bytewax is not installed (``pip install -e '.[bench]'``: it is never required).
   Our end-to-end rate is reported as a multiple of it.

Each run is repeated ``--repeat`` times and the best is reported (as ``timeit`` does):
the machine is shared, and other load only ever makes a run slower.  Every run is
printed, with the CPU cores the stage processes used between them.

Events: ``{"id": n, "user": "user-<(n*7919) % keys>", "value": 0..99}`` (the
keyed_count example's source); the filter keeps value >= 50 (half); the count stage emits,
per batch, the latest count of each user it touched.  The sink checks that the final counts add up to the kept events.
Usage: ``python scripts/bench_pipeline.py [--events 5000000] [--keys 1000] [--repeat 3]
[--layout separate|source-with-map]``.  The last line printed is one JSON object with
the figures, ``limit_events_per_s`` and ``bytewax_events_per_s`` (null when skipped)
among them.  SIGTERM or SIGINT stops every process the run started, then exits.
"""
from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import multiprocessing
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import reactivex  # noqa: E402
from reactivex import operators as ops  # noqa: E402

from mantis.examples.keyed_count import make_event_factory  # noqa: E402
from mantis.runtime.batch_operators import filter_each, map_each  # noqa: E402
from mantis.runtime.frames import HEADER, decode_stage_payload, encode_stage_batch, read_frame, read_payload  # noqa: E402
from mantis.runtime.sources import paced_batches  # noqa: E402
from mantis.runtime.stage_worker import StageWorker  # noqa: E402
from mantis.sdk.job_dsl import BatchSource, Context, Job, ProcessingStage  # noqa: E402
from mantis.tooling.local_processes import StopOnExit  # noqa: E402

MIN_VALUE = 50  # the filter keeps values 50..99: half the events
BATCH_SIZE = 1000  # events per source batch: paced_batches' default, so the limit sends the same frames
POLL_S = 0.01   # how often a stage process looks at its counters (timing resolution)
RUN_TIMEOUT_S = 300

# The stage and sink processes of the run in progress, stopped at exit whatever way the
# script ends (see ``stop_processes``).
PROCESSES: list = []


# -- the flow, as a job --------------------------------------------------------------

def source(context: Context) -> reactivex.Observable:
    params = context.parameters
    return paced_batches(context, make_event_factory(params["keys"]), 0, params["limit"])


def keep_and_project(batches, context):
    return batches.pipe(filter_each(lambda e: e["value"] >= MIN_VALUE),
                        map_each(lambda e: {"user": e["user"], "value": e["value"]}))


def pass_through(batches, context):
    return batches


def running_count(batches, context):
    """Per batch, the latest count of each user it touched: ``{"user", "count"}``, the same
    updates the one-process flow emits (the keyed_count example adds bookkeeping of its own)."""
    counts: dict[str, int] = {}

    def count(batch: list) -> list:
        touched: dict[str, int] = {}
        for event in batch:
            user = event["user"]
            touched[user] = counts[user] = counts.get(user, 0) + 1
        return [{"user": user, "count": c} for user, c in touched.items()]

    return batches.pipe(ops.map(count))


def bench_job(layout: str) -> Job:
    """The benchmark flow as a job: 3 stages (source | filter+map | count) or 2 (source+filter+map | count)."""
    filter_map = ProcessingStage(name="filter_map", batch_operators=keep_and_project, key="user")
    count = ProcessingStage(name="keyed_count", batch_operators=running_count)
    if layout == "source-with-map":
        stages = [filter_map, count]
    else:
        stages = [ProcessingStage(name="source", batch_operators=pass_through), filter_map, count]
    return Job("bench", BatchSource(source), stages=stages)


STAGE_NAMES = {"separate": ["source", "filter_map", "keyed_count"],
               "source-with-map": ["source+filter_map", "keyed_count"]}


# -- child processes -----------------------------------------------------------------

def ignore_ctrl_c() -> None:
    """Leave Ctrl-C to the parent: it stops its children itself (SIGTERM), and a stage
    dying on its own SIGINT would only add a traceback to the output."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_stage(stage_number: int, layout: str, parameters: dict, control) -> None:
    """A stage process: build the worker, report its port, start on "go", report its figures."""
    ignore_ctrl_c()
    job = bench_job(layout)
    context = Context("bench-1", stage_number=stage_number, parameters=parameters)
    worker = StageWorker(job, context)
    control.send(("port", worker.port))
    _, upstream = control.recv()
    if upstream:
        worker.update_upstream(upstream)
    cpu_start = time.process_time()
    worker.start()
    first_event_at = None
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not worker.wait(POLL_S) and time.monotonic() < deadline:
        if first_event_at is None and worker.executor.events_in:
            first_event_at = time.time()
    finished_at = time.time()
    metrics = worker.metrics()
    control.send(("done", {"state": worker.state, "error": worker.error,
                           "events_in": metrics.events_in, "events_out": metrics.events_out,
                           "dropped": metrics.dropped_events,
                           "first_event_at": first_event_at or finished_at,
                           "finished_at": finished_at,
                           "cpu_s": time.process_time() - cpu_start}))
    worker.stop(5)


def run_sink(port: int, control) -> None:
    """The subscriber: read the last stage's output until it closes; report counts and timing."""
    ignore_ctrl_c()
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.settimeout(None)
    control.send(("connected", None))
    cpu_start = time.process_time()
    final: dict[str, int] = {}
    events = 0
    first_at = last_at = None
    while True:
        batch = read_frame(sock)
        if batch is None:
            break
        last_at = time.time()
        if first_at is None:
            first_at = last_at
        events += len(batch)
        for update in batch:
            final[update["user"]] = update["count"]  # per user, counts only grow, in order
    control.send(("done", {"events_in": events, "users": len(final),
                           "total_count": sum(final.values()),
                           "first_event_at": first_at, "finished_at": last_at,
                           "cpu_s": time.process_time() - cpu_start}))


def kept_events(events: int, keys: int) -> int:
    """How many of the first ``events`` source events pass the filter."""
    make_event = make_event_factory(keys)
    return sum(1 for n in range(events) if make_event(n)["value"] >= MIN_VALUE)


def stop_processes(grace_s: float = 2.0) -> None:
    """Stop every stage and sink process still running: SIGTERM, ``grace_s``, then SIGKILL."""
    started = [process for process in PROCESSES if process.pid is not None]
    for process in started:
        if process.is_alive():
            process.terminate()
    deadline = time.monotonic() + grace_s
    for process in started:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join(5)
    PROCESSES.clear()


def run_distributed(events: int, keys: int, layout: str) -> dict:
    """The flow with one process per stage plus a sink process; figures of the run."""
    spawn = multiprocessing.get_context("spawn")
    parameters = {"keys": keys, "limit": events}
    stage_count = bench_job(layout).stage_count
    stages = []
    for number in range(1, stage_count + 1):
        mine, theirs = spawn.Pipe()
        process = spawn.Process(target=run_stage, args=(number, layout, parameters, theirs), daemon=True)
        PROCESSES.append(process)  # before the start: a signal may come at any moment
        process.start()
        stages.append((process, mine))
    ports = [conn.recv()[1] for _, conn in stages]
    sink_conn, theirs = spawn.Pipe()
    sink = spawn.Process(target=run_sink, args=(ports[-1], theirs), daemon=True)
    PROCESSES.append(sink)
    sink.start()
    sink_conn.recv()
    started_at = time.time()
    for number, (_, conn) in enumerate(stages, start=1):
        conn.send(("go", [] if number == 1 else [(1, "127.0.0.1", ports[number - 2])]))
    reports = [conn.recv()[1] for _, conn in stages]
    sink_report = sink_conn.recv()[1]
    for process, _ in stages:
        process.join(10)
    sink.join(10)
    stop_processes()  # any that did not end by themselves
    for number, report in enumerate(reports, start=1):
        if report["state"] != "completed":
            raise SystemExit(f"stage {number} ended {report['state']}: {report['error']}")
    expected_total = kept_events(events, keys)
    if sink_report["total_count"] != expected_total or sink_report["users"] != min(keys, events):
        raise SystemExit(f"wrong result: counts add up to {sink_report['total_count']} over "
                         f"{sink_report['users']} users, expected {expected_total} over {keys}")
    elapsed = sink_report["finished_at"] - started_at
    per_stage = {}
    for name, report in zip(STAGE_NAMES[layout], reports, strict=True):
        busy = max(report["finished_at"] - report["first_event_at"], 1e-9)
        per_stage[name] = {"events": report["events_in"], "events_per_s": report["events_in"] / busy,
                           "events_per_cpu_s": report["events_in"] / max(report["cpu_s"], 1e-9),
                           "dropped": report["dropped"]}
    sink_busy = max(sink_report["finished_at"] - sink_report["first_event_at"], 1e-9)
    per_stage["sink"] = {"events": sink_report["events_in"],
                         "events_per_s": sink_report["events_in"] / sink_busy,
                         "events_per_cpu_s": sink_report["events_in"] / max(sink_report["cpu_s"], 1e-9),
                         "dropped": 0}
    cpu_s = sum(report["cpu_s"] for report in reports) + sink_report["cpu_s"]
    return {"events": events, "elapsed_s": elapsed, "events_per_s": events / elapsed,
            "cores_used": cpu_s / elapsed, "per_stage": per_stage}


# -- the ceiling: one process, per-event reactivex -------------------------------------

def run_one_process(events: int, keys: int) -> dict:
    """The same flow in this process through per-event reactivex operators; figures of the run."""
    make_event = make_event_factory(keys)
    final: dict[str, int] = {}

    def running_count(group):
        user = group.key
        return group.pipe(ops.scan(lambda count, _: count + 1, 0),
                          ops.map(lambda count: {"user": user, "count": count}))

    def sink(update):
        final[update["user"]] = update["count"]

    started = time.perf_counter()
    reactivex.from_iterable(map(make_event, range(events))).pipe(
        ops.filter(lambda e: e["value"] >= MIN_VALUE),
        ops.map(lambda e: {"user": e["user"], "value": e["value"]}),
        ops.group_by(lambda e: e["user"]),
        ops.flat_map(running_count),
    ).subscribe(sink)
    elapsed = time.perf_counter() - started
    if sum(final.values()) != kept_events(events, keys):
        raise SystemExit("one-process run computed wrong counts")
    return {"events": events, "elapsed_s": elapsed, "events_per_s": events / elapsed}


# -- reference 1, the limit: the same four processes, the same frames, no operators --------

LIMIT_ROLES = ["source", "relay", "relay", "sink"]


def run_limit_process(role: str, events: int, keys: int, control) -> None:
    """One process of the limit run, connected as the stages are (each downstream process
    connects to its upstream's port): the source makes the same batches our source makes
    and sends them as stage frames; a relay forwards every frame's bytes untouched; the
    sink decodes the frames and counts their events.  Reports its figures on ``control``."""
    ignore_ctrl_c()
    server = socket.create_server(("127.0.0.1", 0)) if role != "sink" else None
    control.send(("port", server.getsockname()[1] if server else None))
    _, upstream_port = control.recv()
    upstream = socket.create_connection(("127.0.0.1", upstream_port)) if upstream_port else None
    downstream = server.accept()[0] if server else None
    cpu_start = time.process_time()
    first_at = time.time() if role == "source" else None
    count = frames = 0
    if role == "source":
        make_event = make_event_factory(keys)
        for start in range(0, events, BATCH_SIZE):
            batch = [make_event(n) for n in range(start, min(start + BATCH_SIZE, events))]
            downstream.sendall(encode_stage_batch(batch))
            count += len(batch)
            frames += 1
    else:
        while (payload := read_payload(upstream)) is not None:
            if first_at is None:
                first_at = time.time()
            frames += 1
            if downstream is not None:
                downstream.sendall(HEADER.pack(len(payload)) + payload)
            else:
                count += len(decode_stage_payload(payload))
    finished_at = time.time()
    if downstream is not None:
        downstream.close()  # the end of the stream for the next process
    control.send(("done", {"events": count, "frames": frames, "first_event_at": first_at or finished_at,
                           "finished_at": finished_at, "cpu_s": time.process_time() - cpu_start}))


def run_limit(events: int, keys: int) -> dict:
    """The limit: four processes passing the source's frames over loopback; figures of the run."""
    spawn = multiprocessing.get_context("spawn")
    processes = []
    for role in LIMIT_ROLES:
        mine, theirs = spawn.Pipe()
        process = spawn.Process(target=run_limit_process, args=(role, events, keys, theirs), daemon=True)
        PROCESSES.append(process)  # before the start: a signal may come at any moment
        process.start()
        processes.append((process, mine))
    ports = [conn.recv()[1] for _, conn in processes]
    started_at = time.time()
    for number, (_, conn) in enumerate(processes):
        conn.send(("go", ports[number - 1] if number else None))
    reports = [conn.recv()[1] for _, conn in processes]
    for process, _ in processes:
        process.join(10)
    stop_processes()  # any that did not end by themselves
    sink = reports[-1]
    if sink["events"] != events:
        raise SystemExit(f"limit run: the sink counted {sink['events']} events, the source sent {events}")
    elapsed = sink["finished_at"] - started_at
    cpu_s = sum(report["cpu_s"] for report in reports)
    return {"events": events, "elapsed_s": elapsed, "events_per_s": events / elapsed,
            "cores_used": cpu_s / elapsed, "frames": sink["frames"]}


# -- reference 2: bytewax 0.21 on the same flow ---------------------------------------

def bytewax_version() -> str | None:
    """bytewax's version if it is installed, else None (it is an optional extra: ``.[bench]``)."""
    if importlib.util.find_spec("bytewax") is None:
        return None
    from importlib.metadata import version

    return version("bytewax")


def run_bytewax_process(events: int, keys: int, control) -> None:
    """The flow as a bytewax dataflow, run by one worker in this process (``run_main``);
    reports the time it took and the final counts' checks on ``control``."""
    ignore_ctrl_c()
    # Imported here, in the child, because bytewax is optional: the script runs without it.
    import bytewax.operators as op
    from bytewax.dataflow import Dataflow
    from bytewax.inputs import DynamicSource, StatelessSourcePartition
    from bytewax.outputs import DynamicSink, StatelessSinkPartition
    from bytewax.testing import run_main

    make_event = make_event_factory(keys)
    final: dict[str, int] = {}

    class Batches(StatelessSourcePartition):
        """The same events in the same batches of BATCH_SIZE as our source."""

        def __init__(self):
            self.next_id = 0

        def next_batch(self) -> list:
            if self.next_id >= events:
                raise StopIteration
            end = min(self.next_id + BATCH_SIZE, events)
            batch = [make_event(n) for n in range(self.next_id, end)]
            self.next_id = end
            return batch

    class Source(DynamicSource):
        def build(self, step_id, worker_index, worker_count):
            return Batches()

    class LatestCounts(StatelessSinkPartition):
        def write_batch(self, items) -> None:
            for user, update in items:
                final[user] = update["count"]

    class Sink(DynamicSink):
        def build(self, step_id, worker_index, worker_count):
            return LatestCounts()

    def count(state, event):
        state = (state or 0) + 1
        return state, {"user": event["user"], "count": state}

    flow = Dataflow("bench")
    kept = op.filter("keep", op.input("source", flow, Source()), lambda e: e["value"] >= MIN_VALUE)
    projected = op.map("project", kept, lambda e: {"user": e["user"], "value": e["value"]})
    counts = op.stateful_map("count", op.key_on("by_user", projected, lambda e: e["user"]), count)
    op.output("sink", counts, Sink())
    cpu_start = time.process_time()
    started = time.perf_counter()
    run_main(flow)
    elapsed = time.perf_counter() - started
    control.send(("done", {"elapsed_s": elapsed, "total_count": sum(final.values()), "users": len(final),
                           "cpu_s": time.process_time() - cpu_start}))


def run_bytewax(events: int, keys: int) -> dict:
    """bytewax on the same flow, in a process of its own (so SIGTERM stops it like the others)."""
    spawn = multiprocessing.get_context("spawn")
    mine, theirs = spawn.Pipe()
    process = spawn.Process(target=run_bytewax_process, args=(events, keys, theirs), daemon=True)
    PROCESSES.append(process)
    process.start()
    theirs.close()  # so a crash of the child is an EOFError here, not a wait forever
    try:
        report = mine.recv()[1]
    except EOFError:
        process.join(10)
        raise SystemExit(f"the bytewax run died (exit code {process.exitcode})") from None
    process.join(10)
    stop_processes()
    if report["total_count"] != kept_events(events, keys) or report["users"] != min(keys, events):
        raise SystemExit("bytewax run computed wrong counts")
    return {"events": events, "elapsed_s": report["elapsed_s"], "events_per_s": events / report["elapsed_s"]}


def main() -> None:
    with StopOnExit() as guard:
        guard.on_exit(stop_processes)
        benchmark(parse_args())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=5_000_000, help="events from the source")
    parser.add_argument("--keys", type=int, default=1000, help="distinct users")
    parser.add_argument("--layout", choices=sorted(STAGE_NAMES), default="separate",
                        help="separate: source, filter+map and count each in a process")
    parser.add_argument("--one-process-events", type=int, default=1_000_000,
                        help="events for the one-process reactivex run (it is slow)")
    parser.add_argument("--bytewax-events", type=int, default=1_000_000,
                        help="events for the bytewax run (one worker, per event: slow)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is reported")
    return parser.parse_args()


def benchmark(args: argparse.Namespace) -> None:
    """Both runs, ``--repeat`` times each, and the report."""
    runs = []
    for attempt in range(1, args.repeat + 1):
        gc.collect()
        run = run_distributed(args.events, args.keys, args.layout)
        runs.append(run)
        print(f"run {attempt}, distributed ({args.layout}, {len(run['per_stage'])} processes): "
              f"{args.events:,} events in {run['elapsed_s']:.2f}s = {run['events_per_s']:,.0f} "
              f"events/s end to end, {run['cores_used']:.2f} cores used")
        for name, figures in run["per_stage"].items():
            print(f"  {name:>18}: {figures['events']:>10,} events in, {figures['events_per_s']:>12,.0f}/s "
                  f"while busy, {figures['events_per_cpu_s']:>12,.0f}/cpu-s, dropped {figures['dropped']}")
    distributed = max(runs, key=lambda r: r["events_per_s"])
    ones = []
    for attempt in range(1, args.repeat + 1):
        one = run_one_process(min(args.one_process_events, args.events), args.keys)
        ones.append(one)
        print(f"run {attempt}, one process, per-event reactivex: {one['events']:,} events in "
              f"{one['elapsed_s']:.2f}s = {one['events_per_s']:,.0f} events/s")
    one = max(ones, key=lambda r: r["events_per_s"])
    limit = best_of(args.repeat, "limit, 4 processes passing the same frames, no operators",
                    lambda: run_limit(args.events, args.keys))
    version = bytewax_version()
    if version is None:
        print("bytewax: not installed, skipped (pip install -e '.[bench]' to measure it)")
        bytewax = None
    else:
        bytewax = best_of(args.repeat, f"bytewax {version}, one worker, same flow",
                          lambda: run_bytewax(min(args.bytewax_events, args.events), args.keys))
    rate = distributed["events_per_s"]
    print(f"best: distributed {rate:,.0f} events/s, one process "
          f"{one['events_per_s']:,.0f} events/s, ratio {rate / one['events_per_s']:.2f}")
    print(f"      {rate / limit['events_per_s']:.1%} of the limit ({limit['events_per_s']:,.0f} events/s)"
          + (f", {rate / bytewax['events_per_s']:.2f}x bytewax ({bytewax['events_per_s']:,.0f} events/s)"
             if bytewax else ", bytewax skipped"))
    print(json.dumps({
        "end_to_end_events_per_s": round(rate),
        "one_process_events_per_s": round(one["events_per_s"]),
        "per_stage_events_per_s": {name: round(f["events_per_s"])
                                   for name, f in distributed["per_stage"].items()},
        "limit_events_per_s": round(limit["events_per_s"]),
        "bytewax_events_per_s": round(bytewax["events_per_s"]) if bytewax else None,
        "fraction_of_limit": round(rate / limit["events_per_s"], 3),
        "multiple_of_bytewax": round(rate / bytewax["events_per_s"], 2) if bytewax else None,
    }))


def best_of(repeat: int, name: str, run) -> dict:
    """``run()`` ``repeat`` times, each printed; the fastest (other load only slows a run down)."""
    runs = []
    for attempt in range(1, repeat + 1):
        gc.collect()
        result = run()
        runs.append(result)
        print(f"run {attempt}, {name}: {result['events']:,} events in {result['elapsed_s']:.2f}s "
              f"= {result['events_per_s']:,.0f} events/s")
    return max(runs, key=lambda r: r["events_per_s"])


if __name__ == "__main__":
    main()
