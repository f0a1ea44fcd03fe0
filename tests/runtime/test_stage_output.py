"""The stage output server: handshakes, keyed and round-robin routing, block and drop, end of stream."""
import operator
import socket
import threading
import time
from collections import defaultdict

import pytest

from mantis.runtime.frames import encode_message, read_payload
from mantis.runtime.hash_ring import HashRing
from mantis.runtime.stage_output import StageOutputServer
from tests.runtime.readers import DownstreamReader
from tests.support import wait_for

by_user = operator.itemgetter("user")


@pytest.fixture
def servers():
    made = []

    def make(**options):
        server = StageOutputServer(**options)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def connect(server, indexes, workers=None, **options):
    """Readers for ``indexes``, returned once the server has registered them all."""
    workers = workers or max(indexes) + 1
    readers = [DownstreamReader(server.port, i, workers, **options) for i in indexes]
    wait_for(lambda: set(indexes) <= set(server.connected_indexes), timeout=5, interval=0.01,
             what=f"downstream workers {indexes} connected")
    return readers


def keyed_batches(count, keys, size=100, start=0):
    return [[{"user": f"user-{(b * size + i) % keys}", "seq": start + b * size + i} for i in range(size)]
            for b in range(count)]


def events_by_reader(readers):
    return {r.worker_index: r.events for r in readers}


def test_downstream_workers_identify_themselves_and_the_server_knows_when_all_are_there(servers):
    server = servers(key=by_user)
    connect(server, [1], workers=2)
    assert server.connected_indexes == (1,)
    assert server.wait_for_downstream(0.1) is False  # worker 0 of 2 is missing
    connect(server, [0], workers=2)
    assert server.wait_for_downstream(1.0) is True
    assert [(s.worker_index, s.workers) for s in server.downstream_stats()] == [(0, 2), (1, 2)]


def test_keyed_output_sends_every_key_to_exactly_the_downstream_the_ring_names(servers):
    server = servers(key=by_user)
    readers = connect(server, [0, 1, 2, 3])
    batches = keyed_batches(50, keys=500)
    for batch in batches:
        server.publish(batch)
    total = sum(len(b) for b in batches)
    wait_for(lambda: sum(len(r.events) for r in readers) == total, timeout=10, interval=0.01,
             what="every event delivered")
    ring = HashRing([0, 1, 2, 3])
    seen_at = defaultdict(set)
    for index, events in events_by_reader(readers).items():
        for event in events:
            seen_at[event["user"]].add(index)
        seqs = [e["seq"] for e in events]
        assert seqs == sorted(seqs)  # order is kept per downstream, so per key
    assert len(seen_at) == 500
    assert all(indexes == {ring.index_of(user)} for user, indexes in seen_at.items())
    assert server.dropped_events == 0


def test_a_single_downstream_gets_every_keyed_batch_whole_and_in_order(servers):
    server = servers(key=by_user)
    (reader,) = connect(server, [0])
    batches = keyed_batches(20, keys=30)
    for batch in batches:
        server.publish(batch)
    expected = [event for batch in batches for event in batch]
    wait_for(lambda: len(reader.events) == len(expected), timeout=10, interval=0.01,
             what="every event delivered")
    assert reader.events == expected


@pytest.mark.parametrize("indexes", [[0], [0, 1]])
def test_a_bad_key_fails_publish_whatever_the_number_of_downstreams(servers, indexes):
    server = servers(key=by_user)
    connect(server, indexes)
    server.publish([{"user": "a"}])  # warms the key cache: the bad events must still be looked at
    with pytest.raises(KeyError):
        server.publish([{"user": "a"}, {"name": "no user"}])
    with pytest.raises(TypeError):
        server.publish([{"user": "a"}, {"user": ["not", "hashable"]}])


