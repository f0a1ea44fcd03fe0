"""The job's rules: workers per stage, launch, heartbeats, replacement, kill, scale."""
import pytest

from mantis.lifecycles import job_state as js
from mantis.lifecycles.tables import TransitionRejected
from mantis.model.definitions import JobDefinition, SchedulingInfo, StageSchedulingInfo

POLICY = js.WorkerPolicy(heartbeat_timeout_s=10, startup_timeout_s=30, backoff_steps=(0, 5, 10),
                         backoff_reset_s=300, max_resubmits_per_hour=5, terminate_timeout_s=20)


def definition(*counts, scalable=True):
    stages = {i + 1: StageSchedulingInfo(number_of_instances=n, scalable=scalable,
                                         scaling_policy={"min": 0, "max": 5})
              for i, n in enumerate(counts)}
    return JobDefinition(name="c", url="m:j", version="1", parameters=[],
                         scheduling_info=SchedulingInfo(stages))


def new_job(*counts, now=100.0):
    job, effects = js.JobRecord.submit("c-1", "c", definition(*counts), now)
    job.policy = POLICY
    return job, effects


def run_all(job, now):
    for w in list(job.workers.values()):
        job.worker_launched(w.key, "agent-1", "127.0.0.1", [31000 + w.number], now)
        job.worker_status(w.key, "StartInitiated", now)
        job.worker_status(w.key, "Started", now)


def kinds(effects):
    return [type(e).__name__ for e in effects]


def test_submit_creates_one_accepted_worker_per_stage_instance_and_asks_to_schedule_them():
    job, effects = new_job(2, 1)
    assert [(w.stage, w.index, w.number, w.state) for w in job.workers.values()] == [
        (1, 0, 1, "Accepted"), (1, 1, 2, "Accepted"), (2, 0, 3, "Accepted")]
    assert kinds(effects) == ["Persist", "PlaceWorker", "PlaceWorker", "PlaceWorker"]


def test_job_is_launched_once_every_worker_started():
    job, _ = new_job(2)
    w1, w2 = job.workers.values()
    for w in (w1, w2):
        job.worker_launched(w.key, "a", "h", [1], 101)
    job.worker_status(w1.key, "Started", 102)
    assert job.state == "Accepted"
    job.worker_status(w2.key, "Started", 103)
    assert job.state == "Launched"


def test_silent_worker_is_failed_and_replaced_on_same_index_with_new_number():
    job, _ = new_job(1)
    run_all(job, 100)
    effects = job.tick(111)
    assert kinds(effects)[:2] == ["ReleaseWorker", "Persist"]
    assert "PlaceWorker" in kinds(effects)
    (new,) = job.workers.values()
    assert (new.index, new.number, new.resubmit_of, new.resubmit_count) == (0, 2, 1, 1)
    old = job.archived_workers[-1]
    assert old.state == "Failed" and old.reason == "heartbeat timeout"


def test_heartbeats_keep_a_worker_alive():
    job, _ = new_job(1)
    run_all(job, 100)
    (w,) = job.workers.values()
    for t in (105, 110, 115):
        job.worker_status(w.key, "Heartbeat", t)
    assert job.tick(120) == [] and w.state == "Started"


def test_replacement_backoff_steps_and_is_forgotten_after_quiet_period():
    job, _ = new_job(1)
    run_all(job, 100)
    delays = []
    now = 100
    for _ in range(3):
        (w,) = job.workers.values()
        effects = job.worker_status(w.key, "Failed", now, "crashed")
        delays.append([e.delay_s for e in effects if isinstance(e, js.WorkerReplaced)][0])
        now += 1
    assert delays == [0, 5, 10]
    (w,) = job.workers.values()
    assert w.ready_at == 102 + 10 and not w.requested
    assert "PlaceWorker" in kinds(job.tick(112))
    run_all(job, 113)
    (w,) = job.workers.values()
    effects = job.worker_status(w.key, "Failed", 113 + 301, "crashed")
    assert [e.delay_s for e in effects if isinstance(e, js.WorkerReplaced)] == [0]


