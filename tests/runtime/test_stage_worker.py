"""Stage workers: what each stage runs, replacement of upstream workers, block and drop, endings."""
import time

import pytest
import reactivex
from reactivex import operators as ops

from mantis.runtime.batch_operators import map_each
from mantis.runtime.sources import paced_source
from mantis.runtime.stage_worker import StageWorker
from mantis.sdk.job_dsl import Context, Job, ProcessingStage
from tests.runtime.readers import DownstreamReader, FrameCollector
from tests.support import wait_for


@pytest.fixture
def workers():
    made = []

    def make(job, stage_number=1, index=0, workers_in_stage=1, **options):
        context = Context("job-1", worker_index=index, stage_number=stage_number,
                          workers_in_stage=workers_in_stage)
        worker = StageWorker(job, context, **options)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop(5)


def numbers(limit=0, rate=0):
    """A source of {"n": 0}, {"n": 1}, ... keyed by n % 10 as "k"."""
    return lambda context: paced_source(context, lambda n: {"n": n, "k": n % 10}, rate=rate, limit=limit)


def identity(events, context):
    return events


def endpoint(worker, worker_id=1):
    return (worker_id, "127.0.0.1", worker.port)


def test_a_per_event_later_stage_runs_its_reactivex_operators_over_the_network(workers):
    def running_count(events, context):
        return events.pipe(
            ops.group_by(lambda e: e["k"]),
            ops.flat_map(lambda group: group.pipe(
                ops.scan(lambda count, _: count + 1, 0),
                ops.map(lambda count, k=group.key: {"k": k, "count": count}))))

    job = Job("counts", numbers(limit=5000), stages=[ProcessingStage(operators=identity, key="k"),
                                                     ProcessingStage(operators=running_count)])
    second = workers(job, 2, upstream_endpoints=[])
    first = workers(job, 1)
    second.update_upstream([endpoint(first)])  # endpoints may come after construction
    collector = FrameCollector(second.port)
    wait_for(lambda: second.output.connections == 1, timeout=5, interval=0.01, what="subscriber")
    second.start()
    first.start()
    assert first.wait(20) and second.wait(20)
    assert (first.state, second.state) == ("completed", "completed"), (first.error, second.error)
    final = {}
    for update in collector.wait_for_events(5000):
        final[update["k"]] = update["count"]
    assert final == {k: 500 for k in range(10)}


def test_a_three_stage_job_chains_scalar_and_keyed_stages(workers):
    job = Job("chain", numbers(limit=3000), stages=[
        ProcessingStage(operators=identity),  # scalar: round-robin to stage 2
        ProcessingStage(batch_operators=lambda b, c: b.pipe(map_each(lambda e: {**e, "seen": 2})), key="k"),
        ProcessingStage(operators=identity)])
    thirds = [workers(job, 3, index=i, workers_in_stage=2) for i in range(2)]
    seconds = [workers(job, 2, index=i, workers_in_stage=2) for i in range(2)]
    first = workers(job, 1)
    for worker in seconds:
        worker.update_upstream([endpoint(first)])
    for worker in thirds:
        worker.update_upstream([endpoint(w, i) for i, w in enumerate(seconds)])
    collectors = [FrameCollector(w.port) for w in thirds]
    wait_for(lambda: all(w.output.connections == 1 for w in thirds), timeout=5, interval=0.01,
             what="subscribers")
    for worker in thirds + seconds + [first]:
        worker.start()
    for worker in [first] + seconds + thirds:
        assert worker.wait(20) and worker.state == "completed", worker.error
    wait_for(lambda: sum(len(c.events) for c in collectors) == 3000, timeout=10, interval=0.01,
             what="all events out")
    events = [e for c in collectors for e in c.events]
    assert sorted(e["n"] for e in events) == list(range(3000))
    assert all(e["seen"] == 2 for e in events)
    keys_per_worker = [{e["k"] for e in c.events} for c in collectors]
    assert not keys_per_worker[0] & keys_per_worker[1]  # keyed from stage 2 to stage 3
    assert all(w.metrics().events_in > 0 for w in seconds)  # round-robin fed both


def test_a_downstream_worker_keeps_receiving_after_its_upstream_worker_is_replaced(workers):
    job = Job("endless", numbers(rate=2000), stages=[ProcessingStage(operators=identity, key="k"),
                                                    ProcessingStage(operators=identity)])
    second = workers(job, 2)
    old = workers(job, 1)
    second.update_upstream([endpoint(old, "w1")])
    second.start()
    old.start()
    wait_for(lambda: second.metrics().events_in > 100, timeout=10, interval=0.01, what="events flowing")
    assert old.stop(5)  # the upstream worker is lost: the downstream must not complete
    time.sleep(0.3)
    assert second.state == "running"
    received_before = second.metrics().events_in
    replacement = workers(job, 1)
    replacement.start()
    second.update_upstream([endpoint(replacement, "w2")])
    wait_for(lambda: second.metrics().events_in > received_before + 100, timeout=10, interval=0.01,
             what="events from the replacement")
    metrics = second.metrics()
    assert metrics.reconnects == 1 and metrics.upstream_connections == 1 and metrics.bytes_in > 0


