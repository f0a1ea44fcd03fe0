"""Fixtures shared by every test folder, and SIGTERM handling for the whole run."""
import signal

import pytest

from mantis.tooling.local_processes import LocalCluster
from tests.support import make_config


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    """A test run killed with SIGTERM ends as Ctrl-C ends it: pytest then tears every
    fixture down, so the masters, agents and workers the tests started are stopped
    (by default Python dies of SIGTERM at once and they would outlive the run)."""
    signal.signal(signal.SIGTERM, _interrupt)


@pytest.fixture
def cluster(tmp_path):
    """A real master and agent process on free loopback ports, stopped after the test."""
    c = LocalCluster(make_config(tmp_path), tmp_path)
    c.start()
    yield c
    c.stop()
