"""Stage concurrency: lanes run side by side, keys stay on one lane, the job's output is whole."""
import threading

import pytest
import reactivex
from reactivex import operators as ops

from mantis.runtime.stage_executor import StageExecutor
from mantis.sdk.job_dsl import Context, Job, ProcessingStage
from tests.support import wait_for


def run_operators(stage, items):
    """Subscribe ``stage``'s (wrapped) operators to ``items``; the output once it completes."""
    out, done, errors = [], threading.Event(), []
    operators = stage.batch_operators if stage.per_batch else stage.operators
    operators(reactivex.from_iterable(items), Context("t-1")).subscribe(
        out.append, lambda e: (errors.append(e), done.set()), done.set)
    assert done.wait(20), "the lanes never completed"
    assert not errors, errors
    return out


def source(context):
    return reactivex.empty()


def test_four_lanes_wait_side_by_side():
    # Each event waits until four events are being handled at once: one lane would time out.
    barrier = threading.Barrier(4, timeout=10)

    def waits(events, context):
        return events.pipe(ops.map(lambda n: (barrier.wait(), n)[1]))

    job = Job("lanes", source, stages=[ProcessingStage(operators=waits, concurrency=4)])
    assert sorted(run_operators(job.stages[0], range(8))) == list(range(8))


def test_keyed_input_keeps_each_key_on_one_lane_in_order():
    seen: dict[str, list] = {}

    def record(events, context):
        def note(event):
            seen.setdefault(event["user"], []).append((threading.get_ident(), event["n"]))
            return event
        return events.pipe(ops.map(note))

    job = Job("lanes", source, stages=[ProcessingStage(operators=lambda e, c: e, key="user"),
                                       ProcessingStage(operators=record, concurrency=3)])
    events = [{"user": f"u{n % 7}", "n": n} for n in range(140)]
    assert len(run_operators(job.stages[1], events)) == 140
    threads = set()
    for user, handled in seen.items():
        assert len({ident for ident, _ in handled}) == 1, user   # one lane per key
        assert [n for _, n in handled] == sorted(n for _, n in handled), user  # in order
        threads.add(handled[0][0])
    assert len(threads) > 1  # the keys spread over lanes


def test_keyed_batches_are_split_so_each_lane_gets_only_its_keys():
    lanes_of: dict[str, set] = {}

    def per_batch(batches, context):
        def note(batch):
            for event in batch:
                lanes_of.setdefault(event["user"], set()).add(threading.get_ident())
            return batch
        return batches.pipe(ops.map(note))

    job = Job("lanes", source, stages=[ProcessingStage(operators=lambda e, c: e, key="user"),
                                       ProcessingStage(batch_operators=per_batch, concurrency=2)])
    batches = [[{"user": f"u{n % 5}", "n": n} for n in range(b * 50, b * 50 + 50)] for b in range(6)]
    out = run_operators(job.stages[1], batches)
    assert sum(len(b) for b in out) == 300
    assert all(len(idents) == 1 for idents in lanes_of.values())


def test_a_job_with_lanes_publishes_every_event_and_leaves_the_users_stage_as_given():
    def double(events, context):
        return events.pipe(ops.map(lambda n: n * 2))

    stage = ProcessingStage(operators=double, concurrency=3)
    job = Job("lanes", lambda c: reactivex.from_iterable(range(500)), stages=[stage])
    assert stage.operators is double and job.stages[0].operators is not double
    published = []
    executor = StageExecutor(job, Context("t-1"), published.append)
    executor.start()
    wait_for(lambda: executor.state == "completed", timeout=20, what="the executor to complete")
    assert sorted(e for batch in published for e in batch) == [n * 2 for n in range(500)]


@pytest.mark.parametrize("value", [0, 65, 1.5, True])
def test_concurrency_out_of_range_is_refused(value):
    with pytest.raises(ValueError, match="concurrency must be a whole number from 1 to 64"):
        ProcessingStage(operators=lambda e, c: e, concurrency=value)


def test_an_error_in_one_lane_is_the_stages_error_and_every_lane_thread_ends():
    def explodes(events, context):
        def check(n):
            if n == 5:
                raise RuntimeError("bad event 5")
            return n
        return events.pipe(ops.map(check))

    job = Job("lanes", source, stages=[ProcessingStage(operators=explodes, concurrency=2)])
    errors, done = [], threading.Event()
    job.stages[0].operators(reactivex.from_iterable(range(50)), Context("t-1")).subscribe(
        on_error=lambda e: (errors.append(e), done.set()), on_completed=done.set)
    assert done.wait(10) and [str(e) for e in errors] == ["bad event 5"]
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("stage-lane-")],
             timeout=5, what="the lane threads to end")


def test_disposing_the_output_stops_the_lanes():
    job = Job("lanes", source, stages=[ProcessingStage(operators=lambda e, c: e, concurrency=3)])
    subscription = job.stages[0].operators(reactivex.never(), Context("t-1")).subscribe()
    assert len([t for t in threading.enumerate() if t.name.startswith("stage-lane-")]) >= 3
    subscription.dispose()
    wait_for(lambda: not [t for t in threading.enumerate() if t.name.startswith("stage-lane-")],
             timeout=5, what="the lane threads to end")
