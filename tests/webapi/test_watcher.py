"""Changes pushed from the actors to the API process (no polling) over a real multiprocTCPBase master."""
import asyncio

import pytest

from actors.actor_system import start_master_actors
from actors.agent_runner import attach_agent
from actors.messages import CreateCluster, KillJob, ScaleStage, SubmitJob, WatchCluster, WatchJob
from mantis.model.definitions import JobClusterDefinition, JobDefinition
from tests.support import make_config, reap_forked_leftovers
from webapi.watcher import Watcher

CLUSTER = {"name": "synth", "url": "mantis.examples.synthetic:job", "parameters": [{"name": "rate", "value": 5}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1, "scalable": True,
                                               "scalingPolicy": {"min": 1, "max": 3},
                                               "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}}}


@pytest.fixture
def actors(tmp_path):
    config = make_config(tmp_path)
    master = start_master_actors(config)
    attach_agent(master.system, config, master.scheduler)
    yield master
    master.system.shutdown()
    reap_forked_leftovers()


async def next_matching(changes: asyncio.Queue, predicate, timeout=60.0):
    async def wait():
        while True:
            change = await changes.get()
            if predicate(change):
                return change
    return await asyncio.wait_for(wait(), timeout)


def states(change) -> list:
    return sorted(w["state"] for w in change.job["workers"])


def test_job_and_cluster_changes_are_pushed_to_the_watcher_as_they_happen(actors):
    system = actors.system
    assert system.ask(actors.manager, CreateCluster(JobClusterDefinition.from_json(CLUSTER)), 10).body
    job_id = system.ask(actors.manager, SubmitJob("synth", JobDefinition.from_json({"user": "t"})), 20).body["jobId"]

    async def scenario():
        loop = asyncio.get_running_loop()
        watcher = Watcher(system, actors.manager, loop)
        job_changes, cluster_changes = asyncio.Queue(), asyncio.Queue()
        try:
            watcher.subscribe(WatchJob(job_id), job_changes.put_nowait)
            watcher.subscribe(WatchCluster("synth"), cluster_changes.put_nowait)
            latest = await next_matching(cluster_changes, lambda c: True)
            assert latest.latest_job_id == job_id
            await next_matching(job_changes, lambda c: states(c) == ["Started"])
            await loop.run_in_executor(None, system.ask, actors.manager, ScaleStage(job_id, 1, 2), 10)
            await next_matching(job_changes, lambda c: states(c) == ["Started", "Started"])
            await loop.run_in_executor(None, system.ask, actors.manager, KillJob(job_id, "Killed"), 10)
            final = await next_matching(job_changes, lambda c: c.final)
            assert final.job["state"] == "Completed"
            gone = await next_matching(cluster_changes, lambda c: c.latest_job_id is None)
            assert gone.name == "synth" and not gone.final
        finally:
            watcher.close()

    asyncio.run(scenario())
