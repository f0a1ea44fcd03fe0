"""Where a worker (or any process started by an agent) finds the leading master's API.

The agent exports two variables to the processes it starts (its workers inherit them):

- ``MANTIS_MASTER_URL``: the API URL of the master the agent was told about;
- ``MANTIS_ZOOKEEPER`` (with ``MANTIS_LEADER_PATH``): when masters elect a leader, the
  ZooKeeper ensemble where the leader publishes its description.

``master_url()`` asks ZooKeeper first when it is configured, so that a process that
calls it again after a failover gets the new leader; otherwise it returns the fixed URL.
"""
from __future__ import annotations

import os

from mantis.ha.leader_election import DEFAULT_PATH, LeaderElectionError, find_leader

DEFAULT_URL = "http://127.0.0.1:8100"
URL_VAR = "MANTIS_MASTER_URL"
ZOOKEEPER_VAR = "MANTIS_ZOOKEEPER"
LEADER_PATH_VAR = "MANTIS_LEADER_PATH"


def master_url(timeout: float = 5.0) -> str:
    """The leading master's API URL as best known now (never raises; falls back to the URL)."""
    hosts = os.environ.get(ZOOKEEPER_VAR)
    if hosts:
        try:
            leader = find_leader(hosts, os.environ.get(LEADER_PATH_VAR, DEFAULT_PATH), timeout)
        except LeaderElectionError:
            leader = None
        if leader and leader.get("apiUrl"):
            return str(leader["apiUrl"])
    return os.environ.get(URL_VAR, DEFAULT_URL)
