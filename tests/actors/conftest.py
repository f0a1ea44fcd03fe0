"""One fixture runs every actor test over both Thespian system bases."""
import contextlib

import pytest

from actors.actor_system import start_master_actors
from actors.agent_runner import attach_agent
from actors.messages import CreateCluster, Done, GetJob, SubmitJob
from mantis.model.definitions import JobClusterDefinition, JobDefinition
from tests.support import make_config, reap_forked_leftovers


class Master:
    """The master's actors plus an agent in the same actor system, for actor tests."""

    def __init__(self, actors, config):
        self.actors, self.config = actors, config
        self.system = actors.system
        self.agent = attach_agent(actors.system, config, actors.scheduler)

    def ask(self, message, to="manager", timeout=10.0):
        target = self.actors.scheduler if to == "scheduler" else self.actors.manager
        return self.system.ask(target, message, timeout)

    def done(self, message, to="manager"):
        """The body of the answer to ``message``, which must be a Done."""
        reply = self.ask(message, to)
        assert isinstance(reply, Done), reply
        return reply.body

    def create_cluster(self, definition: dict) -> dict:
        return self.done(CreateCluster(JobClusterDefinition.from_json(definition)))

    def submit(self, cluster: str, **fields) -> str:
        return self.done(SubmitJob(cluster, JobDefinition.from_json({"user": "t", **fields})))["jobId"]

    def job(self, job_id: str) -> dict:
        return self.done(GetJob(job_id))

    def started_workers(self, job_id: str) -> list:
        """The job's Started workers once the job is Launched (else none)."""
        job = self.job(job_id)
        return [w for w in job["workers"] if w["state"] == "Started"] if job["state"] == "Launched" else []


BASES = ["simpleSystemBase", "multiprocTCPBase"]


@contextlib.contextmanager
def running_master(config, base: str):
    """The master's actors and an agent on ``base`` with ``config``, shut down after."""
    actors = start_master_actors(config)
    m = Master(actors, config)
    m.base = base
    try:
        yield m
    finally:
        actors.system.shutdown()
        if base == "multiprocTCPBase":
            reap_forked_leftovers()


@pytest.fixture(params=BASES)
def master(request, tmp_path):
    with running_master(make_config(tmp_path, base=request.param), request.param) as m:
        yield m
