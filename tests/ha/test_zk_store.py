"""The ZooKeeper store: FileStore's contract, kept in a real ZooKeeper."""
import pytest
from kazoo.client import KazooClient

from mantis.ha.leader_election import LeaderElection
from mantis.stores import open_store
from mantis.stores.file_store import FileStore, StoreError
from mantis.stores.group_commit import GroupCommitStore
from mantis.stores.zk_store import NotLeaderError, ZooKeeperStore
from tests.support import wait_for


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


@pytest.fixture(params=["file", "file-wal", "zookeeper"])
def any_store(request, tmp_path, zk_path):
    """Each store, opened the way a master opens it: through open_store(config).

    "file-wal" is the file store as a shard opens it, with a write-ahead log.
    """
    if request.param.startswith("file"):
        store = open_store({"type": "file", "path": str(tmp_path / "store")},
                           writer="shard-1" if request.param == "file-wal" else None)
        yield store
        store.close()
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


# -- batches -------------------------------------------------------------------------

def test_a_batch_has_the_same_effect_as_the_single_calls_in_order(any_store):
    record = {"text": "naïve / ünïcode", "nested": {"list": [1, "two"]}}
    any_store.put_job("beta", "beta-3", {"jobId": "beta-3", "state": "Launched"})
    any_store.write_batch([
        ("put_cluster", "gamma", {"name": "gamma"}),
        ("put_cluster", "alpha", {"name": "alpha", "old": "field"}),
        ("put_cluster", "beta", record),
        ("put_cluster", "alpha", {"name": "alpha"}),  # the same record twice in one batch
        ("delete_cluster", "gamma"),
        ("delete_cluster", "never-there"),
        ("put_job", "beta", "beta-2", {"jobId": "beta-2", "state": "Accepted"}),
        ("put_job", "beta", "beta-2", {"jobId": "beta-2", "state": "Launched"}),
        ("put_job", "beta", "beta-10", {"jobId": "beta-10", "state": "Launched"}),
        ("archive_job", "beta", "beta-10", {"jobId": "beta-10", "state": "Completed"}),  # put, then archived
        ("archive_job", "beta", "beta-3", {"jobId": "beta-3", "state": "Failed"}),  # stored before
        ("archive_job", "beta", "beta-7", {"jobId": "beta-7", "state": "Failed"}),  # never active
        ("archive_job", "beta", "beta-7", {"jobId": "beta-7", "state": "Failed", "again": 1}),
        ("put_job", "beta", "beta-1", {"jobId": "beta-1", "state": "Launched"}),
    ])
    assert any_store.clusters() == [{"name": "alpha"}, record]
    assert any_store.jobs("beta") == [{"jobId": "beta-1", "state": "Launched"},
                                      {"jobId": "beta-2", "state": "Launched"}]
    assert [j["jobId"] for j in any_store.archived_jobs("beta")] == ["beta-3", "beta-7", "beta-10"]
    assert any_store.archived_job("beta", "beta-7") == {"jobId": "beta-7", "state": "Failed", "again": 1}
    any_store.write_batch([])  # nothing to do
    any_store.write_batch([("delete_cluster", "never-there")])
    with pytest.raises(StoreError, match="cannot name a record"):
        any_store.write_batch([("put_cluster", "ok", {}), ("put_cluster", "a/b", {})])
    assert any_store.clusters() == [{"name": "alpha"}, record]  # checked before writing any


def test_a_batch_is_one_transaction(zk_store, kazoo, zk_path):
    zk_store.put_job("c", "c-1", {"v": 1})
    zk_store.put_job("c", "c-2", {"v": 1})
    zk_store.write_batch([("put_cluster", "c", {"v": 2}), ("put_job", "c", "c-1", {"v": 2}),
                          ("put_job", "c", "c-3", {"v": 2}),
                          ("archive_job", "c", "c-2", {"v": 2})])
    stats = [kazoo.exists(f"{zk_path}/{p}") for p in ("clusters/c", "jobs/c/c-3", "archive/c/c-2")]
    changed = kazoo.exists(f"{zk_path}/jobs/c/c-1")
    # One transaction, one zxid: every creation, change and removal carries the same one.
    zxids = {s.czxid for s in stats} | {changed.mzxid, kazoo.exists(f"{zk_path}/jobs/c").pzxid}
    assert len(zxids) == 1
    assert kazoo.exists(f"{zk_path}/jobs/c/c-2") is None


