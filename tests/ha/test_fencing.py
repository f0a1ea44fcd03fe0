"""Fencing: only the current leader's writes reach the ZooKeeper store."""
import pytest

from mantis.ha.leader_election import LeaderElection
from mantis.stores import open_store
from mantis.stores.zk_store import NotLeaderError, ZooKeeperStore
from tests.support import wait_for


@pytest.fixture
def two_masters(zookeeper, zk_path):
    first = LeaderElection(zookeeper.hosts, f"{zk_path}/leader", {"host": "a"}, session_timeout=4.0)
    first.start()
    wait_for(first.is_leader, timeout=5, interval=0.02, what="the first master to lead")
    second = LeaderElection(zookeeper.hosts, f"{zk_path}/leader", {"host": "b"}, session_timeout=4.0)
    second.start()
    yield first, second
    first.stop()
    second.stop()


def test_a_write_from_a_non_leader_is_refused(two_masters, zookeeper, zk_path):
    first, second = two_masters
    old = ZooKeeperStore(zookeeper.hosts, root=zk_path, lease=first.lease)
    new = ZooKeeperStore(zookeeper.hosts, root=zk_path)
    try:
        old.put_job("c", "c-1", {"by": "a"})
        first.stop()
        wait_for(second.is_leader, timeout=5, interval=0.02, what="the second master to lead")
        new.use_lease(second.lease)
        with pytest.raises(NotLeaderError, match="no longer held|was revoked"):
            old.put_job("c", "c-1", {"by": "a", "stale": True})
        with pytest.raises(NotLeaderError):
            old.archive_job("c", "c-1", {"by": "a"})
        with pytest.raises(NotLeaderError):
            old.delete_cluster("c")
        new.put_job("c", "c-1", {"by": "b"})
        assert old.jobs("c") == [{"by": "b"}]  # a fenced store still reads
    finally:
        old.close()
        new.close()


def test_zookeeper_itself_refuses_a_write_from_a_term_that_is_over(two_masters, zookeeper, zk_path):
    # An actor in another process knows the term only by its znode (no local flag to
    # consult), as open_store gives it: ZooKeeper's check in the transaction refuses it.
    first, second = two_masters
    config = {"type": "zookeeper", "hosts": zookeeper.hosts, "root": zk_path,
              "lease_node": first.lease.node_path, "lease_version": first.lease.node_version}
    actor_store = open_store(config)
    try:
        actor_store.put_cluster("c", {"term": 1})
        assert actor_store.describe()["fenced"] is True
        first.stop()
        with pytest.raises(NotLeaderError, match="no longer held"):
            actor_store.put_cluster("c", {"term": 1, "stale": True})
        assert actor_store.clusters() == [{"term": 1}]
    finally:
        actor_store.close()
