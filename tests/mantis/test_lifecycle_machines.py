"""The lifecycles as machines: tables of handlers, stories, meta-states and invariants."""
import json

import pytest

from mantis.lifecycles import job_state as js
from mantis.lifecycles.cluster_state import CLUSTER_TABLE, ClusterState, JobCluster
from mantis.lifecycles.cluster_state import META_STATES as CLUSTER_META
from mantis.lifecycles.tables import (
    InvariantViolation,
    Meta,
    Story,
    StoryEntry,
    TransitionRejected,
    states_with,
)
from mantis.lifecycles.worker_state import META_STATES as WORKER_META
from mantis.lifecycles.worker_state import WORKER_TABLE, WorkerState
from mantis.model.definitions import (
    JobClusterDefinition,
    JobDefinition,
    SchedulingInfo,
    StageSchedulingInfo,
)

MACHINES = [(WORKER_TABLE, WorkerState, WORKER_META), (js.JOB_TABLE, js.JobState, js.META_STATES),
            (CLUSTER_TABLE, ClusterState, CLUSTER_META)]


def definition(*counts):
    stages = {i + 1: StageSchedulingInfo(number_of_instances=n, scalable=True,
                                         scaling_policy={"min": 0, "max": 5})
              for i, n in enumerate(counts)}
    return JobDefinition(name="c", url="m:j", version="1", parameters=[],
                         scheduling_info=SchedulingInfo(stages))


def new_job(*counts, now=100.0):
    job, _ = js.JobRecord.submit("c-1", "c", definition(*counts), now)
    return job


def told(entries):
    return [(e.stimulus_id, e.event, e.after) for e in entries]


# -- the tables ------------------------------------------------------------------------

@pytest.mark.parametrize("table,states,meta", MACHINES, ids=lambda x: getattr(x, "kind", ""))
def test_every_state_and_event_is_handled_or_rejected_with_a_reason(table, states, meta):
    assert set(table.states) == set(states)
    for state in states:
        for event in table.events:
            if table.allows(state, event):
                assert table.next_state(state, event) in states
            else:
                assert (state, event) in table.reasons, f"{table.kind}: ({state}, {event}) has no reason"
                with pytest.raises(TransitionRejected) as info:
                    table.next_state(state, event, "x")
                assert table.reasons[(state, event)] in str(info.value)


@pytest.mark.parametrize("table,states,meta", MACHINES, ids=lambda x: getattr(x, "kind", ""))
def test_meta_states_cover_every_state_and_terminal_means_no_event(table, states, meta):
    assert set(meta) == set(states)
    assert states_with(meta, Meta.TERMINAL) == {s for s in states if table.is_terminal(s)}


def test_states_are_the_strings_records_and_the_api_carry():
    job = new_job(1)
    record = job.to_json()
    assert type(record["state"]) is str and type(record["workers"][0]["state"]) is str
    assert json.loads(json.dumps(record))["workers"][0]["state"] == "Accepted"
    again = js.JobRecord.from_json(record)
    assert again.state is js.JobState.ACCEPTED and again.workers[1].state is WorkerState.ACCEPTED
    assert js.ACTIVE_JOB_STATES == {"Accepted", "Launched"}


# -- stories ---------------------------------------------------------------------------

def test_a_worker_story_shows_its_stimulus_ids_in_order():
    job = new_job(1)
    (w,) = job.workers.values()
    job.worker_launched(w.key, "agent-1", "h", [31000], 101, stimulus_id="launch-a")
    job.worker_status(w.key, "StartInitiated", 102, stimulus_id="report-b")
    job.worker_status(w.key, "Started", 103, stimulus_id="report-c")
    job.worker_status(w.key, "Heartbeat", 104, stimulus_id="report-d")  # heartbeats are not told
    job.worker_status(w.key, "Failed", 105, "crashed", stimulus_id="report-e")
    assert told(job.story(w.key)) == [("launch-a", "launch", "Launched"),
                                      ("report-b", "start_initiated", "StartInitiated"),
                                      ("report-c", "started", "Started"),
                                      ("report-e", "fail", "Failed")]
    # The job's launch came from the same report as its last worker's start.
    assert ("report-c", "launch", "Launched") in told(job.story())
    merged = job.story(job.job_id, w.key)
    assert [e.stimulus_id for e in merged].index("report-c") < [e.stimulus_id for e in merged].index("report-e")


def test_the_admin_view_of_a_story_is_plain_json():
    job = new_job(1)
    (w,) = job.workers.values()
    job.worker_launched(w.key, "agent-1", "h", [31000], 101, stimulus_id="launch-a")
    view = json.loads(json.dumps(job.describe_story()))
    assert [(e["key"], e["event"], e["from"], e["to"]) for e in view] == [
        ("c-1", "submit", "", "Accepted"), ("c-1/w1", "launch", "Accepted", "Launched")]
    assert view[-1]["stimulusId"] == "launch-a"


