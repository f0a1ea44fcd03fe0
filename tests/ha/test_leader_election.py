"""Leader election on a real ZooKeeper: one leader, found by all, replaced when it dies."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from mantis.ha.leader_election import LeaderElection, LeaderElectionError, find_leader
from mantis.stores.zk_store import NotLeaderError, ZooKeeperStore
from tests.support import free_port, wait_for

SESSION_TIMEOUT = 4.0
PARTICIPANT = Path(__file__).with_name("participant.py")


class Participant:
    """A LeaderElection that records what it was told, and when."""

    def __init__(self, hosts, path, name, registry):
        self.name, self.events, self.registry = name, [], registry
        self.election = LeaderElection(hosts, path, {"host": name, "api_port": 8100},
                                       on_elected=self._elected, on_lost=self._lost,
                                       session_timeout=SESSION_TIMEOUT)

    def _elected(self, lease):
        self.registry.enter(self.name)
        self.events.append(("elected", time.monotonic()))

    def _lost(self):
        self.registry.leave(self.name)
        self.events.append(("lost", time.monotonic()))

    def told(self, what):
        return [t for kind, t in self.events if kind == what]


class Leaders:
    """Who believes it leads, as the callbacks say; remembers the most at once."""

    def __init__(self):
        self.now, self.most, self._lock = set(), 0, threading.Lock()

    def enter(self, name):
        with self._lock:
            self.now.add(name)
            self.most = max(self.most, len(self.now))

    def leave(self, name):
        with self._lock:
            self.now.discard(name)


@pytest.fixture
def leaders():
    return Leaders()


@pytest.fixture
def join(zookeeper, zk_path, leaders):
    """join(name) starts a participant in this test's election; all stop at the end."""
    started = []

    def start(name):
        participant = Participant(zookeeper.hosts, f"{zk_path}/leader", name, leaders)
        participant.election.start()
        started.append(participant)
        return participant

    yield start
    for participant in started:
        participant.election.stop()


def the_leader(participants):
    leading = [p for p in participants if p.election.is_leader()]
    return leading[0] if len(leading) == 1 else None


def expire_session(hosts, client):
    """End ``client``'s session from outside, as ZooKeeper does when it times out."""
    twin = KazooClient(hosts, client_id=client.client_id)
    twin.start(timeout=5)
    twin.stop()  # closes the shared session: its ephemeral znodes go at once
    twin.close()


def test_of_three_participants_exactly_one_leads(join, leaders):
    group = [join(f"master-{i}") for i in range(3)]
    leader = wait_for(lambda: the_leader(group), timeout=5, interval=0.02, what="a leader")
    time.sleep(0.5)  # give a second leader, if there were one, time to appear
    assert [p for p in group if p.election.is_leader()] == [leader]
    assert leaders.now == {leader.name} and leaders.most == 1


def test_a_third_client_reads_the_leaders_description(join, zookeeper, zk_path):
    assert find_leader(zookeeper.hosts, f"{zk_path}/leader") is None  # nobody yet
    first, second = join("master-a"), join("master-b")
    leader = wait_for(lambda: the_leader([first, second]), timeout=5, interval=0.02, what="a leader")
    standby = second if leader is first else first
    expected = {"host": leader.name, "api_port": 8100}
    assert find_leader(zookeeper.hosts, f"{zk_path}/leader") == expected
    assert standby.election.current_leader() == expected


def test_finding_the_leader_without_zookeeper_is_a_clear_error():
    with pytest.raises(LeaderElectionError, match="not reachable within 1.0s"):
        find_leader(f"127.0.0.1:{free_port()}", timeout=1.0)


def test_when_the_leader_stops_a_standby_takes_over_at_once(join, zookeeper, zk_path, leaders):
    first, second = join("master-a"), join("master-b")
    leader = wait_for(lambda: the_leader([first, second]), timeout=5, interval=0.02, what="a leader")
    standby = second if leader is first else first
    stopped = time.monotonic()
    leader.election.stop()
    assert leader.told("lost")
    wait_for(standby.election.is_leader, timeout=2, interval=0.01, what="the standby to lead")
    assert standby.told("elected")[0] - stopped < 1.0  # no session timeout to wait for
    assert find_leader(zookeeper.hosts, f"{zk_path}/leader")["host"] == standby.name
    assert leaders.most == 1


