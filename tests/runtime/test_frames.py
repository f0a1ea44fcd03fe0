"""Frames: 4-byte big-endian length + ujson array, read whole or not at all."""
import asyncio
import os
import pickle
import socket
import struct

import pytest

from mantis.runtime import frames
from mantis.runtime.frames import (
    HEADER,
    FrameError,
    decode_payload,
    decode_stage_payload,
    encode_batch,
    encode_stage_batch,
    read_frame,
    read_frame_async,
)


@pytest.fixture
def pair():
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_frame_is_big_endian_length_then_json_array():
    frame = encode_batch([1, "two", {"three": 3}])
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    assert frame[4:] == b'[1,"two",{"three":3}]'
    assert decode_payload(frame[4:]) == [1, "two", {"three": 3}]


def test_batches_round_trip_in_order_through_a_socket(pair):
    writer, reader = pair
    batches = [[{"id": i, "user": "user-1", "value": i / 3}] * (i + 1) for i in range(5)]
    writer.sendall(b"".join(encode_batch(b) for b in batches))
    assert [read_frame(reader) for _ in batches] == batches


def test_non_ascii_text_and_slashes_round_trip(pair):
    writer, reader = pair
    batch = [{"word": "café", "path": "a/b", "emoji": "\U0001f600"}]
    writer.sendall(encode_batch(batch))
    assert read_frame(reader) == batch


def test_read_frame_returns_none_on_clean_end_of_stream(pair):
    writer, reader = pair
    writer.sendall(encode_batch([1]))
    writer.close()
    assert read_frame(reader) == [1]
    assert read_frame(reader) is None


def test_end_of_stream_inside_a_frame_is_an_error(pair):
    writer, reader = pair
    frame = encode_batch([{"id": 1}])
    writer.sendall(frame[:-3])
    writer.close()
    with pytest.raises(FrameError, match="closed inside a frame"):
        read_frame(reader)


def test_end_of_stream_inside_the_length_prefix_is_an_error(pair):
    writer, reader = pair
    writer.sendall(b"\x00\x00")
    writer.close()
    with pytest.raises(FrameError, match="closed inside a frame"):
        read_frame(reader)


def test_oversized_announced_frame_is_rejected_before_its_payload_is_read(pair):
    writer, reader = pair
    writer.sendall(struct.pack(">I", frames.MAX_FRAME + 1))  # and no payload at all
    with pytest.raises(FrameError, match="over the .*-byte limit"):
        read_frame(reader)


def test_reader_can_set_a_lower_frame_limit(pair):
    writer, reader = pair
    writer.sendall(encode_batch(["x" * 100]))
    with pytest.raises(FrameError, match="limit"):
        read_frame(reader, max_frame=50)


def test_encoding_a_batch_over_the_frame_limit_is_an_error(monkeypatch):
    monkeypatch.setattr(frames, "MAX_FRAME", 1000)
    with pytest.raises(FrameError, match="use smaller batches"):
        encode_batch(["x" * 2000])


def test_payload_that_is_not_a_json_array_is_an_error():
    with pytest.raises(FrameError, match="not an array"):
        decode_payload(b'{"id": 1}')
    with pytest.raises(FrameError, match="not valid JSON"):
        decode_payload(b"[1, 2")


def test_event_that_is_not_json_able_is_an_error():
    with pytest.raises(FrameError, match="not JSON-able"):
        encode_batch([object()])


def test_a_message_is_a_frame_holding_a_json_object(pair):
    writer, reader = pair
    writer.sendall(frames.encode_message({"worker_index": 1, "workers": 2}))
    assert frames.read_message(reader) == {"worker_index": 1, "workers": 2}
    with pytest.raises(FrameError, match="JSON object"):
        frames.encode_message([1, 2])


def test_a_message_that_is_not_an_object_is_an_error(pair):
    writer, reader = pair
    writer.sendall(encode_batch([1]))
    with pytest.raises(FrameError, match="not an object"):
        frames.read_message(reader)


def test_end_of_stream_is_an_empty_payload_and_not_a_batch(pair):
    writer, reader = pair
    writer.sendall(encode_batch([1]) + frames.END_OF_STREAM)
    assert frames.read_payload(reader) == b"[1]"
    assert frames.read_payload(reader) == b""
    writer.sendall(frames.END_OF_STREAM)
    with pytest.raises(FrameError):
        read_frame(reader)  # a reader of batches does not take it for one



def test_stage_frames_carry_plain_values_unchanged():
    batch = [{"user": "ü-1", "n": 3, "v": 2.5, "ok": True, "none": None, "tags": ["a", "b"]}, "x", 7]
    frame = encode_stage_batch(batch)
    (length,) = HEADER.unpack(frame[:4])
    assert length == len(frame) - 4 and decode_stage_payload(frame[4:]) == batch


def test_a_stage_frame_naming_any_class_or_function_is_refused_unrun():
    class Boom:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(FrameError, match="posix.system|os.system"):
        decode_stage_payload(pickle.dumps([Boom()], protocol=5))


@pytest.mark.parametrize("payload,message", [
    (b"not a pickle", "not a pickled batch"),
    (pickle.dumps({"a": 1}, protocol=5), "not a list of events"),
])
def test_malformed_stage_frames_are_frame_errors(payload, message):
    with pytest.raises(FrameError, match=message):
        decode_stage_payload(payload)


def test_a_batch_that_cannot_cross_to_the_next_stage_is_a_frame_error():
    with pytest.raises(FrameError, match="cannot cross to the next stage"):
        encode_stage_batch([{"f": lambda: 1}])


def test_the_async_reader_reads_frames_and_refuses_an_oversized_one_before_reading_it():
    def reader_of(data: bytes):
        stream = bytearray(data)
        asked = []

        async def read_bytes(n: int) -> bytes:
            asked.append(n)
            chunk = bytes(stream[:n])
            del stream[:n]
            return chunk

        return read_bytes, asked

    read_bytes, _ = reader_of(encode_batch([{"id": 1}]) + encode_batch([2, 3]))
    assert asyncio.run(read_frame_async(read_bytes)) == [{"id": 1}]
    assert asyncio.run(read_frame_async(read_bytes)) == [2, 3]
    read_bytes, asked = reader_of(struct.pack(">I", 1000) + b"x" * 1000)
    with pytest.raises(FrameError, match="over the 100-byte limit"):
        asyncio.run(read_frame_async(read_bytes, max_frame=100))
    assert asked == [4]  # the payload was never asked for
