"""The file store: atomic records that survive a kill -9 mid-write."""
import os
import signal
import subprocess
import sys
import textwrap

from mantis.stores.file_store import FileStore


def test_records_round_trip_and_ended_jobs_move_to_the_archive(tmp_path):
    store = FileStore(tmp_path)
    store.put_cluster("c", {"definition": {"name": "c"}})
    store.put_job("c", "c-2", {"jobId": "c-2"})
    store.put_job("c", "c-10", {"jobId": "c-10"})
    assert [j["jobId"] for j in store.jobs("c")] == ["c-2", "c-10"]
    store.archive_job("c", "c-2", {"jobId": "c-2", "state": "Completed"})
    assert [j["jobId"] for j in store.jobs("c")] == ["c-10"]
    assert store.archived_job("c", "c-2")["state"] == "Completed"
    assert FileStore(tmp_path).clusters() == [{"definition": {"name": "c"}}]
    store.delete_cluster("c")
    assert store.clusters() == []


def test_a_writer_killed_mid_stream_leaves_old_or_new_record_never_torn(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        from mantis.stores.file_store import FileStore
        store = FileStore({str(tmp_path)!r})
        i = 0
        print("ready", flush=True)
        while True:
            i += 1
            store.put_job("c", "c-1", {{"jobId": "c-1", "n": i, "pad": "x" * 200000}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    import time
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    (record,) = FileStore(tmp_path).jobs("c")
    assert record["n"] >= 1 and len(record["pad"]) == 200000


# -- batches and the write-ahead log -------------------------------------------------

import pytest  # noqa: E402

from mantis.stores.file_store import StoreError, committed_batches  # noqa: E402
from tests.support import file_size_limit  # noqa: E402


def batch_of_every_kind(n: int) -> list[tuple]:
    """A batch that touches a cluster and ten jobs, tagged ``n``."""
    ops = [("put_cluster", "c", {"name": "c", "n": n})]
    ops += [("put_job", "c", f"c-{j}", {"jobId": f"c-{j}", "n": n}) for j in range(10)]
    ops.append(("archive_job", "c", f"c-{100 + n}", {"jobId": f"c-{100 + n}", "n": n}))
    return ops


@pytest.fixture
def fsyncs(monkeypatch):
    """The number of os.fsync calls made since the test started (a one-element list)."""
    count = [0]
    real = os.fsync

    def counting(fd):
        count[0] += 1
        return real(fd)
    monkeypatch.setattr(os, "fsync", counting)
    return count


def test_a_batch_commits_with_one_fsync_of_the_log_and_one_line(tmp_path, fsyncs):
    store = FileStore(tmp_path, writer="shard-1")
    before = fsyncs[0]
    store.write_batch(batch_of_every_kind(1))
    assert fsyncs[0] - before == 1
    store.write_batch(batch_of_every_kind(2))
    assert fsyncs[0] - before == 2
    (first, second) = committed_batches((tmp_path / "wal" / "shard-1.log").read_bytes())
    assert first == batch_of_every_kind(1) and second == batch_of_every_kind(2)
    # Read through the writer at once; the record files follow at the next checkpoint.
    assert store.clusters() == [{"name": "c", "n": 2}]
    assert [j["n"] for j in store.jobs("c")] == [2] * 10
    assert store.archived_job("c", "c-101") == {"jobId": "c-101", "n": 1}
    assert FileStore(tmp_path).clusters() == []
    store.checkpoint()
    plain = FileStore(tmp_path)
    assert plain.clusters() == [{"name": "c", "n": 2}]
    assert [j["n"] for j in plain.jobs("c")] == [2] * 10
    assert plain.archived_job("c", "c-101") == {"jobId": "c-101", "n": 1}
    store.close()


def test_a_record_changed_many_times_between_checkpoints_is_written_once(tmp_path, monkeypatch):

    store = FileStore(tmp_path, writer="w")
    written = []
    real = FileStore._write_temp
    monkeypatch.setattr(FileStore, "_write_temp", lambda self, path, text: (written.append(path.name),
                                                                              real(self, path, text))[1])
    for n in range(50):
        store.write_batch([("put_job", "c", "c-1", {"n": n}), ("put_cluster", "c", {"n": n})])
    assert written == [] and store.jobs("c") == [{"n": 49}]
    store.checkpoint()
    assert sorted(written) == ["c-1.json", "c.json"]
    assert FileStore(tmp_path).jobs("c") == [{"n": 49}]
    store.close()


def test_without_a_writer_a_batch_fsyncs_each_record_as_before(tmp_path, fsyncs):
    store = FileStore(tmp_path)
    store.write_batch([("put_job", "c", "c-1", {"n": 1}), ("put_job", "c", "c-2", {"n": 2})])
    assert fsyncs[0] == 4  # file and directory, per record
    assert not (tmp_path / "wal").exists()
    assert [j["n"] for j in store.jobs("c")] == [1, 2]


def test_the_log_restores_records_whose_files_a_power_loss_took(tmp_path):
    with FileStore(tmp_path, writer="shard-1") as store:
        for n in range(1, 4):
            store.write_batch(batch_of_every_kind(n))
        store.delete_cluster("c")  # single calls are batches of one with a writer
    # The record files were never fsynced: model a power loss that lost them all.
    for path in list(tmp_path.glob("clusters/*")) + list(tmp_path.glob("jobs/*/*")) \
            + list(tmp_path.glob("archive/*/*")):
        path.unlink()
    (tmp_path / "clusters" / "c.json").write_text('{"torn')  # and tore one

    reopened = FileStore(tmp_path, writer="shard-1")
    assert reopened.replayed == 4
    assert reopened.clusters() == []
    assert [j["n"] for j in reopened.jobs("c")] == [3] * 10
    assert [j["n"] for j in reopened.archived_jobs("c")] == [1, 2, 3]
    assert (tmp_path / "wal" / "shard-1.log").stat().st_size == 0  # checkpointed
    reopened.close()


def test_a_torn_last_line_was_never_committed_and_is_not_replayed(tmp_path):
    wal = tmp_path / "wal" / "w.log"
    wal.parent.mkdir(parents=True)
    whole = [b'{"ops":[["put_job","c","c-1",{"n":1}]]}\n',
             b'{"ops":[["put_job","c","c-1",{"n":2}],["put_cluster","c",{"n":2}]]}\n']
    wal.write_bytes(b"".join(whole) + b'{"ops":[["put_job","c","c-1",{"n":3}],["put_clu')

    store = FileStore(tmp_path, writer="w")
    assert store.replayed == 2
    assert store.jobs("c") == [{"n": 2}] and store.clusters() == [{"n": 2}]
    assert wal.read_bytes() == b""
    store.write_batch([("put_job", "c", "c-1", {"n": 4})])  # the log goes on from empty
    assert committed_batches(wal.read_bytes()) == [[("put_job", "c", "c-1", {"n": 4})]]
    store.close()


def test_on_linux_a_checkpoint_syncs_the_filesystem_once_instead_of_every_file(tmp_path, fsyncs, monkeypatch):
    import mantis.stores.file_store

    synced = []
    real = mantis.stores.file_store._syncfs
    monkeypatch.setattr(mantis.stores.file_store, "_syncfs", lambda fd: synced.append(fd) or real(fd))
    store = FileStore(tmp_path, writer="w", checkpoint_bytes=5_000)
    wal = tmp_path / "wal" / "w.log"
    store.write_batch([("put_job", "c", "c-1", {"pad": "x" * 3_000})])
    at_open = len(synced)
    assert wal.stat().st_size > 3_000
    before = fsyncs[0]
    store.write_batch([("put_job", "c", "c-2", {"pad": "y" * 3_000})])
    assert wal.stat().st_size == 0 and len(synced) == at_open + 1
    assert fsyncs[0] - before == 1 + 1  # the commit and the log cut; no file by file
    store.close()


def test_an_unreadable_line_ends_the_committed_part_of_a_log():
    data = (b'{"ops":[["put_cluster","a",{}]]}\n' b'\x00\x00\x00\n'
            b'{"ops":[["put_cluster","b",{}]]}\n')
    assert committed_batches(data) == [[("put_cluster", "a", {})]]


def test_a_checkpoint_empties_the_log_once_it_grows_past_its_threshold(tmp_path, fsyncs, monkeypatch):
    import mantis.stores.file_store

    monkeypatch.setattr(mantis.stores.file_store, "_syncfs", lambda fd: False)  # file by file, as without Linux
    store = FileStore(tmp_path, writer="w", checkpoint_bytes=5_000)
    wal = tmp_path / "wal" / "w.log"
    store.write_batch([("put_job", "c", "c-1", {"pad": "x" * 3_000})])
    assert wal.stat().st_size > 3_000
    before = fsyncs[0]
    store.write_batch([("put_job", "c", "c-2", {"pad": "y" * 3_000})])
    assert wal.stat().st_size == 0
    # The commit, both record files, their directories up to the root, the log cut.
    assert fsyncs[0] - before == 1 + 2 + 3 + 1
    store.close()
    assert FileStore(tmp_path, writer="w").replayed == 0


def test_a_failed_batch_raises_store_error_and_is_not_in_the_log(tmp_path):
    store = FileStore(tmp_path, writer="w")
    store.write_batch([("put_job", "c", "c-1", {"n": 1, "pad": "x" * 200_000})])
    wal = tmp_path / "wal" / "w.log"
    # A real failure of the commit: the log may grow no further (EFBIG, as on a full disk).
    with file_size_limit(wal.stat().st_size):
        with pytest.raises(StoreError, match="w.log") as failed:
            store.write_batch([("put_job", "c", "c-1", {"n": 2}), ("put_job", "d", "d-1", {"n": 1})])
    assert failed.value.committed == 0
    assert [[op[:3] for op in ops] for ops in committed_batches(wal.read_bytes())] == [[("put_job", "c", "c-1")]]
    assert store.jobs("c")[0]["n"] == 1 and store.jobs("d") == []
    store.write_batch([("put_job", "c", "c-1", {"n": 3})])  # the store goes on
    with pytest.raises(StoreError, match="cannot name a record"):
        store.write_batch([("put_job", "c", "../escape", {})])
    with pytest.raises(StoreError, match="not JSON"):
        store.write_batch([("put_job", "c", "c-9", {"bad": object()})])
    with pytest.raises(StoreError, match="unknown store operation"):
        store.write_batch([("drop_everything",)])
    # A plain file where a directory should be: writing under it fails, even as root.
    (tmp_path / "jobs" / "d").write_text("not a directory")
    with pytest.raises(StoreError, match="jobs/d") as unlogged:  # no bare OSError either
        FileStore(tmp_path).write_batch([("put_job", "c", "c-2", {}), ("put_job", "d", "d-1", {})])
    assert unlogged.value.committed == 1  # without a log, each record is durable on its own
    # With a log the batch commits; the checkpoint that cannot write the file keeps the log.
    store.write_batch([("put_job", "d", "d-1", {"n": 1})])
    with pytest.raises(StoreError, match="jobs/d"):
        store.checkpoint()
    assert store.jobs("d") == [{"n": 1}] and wal.stat().st_size > 0
    (tmp_path / "jobs" / "d").unlink()
    store.checkpoint()
    assert wal.stat().st_size == 0
    store.close()
    assert FileStore(tmp_path).jobs("c") == [{"n": 3}, {}] and FileStore(tmp_path).jobs("d") == [{"n": 1}]


def test_a_log_append_that_fails_is_cut_back_and_never_replayed(tmp_path):
    # A real failure of the append itself: the file size limit (EFBIG), which binds root too.
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {os.getcwd()!r})
        from mantis.stores.file_store import FileStore, StoreError
        store = FileStore({str(tmp_path)!r}, writer="w")
        store.write_batch([("put_job", "c", "c-1", {{"n": 1}})])
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
        try:
            store.write_batch([("put_job", "c", f"c-{{i}}", {{"pad": "x" * 5_000}}) for i in range(2, 6)])
        except StoreError as exc:
            print("failed:", exc, flush=True)
        store.write_batch([("put_job", "c", "c-1", {{"n": 2}})])
        print("committed", flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "failed: commit to" in out.stdout and "File too large" in out.stdout
    assert out.stdout.rstrip().endswith("committed")
    wal = (tmp_path / "wal" / "w.log").read_bytes()
    assert committed_batches(wal) == [[("put_job", "c", "c-1", {"n": 1})],
                                      [("put_job", "c", "c-1", {"n": 2})]]


def test_one_writer_name_is_open_in_one_place_at_a_time(tmp_path):
    store = FileStore(tmp_path, writer="w")
    with pytest.raises(StoreError, match="is already open"):
        FileStore(tmp_path, writer="w")
    store.close()
    FileStore(tmp_path, writer="w").close()


def test_replay_all_replays_every_writers_log_and_removes_them(tmp_path):
    for shard in range(3):
        with FileStore(tmp_path, writer=f"shard-{shard}") as store:
            store.write_batch([("put_job", f"c{shard}", f"c{shard}-1", {"shard": shard})])
    for path in tmp_path.glob("jobs/*/*.json"):
        path.unlink()  # lost to a power loss, say
    held = FileStore(tmp_path, writer="shard-0")
    with pytest.raises(StoreError, match="is already open"):
        FileStore.replay_all(tmp_path)
    held.close()
    assert FileStore.replay_all(tmp_path) == 2  # shard-0's log was replayed when it opened
    assert [FileStore(tmp_path).jobs(f"c{s}") for s in range(3)] == [[{"shard": s}] for s in range(3)]
    assert list((tmp_path / "wal").iterdir()) == []