def test_a_leader_whose_session_is_killed_reports_lost_refuses_writes_and_a_standby_leads(
        join, zookeeper, zk_path, leaders):
    first, second = join("master-a"), join("master-b")
    leader = wait_for(lambda: the_leader([first, second]), timeout=5, interval=0.02, what="a leader")
    standby = second if leader is first else first
    store = ZooKeeperStore(zookeeper.hosts, root=zk_path, timeout=5.0, lease=leader.election.lease)
    try:
        store.put_cluster("c", {"writer": leader.name})
        killed = time.monotonic()
        expire_session(zookeeper.hosts, leader.election.client)
        wait_for(lambda: leader.told("lost"), timeout=SESSION_TIMEOUT, interval=0.01,
                 what="on_lost on the old leader")
        with pytest.raises(NotLeaderError):
            store.put_cluster("c", {"writer": leader.name, "late": True})
        wait_for(standby.election.is_leader, timeout=SESSION_TIMEOUT, interval=0.01,
                 what="the standby to lead")
        assert standby.told("elected")[0] - killed < SESSION_TIMEOUT
        # The old leader comes back with a new session, as a standby.
        wait_for(lambda: len(standby.election.client.get_children(f"{zk_path}/leader/candidates")) == 2,
                 timeout=SESSION_TIMEOUT, interval=0.05, what="the old leader to rejoin")
        assert not leader.election.is_leader() and leaders.most == 1
        assert store.clusters() == [{"writer": leader.name}]
    finally:
        store.close()


def test_a_leader_cut_off_from_zookeeper_steps_down_at_once_and_rejoins(private_zookeeper, zk_path,
                                                                        leaders):
    only = Participant(private_zookeeper.hosts, f"{zk_path}/leader", "master-a", leaders)
    only.election.start()
    try:
        wait_for(only.election.is_leader, timeout=5, interval=0.02, what="a leader")
        old_lease = only.election.lease
        cut = time.monotonic()
        private_zookeeper.kill9()
        wait_for(lambda: only.told("lost"), timeout=SESSION_TIMEOUT, interval=0.01, what="on_lost")
        assert only.told("lost")[0] - cut < SESSION_TIMEOUT * 2 / 3
        assert not old_lease.is_valid()
        # Back before its session expired: it resigns that term and is elected anew.
        private_zookeeper.start()
        wait_for(lambda: len(only.told("elected")) == 2, timeout=3 * SESSION_TIMEOUT,
                 interval=0.05, what="re-election")
        assert only.election.lease is not old_lease and not old_lease.is_valid()
        assert leaders.most == 1
    finally:
        only.election.stop()


def test_a_leader_killed_minus_9_is_replaced_within_the_session_timeout(join, zookeeper, zk_path):
    args = [sys.executable, str(PARTICIPANT), zookeeper.hosts, f"{zk_path}/leader",
            str(SESSION_TIMEOUT), json.dumps({"host": "process-master", "api_port": 8100})]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert process.stdout.readline().startswith("started")
        assert process.stdout.readline().startswith("elected")  # first in: it leads
        standby = join("standby")
        time.sleep(0.3)
        assert not standby.election.is_leader()
        assert standby.election.current_leader()["host"] == "process-master"
        killed = time.monotonic()
        os.kill(process.pid, signal.SIGKILL)
        wait_for(standby.election.is_leader, timeout=SESSION_TIMEOUT + 3, interval=0.01,
                 what="the standby to lead")
        takeover = standby.told("elected")[0] - killed
        print(f"takeover after kill -9 with a {SESSION_TIMEOUT}s session: {takeover:.2f}s")
        # ZooKeeper expires sessions on tick boundaries, so allow one tick (0.5 s) past it.
        assert SESSION_TIMEOUT * 0.5 < takeover < SESSION_TIMEOUT + 1.0
        assert standby.election.current_leader()["host"] == "standby"
    finally:
        process.kill()
        process.wait(10)


def test_no_two_participants_lead_at_once_while_leaders_come_and_go(join, zookeeper, leaders):
    group = [join(f"master-{i}") for i in range(3)]
    for round_number in range(4):
        leader = wait_for(lambda: the_leader(group), timeout=SESSION_TIMEOUT + 2, interval=0.01,
                          what="a leader")
        if round_number % 2:
            expire_session(zookeeper.hosts, leader.election.client)  # it will rejoin
            wait_for(lambda: leader.told("lost"), timeout=SESSION_TIMEOUT, interval=0.01, what="lost")
        else:
            leader.election.stop()
            group.remove(leader)
            group.append(join(f"master-new-{round_number}"))
    wait_for(lambda: the_leader(group), timeout=SESSION_TIMEOUT + 2, interval=0.01, what="a leader")
    assert leaders.most == 1
