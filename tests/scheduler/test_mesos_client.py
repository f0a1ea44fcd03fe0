"""The RecordIO reader that replaces avmesos' line-based one."""
import json

from mantis.tooling.mesos_double import record
from scheduler.mesos_client import read_records

EVENTS = [{"type": "SUBSCRIBED", "subscribed": {"framework_id": {"value": "f"}, "heartbeat_interval_seconds": 15}},
          {"type": "HEARTBEAT"},
          {"type": "UPDATE", "update": {"status": {"message": "a\nline break and ünïcode"}}}]


def test_records_are_read_whatever_the_chunking():
    stream = b"".join(record(e) for e in EVENTS)
    for size in (1, 2, 7, 64, len(stream)):
        chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        assert list(read_records(chunks)) == EVENTS


def test_a_record_is_handed_over_as_soon_as_its_bytes_are_in_not_when_the_next_arrives():
    seen = []

    def chunks():
        yield record(EVENTS[0])
        seen.append("asked for more")  # the reader only asks once it has yielded the first event
        yield record(EVENTS[1])

    reader = read_records(chunks())
    assert next(reader) == EVENTS[0] and seen == []
    assert next(reader) == EVENTS[1] and seen == ["asked for more"]


def test_the_length_counts_bytes_not_characters():
    data = json.dumps({"type": "X", "text": "ü"}, ensure_ascii=False).encode()
    assert list(read_records([str(len(data)).encode() + b"\n" + data])) == [{"type": "X", "text": "ü"}]
