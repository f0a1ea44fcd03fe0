"""Events <-> batches, batch operators, batch sources, and executors running batch stages."""
import threading
import time

import pytest
import reactivex
from reactivex import operators as ops
from reactivex.subject import ReplaySubject, Subject

from mantis.runtime.batch_operators import filter_each, flat_map_each, map_each
from mantis.runtime.batching import batches_of, events_of
from mantis.runtime.sources import paced_batches
from mantis.runtime.stage_executor import StageExecutor
from mantis.sdk.job_dsl import BatchSource, Context, Job, ProcessingStage
from tests.support import wait_for


def collect(observable):
    items, done = [], threading.Event()
    observable.subscribe(items.append, lambda exc: done.set(), done.set)
    return items, done


def test_events_of_emits_every_event_of_every_batch_in_order():
    items, done = collect(events_of(reactivex.of([1, 2], [], [3])))
    assert done.is_set() and items == [1, 2, 3]


def test_batches_of_fills_batches_up_to_the_size_and_flushes_the_rest_on_completion():
    items, done = collect(batches_of(reactivex.from_iterable(range(7)), size=3, interval_s=10))
    assert done.wait(5)
    assert items == [[0, 1, 2], [3, 4, 5], [6]]


def test_batches_of_flushes_a_partial_batch_after_the_interval():
    subject = Subject()
    items, _ = collect(batches_of(subject, size=1000, interval_s=0.05))
    subject.on_next("a")
    subject.on_next("b")
    wait_for(lambda: items, timeout=2, interval=0.01, what="a time flush")
    assert items == [["a", "b"]]
    subject.on_completed()


def test_batch_operators_apply_per_event_functions_to_whole_batches():
    items, _ = collect(reactivex.of([1, 2, 3, 4], [5]).pipe(
        filter_each(lambda n: n % 2),
        map_each(lambda n: n * 10),
        flat_map_each(lambda n: [n, n + 1]),
    ))
    assert items == [[10, 11, 30, 31], [50, 51]]


def test_filter_each_keeps_events_by_truthiness_and_map_each_keeps_order():
    items, _ = collect(reactivex.of([0, 1, "", "x", None, [2]]).pipe(
        filter_each(lambda e: e),
        map_each(lambda e: (e,)),
    ))
    assert items == [[(1,), ("x",), ([2],)]]


def test_an_error_in_a_per_event_function_fails_the_stream():
    errors = []
    reactivex.of([1, 0]).pipe(map_each(lambda n: 1 / n)).subscribe(on_error=errors.append)
    assert [type(e) for e in errors] == [ZeroDivisionError]


def test_paced_batches_emits_limit_events_in_batches_then_completes():
    context = Context("t")
    items, done = collect(paced_batches(context, lambda n: n, limit=2500, batch_size=1000))
    assert done.wait(5)
    assert [len(b) for b in items] == [1000, 1000, 500]
    assert [e for b in items for e in b] == list(range(2500))


def test_paced_batches_keeps_to_its_rate():
    context = Context("t")
    items, _ = collect(paced_batches(context, lambda n: n, rate=2000))
    time.sleep(0.5)
    context.stopped.set()
    count = sum(len(b) for b in items)
    assert 700 <= count <= 1300, count


def run(job, **options):
    batches = []
    executor = StageExecutor(job, Context("test-1"), batches.append, **options)
    executor.start()
    assert executor.wait(10)
    return executor, [e for b in batches for e in b], batches


def test_a_batch_stage_over_a_per_event_source_sees_batches_and_publishes_their_events():
    seen_sizes = []

    def stage(batches, context):
        return batches.pipe(ops.do_action(lambda b: seen_sizes.append(len(b))), map_each(lambda n: n * 2))

    job = Job("b", lambda c: reactivex.from_iterable(range(2500)), ProcessingStage(batch_operators=stage))
    executor, events, _ = run(job)
    assert executor.state == "completed"
    assert events == [n * 2 for n in range(2500)]
    assert seen_sizes == [1000, 1000, 500]
    assert (executor.events_in, executor.events_out) == (2500, 2500)


def test_a_per_event_stage_over_a_batch_source_sees_single_events():
    job = Job("e", BatchSource(lambda c: reactivex.of([1, 2, 3], [4])),
              lambda events, c: events.pipe(ops.filter(lambda n: n != 2)))
    executor, events, _ = run(job)
    assert events == [1, 3, 4] and executor.events_in == 4


def test_a_batch_stage_over_a_batch_source_gets_the_batches_and_skips_empty_outputs():
    job = Job("bb", BatchSource(lambda c: reactivex.of([1, 2], [3], [4, 5])),
              ProcessingStage(batch_operators=lambda b, c: b.pipe(filter_each(lambda n: n > 2))))
    executor, events, batches = run(job, batch_size=2)
    assert events == [3, 4, 5]
    assert all(batches)
    assert (executor.events_in, executor.events_out) == (5, 3)


def test_a_batch_stage_that_emits_something_else_than_a_list_fails_the_executor():
    job = Job("bad", BatchSource(lambda c: reactivex.of([1])),
              ProcessingStage(batch_operators=lambda b, c: b.pipe(ops.map(tuple))))
    executor, _, _ = run(job)
    assert executor.state == "failed"
    assert executor.error == "TypeError: a batch stage must emit lists of events, not tuple"


def test_an_executor_for_a_later_stage_needs_its_upstream_input():
    job = Job("two", lambda c: reactivex.empty(), stages=[lambda e, c: e, lambda e, c: e])
    with pytest.raises(ValueError, match="needs its upstream"):
        StageExecutor(job, Context("t", stage_number=2), publish=print)


def test_an_executor_for_a_later_stage_runs_its_operators_over_the_upstream_batches():
    upstream = ReplaySubject()  # keeps what is sent before the pipeline thread subscribes
    job = Job("two", lambda c: reactivex.empty(),
              stages=[lambda e, c: e, lambda events, c: events.pipe(ops.map(lambda n: n + 1))])
    published = []
    executor = StageExecutor(job, Context("t", stage_number=2), published.append, upstream=upstream)
    executor.start()
    upstream.on_next([1, 2])
    upstream.on_next([3])
    upstream.on_completed()
    assert executor.wait(5)
    assert [e for b in published for e in b] == [2, 3, 4]
    assert executor.events_in == 3


def test_only_the_last_stage_delivers_to_the_jobs_sink():
    sunk = []
    job = Job("sunk", lambda c: reactivex.of(1, 2), stages=[lambda e, c: e, lambda e, c: e],
              sink=lambda batch, context: sunk.append(batch))
    published = []
    executor = StageExecutor(job, Context("t", stage_number=1), published.append)
    executor.start()
    assert executor.wait(5)
    assert published == [[1, 2]] and sunk == []
