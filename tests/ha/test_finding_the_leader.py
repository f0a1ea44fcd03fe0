"""Workers and agents find the leader in ZooKeeper; the leader's actors write under its lease."""
import pytest

from actors.agent_runner import MasterLocator
from mantis import config as config_module
from mantis.ha import master_address
from mantis.ha.leader_election import LeaderElection
from mantis.stores import open_store
from mantis.stores.zk_store import NotLeaderError
from tests.support import wait_for
from webapi.server import lease_config


def test_master_url_follows_the_leader_published_in_zookeeper(zookeeper, zk_path, monkeypatch):
    monkeypatch.setenv(master_address.URL_VAR, "http://127.0.0.1:1")
    monkeypatch.setenv(master_address.ZOOKEEPER_VAR, zookeeper.hosts)
    monkeypatch.setenv(master_address.LEADER_PATH_VAR, f"{zk_path}/leader")
    assert master_address.master_url() == "http://127.0.0.1:1"  # nobody leads yet: the fallback
    with LeaderElection(zookeeper.hosts, f"{zk_path}/leader", {"apiUrl": "http://127.0.0.1:2"}) as first:
        wait_for(first.is_leader, timeout=10, what="the first master to lead")
        second = LeaderElection(zookeeper.hosts, f"{zk_path}/leader", {"apiUrl": "http://127.0.0.1:3"}).start()
        try:
            wait_for(lambda: master_address.master_url() == "http://127.0.0.1:2", timeout=10,
                     what="the first leader's URL")
            first.stop()
            wait_for(lambda: master_address.master_url() == "http://127.0.0.1:3", timeout=10,
                     what="the second leader's URL after the first resigned")
        finally:
            second.stop()


def test_agent_locator_reads_the_leader_and_none_while_nobody_leads(zookeeper, zk_path):
    config = config_module.load(None, [f'leader_election.hosts="{zookeeper.hosts}"',
                                       f'leader_election.path="{zk_path}/leader"'])
    locator = MasterLocator(config, "http://127.0.0.1:1")
    try:
        wait_for(lambda: locator.follower._client.connected, timeout=10, what="the locator connected")
        assert locator.url() is None
        with LeaderElection(zookeeper.hosts, f"{zk_path}/leader", {"apiUrl": "http://127.0.0.1:4"}) as e:
            wait_for(e.is_leader, timeout=10, what="a leader")
            assert wait_for(locator.url, timeout=10, what="the leader's URL") == "http://127.0.0.1:4"
    finally:
        locator.close()


def test_actors_given_the_leaders_config_write_only_during_its_term(zookeeper, zk_path):
    config = config_module.load(None, ["store.type=zookeeper", f'store.hosts="{zookeeper.hosts}"',
                                       f'store.root="{zk_path}/store"'])
    with LeaderElection(zookeeper.hosts, f"{zk_path}/leader", {}) as election:
        wait_for(election.is_leader, timeout=10, what="a leader")
        fenced = lease_config(config, election.lease)
        assert config["store"]["lease_node"] == ""  # the given config is left alone
        store = open_store(fenced["store"])
        try:
            store.put_cluster("c", {"name": "c"})
            election.stop()
            with pytest.raises(NotLeaderError):
                store.put_cluster("c", {"name": "c", "late": True})
            assert store.clusters() == [{"name": "c"}]
        finally:
            store.close()
