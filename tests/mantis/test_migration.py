"""Rolling artifact updates: Mantis' strategies and a job's migration, on a fixed clock."""
import pytest

from mantis.lifecycles import job_state as js
from mantis.lifecycles import migration
from mantis.lifecycles.migration import MigrationConfig, one_worker, percentage
from mantis.lifecycles.tables import TransitionRejected
from mantis.model.codec import ValidationError
from mantis.model.definitions import JobDefinition, SchedulingInfo, StageSchedulingInfo
from mantis.model.ids import worker_key

PCT50 = MigrationConfig("PERCENTAGE", 50, 10.0)


def test_one_worker_moves_one_at_a_time_and_only_while_all_run():
    assert one_worker([4, 5, 6], running=6, total=6) == [4]
    assert one_worker([4, 5, 6], running=5, total=6) == []  # one is still moving or down
    assert one_worker([], running=6, total=6) == []


def test_percentage_moves_its_share_minus_the_workers_not_running():
    # 4 workers, 50%: two may be in motion at once.
    assert percentage(PCT50, [1, 2, 3, 4], running=4, total=4, last_move_at=None, now=0) == [1, 2]
    assert percentage(PCT50, [3, 4], running=3, total=4, last_move_at=None, now=100) == [3]
    assert percentage(PCT50, [3, 4], running=2, total=4, last_move_at=None, now=100) == []
    # never fewer than one, never more than are waiting
    assert percentage(MigrationConfig("PERCENTAGE", 1, 0), [1, 2], 10, 10, None, 0) == [1]
    assert percentage(MigrationConfig("PERCENTAGE", 100, 0), [7], 10, 10, None, 0) == [7]


def test_percentage_waits_its_interval_after_the_last_move():
    assert percentage(PCT50, [3, 4], running=4, total=4, last_move_at=100.0, now=109.9) == []
    assert percentage(PCT50, [3, 4], running=4, total=4, last_move_at=100.0, now=110.0) == [3, 4]


def test_migration_config_parses_mantis_config_string_and_refuses_bad_ones():
    parsed = MigrationConfig.parse({"strategy": "PERCENTAGE",
                                    "configString": '{"percentToMove": 25, "intervalMs": 1500}'})
    assert parsed == MigrationConfig("PERCENTAGE", 25, 1.5)
    assert MigrationConfig.parse({"strategy": "ONE_WORKER", "configString": ""}) == MigrationConfig()
    assert MigrationConfig.parse(None) == MigrationConfig()
    for bad in ['{"percentToMove": 0}', '{"percentToMove": 101}', '{"intervalMs": -1}', "nope", "[1]"]:
        with pytest.raises(ValidationError):
            MigrationConfig.parse({"strategy": "PERCENTAGE", "configString": bad})


# -- a job's migration ---------------------------------------------------------------

def new_job(n):
    info = SchedulingInfo({1: StageSchedulingInfo(number_of_instances=n)})
    job, _ = js.JobRecord.submit("c-1", "c", JobDefinition(name="c", url="m:v1", version="1",
                                                           parameters=[], scheduling_info=info), 100.0)
    for w in list(job.workers.values()):
        start_worker(job, w, 100.0)
    return job


def start_worker(job, w, now):
    job.worker_launched(w.key, "agent-1", "127.0.0.1", [31000 + w.number], now)
    return job.worker_status(w.key, "Started", now)


def successors(job):
    return sorted((w for w in job.workers.values() if w.replaces is not None), key=lambda w: w.number)


def slots_started(job):
    return {w.index for w in job.workers.values() if w.state == "Started"}