def test_a_drop_stage_keeps_its_source_running_past_a_stalled_consumer_and_counts_drops(workers):
    pad = "x" * 200
    job = Job("dropper", lambda c: paced_source(c, lambda n: {"n": n, "pad": f"{n}{pad}"}),
              stages=[ProcessingStage(operators=identity, on_slow_consumer="drop"),
                      ProcessingStage(operators=identity)])
    first = workers(job, 1, buffer_batches=2, downstream_wait_s=0)
    stalled = DownstreamReader(first.port, 0, 1, receive_buffer=4096, read=False)
    wait_for(lambda: first.output.connections == 1, timeout=5, interval=0.01, what="consumer")
    first.start()
    wait_for(lambda: first.metrics().dropped_events > 0, timeout=10, interval=0.01, what="drops")
    produced = first.metrics().events_in
    wait_for(lambda: first.metrics().events_in > produced + 50_000, timeout=10, interval=0.01,
             what="the source still running")
    metrics = first.metrics()
    assert metrics.queue_depth <= 2  # memory stays bounded
    assert metrics.dropped_events > 30_000  # most of what the source made since the stall
    stalled.close()


def test_a_block_stage_holds_its_source_back_for_a_stalled_consumer_and_drops_nothing(workers):
    pad = "x" * 200
    job = Job("blocker", lambda c: paced_source(c, lambda n: {"n": n, "pad": f"{n}{pad}"}),
              stages=[ProcessingStage(operators=identity, on_slow_consumer="block"),
                      ProcessingStage(operators=identity)])
    first = workers(job, 1, buffer_batches=2, block_timeout_s=30, downstream_wait_s=0)
    stalled = DownstreamReader(first.port, 0, 1, receive_buffer=4096, read=False)
    wait_for(lambda: first.output.connections == 1, timeout=5, interval=0.01, what="consumer")
    first.start()
    time.sleep(0.5)
    held_at = first.metrics().events_in
    time.sleep(0.5)
    metrics = first.metrics()
    assert metrics.events_in == held_at  # the source is held back...
    assert held_at < 100_000  # ...after a few batches, not free-running
    assert metrics.dropped_events == 0
    stalled.close()


def test_stopping_a_worker_passes_no_end_of_stream_on(workers):
    job = Job("endless", numbers(rate=1000), stages=[identity, identity])
    first = workers(job, 1, downstream_wait_s=0)
    reader = DownstreamReader(first.port, 0, 1)
    first.start()
    reader.wait_for_events(10)
    assert first.stop(5)
    assert reader.eof.wait(5)
    assert not reader.end_of_stream.is_set()


def test_a_failing_stage_fails_the_worker_and_passes_no_end_of_stream_on(workers):
    def explode(events, context):
        return events.pipe(ops.map(lambda e: 1 / 0 if e["n"] == 50 else e))

    job = Job("boom", numbers(limit=100), stages=[explode, identity])
    first = workers(job, 1, downstream_wait_s=0)
    reader = DownstreamReader(first.port, 0, 1)
    wait_for(lambda: first.output.connections == 1, timeout=5, interval=0.01, what="consumer")
    first.start()
    assert first.wait(10)
    assert first.state == "failed" and first.error == "ZeroDivisionError: division by zero"
    time.sleep(0.2)
    assert not reader.end_of_stream.is_set()
    reader.close()


def test_a_non_last_stage_waits_for_every_next_stage_worker_before_starting_its_source(workers):
    job = Job("waits", numbers(limit=1000), stages=[ProcessingStage(operators=identity, key="k"), identity])
    first = workers(job, 1, downstream_wait_s=10)
    first.start()
    one = DownstreamReader(first.port, 0, 2)
    time.sleep(0.3)
    assert first.metrics().events_in == 0  # worker 1 of 2 is not there yet
    two = DownstreamReader(first.port, 1, 2)
    assert first.wait(10) and first.state == "completed"
    assert one.end_of_stream.wait(5) and two.end_of_stream.wait(5)
    assert len(one.events) + len(two.events) == 1000


def test_metrics_report_the_workers_counters_in_camel_case(workers):
    job = Job("m", numbers(limit=100), stages=[identity, identity])
    first = workers(job, 1, downstream_wait_s=0)
    reader = DownstreamReader(first.port, 0, 1)
    wait_for(lambda: first.output.connections == 1, timeout=5, interval=0.01, what="consumer")
    first.start()
    assert first.wait(10)
    reader.end_of_stream.wait(5)
    # The end confirmed, the upstream hangs up.
    wait_for(lambda: first.output.connections == 0, timeout=5, interval=0.01, what="hung up")
    metrics = first.metrics().to_json()
    assert metrics.pop("busySeconds") >= 0 and metrics.pop("user") == {}
    assert metrics == {
        "stage": 1, "port": first.port, "state": "completed", "eventsIn": 100, "eventsOut": 100,
        "droppedEvents": 0, "queueDepth": 0, "subscribers": 0, "upstreamConnections": 0,
        "bytesIn": 0, "reconnects": 0, "deliveredEvents": 100, "lostEvents": 0,
        "inFlightEvents": 0}


