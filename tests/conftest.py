"""Fixtures shared by every test folder."""
import pytest

from mantis.tooling.local_processes import LocalCluster
from tests.support import make_config


@pytest.fixture
def cluster(tmp_path):
    """A real master and agent process on free loopback ports, stopped after the test."""
    c = LocalCluster(make_config(tmp_path), tmp_path)
    c.start()
    yield c
    c.stop()
