"""The stage executor: source -> stage -> ordered batches, and every way it can end."""
import threading
import time

import pytest
import reactivex
from reactivex import operators as ops

from mantis.runtime.sources import paced_source
from mantis.runtime.stage_executor import StageExecutor
from mantis.sdk.job_dsl import Context, Job
from tests.support import wait_for


class Published:
    """A publish function that records batches (thread-safe enough: appends only)."""

    def __init__(self):
        self.batches: list[list] = []

    def __call__(self, batch):
        self.batches.append(batch)

    @property
    def events(self):
        return [e for b in list(self.batches) for e in b]


def identity_stage(events, context):
    return events


def run(job, published=None, **options):
    published = published if published is not None else Published()
    executor = StageExecutor(job, Context("test-1"), published, **options)
    executor.start()
    return executor, published


def test_limited_source_completes_and_publishes_every_event_in_order_in_full_batches():
    job = Job("count", lambda c: paced_source(c, lambda n: {"id": n}, rate=0, limit=2500), identity_stage)
    executor, published = run(job)
    assert executor.wait(10)
    assert executor.state == "completed" and executor.error is None
    assert [len(b) for b in published.batches] == [1000, 1000, 500]
    assert [e["id"] for e in published.events] == list(range(2500))
    assert executor.events_in == executor.events_out == 2500


def test_synchronous_source_completes_too():
    job = Job("sync", lambda c: reactivex.from_iterable(range(10)), identity_stage)
    executor, published = run(job, batch_size=4)
    assert executor.wait(10)
    assert executor.state == "completed"
    assert published.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_counters_count_source_events_in_and_stage_events_out():
    job = Job("evens", lambda c: reactivex.from_iterable(range(100)),
              lambda events, c: events.pipe(ops.filter(lambda n: n % 2 == 0)))
    executor, published = run(job)
    assert executor.wait(10)
    assert (executor.events_in, executor.events_out) == (100, 50)
    assert published.events == list(range(0, 100, 2))


def test_slow_stream_is_published_within_the_batch_interval():
    job = Job("slow", lambda c: paced_source(c, lambda n: n, rate=20), identity_stage)
    executor, published = run(job, batch_interval_s=0.05)
    try:
        started = time.monotonic()
        wait_for(lambda: published.events, timeout=2, interval=0.01, what="first batch")
        assert time.monotonic() - started < 1.0
        wait_for(lambda: len(published.batches) >= 3, timeout=5, interval=0.01, what="three batches")
        assert all(len(b) < 1000 for b in published.batches)
        assert executor.state == "running"
    finally:
        assert executor.stop(5)


def test_exception_in_a_stage_operator_fails_the_executor_with_its_message():
    def explode(n):
        if n == 7:
            raise ZeroDivisionError("no sevens\nplease")
        return n

    job = Job("boom", lambda c: paced_source(c, lambda n: n, limit=100),
              lambda events, c: events.pipe(ops.map(explode)))
    executor, published = run(job)
    assert executor.wait(10)
    assert executor.state == "failed"
    assert executor.error == "ZeroDivisionError: no sevens please"
    assert published.events == list(range(7))  # what came before the failure is kept


def test_exception_while_generating_events_fails_the_executor():
    def make_event(n):
        raise KeyError("missing")

    job = Job("bad-source", lambda c: paced_source(c, make_event, limit=10), identity_stage)
    executor, _ = run(job)
    assert executor.wait(10)
    assert executor.state == "failed"
    assert executor.error == "KeyError: 'missing'"


def test_source_factory_that_raises_fails_before_anything_runs():
    def source(context):
        raise RuntimeError("cannot reach the broker")

    executor, published = run(Job("no-source", source, identity_stage))
    assert executor.wait(10)
    assert executor.state == "failed"
    assert executor.error == "source failed to start: RuntimeError: cannot reach the broker"
    assert published.batches == []


def test_stage_that_returns_no_observable_fails_with_a_clear_reason():
    job = Job("no-stage", lambda c: reactivex.from_iterable([1]), lambda events, c: None)
    executor, _ = run(job)
    assert executor.wait(10)
    assert executor.state == "failed"
    assert executor.error == "stage returned NoneType, not an Observable"


def test_publish_that_raises_fails_the_executor_and_stops_the_source():
    def publish(batch):
        raise ConnectionError("sink is gone")

    context = Context("test-1")
    job = Job("endless", lambda c: paced_source(c, lambda n: n, rate=0), identity_stage)
    executor = StageExecutor(job, context, publish)
    executor.start()
    assert executor.wait(10)
    assert executor.state == "failed"
    assert executor.error == "publish failed: ConnectionError: sink is gone"
    assert context.stopped.is_set()


def test_stop_ends_a_never_ending_fast_source_promptly():
    context = Context("test-1")
    published = Published()
    job = Job("endless", lambda c: paced_source(c, lambda n: n, rate=0), identity_stage)
    executor = StageExecutor(job, context, published)
    executor.start()
    wait_for(lambda: executor.events_out > 10_000, timeout=10, interval=0.01, what="events flowing")
    started = time.monotonic()
    assert executor.stop(timeout=5)
    assert time.monotonic() - started < 1.0
    assert executor.state == "completed"
    assert context.stopped.is_set()
    out = executor.events_out
    assert published.events == list(range(out))  # all published, in order, no gaps
    time.sleep(0.2)
    assert executor.events_out == out  # nothing published after stop returned


