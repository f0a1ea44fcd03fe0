"""Three agent processes with their own actor systems, hosts and zones, one master."""
import pytest

from mantis.tooling.local_processes import LocalCluster, Service
from tests.support import free_port, free_port_range, job_id_of, make_config, started_workers, wait_for

ZONES = {"a": "127.0.0.2", "b": "127.0.0.3", "c": "127.0.0.4"}


@pytest.fixture
def three_agents(tmp_path):
    cluster = LocalCluster(make_config(tmp_path), tmp_path)
    cluster.start_master()
    agents = {}
    for zone, host in ZONES.items():
        agents[zone] = Service(["agent", "--config", str(cluster.config_path), "--master", cluster.url,
                                "--id", f"agent-{zone}", "--agent-admin-port", str(free_port()),
                                "--hostname", host, "--attribute", f"zone={zone}",
                                "--ports", free_port_range(), "--cpus", "4", "--mem", "4096"],
                               tmp_path / f"agent-{zone}.log").start()
    wait_for(lambda: cluster.call("GET", "/api/v1/agents")[1]["total"] == 3, timeout=30, what="3 agents")
    yield cluster, agents
    for agent in agents.values():
        agent.stop()
    cluster.master.stop()


def placed(cluster, job_id, count):
    status, job = cluster.call("GET", f"/api/v1/jobs/{job_id}")
    workers = started_workers(job)
    return workers if len(workers) == count else None


def zone_of(worker):
    return worker["agentId"].rpartition("-")[2]


def test_unique_host_and_group_by_zone_place_workers_apart_and_survive_agent_loss(three_agents):
    cluster, agents = three_agents
    definition = {"name": "spread", "url": "mantis.examples.synthetic:job",
                  "schedulingInfo": {"stages": {"1": {
                      "numberOfInstances": 2, "machineDefinition": {"cpuCores": 1, "memoryMB": 128},
                      "hardConstraints": ["UniqueHost", ["zone", "GROUP_BY"]]}}}}
    assert cluster.call("POST", "/api/v1/jobClusters", definition)[0] == 201
    job_id = job_id_of(cluster.call("POST", "/api/v1/jobClusters/spread/jobs", {})[1])
    workers = wait_for(lambda: placed(cluster, job_id, 2), timeout=30, what="2 workers Started")
    assert len({w["host"] for w in workers}) == 2 and len({zone_of(w) for w in workers}) == 2
    assert all(w["host"] == ZONES[zone_of(w)] for w in workers)

    lost = workers[0]
    survivor = workers[1]
    agents[zone_of(lost)].stop()
    (free_zone,) = set(ZONES) - {zone_of(lost), zone_of(survivor)}

    def moved():
        now = placed(cluster, job_id, 2) or []
        return now if {w["workerNumber"] for w in now} != {w["workerNumber"] for w in workers} else None

    now = wait_for(moved, timeout=40, what="the lost worker replaced on another agent")
    replacement = next(w for w in now if w["workerIndex"] == lost["workerIndex"])
    # The first replacement may land on the stopping agent before it is declared lost and
    # be replaced again; what matters is that the index ends up on the one agent allowed.
    assert zone_of(replacement) == free_zone and replacement["workerNumber"] > lost["workerNumber"]
    assert replacement["totalResubmitCount"] >= 1
    assert any(w["workerNumber"] == survivor["workerNumber"] for w in now)


def test_drained_agent_moves_its_workers_away_and_takes_no_new_ones(three_agents):
    cluster, _ = three_agents
    definition = {"name": "drainme", "url": "mantis.examples.synthetic:job",
                  "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                                      "machineDefinition": {"cpuCores": 1, "memoryMB": 128},
                                                      "hardConstraints": [["zone", "IS", "a"]]}}}}
    assert cluster.call("POST", "/api/v1/jobClusters", definition)[0] == 201
    job_id = job_id_of(cluster.call("POST", "/api/v1/jobClusters/drainme/jobs", {})[1])
    (w,) = wait_for(lambda: placed(cluster, job_id, 1), timeout=30, what="worker Started")
    assert w["agentId"] == "agent-a"
    status, body = cluster.call("POST", "/api/v1/agents/agent-a/actions/drain", {"user": "ops"})
    assert status == 200 and body["movedWorkers"] == [w["workerId"]]
    pending = wait_for(lambda: cluster.call("GET", "/api/v1/pendingWorkers")[1]["list"], timeout=20,
                       what="replacement pending")
    assert pending[0]["jobId"] == job_id and any("disabled" in r for r in pending[0]["reasons"])
    agents = {a["agentId"]: a for a in cluster.call("GET", "/api/v1/agents")[1]["list"]}
    assert agents["agent-a"]["disabled"] is True
    assert cluster.call("POST", "/api/v1/agents/agent-a/actions/enable", {})[0] == 200
    (again,) = wait_for(lambda: placed(cluster, job_id, 1), timeout=30, what="replacement Started")
    assert again["workerNumber"] != w["workerNumber"] and again["agentId"] == "agent-a"
    assert cluster.call("POST", "/api/v1/agents/nope/actions/drain", {})[0] == 404
