"""The stage worker's state as a machine: its table, its story and its invariants."""
from types import SimpleNamespace

import pytest
import reactivex
from reactivex import operators as ops

from mantis.lifecycles import tables
from mantis.lifecycles.tables import InvariantViolation, Meta, TransitionRejected
from mantis.runtime.sources import paced_source
from mantis.runtime.stage_worker import (
    COMPLETED,
    CREATED,
    FAILED,
    META_STATES,
    RUNNING,
    RUNTIME_TABLE,
    MarkFinished,
    StageWorker,
    StartThread,
    WorkerRuntime,
    WorkerRuntimeState,
)
from mantis.sdk.job_dsl import Context, Job

EVENTS = ("start", "stop", "complete", "fail")

HANDLED = {
    (CREATED, "start"): (RUNNING, [StartThread()]),
    (CREATED, "stop"): (CREATED, []),
    (CREATED, "complete"): (COMPLETED, [MarkFinished()]),
    (RUNNING, "stop"): (RUNNING, []),
    (RUNNING, "complete"): (COMPLETED, [MarkFinished()]),
    (RUNNING, "fail"): (FAILED, [MarkFinished()]),
}


@pytest.fixture
def validating(monkeypatch):
    monkeypatch.setattr(tables, "VALIDATE", True)


def runtime_in(state):
    rt = WorkerRuntime("job-1-1-0")
    rt.state = state
    if state != CREATED:
        rt.started_at = 1.0
    return rt


def test_the_state_strings_that_leave_the_worker_are_unchanged():
    assert [s.value for s in WorkerRuntimeState] == ["created", "running", "completed", "failed"]
    assert set(META_STATES) == set(WorkerRuntimeState)
    assert {s for s, metas in META_STATES.items() if Meta.TERMINAL in metas} == {COMPLETED, FAILED}
    assert set(RUNTIME_TABLE.states) == set(WorkerRuntimeState)
    assert set(RUNTIME_TABLE.events) == set(EVENTS)


@pytest.mark.parametrize("state", list(WorkerRuntimeState))
@pytest.mark.parametrize("event", EVENTS)
def test_every_state_and_event_is_handled_or_rejected_with_a_reason(state, event):
    rt = runtime_in(state)
    if (state, event) in HANDLED:
        target, effects = HANDLED[(state, event)]
        assert rt.handle(event, now=2.0) == effects
        assert rt.state == target
        assert rt.story()[-1].after == target
    else:
        with pytest.raises(TransitionRejected) as rejected:
            rt.handle(event, now=2.0)
        assert rt.state == state
        assert (state, event) in RUNTIME_TABLE.reasons
        assert RUNTIME_TABLE.reasons[(state, event)] in str(rejected.value)
        entry = rt.story()[-1]
        assert (entry.event, entry.after) == (event, None) and entry.note.startswith("rejected")


def test_stop_marks_the_worker_stopping_and_the_end_stamps_its_time():
    rt = runtime_in(CREATED)
    rt.handle("start", now=1.0)
    rt.handle("stop", now=2.0)
    assert rt.stopping and rt.started_at == 1.0
    rt.handle("complete", now=3.0)
    assert rt.ended_at == 3.0 and RUNTIME_TABLE.is_terminal(rt.state)


def test_the_story_is_bounded():
    rt = runtime_in(RUNNING)
    for _ in range(50):
        rt.handle("stop")
    assert len(rt.story()) == 20


def numbers(limit):
    return lambda context: paced_source(context, lambda n: {"n": n}, rate=0, limit=limit)


def make_worker(job):
    return StageWorker(job, Context("job-1", worker_index=0, stage_number=1, workers_in_stage=1))


def sid_number(entry):
    return int(entry.stimulus_id.rsplit("-", 1)[1])


def test_a_worker_tells_its_story_with_stimulus_ids_in_order(validating):
    worker = make_worker(Job("story", numbers(100), lambda events, c: events))
    try:
        worker.start()
        assert worker.wait(10) and worker.state == "completed"
        with pytest.raises(RuntimeError, match="already started"):
            worker.start()
        assert worker.metrics().state == "completed" and type(worker.state) is str
    finally:
        worker.stop(5)
    story = worker.story()
    assert [(e.event, e.before, e.after) for e in story] == [
        ("start", "created", "running"), ("complete", "running", "completed"),
        ("start", "completed", None)]
    assert "has ended" in story[-1].note
    numbers_seen = [sid_number(e) for e in story]
    assert numbers_seen == sorted(numbers_seen) and len(set(numbers_seen)) == 3
    assert all(e.key == "story-1-0" for e in story)


def test_a_failed_worker_and_a_worker_stopped_before_it_started(validating):
    failing = make_worker(Job("boom", numbers(10), lambda events, c: events.pipe(ops.map(lambda e: 1 / 0))))
    never = make_worker(Job("never", lambda c: reactivex.empty(), lambda events, c: events))
    try:
        failing.start()
        assert failing.wait(10) and failing.state == "failed"
        assert never.stop(1) and never.state == "completed"
    finally:
        failing.stop(5)
        never.stop(5)
    assert [e.event for e in failing.story()] == ["start", "fail"]
    assert [(e.event, e.after) for e in never.story()] == [("stop", "created"), ("complete", "completed")]


def test_validate_catches_a_broken_invariant():
    running = SimpleNamespace(executor=SimpleNamespace(state="running"))
    completed = SimpleNamespace(executor=SimpleNamespace(state="completed"))
    rt = WorkerRuntime("w", worker=SimpleNamespace(executor=SimpleNamespace(state="created")))
    rt.validate()  # created, no start time, executor not started: fine
    rt.worker = running
    with pytest.raises(InvariantViolation, match="created but its executor is running"):
        rt.validate()
    rt.state = RUNNING
    with pytest.raises(InvariantViolation, match="running with no start time"):
        rt.validate()
    rt.started_at, rt.state, rt.ended_at = 1.0, COMPLETED, 2.0
    with pytest.raises(InvariantViolation, match="its executor is running"):
        rt.validate()
    rt.worker, rt.state = completed, FAILED
    with pytest.raises(InvariantViolation, match="failed but its executor is completed"):
        rt.validate()
    rt.state, rt.ended_at = COMPLETED, None
    with pytest.raises(InvariantViolation, match="no end time"):
        rt.validate()
    rt.ended_at = 2.0
    rt.validate()