def test_keys_first_seen_in_the_middle_of_a_batch_are_routed_and_cached(servers):
    server = servers(key=by_user)
    readers = connect(server, [0, 1, 2])
    server.publish([{"user": "u0", "seq": 0}])
    batch = [{"user": f"u{i % 7}", "seq": i} for i in range(1, 50)]  # u0 cached, the rest not
    server.publish(batch)
    wait_for(lambda: sum(len(r.events) for r in readers) == 50, timeout=10, interval=0.01,
             what="every event delivered")
    ring = HashRing([0, 1, 2])
    for reader in readers:
        assert all(ring.index_of(e["user"]) == reader.worker_index for e in reader.events)
        seqs = [e["seq"] for e in reader.events]
        assert seqs == sorted(seqs)
    assert len(server._routing.slot_cache) == 7


def test_scaling_the_next_stage_from_two_to_four_moves_only_the_keys_that_must_move(servers):
    server = servers(key=by_user)
    first = connect(server, [0, 1], workers=2)
    for batch in keyed_batches(20, keys=1000):
        server.publish(batch)
    wait_for(lambda: sum(len(r.events) for r in first) == 2000, timeout=10, interval=0.01, what="round 1")
    before = {e["user"]: r.worker_index for r in first for e in r.events}
    for reader in first:
        reader.batches.clear()
    added = connect(server, [2, 3], workers=4)
    for batch in keyed_batches(20, keys=1000, start=10_000):
        server.publish(batch)
    readers = first + added
    wait_for(lambda: sum(len(r.events) for r in readers) == 2000, timeout=10, interval=0.01, what="round 2")
    after = {e["user"]: r.worker_index for r in readers for e in r.events}
    moved = [user for user in after if after[user] != before[user]]
    assert all(after[user] in (2, 3) for user in moved)
    assert 0.4 < len(moved) / len(after) < 0.6


def test_scalar_output_goes_round_robin_across_downstreams(servers):
    server = servers()
    readers = connect(server, [0, 1, 2])
    batches = [[{"seq": b * 10 + i} for i in range(10)] for b in range(9)]
    for batch in batches:
        server.publish(batch)
    wait_for(lambda: sum(len(r.batches) for r in readers) == 9, timeout=10, interval=0.01, what="batches")
    assert [len(r.batches) for r in readers] == [3, 3, 3]
    assert sorted(e["seq"] for r in readers for e in r.events) == list(range(90))


def test_drop_mode_counts_drops_for_a_stalled_consumer_and_does_not_block_the_producer(servers):
    server = servers(key=by_user, on_slow_consumer="drop", buffer_batches=4)
    (fast,) = connect(server, [0], workers=2)
    (stalled,) = connect(server, [1], workers=2, receive_buffer=4096, read=False)
    ring = HashRing([0, 1])
    users = [f"user-{k}" for k in range(20)]
    fast_users = [u for u in users if ring.index_of(u) == 0]
    slow_users = [u for u in users if ring.index_of(u) == 1]
    pad = "x" * 50
    slowest_publish, sent_to_fast = 0.0, 0
    for i in range(3000):
        batch = ([{"user": u, "seq": i, "pad": f"{u}{k}{pad}"} for u in fast_users for k in range(5)]
                 + [{"user": u, "seq": i, "pad": f"{u}{k}{pad}"} for u in slow_users for k in range(5)])
        started = time.monotonic()
        server.publish(batch)
        slowest_publish = max(slowest_publish, time.monotonic() - started)
        sent_to_fast += 5 * len(fast_users)
        fast.wait_for_events(sent_to_fast, timeout=5)  # keep in step with the reader that reads
        if server.dropped_events and i > 20:
            break
    assert server.dropped_events > 0, "the stalled consumer never had a batch dropped"
    assert slowest_publish < 0.2
    stats = {s.worker_index: s for s in server.downstream_stats()}
    assert stats[1].dropped_events == server.dropped_events
    assert stats[1].queued_batches <= 4  # memory stays bounded
    assert stats[0].dropped_events == 0
    assert len(fast.events) == sent_to_fast
    stalled.close()


