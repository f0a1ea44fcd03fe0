"""The stage input: connects to every upstream worker, follows endpoint changes, reconnects, completes."""
import threading
import time

import pytest

from mantis.runtime.frames import encode_stage_batch
from mantis.runtime.stage_input import StageInput
from mantis.runtime.stage_output import StageOutputServer
from tests.support import wait_for


class Received:
    """Subscribes to a StageInput and records what it feeds."""

    def __init__(self, stage_input: StageInput, delay_s: float = 0.0):
        self.batches: list[list] = []
        self.completed = threading.Event()
        self.errors: list[Exception] = []
        self.delay_s = delay_s
        self.subscription = stage_input.batches.subscribe(self._on_batch, self.errors.append,
                                                          self.completed.set)

    def _on_batch(self, batch):
        self.batches.append(batch)
        if self.delay_s:
            time.sleep(self.delay_s)

    @property
    def events(self):
        return [e for b in list(self.batches) for e in b]

    def wait_for_events(self, count, timeout=10.0):
        wait_for(lambda: len(self.events) >= count, timeout=timeout, interval=0.005,
                 what=f"{count} events fed")
        return self.events


@pytest.fixture
def upstreams():
    made = []

    def make(port=0, **options):
        server = StageOutputServer(port=port, **options)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture
def inputs():
    made = []

    def make(*args, **options):
        stage_input = StageInput(*args, **options)
        made.append(stage_input)
        return stage_input

    yield make
    for stage_input in made:
        stage_input.close()


def endpoint(worker_id, server):
    return (worker_id, "127.0.0.1", server.port)


def connected(server, count=1):
    wait_for(lambda: server.connections == count, timeout=5, interval=0.01, what="downstream connected")


def test_it_connects_to_every_upstream_and_feeds_their_batches_with_counters(upstreams, inputs):
    a, b = upstreams(), upstreams()
    stage_input = inputs(0, 1, [endpoint(1, a), endpoint(2, b)])
    received = Received(stage_input)
    connected(a)
    connected(b)
    # The upstream counts a connection on accept, the input once its handshake is done.
    wait_for(lambda: stage_input.connected == 2, timeout=5, interval=0.01, what="both upstreams connected")
    a.publish([{"from": "a", "n": 1}, {"from": "a", "n": 2}])
    b.publish([{"from": "b", "n": 1}])
    events = received.wait_for_events(3)
    assert sorted((e["from"], e["n"]) for e in events) == [("a", 1), ("a", 2), ("b", 1)]
    assert (stage_input.events_in, stage_input.batches_in) == (3, 2)
    assert stage_input.bytes_in == (len(encode_stage_batch([{"from": "a", "n": 1}, {"from": "a", "n": 2}]))
                                    + len(encode_stage_batch([{"from": "b", "n": 1}])) - 2 * 4)  # payloads
    assert (stage_input.connects, stage_input.reconnects, stage_input.disconnects) == (2, 0, 0)


def test_the_handshake_tells_the_upstream_this_workers_index_and_stage_size(upstreams, inputs):
    server = upstreams(key=lambda e: e)
    Received(inputs(2, 3, [endpoint(1, server)]))
    connected(server)
    assert [(s.worker_index, s.workers) for s in server.downstream_stats()] == [(2, 3)]


def test_nothing_connects_before_the_pipeline_subscribes(upstreams, inputs):
    server = upstreams()
    stage_input = inputs(0, 1, [endpoint(1, server)])
    time.sleep(0.2)
    assert server.connections == 0
    Received(stage_input)
    connected(server)


def test_update_connects_new_upstreams_and_disconnects_removed_ones(upstreams, inputs):
    a, b = upstreams(), upstreams()
    stage_input = inputs(0, 1, [endpoint(1, a)])
    received = Received(stage_input)
    connected(a)
    stage_input.update([endpoint(2, b)])
    connected(b)
    connected(a, 0)
    b.publish([{"n": 1}])
    assert received.wait_for_events(1) == [{"n": 1}]
    assert stage_input.endpoints == ((2, "127.0.0.1", b.port),)


def test_a_downstream_keeps_receiving_after_its_upstream_is_replaced(upstreams, inputs):
    old = upstreams()
    stage_input = inputs(0, 1, [endpoint("worker-1", old)], reconnect_interval_s=0.05)
    received = Received(stage_input)
    connected(old)
    old.publish([{"n": 1}])
    received.wait_for_events(1)
    old.close()  # the upstream worker dies, without an end of stream
    wait_for(lambda: stage_input.disconnects == 1, timeout=5, interval=0.01, what="loss noticed")
    assert not received.completed.is_set()
    replacement = upstreams()  # the control plane starts a replacement elsewhere
    stage_input.update([endpoint("worker-2", replacement)])
    connected(replacement)
    replacement.publish([{"n": 2}])
    assert received.wait_for_events(2) == [{"n": 1}, {"n": 2}]
    assert stage_input.reconnects == 1