def test_a_rejected_event_is_in_the_story_with_its_reason():
    job = new_job(1)
    (w,) = job.workers.values()
    with pytest.raises(TransitionRejected):
        job.worker_status(w.key, "Started", 101, stimulus_id="early")  # never launched
    job.resubmit_worker(w.number, "x", 102, stimulus_id="operator")
    with pytest.raises(TransitionRejected, match="not a live worker"):
        job.worker_status(w.key, "Started", 103, stimulus_id="late")
    entries = job.story(w.key)
    assert [(e.stimulus_id, e.after) for e in entries] == [("early", None), ("operator", "Failed"), ("late", None)]
    assert "not allowed in state Accepted" in entries[0].note and "launched" in entries[0].note
    assert entries[2].note.startswith("rejected:")


def test_a_story_is_bounded_per_key():
    story = Story(per_key=3, max_keys=2)
    for i in range(5):
        story.record(StoryEntry(f"s-{i}", "a", "e", "x", "y", float(i)))
    assert [e.stimulus_id for e in story.story("a")] == ["s-2", "s-3", "s-4"]
    story.record(StoryEntry("t", "b", "e", "x", "y", 0.0))
    story.record(StoryEntry("u", "c", "e", "x", "y", 0.0))
    assert story.story("a") == [] and len(story.story("b", "c")) == 2


def test_a_cluster_tells_its_story():
    cluster = JobCluster(JobClusterDefinition(name="c", url="m:j"))
    cluster.apply("disable")
    with pytest.raises(TransitionRejected, match="disabled cluster takes no new jobs"):
        cluster.submit(JobDefinition(name="c"), 1.0)
    cluster.apply("enable")
    assert [(e.event, e.after) for e in cluster.story()] == [("disable", "Disabled"), ("enable", "Enabled")]


# -- heartbeats and the rows that end a job at once ------------------------------------

def test_heartbeats_go_through_the_table():
    job = new_job(1)
    (w,) = job.workers.values()
    job.worker_status(w.key, "Heartbeat", 101, metrics={"port": 1})
    assert w.last_heartbeat is None and w.metrics == {}  # not launched: nothing to refresh
    job.worker_launched(w.key, "a", "h", [1], 102)
    job.worker_status(w.key, "Started", 103)
    job.worker_status(w.key, "StartInitiated", 110, metrics={"port": 2})  # behind: a heartbeat
    assert (w.state, w.last_heartbeat, w.metrics, w.started_at) == ("Started", 110, {"port": 2}, 103)


def test_a_kill_before_any_launch_ends_the_job_at_once_through_complete_or_fail():
    for reason, event, state in (("Killed", "complete", "Completed"), ("Error", "fail", "Failed")):
        job = new_job(2)
        effects = job.kill(reason, "", 101, stimulus_id="k")
        assert job.state == state and isinstance(effects[-1], js.JobEnded)
        assert told(job.story())[-1] == ("k", event, state)


def test_a_finite_job_whose_workers_all_completed_completes_through_complete():
    job = new_job(1)
    (w,) = job.workers.values()
    job.worker_launched(w.key, "a", "h", [1], 101)
    job.worker_status(w.key, "Started", 102)
    job.worker_status(w.key, "Completed", 103, stimulus_id="done")
    assert (job.state, job.kill_reason, job.kill_message) == ("Completed", "Normal", "all workers completed")
    assert told(job.story())[-1] == ("done", "complete", "Completed")


def test_worker_by_key_reads_the_key_with_parse_worker_key():
    job = new_job(1)
    assert job.worker_by_key("c-1/w1") is job.workers[1]
    assert job.worker_by_key("c-1/wx") is None and job.worker_by_key("c-1") is None
    assert job.worker_by_key("d-1/w1") is None


# -- invariants ------------------------------------------------------------------------

def running_job():
    job = new_job(2)
    for w in list(job.workers.values()):
        job.worker_launched(w.key, "a", "h", [1], 101)
        job.worker_status(w.key, "Started", 102)
    return job


def test_validate_passes_on_a_consistent_job():
    running_job().validate()


@pytest.mark.parametrize("breakage,message", [
    (lambda job: setattr(job.workers[2], "index", 0), "two live workers on"),
    (lambda job: setattr(job.workers[2], "index", 5), "outside the stage sizes"),
    (lambda job: setattr(job.workers[1], "agent_id", None), "on no agent"),
    (lambda job: setattr(job.workers[1], "started_at", 99.0), "out of order"),
    (lambda job: setattr(job, "state", js.JobState.COMPLETED), "live worker"),
    (lambda job: setattr(job, "terminating_since", 5.0), "active but ended or terminating"),
])
def test_validate_catches_a_broken_invariant(breakage, message):
    job = running_job()
    breakage(job)
    with pytest.raises(InvariantViolation, match=message):
        job.validate()


def test_a_transition_checks_the_invariants_when_validation_is_on():
    job = running_job()
    job.workers[2].index = 0  # a bug elsewhere put two workers on one slot
    with pytest.raises(InvariantViolation, match="two live workers"):
        job.worker_status(job.workers[1].key, "Heartbeat", 103)
