"""Several real masters electing a leader in a real ZooKeeper: failover, step-down, one leader."""
import os
import re
import signal
import subprocess
import sys
import time
import uuid

import pytest

from mantis.tooling.local_processes import HaCluster, api
from tests.ha.tcp_proxy import TcpProxy
from tests.sse_client import read_sse
from tests.support import job_id_of, job_workers, listed, make_config, wait_for

TWO_STAGES = {"name": "keyed", "url": "mantis.examples.keyed_count:job",
              "parameters": [{"name": "rate", "value": 200}, {"name": "keys", "value": 10}],
              "schedulingInfo": {"stages": {
                  "1": {"numberOfInstances": 1, "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}},
                  "2": {"numberOfInstances": 2, "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}}}


def ha_config(tmp_path):
    """Short timeouts, and a private election path and store root in the shared ZooKeeper."""
    tag = uuid.uuid4().hex[:10]
    return make_config(tmp_path, **{"leader_election.session_timeout_s": 4,
                                    "leader_election.path": f'"/{tag}/leader"',
                                    "store.root": f'"/{tag}/store"', "workers.heartbeat_timeout_s": 8})


@pytest.fixture
def ha(zookeeper, tmp_path):
    cluster = HaCluster(ha_config(tmp_path), tmp_path, zookeeper.hosts, masters=2)
    yield cluster
    cluster.stop()


def started_workers(ha, job_id, count):
    status, job = ha.call("GET", f"/api/v1/jobs/{job_id}")
    workers = [w for w in job_workers(job) if w["state"] == "Started"] if status == 200 else []
    return workers if len(workers) == count else None


def leadership_terms(log_text: str) -> list[tuple[str, str]]:
    """(event, timestamp) for every 'elected leader' / 'leadership lost' line of a master log."""
    found = []
    for line in log_text.splitlines():
        m = re.match(r"(\S+ \S+) INFO mantis.master elected leader|(\S+ \S+) WARNING mantis.master leadership lost", line)
        if m:
            found.append(("elected" if m.group(1) else "lost", m.group(1) or m.group(2)))
    return found


def test_leader_killed_standby_leads_and_the_two_stage_job_streams_on_with_no_worker_restarted(ha):
    ha.start()
    assert ha.leaders() == [0]
    standby = ha.info(1)
    assert standby["leader"] is False and standby["leaderUrl"] == ha.urls[0]
    assert ha.call("POST", "/api/v1/jobClusters", TWO_STAGES)[0] == 201
    status, body = ha.call("POST", "/api/v1/jobClusters/keyed/jobs", {"user": "ha"})
    assert status == 201, body
    job_id = job_id_of(body)
    before = wait_for(lambda: started_workers(ha, job_id, 3), timeout=60, what="3 workers Started")
    assert read_sse(f"{ha.urls[0]}/api/v1/jobs/{job_id}/output", 5)
    agent_pids = set(ha.agent.pids())

    ha.masters[0].kill9()
    # Restarted at once on the same port (as a supervisor would), it finds its own stale
    # description in ZooKeeper: it must not redirect to itself, nor lead before the standby.
    ha.masters[0].start()
    wait_for(lambda: ha.info(0), timeout=30, what="master 0 back")
    assert ha.info(0)["leaderUrl"] in (None, ha.urls[1])

    assert ha.wait_leader(timeout=30, among=[1]) == 1
    assert ha.leaders() == [1] and wait_for(lambda: ha.info(0)["leaderUrl"] == ha.urls[1], timeout=10,
                                            what="the restarted master naming the new leader")
    after = wait_for(lambda: started_workers(ha, job_id, 3), timeout=30, what="the job back on the new leader")
    # The standby redirects to the leader: the old URL is dead, the new one serves the output.
    events = read_sse(f"{ha.urls[1]}/api/v1/jobs/{job_id}/output", 5)
    assert len(events) == 5 and all("user" in e for e in events), events
    wait_for(lambda: ha.urls[1] in ha.agent.output(), timeout=20, what="the agent following the new leader")
    # Heartbeats reach the new leader past a whole heartbeat timeout after the failover:
    # the grace period ended and nothing was replaced.
    beyond = (time.time() + 8) * 1000  # epoch ms, as the API gives times

    def heartbeats_past_the_timeout():
        workers = started_workers(ha, job_id, 3)
        return workers if workers and all(w["lastHeartbeatAt"] > beyond for w in workers) else None

    after = wait_for(heartbeats_past_the_timeout, timeout=40, what="heartbeats a timeout after the failover")
    assert {w["workerNumber"] for w in after} == {w["workerNumber"] for w in before}
    assert listed(api(ha.urls[1], path=f"/api/v1/jobs/{job_id}/archivedWorkers")[1]) == []
    # Not one process of the agent (its workers included) died or was added.
    assert set(ha.agent.pids()) == agent_pids


def test_standby_redirects_every_call_to_the_leader_and_the_cli_follows(ha):
    ha.start()
    status, reply = api(ha.urls[1], "POST", "/api/v1/jobClusters", TWO_STAGES)
    assert status == 307 and reply["leader"] == ha.urls[0]
    from mantis.cli import call

    created = call(ha.urls[1], "POST", "/api/v1/jobClusters", TWO_STAGES)
    assert created["name"] == "keyed"
    assert [c["name"] for c in listed(api(ha.urls[0], path="/api/v1/jobClusters")[1])] == ["keyed"]
    # The CLI finds the leader in ZooKeeper, or says in one line that nobody leads.
    path = ha.config["leader_election"]["path"]
    cli_list = run_cli("cluster", "list", "--zookeeper", ha.config["leader_election"]["hosts"], "--leader-path", path)
    assert cli_list.returncode == 0 and cli_list.stdout.startswith("keyed\tEnabled"), cli_list.stderr
    nobody = run_cli("cluster", "list", "--zookeeper", ha.config["leader_election"]["hosts"],
                     "--leader-path", path + "-nobody")
    assert nobody.returncode == 1 and nobody.stderr.strip().count("\n") == 0
    assert "no master leads" in nobody.stderr


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mantis.cli", *args], capture_output=True, text=True, timeout=60)


def test_leader_cut_off_from_zookeeper_steps_down_and_never_two_lead(zookeeper, tmp_path):
    host, port = zookeeper.hosts.split(",")[0].rsplit(":", 1)
    with TcpProxy((host, int(port))) as proxy:
        ha = HaCluster(ha_config(tmp_path), tmp_path, zookeeper.hosts, masters=2,
                       master_zookeeper=[proxy.hosts, zookeeper.hosts])
        try:
            ha.start()
            assert ha.leaders() == [0]
            samples = []
            proxy.cut()  # master 0 loses ZooKeeper; nothing else does
            def new_leader():
                leaders = ha.leaders()
                samples.append(leaders)
                return leaders == [1]
            wait_for(new_leader, timeout=30, interval=0.1, what="master 1 leading, master 0 stood down")
            assert all(len(s) <= 1 for s in samples), samples
            old = ha.info(0)
            assert old["leader"] is False and old["role"] == "Standby", old
            status, reply = api(ha.urls[0], "GET", "/api/v1/jobClusters")
            assert status in (307, 503), (status, reply)
            assert ha.call("GET", "/api/v1/jobClusters")[0] == 200
        finally:
            ha.stop()
    # From the logs: master 0's term ended before master 1's began.
    terms0 = leadership_terms(ha.masters[0].output())
    terms1 = leadership_terms(ha.masters[1].output())
    assert [e for e, _ in terms0][:2] == ["elected", "lost"], terms0
    assert terms1 and terms1[0][0] == "elected", terms1
    assert terms0[1][1] <= terms1[0][1], (terms0, terms1)


def test_zookeeper_crash_makes_the_leader_step_down_and_a_leader_returns_with_it(private_zookeeper, tmp_path):
    ha = HaCluster(ha_config(tmp_path), tmp_path, private_zookeeper.hosts, masters=2)
    try:
        ha.start()
        assert ha.call("POST", "/api/v1/jobClusters", TWO_STAGES)[0] == 201
        job_id = job_id_of(ha.call("POST", "/api/v1/jobClusters/keyed/jobs", {"user": "ha"})[1])
        before = wait_for(lambda: started_workers(ha, job_id, 3), timeout=60, what="3 workers Started")
        agent_pids = set(ha.agent.pids())

        private_zookeeper.kill9()
        # Without ZooKeeper nobody may lead: both masters stand by and refuse to act.
        wait_for(lambda: not ha.leaders() and all(ha.info(i) for i in (0, 1)), timeout=15,
                 what="both masters standing by")
        assert api(ha.urls[0], "GET", "/api/v1/jobs")[0] == 503

        private_zookeeper.start()
        leader = ha.wait_leader(timeout=60)
        after = wait_for(lambda: started_workers(ha, job_id, 3), timeout=60, what="the job back")
        assert {w["workerNumber"] for w in after} == {w["workerNumber"] for w in before}
        assert read_sse(f"{ha.urls[leader]}/api/v1/jobs/{job_id}/output", 3)
        assert set(ha.agent.pids()) == agent_pids
    finally:
        ha.stop()


def test_after_failover_only_the_worker_that_died_meanwhile_is_replaced(ha):
    ha.start()
    assert ha.call("POST", "/api/v1/jobClusters", TWO_STAGES)[0] == 201
    job_id = job_id_of(ha.call("POST", "/api/v1/jobClusters/keyed/jobs", {"user": "ha"})[1])
    before = wait_for(lambda: started_workers(ha, job_id, 3), timeout=60, what="3 workers Started")
    victim = next(w for w in before if w["stageNum"] == 2)
    ha.masters[0].kill9()
    os.kill(victim["metrics"]["pid"], signal.SIGKILL)  # dies while no master leads

    assert ha.wait_leader(timeout=30, among=[1]) == 1

    def victim_replaced():
        workers = started_workers(ha, job_id, 3)
        numbers = {w["workerNumber"] for w in workers or []}
        return workers if workers and victim["workerNumber"] not in numbers else None

    after = wait_for(victim_replaced, timeout=60, what="the dead worker replaced")
    kept = {w["workerNumber"] for w in before} - {victim["workerNumber"]}
    assert kept < {w["workerNumber"] for w in after}
    replacement = next(w for w in after if w["workerNumber"] not in kept)
    assert (replacement["stageNum"], replacement["workerIndex"]) == (2, victim["workerIndex"])
    assert replacement["resubmitOf"] == victim["workerNumber"]
    archived = listed(api(ha.urls[1], path=f"/api/v1/jobs/{job_id}/archivedWorkers")[1])
    assert [w["workerNumber"] for w in archived] == [victim["workerNumber"]]