def test_a_lost_upstream_is_retried_at_the_same_address_until_it_is_back(upstreams, inputs):
    first = upstreams()
    port = first.port
    stage_input = inputs(0, 1, [endpoint(1, first)], reconnect_interval_s=0.05)
    received = Received(stage_input)
    connected(first)
    first.close()
    wait_for(lambda: stage_input.disconnects == 1, timeout=5, interval=0.01, what="loss noticed")
    time.sleep(0.2)  # a few refused attempts
    again = upstreams(port=port)  # restarted on the same port, no update needed
    connected(again)
    again.publish([{"n": 1}])
    assert received.wait_for_events(1) == [{"n": 1}]
    assert stage_input.reconnects == 1


def test_the_input_completes_once_every_upstream_has_ended(upstreams, inputs):
    a, b = upstreams(), upstreams()
    received = Received(inputs(0, 1, [endpoint(1, a), endpoint(2, b)]))
    connected(a)
    connected(b)
    a.publish([{"n": 1}])
    assert a.finish(5)
    time.sleep(0.1)
    assert not received.completed.is_set()  # b is still going
    b.publish([{"n": 2}])
    assert b.finish(5)
    assert received.completed.wait(5)
    assert sorted(e["n"] for e in received.events) == [1, 2]


def test_a_slow_pipeline_holds_back_a_blocking_upstream_without_losing_anything(upstreams, inputs):
    server = upstreams(on_slow_consumer="block", buffer_batches=2)
    received = Received(inputs(0, 1, [endpoint(1, server)]), delay_s=0.002)
    connected(server)
    pad = "x" * 2000
    for b in range(150):
        server.publish([{"seq": b * 10 + i, "pad": pad} for i in range(10)])
    events = received.wait_for_events(1500, timeout=20)
    assert [e["seq"] for e in events] == list(range(1500))
    assert server.dropped_events == 0


def test_an_error_in_the_pipeline_ends_the_input(upstreams, inputs):
    server = upstreams()
    stage_input = inputs(0, 1, [endpoint(1, server)])
    errors = []

    def explode(batch):
        raise ValueError("bad batch")

    stage_input.batches.subscribe(explode, errors.append)
    connected(server)
    server.publish([{"n": 1}])
    wait_for(lambda: errors, timeout=5, interval=0.01, what="the error")
    assert str(errors[0]) == "bad batch"
    connected(server, 0)  # the input hung up


@pytest.mark.parametrize("bad", [("w", "127.0.0.1"), ("w", "127.0.0.1", 0), ("w", 5, 80), "w:80"])
def test_a_malformed_endpoint_is_rejected(bad):
    with pytest.raises(ValueError, match="endpoint"):
        StageInput(0, 1, [bad])


def test_the_input_refuses_a_second_subscriber(upstreams, inputs):
    stage_input = inputs(0, 1, [])
    Received(stage_input)
    errors = []
    stage_input.batches.subscribe(lambda b: None, errors.append)
    assert errors and "once" in str(errors[0])


def test_the_input_confirms_every_batch_and_the_end_so_nothing_counts_as_lost(upstreams, inputs):
    upstream = upstreams()
    stage_input = inputs(0, 1, [endpoint(1, upstream)])
    received = Received(stage_input)
    connected(upstream)
    for b in range(20):
        upstream.publish([{"seq": b * 50 + i} for i in range(50)])
    received.wait_for_events(1000)
    wait_for(lambda: upstream.delivered_events == 1000, timeout=5, interval=0.01, what="receipts")
    assert upstream.finish(timeout=5) is True  # the end confirmed too
    assert received.completed.wait(5)
    wait_for(lambda: upstream.connections == 0, timeout=5, interval=0.01, what="hung up")
    assert (upstream.delivered_events, upstream.lost_events, upstream.dropped_events) == (1000, 0, 0)


def test_an_input_whose_upstream_stage_completed_ends_instead_of_waiting_forever():
    done = threading.Event()
    stage_input = StageInput(0, 1)
    stage_input.batches.subscribe(on_completed=done.set)
    stage_input.update([])  # nobody upstream yet: wait
    assert not done.wait(0.3)
    stage_input.update([], upstream_finished=True)
    assert done.wait(5)


def test_an_input_told_before_subscribing_that_its_upstream_completed_ends_at_once():
    done = threading.Event()
    stage_input = StageInput(0, 1)
    stage_input.update([], upstream_finished=True)
    stage_input.batches.subscribe(on_completed=done.set)
    assert done.wait(5)