def test_too_many_resubmits_in_an_hour_kill_the_job_with_reason_error():
    job, _ = new_job(1)
    now = 100
    for _ in range(6):
        run_all(job, now)
        (w,) = job.workers.values()
        job.worker_status(w.key, "Failed", now, "crash")
        now += 1
        job.tick(now + 700)  # past every backoff step, so the replacement is scheduled
    assert job.state in ("Terminating_abnormal", "Failed")
    assert job.kill_reason == "Error"


def test_kill_stops_workers_and_completes_when_they_confirm():
    job, _ = new_job(2)
    run_all(job, 100)
    effects = job.kill("Killed", "by test", 120)
    assert kinds(effects) == ["ReleaseWorker", "ReleaseWorker", "Persist"]
    assert job.state == "Terminating_normal"
    keys = [w.key for w in job.workers.values()]
    job.worker_status(keys[0], "Completed", 121)
    assert job.state == "Terminating_normal"
    effects = job.worker_status(keys[1], "Completed", 121)
    assert job.state == "Completed" and isinstance(effects[-1], js.JobEnded)


def test_kill_for_error_or_lost_ends_failed():
    for reason in ("Error", "Lost"):
        job, _ = new_job(1)
        run_all(job, 100)
        job.kill(reason, "", 110)
        (w,) = job.workers.values()
        job.worker_status(w.key, "Failed", 111)
        assert job.state == "Failed"


def test_termination_that_waits_too_long_fails_the_leftover_workers():
    job, _ = new_job(1)
    run_all(job, 100)
    job.kill("Killed", "", 110)
    (w,) = job.workers.values()
    for t in (118, 126):  # still heartbeating, never confirming the stop
        job.worker_status(w.key, "Heartbeat", t)
        assert job.tick(t) == [] and job.state == "Terminating_normal"
    effects = job.tick(131)
    assert job.state == "Completed" and any(isinstance(e, js.JobEnded) for e in effects)


def test_killing_an_ended_job_is_rejected():
    job, _ = new_job(1)
    job.kill("Killed", "", 101)
    assert job.state == "Completed"  # its only worker was never launched
    with pytest.raises(TransitionRejected):
        job.kill("Killed", "", 102)


def test_scale_stage_adds_and_removes_highest_indexes():
    job, _ = new_job(2)
    run_all(job, 100)
    effects = job.scale_stage(1, 4, 110)
    assert sorted(w.index for w in job.workers.values()) == [0, 1, 2, 3]
    assert kinds(effects).count("PlaceWorker") == 2
    effects = job.scale_stage(1, 1, 111)
    assert sorted(w.index for w in job.workers.values()) == [0]
    assert kinds(effects).count("ReleaseWorker") == 3


def test_scale_is_rejected_outside_policy_or_for_unscalable_stage():
    job, _ = new_job(1)
    with pytest.raises(TransitionRejected, match="0..5"):
        job.scale_stage(1, 6, 101)
    with pytest.raises(TransitionRejected, match="no stage 9"):
        job.scale_stage(9, 1, 101)
    fixed, _ = js.JobRecord.submit("c-2", "c", definition(1, scalable=False), 100)
    with pytest.raises(TransitionRejected, match="not scalable"):
        fixed.scale_stage(1, 2, 101)


def test_resubmit_worker_replaces_it_at_once():
    job, _ = new_job(1)
    run_all(job, 100)
    effects = job.resubmit_worker(1, "operator", 110)
    assert kinds(effects)[0] == "ReleaseWorker" and "PlaceWorker" in kinds(effects)
    (w,) = job.workers.values()
    assert (w.number, w.resubmit_of) == (2, 1)
    with pytest.raises(TransitionRejected, match="no live worker number 1"):
        job.resubmit_worker(1, "again", 111)


def test_status_of_a_replaced_incarnation_is_rejected():
    job, _ = new_job(1)
    run_all(job, 100)
    job.resubmit_worker(1, "x", 110)
    with pytest.raises(TransitionRejected, match="not a live worker"):
        job.worker_status("c-1/w1", "Started", 111)


