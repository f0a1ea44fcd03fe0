"""FramedConnection: direct sends, queueing behind them, refusals counted by the caller."""
import socket
import threading

import pytest

from mantis.runtime.framed_connection import FramedConnection
from mantis.runtime.frames import END_OF_STREAM, encode_batch, read_frame


@pytest.fixture
def pair():
    """(writer, reader): the two ends of a TCP connection on loopback."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        reader = socket.create_connection(listener.getsockname(), timeout=5)
        writer, _ = listener.accept()
    reader.settimeout(5)
    yield writer, reader
    writer.close()
    reader.close()


def test_an_idle_connection_sends_directly_and_counts_it(pair):
    writer, reader = pair
    conn = FramedConnection(writer, ("peer",), capacity=2)
    assert conn.offer(encode_batch([1, 2]), 2)
    assert conn.sent_batches == 1 and conn.sent_events == 2 and conn.idle
    assert read_frame(reader) == [1, 2]


def test_a_full_queue_refuses_and_the_writer_sends_what_was_queued_in_order(pair):
    writer, reader = pair
    writer.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    conn = FramedConnection(writer, ("peer",), capacity=1)
    big = [encode_batch([i, "x" * 1_000_000]) for i in range(2)]
    assert conn.offer(big[0], 1)  # the kernel takes part; the rest is queued
    assert conn.offer(big[1], 1) is False  # the queue holds one frame: refused
    assert conn.put_waiting(END_OF_STREAM, 0, timeout=0) is False
    writing = threading.Thread(target=lambda: result.append(conn.write_loop()))
    result: list = []
    writing.start()
    assert read_frame(reader)[0] == 0
    conn.put_waiting(END_OF_STREAM, 0, timeout=5)
    writing.join(5)
    assert result == [(0, True)]
    assert conn.sent_batches == 1


def test_a_connection_whose_peer_is_gone_refuses_frames(pair):
    writer, reader = pair
    conn = FramedConnection(writer, ("peer",), capacity=4)
    reader.close()
    frame = encode_batch(["x" * 100_000])
    # The first send may still reach the kernel; once the peer's reset is seen, none does.
    taken = [conn.offer(frame, 1) for _ in range(20)]
    assert taken[-1] is False
    conn.close()
    assert conn.offer(frame, 1) is False  # closed: refused, never queued uncounted
