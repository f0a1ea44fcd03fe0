"""The job's own metrics (ctx.metrics) and the endpoint a worker serves its metrics on:
JSON for the Job Master, Prometheus' format for operators, both read at each request."""
import json
import socket
import threading
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mantis.runtime.worker_metrics import METRICS_PATH, WorkerMetricsServer
from mantis.sdk.metrics import MetricRegistry

LABELS = {"job_id": "clicks-3", "stage": 2, "worker_index": 0, "worker_number": 7}


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
        assert get(server.port, "/metrics")[0] == 404  # no labels given: no Prometheus figures
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


def scrape(port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {s.name: (s.value, s.labels) for f in text_string_to_metric_families(text) for s in f.samples}


def test_worker_figures_are_read_at_each_scrape_with_the_workers_labels():
    figures = {"eventsIn": 10, "eventsOut": 9, "droppedEvents": 1, "queueDepth": 3, "subscribers": 2}
    server = WorkerMetricsServer(lambda: figures, LABELS, host="127.0.0.1")
    try:
        first = scrape(server.port)
        assert first["mantis_worker_events_in_total"] == (10.0, {"job_id": "clicks-3", "stage": "2",
                                                                 "worker_index": "0", "worker_number": "7"})
        assert first["mantis_worker_dropped_events_total"][0] == 1.0
        assert first["mantis_worker_queue_depth"][0] == 3.0
        assert first["mantis_worker_output_connections"][0] == 2.0
        assert first["mantis_worker_resident_memory_bytes"][0] > 1_000_000
        figures.update(eventsIn=25, queueDepth=0)
        second = scrape(server.port)
        assert second["mantis_worker_events_in_total"][0] == 25.0 and second["mantis_worker_queue_depth"][0] == 0.0
        assert get(server.port, METRICS_PATH)[1]["eventsIn"] == 25  # the same figures, as JSON
    finally:
        server.close()


def test_a_taken_port_falls_back_to_a_free_one():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = WorkerMetricsServer(lambda: {}, LABELS, host="127.0.0.1", port=port)
        try:
            assert server.port != port
            assert scrape(server.port)["mantis_worker_events_out_total"][0] == 0.0
        finally:
            server.close()
