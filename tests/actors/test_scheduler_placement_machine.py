"""The SchedulerActor over its placement machine, with every transition validated: the
in-process base runs the scheduler in the test's process, so switching on
``tables.VALIDATE`` checks the machine's invariants after each transition."""
import pytest

from actors.actor_system import start_master_actors
from actors.messages import DescribeActors, Done, GetPending, KillJob, ResubmitWorker, ScaleStage
from mantis.lifecycles import tables
from tests.actors.conftest import Master
from tests.actors.test_master_actors import create, started_workers, submit
from tests.support import make_config, wait_for


@pytest.fixture
def validated_master(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "VALIDATE", True)
    config = make_config(tmp_path, base="simpleSystemBase")
    actors = start_master_actors(config)
    m = Master(actors, config)
    m.base = "simpleSystemBase"
    yield m
    actors.system.shutdown()


def scheduler_row(master):
    reply = master.ask(DescribeActors(), to="scheduler")
    assert isinstance(reply, Done)
    return next(a for a in reply.body if a["actor"] == "SchedulerActor")


def test_workers_go_through_the_machine_placed_replaced_and_released(validated_master):
    master = validated_master
    create(master)
    job_id = submit(master)
    wait_for(lambda: started_workers(master, job_id), what="worker Started")
    assert isinstance(master.ask(ScaleStage(job_id, 1, 3)), Done)
    wait_for(lambda: len(started_workers(master, job_id)) == 3, what="3 workers Started")
    assert isinstance(master.ask(ResubmitWorker(job_id, 1, reason="t")), Done)
    wait_for(lambda: {w["workerNumber"] for w in started_workers(master, job_id)} == {2, 3, 4},
             what="replacement Started")
    assert wait_for(lambda: scheduler_row(master)["placedWorkers"] == 3, what="3 placed")
    assert master.ask(GetPending(), to="scheduler").body == []
    assert isinstance(master.ask(KillJob(job_id, "Killed", "test", "t")), Done)
    wait_for(lambda: scheduler_row(master)["placedWorkers"] == 0, what="every worker released")