def test_recovered_job_keeps_running_workers_with_fresh_grace_and_reschedules_accepted():
    job, _ = new_job(2)
    w1 = list(job.workers.values())[0]
    job.worker_launched(w1.key, "a", "h", [1], 100)
    job.worker_status(w1.key, "Started", 100)
    copy = js.JobRecord.from_json(job.to_json(), POLICY)
    effects = copy.recover(500)
    assert [e.worker.number for e in effects if isinstance(e, js.PlaceWorker)] == [2]
    assert copy.workers[1].state == "Started" and copy.workers[1].last_heartbeat == 500
    assert copy.tick(505) == []
    copy.worker_status(w1.key, "Started", 506)  # the agent re-reports it: reattached
    assert copy.workers[1].state == "Started"


def test_job_round_trips_through_its_stored_form():
    job, _ = new_job(1, 2)
    run_all(job, 100)
    job.resubmit_worker(1, "x", 110)
    again = js.JobRecord.from_json(job.to_json(), POLICY)
    assert again.to_json() == job.to_json()


def test_repeated_launch_notice_is_ignored_and_unlaunched_request_is_asked_again():
    job, _ = new_job(1)
    (w,) = job.workers.values()
    assert job.tick(100 + POLICY.schedule_retry_s - 1) == []
    assert kinds(job.tick(100 + POLICY.schedule_retry_s + 1)) == ["PlaceWorker"]
    job.worker_launched(w.key, "a", "h", [1], 120)
    assert job.worker_launched(w.key, "a", "h", [1], 121) == [] and w.state == "Launched"


def test_a_worker_failing_after_its_upstream_stage_completed_is_not_replaced():
    job, _ = new_job(1, 2)
    run_all(job, 100)
    source, counter_a, counter_b = job.workers.values()
    job.worker_status(source.key, "Completed", 110)
    effects = job.worker_status(counter_a.key, "Failed", 111, reason="worker process exited unexpectedly")
    assert "PlaceWorker" not in kinds(effects) and "WorkerReplaced" not in kinds(effects)
    assert "not replaced: stage 1 has completed" in job.archived_workers[-1].reason
    assert job.state == "Launched" and list(job.workers.values()) == [counter_b]
    # The last one finishing ends the finite job.
    effects = job.worker_status(counter_b.key, "Completed", 112)
    assert job.state == "Completed" and "JobEnded" in kinds(effects)


def test_a_worker_failing_while_its_upstream_still_runs_is_replaced():
    job, _ = new_job(1, 2)
    run_all(job, 100)
    _, counter_a, _ = job.workers.values()
    effects = job.worker_status(counter_a.key, "Failed", 111)
    assert "WorkerReplaced" in kinds(effects)


def test_workers_not_started_when_their_upstream_completes_end_instead_of_waiting_forever():
    job, _ = new_job(1, 2)
    run_all(job, 100)
    source, counter_a, counter_b = job.workers.values()
    job.worker_status(counter_a.key, "Failed", 105)  # replaced with backoff 0
    replacement = next(w for w in job.workers.values() if w.resubmit_of == counter_a.number)
    job.worker_launched(replacement.key, "agent-1", "127.0.0.1", [31010], 106)
    effects = job.worker_status(source.key, "Completed", 107)
    assert ("ReleaseWorker", replacement.key) in [(type(e).__name__, getattr(e, "worker_key", None)) for e in effects]
    ended = job.archived_workers[-1]
    assert ended.key == replacement.key and ended.state == "Completed"
    assert "stage 1 completed before this worker started" in ended.reason
    assert list(job.workers.values()) == [counter_b]


def test_a_stage_reading_a_completed_stage_is_told_its_upstream_finished():
    job, _ = new_job(1, 2)
    run_all(job, 100)
    source = next(w for w in job.workers.values() if w.stage == 1)
    assert not job.upstream_finished(2) and not job.upstream_finished(1)
    job.worker_status(source.key, "Completed", 110)
    assert job.upstream_finished(2) and job.upstream_endpoints(2) == []
