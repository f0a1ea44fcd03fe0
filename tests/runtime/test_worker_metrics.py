"""The job's own metrics (ctx.metrics) and the endpoint a worker serves its metrics on."""
import json
import threading
import urllib.error
import urllib.request

import pytest

from mantis.runtime.worker_metrics import METRICS_PATH, WorkerMetricsServer
from mantis.sdk.metrics import MetricRegistry


def test_counters_grow_gauges_keep_their_last_value_from_any_thread():
    metrics = MetricRegistry()

    def work():
        for _ in range(1000):
            metrics.counter("events").increment()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    metrics.gauge("backlog").set(12)
    metrics.gauge("backlog").set(3)
    assert metrics.snapshot() == {"events": 4000.0, "backlog": 3.0}
    assert metrics.kinds() == {"events": "counter", "backlog": "gauge"}


def test_a_metric_keeps_its_kind_and_a_counter_never_goes_down():
    metrics = MetricRegistry()
    metrics.counter("n")
    with pytest.raises(ValueError, match="is a counter, not a gauge"):
        metrics.gauge("n")
    with pytest.raises(ValueError, match="only grows"):
        metrics.counter("n").increment(-1)
    with pytest.raises(ValueError, match="non-empty name"):
        metrics.gauge("")


def get(port: int, path: str):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_endpoint_serves_the_providers_snapshot_as_json_on_each_request():
    calls = []

    def provider():
        calls.append(1)
        return {"eventsIn": len(calls), "user": {"backlog": 2.0}}

    server = WorkerMetricsServer(provider, host="127.0.0.1")
    try:
        assert get(server.port, METRICS_PATH) == (200, {"eventsIn": 1, "user": {"backlog": 2.0}})
        assert get(server.port, METRICS_PATH)[1]["eventsIn"] == 2
        status, body = get(server.port, "/other")
        assert status == 404 and "metrics.json" in body["error"]
    finally:
        server.close()


def test_a_provider_that_fails_answers_503_and_the_server_keeps_serving():
    state = {"fail": True}

    def provider():
        if state["fail"]:
            raise RuntimeError("not started yet")
        return {"ok": True}

    server = WorkerMetricsServer(provider, host="127.0.0.1")
    try:
        status, body = get(server.port, METRICS_PATH)
        assert status == 503 and "not started yet" in body["error"]
        state["fail"] = False
        assert get(server.port, METRICS_PATH) == (200, {"ok": True})
    finally:
        server.close()
