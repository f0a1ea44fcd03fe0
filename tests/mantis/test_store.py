"""The file store: atomic records that survive a kill -9 mid-write."""
import os
import signal
import subprocess
import sys
import textwrap

from mantis.store import FileStore


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
        from mantis.store import FileStore
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
