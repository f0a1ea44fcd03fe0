"""A job with an autoscaled stage gets a Job Master on stage 0, and keeps a list of its events."""
import pytest

from mantis.lifecycles import job_state as js
from mantis.lifecycles.job_views import status_events, status_view, watched_view
from mantis.lifecycles.tables import TransitionRejected
from mantis.model.codec import ValidationError
from mantis.model.definitions import JobDefinition, SchedulingInfo, StageSchedulingInfo

POLICY = js.WorkerPolicy(heartbeat_timeout_s=10, startup_timeout_s=30, backoff_steps=(0, 5),
                         backoff_reset_s=300, max_resubmits_per_hour=5, terminate_timeout_s=20)


def definition(policy):
    stages = {1: StageSchedulingInfo(number_of_instances=1),
              2: StageSchedulingInfo(number_of_instances=2, scalable=True, scaling_policy=policy)}
    return JobDefinition(name="c", url="m:j", version="1", parameters=[], user="ann",
                         scheduling_info=SchedulingInfo(stages))


def started_job(policy):
    job, _ = js.JobRecord.submit("c-1", "c", definition(policy), 100.0)
    job.policy = POLICY
    for w in list(job.workers.values()):
        job.worker_launched(w.key, "agent-1", "127.0.0.1", [31000 + w.number], 100.0)
        job.worker_status(w.key, "StartInitiated", 100.0)
        job.worker_status(w.key, "Started", 100.0, metrics={"port": 31000 + w.number})
    return job


AUTOSCALED = {"min": 1, "max": 5, "strategies": {}}


def test_an_autoscaled_stage_gives_the_job_a_job_master_on_stage_0_hidden_from_its_stage_sizes():
    job = started_job(AUTOSCALED)
    assert sorted((w.stage, w.index) for w in job.workers.values()) == [(0, 0), (1, 0), (2, 0), (2, 1)]
    assert job.state == "Launched"
    assert job.describe()["stageSizes"] == {"1": 1, "2": 2}
    assert job.upstream_endpoints(1) == []  # stage 1 reads its source, never the Job Master
    stage_1 = next(w for w in job.workers.values() if w.stage == 1)
    assert [e[0] for e in job.upstream_endpoints(2)] == [stage_1.key]


@pytest.mark.parametrize("policy", [None, {"min": 1, "max": 5}, {"min": 2, "max": 2, "strategies": {}}])
def test_a_stage_scaled_by_hand_only_gets_no_job_master(policy):
    job = started_job(policy)
    assert {w.stage for w in job.workers.values()} == {1, 2}


def test_the_job_master_is_replaced_when_it_fails_and_cannot_be_scaled():
    job = started_job(AUTOSCALED)
    master = next(w for w in job.workers.values() if w.stage == 0)
    job.worker_status(master.key, "Failed", 110.0, reason="crashed")
    replacement = next(w for w in job.workers.values() if w.stage == 0)
    assert replacement.number != master.number and replacement.index == 0
    assert job.events[-1]["type"] == "WorkerReplaced" and "crashed" in job.events[-1]["message"]
    with pytest.raises(TransitionRejected, match="has no stage 0"):
        job.scale_stage(0, 2, 111.0)


def test_a_finite_job_completes_when_its_processing_stages_have_even_with_its_job_master():
    job = started_job(AUTOSCALED)
    for w in sorted(job.workers.values(), key=lambda w: w.stage):
        if w.stage >= 1:
            job.worker_status(w.key, "Completed", 120.0, reason="input ended")
    assert job.state == "Completed" and not job.workers


def test_scaling_kills_replacements_and_state_changes_are_the_jobs_events_with_who_and_why():
    job = started_job(AUTOSCALED)
    job.scale_stage(2, 3, 130.0, user="JobMaster", reason="OneStep: demand 400.0/s needs 3 workers")
    job.scale_stage(2, 1, 140.0, user="JobMaster", reason="CPU with value 5.00 is below scaleDown threshold")
    assert sorted(w.index for w in job.workers.values() if w.stage == 2) == [0]  # the highest indexes left
    job.kill("Killed", "done", 150.0, user="ann")
    kinds = [e["type"] for e in job.events]
    assert kinds == ["JobSubmitted", "JobStateChanged", "StageScaled", "StageScaled", "JobKilled",
                     "JobStateChanged"]
    up, down = job.events[2], job.events[3]
    assert (up["fromWorkers"], up["toWorkers"], up["user"]) == (2, 3, "JobMaster")
    assert "scaled up from 2 to 3 workers by JobMaster: OneStep" in up["message"]
    assert "scaled down from 3 to 1" in down["message"] and "below scaleDown" in down["reason"]
    assert job.events[-1]["to"] == "Terminating_normal"
    # stored with the job, and the latest shown with it
    again = js.JobRecord.from_json(job.to_json())
    assert again.events == job.events and job.describe()["recentEvents"] == job.events[-10:]


def test_the_status_stream_shows_the_latest_events_so_a_scale_is_a_change_for_watchers():
    job = started_job(AUTOSCALED)
    described = job.describe()
    before, told = watched_view(described), status_view(described)
    job.scale_stage(2, 3, 130.0, user="JobMaster", reason="RPS with value 500.00 exceeded scaleUp threshold")
    after = job.describe()
    assert watched_view(after) != before
    assert after["recentEvents"][-1]["type"] == "StageScaled"
    # The scale is told to status watchers as a Status of its own, with the reason.
    (scaled,) = [s for s in status_events(told, after, {}, 0) if s["message"].startswith("StageScaled")]
    assert "RPS with value 500.00" in scaled["message"] and scaled["workerIndex"] == -1


def test_a_malformed_scaling_policy_is_refused_on_arrival_naming_its_field():
    bad = {"stages": {"1": {"scalable": True, "scalingPolicy": {"min": 1, "max": 4, "strategies": {
        "CPU": {"reason": "CPU", "scaleDownBelowPct": 20, "scaleUpAbovePct": 75,
                "rollingCount": {"count": 6, "of": 5}}}}}}}
    with pytest.raises(ValidationError, match=r"schedulingInfo.stages.1.scalingPolicy.strategies.CPU.rollingCount"):
        SchedulingInfo.from_json(bad)
    ok = SchedulingInfo.from_json({"stages": {"1": {"scalable": False, "scalingPolicy": {"min": 9, "max": 1}}}})
    assert ok.stages[1].scaling_policy == {"min": 9, "max": 1}  # not scalable: not read
