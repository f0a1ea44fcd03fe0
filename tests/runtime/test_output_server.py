"""The output server: every reader gets the live stream; a slow reader only hurts itself."""
import socket
import threading
import time

import pytest

from mantis.runtime.frames import read_frame
from mantis.runtime.output_server import OutputServer
from tests.runtime.readers import FrameCollector
from tests.support import wait_for


@pytest.fixture
def server():
    s = OutputServer(host="127.0.0.1", port=0, buffer_batches=4)
    yield s
    s.close()


def connect(server, count=1, **options):
    """``count`` new readers, returned once the server has registered them."""
    target = server.connections + count
    readers = [FrameCollector(server.port, **options) for _ in range(count)]
    wait_for(lambda: server.connections >= target, timeout=5, interval=0.01, what="readers connected")
    return readers


def test_port_zero_binds_a_free_loopback_port(server):
    assert server.port > 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=2):
        pass


def test_every_connected_reader_receives_every_batch_in_order(server):
    readers = connect(server, 3)
    batches = [[{"id": i * 10 + j} for j in range(10)] for i in range(3)]
    for batch in batches:
        server.publish(batch)
    expected = [e for b in batches for e in b]
    for reader in readers:
        assert reader.wait_for_events(len(expected)) == expected
    assert server.dropped_events == 0
    for reader in readers:
        reader.close()


def test_reader_gets_only_what_is_published_after_it_connected(server):
    (early,) = connect(server)
    server.publish([{"id": 0}])
    early.wait_for_events(1)
    (late,) = connect(server)
    server.publish([{"id": 1}])
    assert early.wait_for_events(2) == [{"id": 0}, {"id": 1}]
    assert late.wait_for_events(1) == [{"id": 1}]
    time.sleep(0.1)
    assert late.events == [{"id": 1}]


def test_slow_reader_gets_drops_counted_and_does_not_stall_publish(server):
    (fast,) = connect(server)
    # A tiny receive buffer and no reading: the kernel fills fast, then our queue does.
    (stalled,) = connect(server, receive_buffer=4096, read=False)
    batch_events = 200
    payload = "x" * 50
    published = 0
    slowest_publish = 0.0
    # Publish in step with the fast reader, so only the stalled reader can fall behind,
    # until the server has dropped batches for the stalled one.
    for i in range(5000):
        batch = [{"id": i * batch_events + j, "pad": payload} for j in range(batch_events)]
        started = time.monotonic()
        server.publish(batch)
        slowest_publish = max(slowest_publish, time.monotonic() - started)
        published += batch_events
        fast.wait_for_events(published, timeout=5)
        if server.dropped_events and i > 20:
            break
    assert server.dropped_events > 0, "the stalled reader never had a batch dropped"
    assert server.dropped_events % batch_events == 0
    assert slowest_publish < 0.5
    assert len(fast.events) == published
    assert [e["id"] for e in fast.events] == list(range(published))
    by_address = {s.address: s for s in server.reader_stats()}
    stalled_stats = by_address[stalled.sock.getsockname()]
    fast_stats = by_address[fast.sock.getsockname()]
    assert stalled_stats.dropped_events == server.dropped_events
    assert stalled_stats.queued_batches <= server.buffer_batches  # memory stays bounded
    assert fast_stats.dropped_events == 0
    stalled.close()
    fast.close()


def test_publish_with_no_reader_does_nothing_not_even_encode(server):
    server.publish([object()])  # not JSON-able, but nobody is listening
    assert server.dropped_events == 0


def test_connection_count_follows_readers_hanging_up(server):
    readers = connect(server, 2)
    readers[0].close()
    wait_for(lambda: server.connections == 1, timeout=5, interval=0.05, what="hang-up noticed")
    server.publish([{"id": 1}])
    assert readers[1].wait_for_events(1) == [{"id": 1}]
    readers[1].close()


def test_close_ends_every_reader_stream_and_frees_the_port():
    server = OutputServer(buffer_batches=2)
    port = server.port
    readers = connect(server, 2)
    server.close()
    for reader in readers:
        assert reader.eof.wait(5)
        assert reader.error is None  # a clean end of stream, not a torn frame
        reader.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    again = OutputServer(port=port)  # the port can be bound again at once
    again.close()


def test_reader_sees_clean_eof_between_frames_when_server_closes(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    wait_for(lambda: server.connections == 1, timeout=5, interval=0.01, what="reader")
    server.publish([{"id": 1}])
    assert read_frame(sock) == [{"id": 1}]
    server.close()
    assert read_frame(sock) is None
    sock.close()


def test_drain_waits_until_every_queued_batch_is_written(server):
    (slow,) = connect(server)
    for i in range(4):
        server.publish([{"id": i, "pad": "x" * 100_000}])
    assert server.drain(timeout=10)
    assert server.queued_batches == 0
    assert [e["id"] for e in slow.wait_for_events(4)] == [0, 1, 2, 3]
    slow.close()


def test_drain_gives_up_on_a_stalled_reader_after_its_timeout(server):
    (stalled,) = connect(server, receive_buffer=4096, read=False)
    # More than the kernel's socket buffers can absorb (tcp_wmem tops out at 4 MB here).
    for i in range(12):
        server.publish([{"id": i, "pad": "x" * 1_000_000}])
    started = time.monotonic()
    assert server.drain(timeout=0.2) is False
    assert time.monotonic() - started < 1.0
    stalled.close()


def test_frames_sent_directly_and_by_the_writer_arrive_whole_and_in_order(server):
    # Every other frame is larger than the socket buffers take at once, so the kernel
    # takes only part of it from the publishing thread and the writer sends the rest,
    # while the small frames after it must wait their turn in the queue.
    (reader,) = connect(server, receive_buffer=8192)
    published = []
    for i in range(20):
        batch = [{"id": i * 3 + j, "pad": "y" * (3_000_000 if i % 2 else 50)} for j in range(3)]
        server.publish(batch)
        published.extend(batch)
        if i % 4 == 3:
            reader.wait_for_events(len(published), timeout=10)  # never more than the queue holds
    reader.wait_for_events(len(published), timeout=10)
    assert [e["id"] for e in reader.events] == [e["id"] for e in published]
    assert reader.events == published
    assert server.dropped_events == 0
    wait_for(lambda: server.reader_stats()[0].sent_batches == 20, timeout=5, interval=0.01,
             what="every frame counted as sent")


def test_publishing_threads_never_interleave_their_frames(server):
    (reader,) = connect(server)
    threads_count, batches_each = 4, 50

    def publish(t):
        for i in range(batches_each):
            server.publish([{"thread": t, "seq": i, "pad": "z" * 3000}])
            time.sleep(0.001)  # the queue holds 4 frames: publish no faster than the reader reads

    threads = [threading.Thread(target=publish, args=(t,)) for t in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    expected = threads_count * batches_each - server.dropped_events
    events = reader.wait_for_events(expected, timeout=10)  # a frame cut by another would fail to decode
    for t in range(threads_count):
        seqs = [e["seq"] for e in events if e["thread"] == t]
        assert seqs == sorted(seqs)
    assert len(events) == expected
