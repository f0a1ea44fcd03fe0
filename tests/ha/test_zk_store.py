"""The ZooKeeper store: FileStore's contract, kept in a real ZooKeeper."""
import pytest
from kazoo.client import KazooClient

from mantis.store import FileStore, StoreError, open_store
from mantis.zk_store import ZooKeeperStore


@pytest.fixture
def zk_store(zookeeper, zk_path):
    store = ZooKeeperStore(zookeeper.hosts, root=zk_path, timeout=5.0)
    yield store
    store.close()


@pytest.fixture
def kazoo(zookeeper):
    client = KazooClient(zookeeper.hosts)
    client.start(timeout=5)
    yield client
    client.stop()
    client.close()


@pytest.fixture(params=["file", "zookeeper"])
def any_store(request, tmp_path, zk_path):
    """Each store, opened the way a master opens it: through open_store(config)."""
    if request.param == "file":
        yield open_store({"type": "file", "path": str(tmp_path / "store")})
        return
    zookeeper = request.getfixturevalue("zookeeper")
    store = open_store({"type": "zookeeper", "hosts": zookeeper.hosts, "root": zk_path, "timeout_s": 5})
    yield store
    store.close()


def test_records_round_trip_and_ended_jobs_move_to_the_archive(zk_store, zookeeper, zk_path):
    zk_store.put_cluster("c", {"definition": {"name": "c"}})
    zk_store.put_job("c", "c-2", {"jobId": "c-2"})
    zk_store.put_job("c", "c-10", {"jobId": "c-10"})
    assert [j["jobId"] for j in zk_store.jobs("c")] == ["c-2", "c-10"]
    zk_store.archive_job("c", "c-2", {"jobId": "c-2", "state": "Completed"})
    assert [j["jobId"] for j in zk_store.jobs("c")] == ["c-10"]
    assert zk_store.archived_job("c", "c-2")["state"] == "Completed"
    with ZooKeeperStore(zookeeper.hosts, root=zk_path) as reopened:
        assert reopened.clusters() == [{"definition": {"name": "c"}}]
    zk_store.delete_cluster("c")
    assert zk_store.clusters() == []


def test_both_stores_answer_the_same_calls_with_the_same_results(any_store):
    store = any_store
    record = {"text": "naïve / ünïcode", "n": 3, "x": 1.5, "ok": True, "none": None,
              "nested": {"list": [1, "two", {"three": 3}]}}
    store.put_cluster("gamma", {"name": "gamma"})
    store.put_cluster("alpha", {"name": "alpha", "old": "field"})
    store.put_cluster("beta", record)
    store.put_cluster("alpha", {"name": "alpha"})  # replaced whole: "old" is gone
    store.delete_cluster("gamma")
    store.delete_cluster("never-there")
    for number in (2, 10, 1):
        store.put_job("beta", f"beta-{number}", {"jobId": f"beta-{number}", "state": "Launched"})
    store.archive_job("beta", "beta-10", {"jobId": "beta-10", "state": "Completed"})
    store.archive_job("beta", "beta-7", {"jobId": "beta-7", "state": "Failed"})  # never active
    store.archive_job("beta", "beta-7", {"jobId": "beta-7", "state": "Failed", "again": 1})

    results = [store.clusters(), store.jobs("beta"), store.archived_jobs("beta"),
               store.archived_job("beta", "beta-10"), store.archived_job("beta", "beta-99"),
               store.jobs("no-such-cluster"), store.archived_jobs("no-such-cluster")]

    assert results == [
        [{"name": "alpha"}, record],
        [{"jobId": "beta-1", "state": "Launched"}, {"jobId": "beta-2", "state": "Launched"}],
        [{"jobId": "beta-7", "state": "Failed", "again": 1}, {"jobId": "beta-10", "state": "Completed"}],
        {"jobId": "beta-10", "state": "Completed"},
        None,
        [],
        [],
    ]
    assert store.describe()["type"] == ("file" if isinstance(store, FileStore) else "zookeeper")


def test_archiving_removes_the_active_record_in_the_same_transaction(zk_store, kazoo, zk_path):
    zk_store.put_job("c", "c-1", {"jobId": "c-1"})
    zk_store.archive_job("c", "c-1", {"jobId": "c-1", "state": "Completed"})
    _, archived = kazoo.get(f"{zk_path}/archive/c/c-1")
    _, active_parent = kazoo.get(f"{zk_path}/jobs/c")
    # One transaction, one zxid: the archive record's creation and the active record's
    # removal (the last change to its parent's children) carry the same one.
    assert archived.czxid == active_parent.pzxid
    assert kazoo.exists(f"{zk_path}/jobs/c/c-1") is None


def test_a_record_over_the_znode_limit_is_refused_with_a_store_error(zk_store):
    with pytest.raises(StoreError, match="over the 1,000,000-byte limit of one ZooKeeper znode"):
        zk_store.put_job("c", "c-1", {"jobId": "c-1", "pad": "x" * 1_000_000})
    zk_store.put_job("c", "c-1", {"jobId": "c-1", "pad": "x" * 900_000})  # still connected
    assert len(zk_store.jobs("c")[0]["pad"]) == 900_000


def test_a_name_that_is_not_one_znode_is_refused(zk_store):
    for bad in ("a/b", "", "..", "."):
        with pytest.raises(StoreError, match="cannot name a record"):
            zk_store.put_cluster(bad, {})


def test_an_unreachable_zookeeper_gives_one_line_store_errors(private_zookeeper, zk_path):
    store = ZooKeeperStore(private_zookeeper.hosts, root=zk_path, timeout=1.5)
    try:
        store.put_cluster("c", {"name": "c"})
        private_zookeeper.kill9()
        with pytest.raises(StoreError) as refused:
            store.put_cluster("c", {"name": "c", "v": 2})
        assert "\n" not in str(refused.value) and str(refused.value)
        with pytest.raises(StoreError) as unread:
            store.clusters()
        assert "\n" not in str(unread.value)
    finally:
        store.close()
    with pytest.raises(StoreError, match="not reachable within 1.0s"):
        ZooKeeperStore(private_zookeeper.hosts, root=zk_path, timeout=1.0)


def test_the_file_store_stays_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert isinstance(open_store({}), FileStore)
    with pytest.raises(StoreError, match="known: file, zookeeper"):
        open_store({"type": "etcd"})
