"""Simulated agents against the real master actors, over both Thespian system bases."""
import pytest

from actors.actor_system import start_master_actors
from actors.messages import ConnectMaster, Done, ListAgents
from actors.simulated_agents import GetSimulationState, GetWorkerStory, InjectFault, start_simulated_agents
from tests.support import make_config, reap_forked_leftovers, wait_for

CLUSTER = {"name": "sim", "url": "mantis.examples.synthetic:job",
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 4,
                                               "machineDefinition": {"cpuCores": 1, "memoryMB": 256}}}}}


class MasterApi:
    """The few master calls these tests make, in one place: the master's messages are
    being reworked, and only this class should need to follow."""

    def __init__(self, actors):
        self.actors = actors

    def ask(self, message, to=None):
        """The answer of the manager (or ``to``) to ``message``."""
        return self.actors.system.ask(to or self.actors.manager, message, 10.0)

    def create_cluster(self, definition: dict) -> None:
        """Create a job cluster from its JSON definition."""
        from actors.messages import CreateCluster
        from mantis.model.definitions import JobClusterDefinition

        reply = self.ask(CreateCluster(JobClusterDefinition.from_json(definition)))
        assert isinstance(reply, Done), reply

    def submit(self, cluster: str) -> str:
        """Submit a job with the cluster's defaults; its id."""
        from actors.messages import SubmitJob
        from mantis.model.definitions import JobDefinition

        reply = self.ask(SubmitJob(cluster, JobDefinition.from_json({"user": "t"})))
        assert isinstance(reply, Done), reply
        return reply.body["jobId"]

    def workers(self, job_id: str) -> list[dict]:
        """The job's live workers: dicts with workerNumber, workerIndex, state, agentId."""
        from actors.messages import GetJob

        reply = self.ask(GetJob(job_id))
        assert isinstance(reply, Done), reply
        return reply.body["workers"]

    def archived(self, job_id: str) -> list[dict]:
        """The job's ended workers, with workerNumber and reason."""
        from actors.messages import GetArchivedWorkers

        reply = self.ask(GetArchivedWorkers(job_id))
        assert isinstance(reply, Done), reply
        return reply.body

    def agents(self) -> list[dict]:
        """The agents the scheduler knows: agentId, hostname, attributes, total, workers."""
        return self.ask(ListAgents(), to=self.actors.scheduler).body


class Sim:
    """A master and a SimulatedAgentsActor with three agents in the same actor system."""

    def __init__(self, base, tmp_path):
        self.config = make_config(tmp_path, base=base)
        self.actors = start_master_actors(self.config)
        self.master = MasterApi(self.actors)
        self.address = start_simulated_agents(self.actors.system, self.config, count=3, seed=7)
        assert isinstance(self.actors.system.ask(self.address, ConnectMaster(self.actors.scheduler), 10), Done)

    def ask(self, message):
        """The body of the SimulatedAgentsActor's answer to ``message`` (which must be Done)."""
        reply = self.actors.system.ask(self.address, message, 10.0)
        assert isinstance(reply, Done), reply
        return reply.body


@pytest.fixture(params=["simpleSystemBase", "multiprocTCPBase"])
def sim(request, tmp_path):
    """A Sim over each system base, shut down after the test."""
    s = Sim(request.param, tmp_path)
    yield s
    s.actors.system.shutdown()
    if request.param == "multiprocTCPBase":
        reap_forked_leftovers()


def started(master, job_id, count):
    """The job's workers once ``count`` of them are Started, else None."""
    ws = [w for w in master.workers(job_id) if w["state"] == "Started"]
    return ws if len(ws) == count else None


def test_simulated_agents_register_with_offers_and_zones(sim):
    agents = wait_for(lambda: len(sim.master.agents()) == 3 and sim.master.agents(), what="3 agents")
    assert sorted(a["agentId"] for a in agents) == ["sim-0", "sim-1", "sim-2"]
    assert sorted(a["attributes"]["zone"] for a in agents) == ["a", "b", "c"]
    assert all(a["hostname"] == f"{a['agentId']}.local" and a["total"]["cpus"] == 8 for a in agents)
    wait_for(lambda: sim.ask(GetSimulationState())["heartbeats"] >= 6, what="heartbeats")


def test_submitted_jobs_reach_started_on_simulated_agents(sim):
    sim.master.create_cluster(CLUSTER)
    jobs = [sim.master.submit("sim") for _ in range(2)]
    for job_id in jobs:
        workers = wait_for(lambda: started(sim.master, job_id, 4), what=f"{job_id}: 4 workers Started")
        assert all(w["agentId"].startswith("sim-") for w in workers)
    w = sim.master.workers(jobs[0])[0]
    key = f"{jobs[0]}/w{w['workerNumber']}"
    story = [what for _, what, _ in sim.ask(GetWorkerStory(key))]
    assert story == ["launched", "StartInitiated", "Started"]
    wait_for(lambda: sim.master.workers(jobs[0])[0]["metrics"].get("eventsOut", 0) > 0, what="metrics")
    state = sim.ask(GetSimulationState())
    assert state["workers"]["Started"] == 8 and state["connected"]


def test_a_worker_failed_by_a_fault_is_replaced(sim):
    sim.master.create_cluster(CLUSTER)
    job_id = sim.master.submit("sim")
    workers = wait_for(lambda: started(sim.master, job_id, 4), what="4 workers Started")
    victim = workers[0]
    sim.ask(InjectFault("fail", f"{job_id}/w{victim['workerNumber']}", reason="simulated fault: test"))
    replaced = wait_for(lambda: [w for w in (started(sim.master, job_id, 4) or [])
                                 if w["workerIndex"] == victim["workerIndex"]
                                 and w["workerNumber"] != victim["workerNumber"]], what="replacement Started")
    assert replaced[0]["agentId"].startswith("sim-")
    archived = sim.master.archived(job_id)
    assert [(a["workerNumber"], a["reason"]) for a in archived] == [
        (victim["workerNumber"], "simulated fault: test")]


def test_a_silent_agent_is_lost_its_workers_move_and_it_comes_back(sim):
    sim.master.create_cluster(CLUSTER)
    job_id = sim.master.submit("sim")
    workers = wait_for(lambda: started(sim.master, job_id, 4), what="4 workers Started")
    quiet = workers[0]["agentId"]
    moved = {w["workerNumber"] for w in workers if w["agentId"] == quiet}
    # Longer than the master's agent timeout (3 s in the test config).
    sim.ask(InjectFault("silence", quiet, seconds=5.0))
    wait_for(lambda: quiet not in {a["agentId"] for a in sim.master.agents()}, what=f"{quiet} lost")

    def replaced():
        workers = started(sim.master, job_id, 4)
        return workers and not moved & {w["workerNumber"] for w in workers}

    wait_for(replaced, timeout=30, what="replacements Started")
    # After its silence it heartbeats, is told to re-register, and does (with the old
    # workers, which the job no longer wants and has stopped).
    wait_for(lambda: quiet in {a["agentId"] for a in sim.master.agents()}, timeout=20, what=f"{quiet} back")
    old = f"{job_id}/w{min(moved)}"
    wait_for(lambda: sim.ask(GetWorkerStory(old))[-1][1] == "Completed", what=f"{old} stopped")
