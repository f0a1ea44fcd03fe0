"""Group commit over the file store: a turn's writes durable with one fsync, or not at all."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from mantis.stores.file_store import FileStore, StoreError, committed_batches
from mantis.stores.group_commit import GroupCommitStore
from tests.support import file_size_limit


@pytest.fixture
def store(tmp_path):
    s = GroupCommitStore(FileStore(tmp_path, writer="shard-1"))
    yield s
    s.close()


def logged_batches(tmp_path):
    return committed_batches((tmp_path / "wal" / "shard-1.log").read_bytes())


def test_writes_queue_until_flush_and_a_later_op_on_a_record_supersedes(store, tmp_path):
    store.put_cluster("c", {"v": 1})
    store.put_cluster("c", {"v": 2})
    store.put_cluster("gone", {"v": 1})
    store.delete_cluster("gone")  # deleted after a put: only deleted
    store.put_job("c", "c-1", {"state": "Accepted"})
    store.put_job("c", "c-1", {"state": "Launched"})
    store.archive_job("c", "c-1", {"state": "Completed"})  # archived after a put: only archived
    store.put_job("c", "c-2", {"state": "Accepted"})
    assert store.pending == 4
    assert FileStore(tmp_path).clusters() == []  # nothing written yet

    assert store.flush() == 4
    assert store.pending == 0 and store.flush() == 0
    assert logged_batches(tmp_path) == [[
        ("put_cluster", "c", {"v": 2}),
        ("delete_cluster", "gone"),
        ("archive_job", "c", "c-1", {"state": "Completed"}),
        ("put_job", "c", "c-2", {"state": "Accepted"}),
    ]]
    store.store.checkpoint()  # the record files follow the log at a checkpoint
    plain = FileStore(tmp_path)
    assert plain.clusters() == [{"v": 2}]
    assert plain.jobs("c") == [{"state": "Accepted"}]
    assert plain.archived_job("c", "c-1") == {"state": "Completed"}


def test_a_job_put_after_its_archive_keeps_the_archive_as_the_store_would(store, tmp_path):
    store.archive_job("c", "c-1", {"state": "Completed"})
    store.put_job("c", "c-1", {"state": "Accepted", "again": True})
    store.put_job("c", "c-1", {"state": "Launched", "again": True})
    assert store.flush() == 2
    store.store.checkpoint()
    plain = FileStore(tmp_path)
    assert plain.archived_jobs("c") == [{"state": "Completed"}]
    assert plain.jobs("c") == [{"state": "Launched", "again": True}]


def test_one_flush_is_one_write_batch_and_one_fsync(store, monkeypatch):
    calls = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real_fsync(fd)))
    for n in range(50):
        store.put_job("c", f"c-{n}", {"jobId": f"c-{n}", "pad": "x" * 3_000})
    store.flush()
    assert len(calls) == 1


def test_reads_see_queued_writes_over_the_store(store):
    store.put_cluster("b", {"name": "b"})
    store.put_cluster("old", {"name": "old"})
    for n in (1, 2, 3, 10):
        store.put_job("b", f"b-{n}", {"jobId": f"b-{n}", "v": 1})
    store.archive_job("b", "b-3", {"jobId": "b-3", "state": "Completed"})
    store.flush()

    store.put_cluster("a", {"name": "a"})
    store.delete_cluster("old")
    store.put_job("b", "b-2", {"jobId": "b-2", "v": 2})
    store.put_job("b", "b-11", {"jobId": "b-11", "v": 1})
    store.archive_job("b", "b-1", {"jobId": "b-1", "state": "Failed"})
    assert store.clusters() == [{"name": "a"}, {"name": "b"}]
    assert store.jobs("b") == [{"jobId": "b-2", "v": 2}, {"jobId": "b-10", "v": 1},
                               {"jobId": "b-11", "v": 1}]
    assert store.archived_jobs("b") == [{"jobId": "b-1", "state": "Failed"},
                                        {"jobId": "b-3", "state": "Completed"}]
    assert store.archived_job("b", "b-1") == {"jobId": "b-1", "state": "Failed"}
    assert store.archived_job("b", "b-3") == {"jobId": "b-3", "state": "Completed"}
    assert store.archived_job("b", "b-99") is None
    assert store.describe()["pending"] == 5 and store.describe()["writer"] == "shard-1"
    before = [store.clusters(), store.jobs("b"), store.archived_jobs("b")]
    store.flush()
    assert [store.clusters(), store.jobs("b"), store.archived_jobs("b")] == before
    assert [store.store.clusters(), store.store.jobs("b"), store.store.archived_jobs("b")] == before


def test_durable_is_the_last_record_flushed_or_read(store, tmp_path):
    with FileStore(tmp_path, writer="earlier-master") as earlier:
        earlier.put_job("c", "c-1", {"v": "loaded"})
        earlier.checkpoint()
    assert store.durable(("job", "c", "c-1")) is None  # not known yet
    store.jobs("c")
    assert store.durable(("job", "c", "c-1")) == {"v": "loaded"}
    store.put_job("c", "c-1", {"v": "queued"})
    store.put_cluster("c", {"v": 1})
    assert store.durable(("job", "c", "c-1")) == {"v": "loaded"}  # queued is not durable
    store.jobs("c")
    assert store.durable(("job", "c", "c-1")) == {"v": "loaded"}
    store.flush()
    assert store.durable(("job", "c", "c-1")) == {"v": "queued"}
    assert store.durable(("cluster", "c")) == {"v": 1}
    store.archive_job("c", "c-1", {"v": "ended"})
    store.delete_cluster("c")
    store.flush()
    assert store.durable(("job", "c", "c-1")) is None
    assert store.durable(("cluster", "c")) is None


def test_records_handed_out_are_the_callers_to_change(store):
    store.put_job("c", "c-1", {"workers": [1]})
    store.flush()
    store.put_job("c", "c-2", {"workers": [2]})
    for record in store.jobs("c"):  # one read from the store, one from the queue
        record["workers"].append("changed by the reader")
    store.durable(("job", "c", "c-1"))["workers"].append("changed too")
    assert store.durable(("job", "c", "c-1")) == {"workers": [1]}
    store.flush()
    assert store.store.jobs("c") == [{"workers": [1]}, {"workers": [2]}]
    assert store.jobs("c") == [{"workers": [1]}, {"workers": [2]}]


def test_a_failed_flush_raises_with_its_keys_and_nothing_of_it_is_durable(store, tmp_path):
    store.put_cluster("c", {"v": 1})
    store.put_job("c", "c-1", {"v": 1})
    store.flush()
    # A real failure of the commit: the log may grow no further (EFBIG, as on a full disk).
    store.put_job("c", "c-0", {"pad": "x" * 200_000})
    store.flush()
    wal = tmp_path / "wal" / "shard-1.log"
    store.put_cluster("c", {"v": 2})
    store.put_job("c", "c-1", {"v": 2})
    store.put_job("d", "d-1", {"v": 1})
    with file_size_limit(wal.stat().st_size):
        with pytest.raises(StoreError) as failed:
            store.flush()
    assert set(failed.value.keys) == {("cluster", "c"), ("job", "c", "c-1"), ("job", "d", "d-1")}
    assert store.pending == 0  # dropped
    assert store.durable(("cluster", "c")) == {"v": 1}
    assert store.durable(("job", "c", "c-1")) == {"v": 1}
    assert store.durable(("job", "d", "d-1")) is None
    assert len(logged_batches(tmp_path)) == 2  # the failed batch never reached the log
    assert store.clusters() == [{"v": 1}] and store.jobs("d") == []
    # The shard carries on; the next flush works.
    store.put_job("d", "d-1", {"v": 1})
    assert store.flush() == 1
    assert store.durable(("job", "d", "d-1")) == {"v": 1}


def test_a_malformed_write_fails_its_caller_not_the_turn(store):
    with pytest.raises(StoreError, match="cannot name a record"):
        store.put_job("c", "a/b", {})
    with pytest.raises(StoreError, match="must be a dict"):
        store.put_cluster("c", ["not", "a", "record"])
    assert store.pending == 0


def test_a_writer_killed_mid_run_loses_no_batch_it_reported_committed(tmp_path):
    """kill -9 a shard that flushes batches; every batch it reported is found on reopening.

    Also models the power loss that kill -9 is not: the record files were never fsynced,
    so they are deleted before reopening, and the log alone must bring every batch back.
    """
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        from mantis.stores.group_commit import GroupCommitStore
        from mantis.stores.file_store import FileStore
        store = GroupCommitStore(FileStore({str(tmp_path)!r}, writer="shard-1",
                                           checkpoint_bytes=1 << 40))
        batch = 0
        while True:
            batch += 1
            for job in range(20):
                store.put_job("c", f"c-{{job}}", {{"jobId": f"c-{{job}}", "batch": batch,
                                                  "pad": "x" * 3000}})
            store.put_cluster("c", {{"name": "c", "batch": batch}})
            store.flush()
            print(batch, flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        reported = 0
        deadline = time.time() + 20
        while reported < 30 and time.time() < deadline:
            reported = int(proc.stdout.readline())
        time.sleep(0.05)  # let it get into the middle of more batches
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    for line in proc.stdout:
        reported = int(line)
    assert reported >= 30

    def check(store):
        (cluster,) = store.clusters()
        jobs = store.jobs("c")
        assert len(jobs) == 20 and cluster["batch"] >= reported
        assert all(job["batch"] >= reported and len(job["pad"]) == 3000 for job in jobs)

    for path in [tmp_path / "clusters" / "c.json", *tmp_path.glob("jobs/c/*.json")]:
        path.unlink(missing_ok=True)  # what a power loss may take (checkpoints were never due)
    reopened = FileStore(tmp_path, writer="shard-1")
    assert reopened.replayed >= reported
    check(reopened)
    reopened.close()
