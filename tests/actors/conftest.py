"""One fixture runs every actor test over both Thespian system bases."""
import pytest

from actors.actor_system import start_master_actors
from actors.agent_runner import attach_agent
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


@pytest.fixture(params=["simpleSystemBase", "multiprocTCPBase"])
def master(request, tmp_path):
    config = make_config(tmp_path, base=request.param)
    actors = start_master_actors(config)
    m = Master(actors, config)
    m.base = request.param
    yield m
    actors.system.shutdown()
    if request.param == "multiprocTCPBase":
        reap_forked_leftovers()