def test_stage_one_has_no_upstream_and_a_stage_must_exist(workers):
    job = Job("two", numbers(limit=1), stages=[identity, identity])
    with pytest.raises(ValueError, match="no upstream"):
        workers(job, 1, upstream_endpoints=[(1, "127.0.0.1", 9)])
    with pytest.raises(ValueError, match="no upstream"):
        workers(job, 1).update_upstream([])
    with pytest.raises(ValueError, match="has stages 1..2"):
        workers(job, 3)


def test_a_one_stage_job_serves_its_output_to_subscribers_like_before(workers):
    job = Job("single", numbers(limit=2500), identity)
    worker = workers(job)
    collector = FrameCollector(worker.port)
    wait_for(lambda: worker.output.connections == 1, timeout=5, interval=0.01, what="subscriber")
    worker.start()
    assert worker.wait(10) and worker.state == "completed"
    assert [e["n"] for e in collector.wait_for_events(2500)] == list(range(2500))


def test_a_worker_stopped_before_it_started_ends_completed_without_running(workers):
    calls = []
    job = Job("never", lambda c: calls.append(c) or reactivex.empty(), identity)
    worker = workers(job)
    assert worker.stop(1)
    assert worker.state == "completed" and calls == []


def test_stop_is_prompt_even_while_publish_blocks_on_a_stalled_consumer(workers):
    pad = "x" * 200
    job = Job("blocked", lambda c: paced_source(c, lambda n: {"n": n, "pad": f"{n}{pad}"}),
              stages=[ProcessingStage(operators=identity, on_slow_consumer="block"), identity])
    first = workers(job, 1, buffer_batches=2, block_timeout_s=30, downstream_wait_s=0)
    stalled = DownstreamReader(first.port, 0, 1, receive_buffer=4096, read=False)
    wait_for(lambda: first.output.connections == 1, timeout=5, interval=0.01, what="consumer")
    first.start()
    wait_for(lambda: first.metrics().queue_depth == 2, timeout=10, interval=0.01, what="queue full")
    started = time.monotonic()
    assert first.stop(5)
    assert time.monotonic() - started < 1.0
    assert first.state == "completed"
    stalled.close()


def test_metrics_carry_busy_time_and_the_jobs_own_metrics(workers):
    def slow(events, ctx):
        def work(event):
            time.sleep(0.002)  # a known cost per event: busy time must cover it
            ctx.metrics.counter("worked").increment()
            ctx.metrics.gauge("last").set(event["n"])
            return event
        return events.pipe(ops.map(work))

    job = Job("busy", numbers(limit=200), slow)
    worker = workers(job)
    worker.start()
    assert worker.wait(20)
    metrics = worker.metrics().to_json()
    assert metrics["eventsIn"] == 200 and metrics["busySeconds"] >= 200 * 0.002
    assert metrics["user"] == {"worked": 200.0, "last": 199.0}


@pytest.mark.parametrize("key", ["k", None])
def test_a_drained_worker_hands_over_its_stream_and_no_event_is_lost(workers, key):
    def slowly(events, ctx):
        return events.pipe(ops.do_action(lambda e: time.sleep(0.0002)))

    job = Job("drain", numbers(limit=6000, rate=3000), stages=[
        ProcessingStage(operators=identity, key=key, on_slow_consumer="block"),
        ProcessingStage(operators=slowly)])
    seconds = [workers(job, 2, index=i, workers_in_stage=2) for i in range(2)]
    first = workers(job, 1)
    for worker in seconds:
        worker.update_upstream([endpoint(first)])
    collectors = [FrameCollector(w.port) for w in seconds]
    wait_for(lambda: all(w.output.connections == 1 for w in seconds), timeout=5, interval=0.01,
             what="subscribers")
    for worker in seconds + [first]:
        worker.start()
    wait_for(lambda: len(collectors[1].events) > 300, timeout=10, interval=0.01, what="events at worker 1")
    assert seconds[1].drain(10) and seconds[1].state == "completed"  # scaled down mid-stream
    assert first.wait(20) and seconds[0].wait(20), (first.error, seconds[0].error)
    wait_for(lambda: sum(len(c.events) for c in collectors) >= 6000, timeout=10, interval=0.05,
             what="all events out")
    assert sorted(e["n"] for c in collectors for e in c.events) == list(range(6000))
    out = first.metrics()
    assert (out.lost_events, out.dropped_events, out.delivered_events) == (0, 0, 6000)
    assert len(collectors[1].events) < 6000 - 300  # the rest went to worker 0 once 1 had left