def test_stop_ends_a_slowly_paced_source_promptly():
    job = Job("trickle", lambda c: paced_source(c, lambda n: n, rate=1), identity_stage)
    executor, _ = run(job)
    wait_for(lambda: executor.events_in >= 1, timeout=5, interval=0.01, what="first event")
    started = time.monotonic()
    assert executor.stop(timeout=5)
    assert time.monotonic() - started < 0.5
    assert executor.state == "completed"


def test_stop_disposes_a_scheduler_driven_source():
    job = Job("ticks", lambda c: reactivex.interval(0.01), identity_stage)
    executor, published = run(job, batch_interval_s=0.02)
    wait_for(lambda: executor.events_in >= 5, timeout=5, interval=0.01, what="ticks")
    assert executor.stop(timeout=5)
    seen = executor.events_in
    time.sleep(0.1)
    assert executor.events_in <= seen + 1  # the interval was disposed
    assert published.events == list(range(len(published.events)))


def test_stop_gives_up_waiting_for_a_source_that_blocks_and_ignores_it():
    release = threading.Event()

    def blocking_source(context):
        def subscribe(observer, scheduler=None):
            release.wait(10)  # holds the pipeline thread, never looks at context.stopped
        return reactivex.create(subscribe)

    executor, _ = run(Job("stubborn", blocking_source, identity_stage))
    time.sleep(0.05)
    started = time.monotonic()
    assert executor.stop(timeout=0.2) is False
    assert time.monotonic() - started < 1.0
    assert executor.state == "completed"
    release.set()


def test_stop_does_not_hang_on_a_publish_that_blocks():
    release = threading.Event()
    job = Job("stuck-sink", lambda c: paced_source(c, lambda n: n, rate=0), identity_stage)
    executor, _ = run(job, published=lambda batch: release.wait(10))
    try:
        time.sleep(0.05)
        started = time.monotonic()
        assert executor.stop(timeout=0.2) is False
        assert time.monotonic() - started < 1.0
        assert executor.state == "completed"
    finally:
        release.set()
    assert executor.events_out <= 1000  # at most the batch that was stuck in publish


def test_events_a_stubborn_source_emits_after_stop_are_not_published():
    release = threading.Event()

    def stubborn_source(context):
        def subscribe(observer, scheduler=None):
            def loop():
                n = 0
                while not release.is_set():  # ignores both stopped and dispose
                    observer.on_next(n)
                    n += 1
                    time.sleep(0.0005)
            threading.Thread(target=loop, daemon=True).start()
        return reactivex.create(subscribe)

    executor, published = run(Job("stubborn", stubborn_source, identity_stage), batch_interval_s=0.01)
    try:
        wait_for(lambda: published.events, timeout=5, interval=0.01, what="first batch")
        assert executor.stop(timeout=2)
        out = len(published.events)
        time.sleep(0.1)
        assert len(published.events) == out == executor.events_out
    finally:
        release.set()


def test_job_sink_receives_the_batches_instead_of_publish():
    received = []
    job = Job("sunk", lambda c: reactivex.from_iterable(range(5)), identity_stage,
              sink=lambda batch, context: received.append((batch, context.job_id)))
    published = Published()
    executor, _ = run(job, published)
    assert executor.wait(10)
    assert received == [([0, 1, 2, 3, 4], "test-1")]
    assert published.batches == []


def test_executor_without_sink_or_publish_is_refused():
    job = Job("nowhere", lambda c: reactivex.empty(), identity_stage)
    with pytest.raises(ValueError, match="publish"):
        StageExecutor(job, Context("test-1"))


def test_executor_starts_only_once():
    job = Job("once", lambda c: reactivex.empty(), identity_stage)
    executor, _ = run(job)
    with pytest.raises(RuntimeError, match="already started"):
        executor.start()
    assert executor.wait(5) and executor.state == "completed"


def test_stop_before_start_ends_completed_without_running_anything():
    calls = []
    job = Job("never", lambda c: calls.append(c) or reactivex.empty(), identity_stage)
    executor = StageExecutor(job, Context("test-1"), Published())
    assert executor.state == "created"
    assert executor.stop(1)
    assert executor.state == "completed"
    assert calls == []


def test_stage_sees_the_context_it_was_given():
    seen = {}

    def stage(events, context):
        seen.update(job=context.job_id, index=context.worker_index, params=context.parameters)
        return events

    context = Context("job-7", worker_index=2, worker_number=5, stage_number=1, parameters={"k": 1})
    executor = StageExecutor(Job("ctx", lambda c: reactivex.empty(), stage), context, Published())
    executor.start()
    assert executor.wait(5)
    assert seen == {"job": "job-7", "index": 2, "params": {"k": 1}}
