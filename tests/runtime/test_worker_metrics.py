"""A worker's own metrics endpoint: it exposes the worker's figures as read at scrape
time, in Prometheus' format, and falls back to a free port when its port is taken."""
from __future__ import annotations

import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from mantis.runtime.worker_metrics import WorkerMetricsServer

LABELS = {"job_id": "clicks-3", "stage": 2, "worker_index": 0, "worker_number": 7}


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
