"""Store benchmark: one durable write per record vs. group commit in batches.

Writes ``--records`` job records of about ``--record-bytes`` each, first one at a time
through the store's single-record path (``put_job``: the file store fsyncs each file
and its directory; the ZooKeeper store sends one transaction each), then through a
``GroupCommitStore`` flushed every ``--batch`` records (the file store with a writer:
one fsync of its write-ahead log per batch, plus its checkpoints; ZooKeeper: one
transaction per batch).  The file store runs in a temporary folder (``--dir`` chooses
where), the ZooKeeper store only with ``--zookeeper HOSTS``, under a znode of its own.
``--jobs`` spreads the records over that many job ids (default: one per record).

For each run it prints records/s and commits per record (fsyncs for the file store,
transactions for ZooKeeper); the last line is one JSON object.  SIGTERM or Ctrl-C
stops it and removes what it wrote (the folder, the znodes).

    python scripts/bench_store.py [--records 5000] [--batch 50] [--zookeeper 127.0.0.1:2181]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mantis.stores.file_store import FileStore  # noqa: E402
from mantis.stores.group_commit import GroupCommitStore  # noqa: E402

CLUSTER = "bench"


class Stopped(Exception):
    """SIGTERM or SIGINT arrived: unwind so that every ``finally`` cleans up."""


def on_signal(signum, frame) -> None:
    """Turn the signal into an exception.  Set for SIGINT too: a shell starts background
    jobs with SIGINT ignored, which would leave no KeyboardInterrupt to clean up on."""
    raise Stopped(signal.Signals(signum).name)


def worker(i: int) -> dict:
    """One worker of a Job record, as the master stores it (roughly)."""
    return {"workerIndex": i, "workerNumber": 100 + i, "stage": 1, "state": "Started",
            "agentId": f"agent-{i % 7}", "host": f"agent-{i % 7}.example.internal",
            "ports": [31000 + i], "resubmitOf": -1, "startedAt": 1764400000000 + i}


def job_records(count: int, jobs: int, size: int) -> list[tuple[str, dict]]:
    """``count`` (job id, Job record) pairs over ``jobs`` ids, each ~``size`` bytes of JSON."""
    workers = []
    while len(json.dumps({"jobId": f"{CLUSTER}-{jobs}", "workers": workers})) < size - 60:
        workers.append(worker(len(workers)))
    records = []
    for n in range(count):
        job_id = f"{CLUSTER}-{n % jobs + 1}"
        records.append((job_id, {"jobId": job_id, "cluster": CLUSTER, "state": "Launched",
                                 "n": n, "workers": workers}))
    return records


class Counter:
    """Counts calls of the function it wraps (os.fsync, or a store's commit)."""

    def __init__(self, function):
        self.function, self.calls = function, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.function(*args, **kwargs)


def run(name: str, records: list[tuple[str, dict]], write, flush, counter: Counter) -> dict:
    """Time ``write`` over every record (``flush`` after each batch, if given)."""
    before = counter.calls
    started = time.perf_counter()
    for i, (job_id, record) in enumerate(records, 1):
        write(job_id, record)
        if flush is not None and i % ARGS.batch == 0:
            flush()
    if flush is not None:
        flush()
    elapsed = time.perf_counter() - started
    commits = counter.calls - before
    result = {"records": len(records), "seconds": round(elapsed, 3),
              "records_per_s": round(len(records) / elapsed, 1),
              "commits_per_record": round(commits / len(records), 4)}
    print(f"{name:>28}: {len(records):,} records in {elapsed:.2f} s, "
          f"{result['records_per_s']:>9,.0f} records/s, "
          f"{result['commits_per_record']:.3f} commits/record", flush=True)
    return result


def bench_file(records: list[tuple[str, dict]], folder: Path) -> dict:
    """The file store: fsync per record, then group commit through the write-ahead log."""
    fsyncs = Counter(os.fsync)
    os.fsync = fsyncs  # the store calls os.fsync by attribute: this counts every one
    try:
        single = FileStore(folder / "per-record")
        per_record = run("file, one fsync'd record", records,
                         lambda job_id, r: single.put_job(CLUSTER, job_id, r), None, fsyncs)
        group = GroupCommitStore(FileStore(folder / "group", writer="bench"))
        try:
            grouped = run(f"file, group commit of {ARGS.batch}", records,
                          lambda job_id, r: group.put_job(CLUSTER, job_id, r), group.flush, fsyncs)
        finally:
            group.close()
    finally:
        os.fsync = fsyncs.function
    return {"per_record": per_record, "group_commit": grouped,
            "speedup": round(grouped["records_per_s"] / per_record["records_per_s"], 1)}


def bench_zookeeper(records: list[tuple[str, dict]], hosts: str) -> dict:
    """The ZooKeeper store: a transaction per record, then one per batch."""
    from kazoo.client import KazooClient

    from mantis.stores.zk_store import ZooKeeperStore

    root = f"/bench-store-{os.getpid()}"
    store = ZooKeeperStore(hosts, root=root, timeout=30.0)
    # Count transactions where every write path sends them (a private method, on purpose).
    commits = Counter(store._commit)
    store._commit = commits
    try:
        per_record = run("zookeeper, one txn per record", records,
                         lambda job_id, r: store.put_job(CLUSTER, job_id, r), None, commits)
        group = GroupCommitStore(store)
        grouped = run(f"zookeeper, group commit of {ARGS.batch}", records,
                      lambda job_id, r: group.put_job(f"{CLUSTER}-group", job_id, r), group.flush, commits)
    finally:
        store.close()
        cleaner = KazooClient(hosts)
        try:
            cleaner.start(timeout=10)
            cleaner.delete(root, recursive=True)
        finally:
            cleaner.stop()
            cleaner.close()
    return {"per_record": per_record, "group_commit": grouped,
            "speedup": round(grouped["records_per_s"] / per_record["records_per_s"], 1)}


def main() -> int:
    """Run the benchmark; the last line printed is one JSON object."""
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--record-bytes", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=0, help="distinct job ids (0: one per record)")
    parser.add_argument("--zookeeper", metavar="HOSTS", help="also bench the ZooKeeper store there")
    parser.add_argument("--dir", help="where to make the temporary folder (default: the system's)")
    ARGS = parser.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    folder = Path(tempfile.mkdtemp(prefix="bench-store-", dir=ARGS.dir))
    try:
        jobs = ARGS.jobs or ARGS.records
        records = job_records(ARGS.records, jobs, ARGS.record_bytes)
        size = len(json.dumps(records[-1][1]))
        print(f"{ARGS.records:,} job records of ~{size:,} bytes over {jobs:,} job ids, "
              f"batches of {ARGS.batch}", flush=True)
        result = {"records": ARGS.records, "record_bytes": size, "jobs": jobs, "batch": ARGS.batch}
        result["file"] = bench_file(records, folder)
        if ARGS.zookeeper:
            result["zookeeper"] = bench_zookeeper(records, ARGS.zookeeper)
    except Stopped as stop:
        print(f"stopped by {stop}: cleaning up", file=sys.stderr, flush=True)
        return 130
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0


ARGS: argparse.Namespace

if __name__ == "__main__":
    sys.exit(main())
