"""A real ZooKeeper for the HA tests: one per session, or a private one to crash."""
import uuid

import pytest

from mantis.tooling.zookeeper_server import ZK_SERVER_SCRIPT, ZooKeeperServer, zookeeper_installed

NOT_INSTALLED = (f"ZooKeeper is not installed ({ZK_SERVER_SCRIPT} missing): "
                 "run scripts/install_zookeeper.sh (Debian package zookeeper, needs Java)")


@pytest.fixture(scope="session")
def zookeeper():
    """One ZooKeeper server (tickTime 500 ms: sessions of 1-10 s) shared by the session."""
    if not zookeeper_installed():
        pytest.skip(NOT_INSTALLED)
    with ZooKeeperServer(tick_time_ms=500) as server:
        yield server


@pytest.fixture
def private_zookeeper():
    """A ZooKeeper server of this test's own, which the test may kill and restart."""
    if not zookeeper_installed():
        pytest.skip(NOT_INSTALLED)
    with ZooKeeperServer(tick_time_ms=500) as server:
        yield server


@pytest.fixture
def zk_path():
    """A znode path no other test uses, so tests can share one server."""
    return f"/test-{uuid.uuid4().hex[:12]}"
