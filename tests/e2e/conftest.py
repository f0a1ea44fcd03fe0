import pytest

from mantis.local_processes import LocalCluster as Cluster
from tests.support import make_config


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(make_config(tmp_path), tmp_path)
    c.start()
    yield c
    c.stop()
