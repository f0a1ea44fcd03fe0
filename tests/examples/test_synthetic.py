"""The synthetic example job: paced user events, filtered by kind, tagged, stoppable."""
import time

import pytest

from mantis.examples import synthetic
from mantis.runtime.stage_executor import StageExecutor
from mantis.sdk.job_dsl import Context, ParameterError, load_job, resolve_parameters
from tests.support import wait_for


def start(supplied, **options):
    job = load_job("mantis.examples.synthetic:job")
    context = Context("synthetic-1", parameters=resolve_parameters(job, supplied))
    batches = []
    executor = StageExecutor(job, context, batches.append, **options)
    executor.start()
    return executor, batches, context


def events_of(batches):
    return [e for b in list(batches) for e in b]


def test_limited_run_completes_keeping_only_the_chosen_kinds_tagged_by_value():
    executor, batches, _ = start({"rate": 0, "limit": 3000, "kinds": "click,purchase", "seed": 1})
    assert executor.wait(20)
    assert executor.state == "completed"
    events = events_of(batches)
    assert executor.events_in == 3000 and executor.events_out == len(events)
    assert 0 < len(events) < 3000
    assert {e["event"] for e in events} == {"click", "purchase"}
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(e["high_value"] == (e["value"] >= synthetic.HIGH_VALUE) for e in events)
    assert any(e["high_value"] for e in events) and not all(e["high_value"] for e in events)
    assert set(events[0]) == {"id", "user", "event", "value", "ts", "high_value"}


def test_keys_bounds_the_distinct_users():
    executor, batches, _ = start({"rate": 0, "limit": 2000, "keys": 3,
                                  "kinds": ",".join(synthetic.KINDS)})
    assert executor.wait(20)
    events = events_of(batches)
    assert len(events) == 2000  # every kind kept: nothing filtered out
    assert {e["user"] for e in events} == {"user-0", "user-1", "user-2"}


def test_the_same_seed_gives_the_same_stream():
    runs = []
    for _ in range(2):
        executor, batches, _ = start({"rate": 0, "limit": 500, "seed": 42})
        assert executor.wait(20)
        runs.append([(e["id"], e["user"], e["event"], e["value"]) for e in events_of(batches)])
    assert runs[0] == runs[1]


def test_rate_paces_the_source():
    executor, _, _ = start({"rate": 200})
    try:
        wait_for(lambda: executor.events_in > 0, timeout=5, interval=0.01, what="first event")
        first_count, first_time = executor.events_in, time.monotonic()
        time.sleep(0.5)
        measured = (executor.events_in - first_count) / (time.monotonic() - first_time)
    finally:
        assert executor.stop(5)
    assert 140 <= measured <= 260, measured


@pytest.mark.parametrize("rate", [0, 1])
def test_stop_ends_an_endless_run_promptly(rate):
    executor, _, context = start({"rate": rate})
    wait_for(lambda: executor.events_in > 0, timeout=5, interval=0.01, what="first event")
    started = time.monotonic()
    assert executor.stop(5)
    assert time.monotonic() - started < 0.5
    assert executor.state == "completed" and context.stopped.is_set()
    stopped_at = executor.events_in
    time.sleep(0.1)
    assert executor.events_in == stopped_at


@pytest.mark.parametrize("supplied, reason", [
    ({"rate": "-1"}, "parameter 'rate' = -1 is invalid: must be at least 0"),
    ({"keys": "0"}, "parameter 'keys' = 0 is invalid: must be at least 1"),
    ({"kinds": "click,hover"}, "parameter 'kinds' = 'click,hover' is invalid: must be a comma-separated list"),
    ({"rate": "fast"}, "parameter 'rate' must be a whole number, got 'fast'"),
])
def test_bad_parameters_are_rejected_before_the_job_runs(supplied, reason):
    with pytest.raises(ParameterError, match=f"^{reason}"):
        resolve_parameters(synthetic.job, supplied)