@pytest.mark.parametrize("policy", ["block", "drop"])
def test_block_mode_holds_the_producer_back_where_drop_mode_drops(servers, policy):
    # (Each event's padding is its own string: pickle would send a shared one once.)
    # The consumer reads slower than the producer publishes, through a tiny queue and a
    # tiny socket buffer: drop mode must lose batches, block mode none.
    server = servers(on_slow_consumer=policy, buffer_batches=2, block_timeout_s=10)
    (slow,) = connect(server, [0], receive_buffer=4096, delay_s=0.002)
    pad = "x" * 2000
    batches = 400  # 8 MB: twice what the kernel's socket buffers can hold (tcp_wmem max 4 MB)
    started = time.monotonic()
    for b in range(batches):
        server.publish([{"seq": b * 10 + i, "pad": f"{b}-{i}{pad}"} for i in range(10)])
    publishing_took = time.monotonic() - started
    if policy == "drop":
        assert server.dropped_events > 0
        return
    received = slow.wait_for_events(batches * 10, timeout=30)
    assert [e["seq"] for e in received] == list(range(batches * 10))
    assert server.dropped_events == 0
    assert publishing_took > 0.1  # publish waited for the consumer (~0.8 s of reading)


def test_block_mode_gives_up_after_its_bounded_wait_and_counts_the_batch(servers):
    server = servers(on_slow_consumer="block", buffer_batches=2, block_timeout_s=0.2)
    (stalled,) = connect(server, [0], receive_buffer=4096, read=False)
    pad = "x" * 1000
    slowest = 0.0
    for b in range(200):
        started = time.monotonic()
        server.publish([{"seq": b, "pad": f"{b}-{i}{pad}"} for i in range(50)])
        slowest = max(slowest, time.monotonic() - started)
        if server.dropped_events:
            break
    assert server.dropped_events == 50
    assert 0.15 < slowest < 1.0
    stalled.close()


def test_block_mode_waits_for_a_first_downstream_to_connect(servers):
    server = servers(on_slow_consumer="block", block_timeout_s=5)
    publisher = threading.Thread(target=server.publish, args=([{"seq": 1}],))
    publisher.start()
    time.sleep(0.2)
    (reader,) = connect(server, [0])
    publisher.join(5)
    assert reader.wait_for_events(1) == [{"seq": 1}]
    assert server.dropped_events == 0


def test_drop_mode_with_nobody_connected_counts_the_batch_as_dropped(servers):
    server = servers(on_slow_consumer="drop")
    server.publish([{"seq": 1}, {"seq": 2}])
    assert server.dropped_events == 2


def test_finish_sends_end_of_stream_after_everything_queued_and_to_late_comers(servers):
    server = servers(key=by_user)
    readers = connect(server, [0, 1])
    for batch in keyed_batches(10, keys=50):
        server.publish(batch)
    assert server.finish(timeout=5)
    for reader in readers:
        assert reader.end_of_stream.wait(5)
    assert sum(len(r.events) for r in readers) == 1000  # everything before the end
    (late,) = [DownstreamReader(server.port, 0, 2)]
    assert late.end_of_stream.wait(5)


def test_a_reconnecting_downstream_index_replaces_its_old_connection(servers):
    server = servers(key=by_user)
    (old,) = connect(server, [0])
    new = DownstreamReader(server.port, 0, 1)
    assert old.eof.wait(5)
    wait_for(lambda: server.connections == 1, timeout=5, interval=0.01, what="one connection")
    server.publish([{"user": "u", "seq": 1}])
    assert new.wait_for_events(1) == [{"user": "u", "seq": 1}]


@pytest.mark.parametrize("handshake", [{"worker_index": 2, "workers": 2}, {"worker_index": "0", "workers": 1},
                                       {"hello": "there"}])
def test_a_connection_without_a_valid_handshake_is_refused(servers, handshake):
    server = servers(key=by_user)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.sendall(encode_message(handshake))
    assert read_payload(sock) is None  # the server hung up
    assert server.connections == 0
    sock.close()