def test_a_percentage_migration_starts_successors_first_and_stops_old_workers_once_they_started():
    job = new_job(4)
    effects = migration.start(job, "m:v2", "2", PCT50, 200.0, "s")
    assert job.definition.url == "m:v2" and job.definition.version == "2"
    assert [type(e).__name__ for e in effects].count("PlaceWorker") == 2
    new5, new6 = successors(job)
    assert [(w.index, w.replaces, w.url) for w in (new5, new6)] == [(0, 1, None), (1, 2, None)]
    assert {w.url for w in job.workers.values() if w.number <= 4} == {"m:v1"}
    assert slots_started(job) == {0, 1, 2, 3}  # nothing stopped yet
    assert migration.step(job, 300.0, "s") == []  # two in motion: the 50% share is used

    effects = start_worker(job, new5, 201.0)
    assert ("ReleaseWorker", worker_key("c-1", 1)) in [(type(e).__name__, getattr(e, "worker_key", None))
                                                    for e in effects]
    assert job.archived_workers[-1].reason == f"migrated to worker {worker_key('c-1', 5)}"
    assert slots_started(job) == {0, 1, 2, 3}
    # One slot is free again, but the interval since the last move (200.0) has not passed.
    assert migration.step(job, 205.0, "s") == [] and len(successors(job)) == 1
    migration.step(job, 210.0, "s")
    assert [w.replaces for w in successors(job)] == [2, 3]
    for w in successors(job):
        start_worker(job, w, 211.0)
    migration.step(job, 221.0, "s")
    for w in successors(job):
        start_worker(job, w, 222.0)
    migration.step(job, 240.0, "s")
    assert job.migration.state == "completed" and job.migration.moved == 4
    assert [w.url for w in job.workers.values()] == [None] * 4
    assert sorted(w.index for w in job.workers.values()) == [0, 1, 2, 3]
    messages = [e["message"] for e in job.events if e["type"] == "migration"]
    assert messages[0].startswith("migration to m:v2 (version 2) started, strategy PERCENTAGE")
    assert messages[-1] == "migration completed: 4 worker(s) moved to m:v2"
    restored = js.JobRecord.from_json(job.to_json())
    assert restored.migration == job.migration and restored.events == job.events


def test_one_worker_migration_moves_a_single_worker_until_its_successor_started():
    job = new_job(3)
    migration.start(job, "m:v2", "2", MigrationConfig(), 200.0, "s")
    (first,) = successors(job)
    assert migration.step(job, 1000.0, "s") == []
    start_worker(job, first, 201.0)
    (second,) = successors(job)
    assert second.replaces == 2


def test_a_successor_failing_stops_the_migration_and_the_old_worker_keeps_its_slot():
    job = new_job(2)
    migration.start(job, "m:v2", "2", MigrationConfig(), 200.0, "s")
    (new,) = successors(job)
    job.worker_launched(new.key, "agent-1", "127.0.0.1", [32000], 201.0)
    effects = job.worker_status(new.key, "Failed", 202.0, reason="could not start: ImportError")
    assert "PlaceWorker" not in [type(e).__name__ for e in effects]  # not replaced
    assert job.migration.state == "failed"
    assert "ended before it was ready: could not start: ImportError" in job.migration.reason
    assert sorted(w.number for w in job.workers.values()) == [1, 2] and slots_started(job) == {0, 1}
    assert migration.step(job, 1000.0, "s") == []  # stopped for good
    # The job is back on the old artifact: a worker replaced later runs what worked.
    assert job.definition.url == "m:v1" and {w.url for w in job.workers.values()} == {None}
    assert job.events[-1]["message"].startswith(f"migration stopped: worker {worker_key('c-1', 3)} ended")


def test_an_old_worker_failing_while_it_moves_leaves_its_slot_to_the_successor():
    job = new_job(1)
    migration.start(job, "m:v2", "2", MigrationConfig(), 200.0, "s")
    (new,) = successors(job)
    effects = job.worker_status(worker_key("c-1", 1), "Failed", 201.0, reason="crashed")
    assert "PlaceWorker" not in [type(e).__name__ for e in effects]
    assert list(job.workers) == [new.number] and new.replaces is None
    start_worker(job, new, 202.0)
    job.tick(203.0)
    assert job.migration.state == "completed"


def test_a_new_version_of_the_same_entry_point_moves_every_worker():
    job = new_job(2)
    migration.start(job, "m:v1", "2", MigrationConfig("PERCENTAGE", 100, 0), 200.0, "s")
    assert [w.replaces for w in successors(job)] == [1, 2]
    for w in successors(job):
        start_worker(job, w, 201.0)
    job.tick(202.0)
    assert job.migration.state == "completed" and job.migration.moved == 2
    assert sorted(job.workers) == [3, 4] and job.definition.version == "2"


def test_migrating_an_ended_job_or_to_the_artifact_and_version_it_runs_is_rejected():
    job = new_job(1)
    with pytest.raises(TransitionRejected, match="already runs m:v1 version 1"):
        migration.start(job, "m:v1", "1", MigrationConfig(), 200.0, "s")
    job.kill("Killed", "done", 201.0)
    with pytest.raises(TransitionRejected, match="cannot migrate"):
        migration.start(job, "m:v2", "2", MigrationConfig(), 202.0, "s")