@pytest.fixture
def ephemeral_cluster(zk_store, zk_path):
    """A cluster "e" whose archive znode is ephemeral, so nothing can be archived under it."""
    client = KazooClient(zk_store.hosts)
    client.start(timeout=5)
    client.ensure_path(f"{zk_path}/archive")
    client.create(f"{zk_path}/archive/e", b"", ephemeral=True)
    yield "e"
    client.stop()
    client.close()


def test_a_batch_that_fails_writes_none_of_its_ops(zk_store, ephemeral_cluster):
    zk_store.put_job("e", "e-1", {"v": 1})
    with pytest.raises(StoreError, match="NoChildrenForEphemerals") as failed:
        zk_store.write_batch([("put_cluster", "e", {"v": 2}), ("put_job", "e", "e-1", {"v": 2}),
                              ("archive_job", "e", "e-1", {"v": 2})])
    assert failed.value.committed == 0
    assert zk_store.clusters() == [] and zk_store.jobs("e") == [{"v": 1}]


def test_a_batch_over_the_request_limit_is_split_and_says_what_it_committed(zk_store, kazoo, zk_path,
                                                                            ephemeral_cluster):
    pad = "x" * 400_000
    zk_store.write_batch([("put_job", "c", f"c-{n}", {"n": n, "pad": pad}) for n in range(5)])
    zxids = {kazoo.exists(f"{zk_path}/jobs/c/c-{n}").czxid for n in range(5)}
    assert len(zxids) == 3  # 2 + 2 + 1 records of 400 KB under a 1 MB request
    assert [j["n"] for j in zk_store.jobs("c")] == list(range(5))

    group = GroupCommitStore(zk_store)
    group.jobs("c")
    for n in range(3):
        group.put_job("c", f"c-{n}", {"n": n, "v": 2, "pad": pad})
    group.archive_job("e", "e-1", {"v": 2})  # in the second transaction: fails
    with pytest.raises(StoreError) as failed:
        group.flush()
    assert failed.value.committed == 2
    assert failed.value.keys == (("job", "c", "c-2"), ("job", "e", "e-1"))
    assert [group.durable(("job", "c", f"c-{n}"))["v"] for n in range(2)] == [2, 2]
    assert "v" not in group.durable(("job", "c", "c-2"))
    assert [j.get("v") for j in zk_store.jobs("c")] == [2, 2, None, None, None]


def test_a_batch_under_a_lost_lease_writes_nothing(zookeeper, zk_path):
    election = LeaderElection(zookeeper.hosts, f"{zk_path}/leader", {"host": "a"}, session_timeout=4.0)
    election.start()
    wait_for(election.is_leader, timeout=5, interval=0.02, what="the master to lead")
    lease = election.lease
    # As a shard in another process knows the term: by its znode only.
    store = open_store({"type": "zookeeper", "hosts": zookeeper.hosts, "root": zk_path,
                        "lease_node": lease.node_path, "lease_version": lease.node_version})
    try:
        group = GroupCommitStore(store)
        group.put_cluster("c", {"term": 1})
        group.put_job("c", "c-1", {"term": 1})
        group.flush()
        election.stop()
        group.put_cluster("c", {"term": 1, "stale": True})
        group.put_job("c", "c-1", {"term": 1, "stale": True})
        group.put_job("c", "c-2", {"term": 1, "stale": True})
        group.archive_job("c", "c-1", {"term": 1, "stale": True})
        with pytest.raises(NotLeaderError, match="no longer held") as refused:
            group.flush()
        assert set(refused.value.keys) == {("cluster", "c"), ("job", "c", "c-1"), ("job", "c", "c-2")}
        assert refused.value.committed == 0
        assert group.durable(("cluster", "c")) == {"term": 1}
        assert group.durable(("job", "c", "c-1")) == {"term": 1}
        assert group.durable(("job", "c", "c-2")) is None
        assert store.clusters() == [{"term": 1}]
        assert store.jobs("c") == [{"term": 1}] and store.archived_jobs("c") == []
    finally:
        store.close()
        election.stop()


def test_a_masters_own_record_round_trips_in_every_store_and_is_not_a_cluster(any_store):
    # The Mesos framework id lives here, so a restarted or new leader subscribes as the same framework.
    assert any_store.meta("mesos-framework") is None
    any_store.put_meta("mesos-framework", {"frameworkId": "f-1"})
    any_store.put_meta("mesos-framework", {"frameworkId": "f-2"})
    assert any_store.meta("mesos-framework") == {"frameworkId": "f-2"}
    assert any_store.clusters() == []