def test_frames_still_queued_for_a_connection_that_is_replaced_are_counted_as_dropped(servers):
    server = servers(on_slow_consumer="drop", buffer_batches=8)
    (stalled,) = connect(server, [0], receive_buffer=4096, read=False)
    pad = "x" * 1000
    published = 0
    while not server.dropped_events and published < 5000:  # until the queue is full
        server.publish([{"seq": published, "pad": f"{published}-{i}{pad}"} for i in range(20)])
        published += 1
    dropped_before, queued_before = server.dropped_events, server.queued_batches
    assert dropped_before > 0 and queued_before == 8
    DownstreamReader(server.port, 0, 1)  # worker 0 again: the stalled connection is dropped
    wait_for(lambda: server.dropped_events >= dropped_before + 8 * 20, timeout=5, interval=0.01,
             what="the queued frames counted")
    assert server.dropped_events <= published * 20
    stalled.close()


def test_events_sent_to_a_worker_that_goes_away_without_confirming_them_are_counted_lost(servers):
    server = servers(key=by_user)
    (silent,) = connect(server, [0], confirm=False)  # reads, but never confirms: dies "holding" them
    for batch in keyed_batches(5, keys=10):
        server.publish(batch)
    silent.wait_for_events(500)
    assert server.in_flight_events == 500 and server.delivered_events == 0
    silent.close()
    wait_for(lambda: server.connections == 0, timeout=5, interval=0.01, what="the connection gone")
    assert (server.lost_events, server.delivered_events, server.dropped_events) == (500, 0, 0)


def test_events_a_worker_confirmed_are_delivered_not_lost_when_it_goes_away(servers):
    server = servers(key=by_user)
    (reader,) = connect(server, [0])
    for batch in keyed_batches(5, keys=10):
        server.publish(batch)
    wait_for(lambda: server.delivered_events == 500, timeout=5, interval=0.01, what="receipts")
    assert server.in_flight_events == 0
    reader.close()
    wait_for(lambda: server.connections == 0, timeout=5, interval=0.01, what="the connection gone")
    assert (server.lost_events, server.delivered_events, server.dropped_events) == (0, 500, 0)


def test_once_every_connection_ended_each_published_event_is_delivered_lost_or_dropped(servers):
    server = servers(key=by_user, on_slow_consumer="drop", buffer_batches=4)
    connect(server, [0], workers=2)
    (stalled,) = connect(server, [1], workers=2, receive_buffer=4096, read=False)
    pad = "x" * 200
    published = 0
    for b in range(20_000):  # until the stalled worker's queue overflows, and a little more
        batch = [{"user": f"user-{i % 40}", "seq": b, "pad": f"{b}-{i}{pad}"} for i in range(40)]
        server.publish(batch)
        published += len(batch)
        if server.dropped_events > 400:
            break
    wait_for(lambda: server.in_flight_events == sum(
        s.sent_events for s in server.downstream_stats() if s.worker_index == 1),
        timeout=10, interval=0.01, what="worker 0 confirmed everything it was sent")
    assert server.dropped_events > 0  # the stalled worker's queue overflowed
    stalled.close()
    server.close()
    wait_for(lambda: server.connections == 0, timeout=5, interval=0.01, what="every connection gone")
    assert server.lost_events > 0  # what the stalled worker was sent and never confirmed
    assert server.delivered_events + server.lost_events + server.dropped_events == published


def test_finish_is_true_only_once_every_downstream_confirmed_the_end(servers):
    confirming, silent = servers(key=by_user), servers(key=by_user)
    (one,) = connect(confirming, [0])
    (other,) = connect(silent, [0], confirm=False)
    for server in (confirming, silent):
        server.publish([{"user": "u", "seq": 1}])
    assert confirming.finish(timeout=5) is True
    assert silent.finish(timeout=0.5) is False
    assert one.end_of_stream.is_set() and other.end_of_stream.wait(5)
    assert confirming.delivered_events == 1 and confirming.lost_events == 0


@pytest.mark.parametrize("receipt", [{"received": -1}, {"received": "3"}, {"received": 1, "ended": "yes"}])
def test_a_malformed_receipt_ends_the_connection(servers, receipt):
    server = servers(key=by_user)
    (reader,) = connect(server, [0], confirm=False)
    reader.sock.sendall(encode_message(receipt))
    assert reader.eof.wait(5)
    wait_for(lambda: server.connections == 0, timeout=5, interval=0.01, what="the connection gone")
