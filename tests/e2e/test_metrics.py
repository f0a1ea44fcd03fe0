"""GET /metrics on a real master and agent: it parses with prometheus_client's own text
parser, and its values follow a job as it starts and stops."""
from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from mantis.tooling.api_answers import job_id_of
from tests.support import wait_for

CLUSTER = {"name": "metered", "url": "mantis.examples.synthetic:job",
           "parameters": [{"name": "rate", "value": 20}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 2,
                                               "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}}}


def scrape(url: str) -> dict:
    """Every sample as {(name, sorted label items): value}, parsed by prometheus_client."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=15) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain"), resp.headers["Content-Type"]
        text = resp.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def scrape_when(url: str, name: str, labels: dict, expected: float, what: str) -> dict:
    """The first scrape in which ``name{labels}`` equals ``expected``."""
    def check():
        samples = scrape(url)
        return samples if value(samples, name, **labels) == expected else None
    return wait_for(check, timeout=40, what=what)


def value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_metrics_parse_and_follow_a_job_from_start_to_kill(cluster):
    before = scrape(cluster.url)
    assert value(before, "mantis_master_leader") == 1.0
    assert value(before, "mantis_master_leader_terms_total") == 1.0
    assert value(before, "mantis_agents", state="enabled") == 1.0
    assert value(before, "mantis_workers", state="Started") == 0.0
    assert value(before, "mantis_jobs", state="Completed") == 0.0
    assert all(value(before, "mantis_metrics_source_up", source=s) == 1.0 for s in ("manager", "scheduler", "shards"))
    assert value(before, "mantis_agent_last_heartbeat_age_seconds", agent="local") is not None

    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    status, job = cluster.call("POST", "/api/v1/jobClusters/metered/jobs", {"user": "metrics"})
    assert status == 201, job

    running = scrape_when(cluster.url, "mantis_workers", {"state": "Started"}, 2.0, "two Started workers")
    assert value(running, "mantis_jobs", state="Launched") == 1.0
    assert value(running, "mantis_pending_workers") == 0.0
    assert value(running, "mantis_agent_heartbeat_lag_seconds", agent="local") >= 0.0
    # The durable writes and placement rounds behind the job were timed in their own processes.
    assert value(running, "mantis_store_write_seconds_count") > 0
    assert value(running, "mantis_scheduler_placement_round_seconds_count") > 0
    # API latency is by route pattern: the submit is counted under its pattern, never its raw path.
    assert value(running, "mantis_http_request_duration_seconds_count", route="/api/v1/jobClusters/{}/jobs",
                 method="POST", status="201") == 1.0
    routes = {dict(labels).get("route") for (name, labels) in running if name.startswith("mantis_http_request")}
    assert not any("metered" in r for r in routes if r), routes

    status, _ = cluster.call("DELETE", f"/api/v1/jobs/{job_id_of(job)}?user=metrics&reason=done")
    assert status in (200, 202), status
    stopped = scrape_when(cluster.url, "mantis_jobs", {"state": "Completed"}, 1.0, "the killed job Completed")
    assert value(stopped, "mantis_workers", state="Started") == 0.0
    assert value(stopped, "mantis_jobs", state="Launched") == 0.0


def metrics_ports(value) -> list[int]:
    """Every ``metricsPort`` in a discovery answer, whatever its shape."""
    if isinstance(value, dict):
        found = [int(v) for k, v in value.items() if k == "metricsPort" and isinstance(v, int) and v > 0]
        return found + [p for v in value.values() for p in metrics_ports(v)]
    if isinstance(value, list):
        return [p for v in value for p in metrics_ports(v)]
    return []


def test_each_worker_serves_its_own_metrics_on_the_port_discovery_lists(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    status, job = cluster.call("POST", "/api/v1/jobClusters/metered/jobs", {"user": "metrics"})
    assert status == 201, job
    scrape_when(cluster.url, "mantis_workers", {"state": "Started"}, 2.0, "two Started workers")
    discovery = cluster.call("GET", "/api/v1/jobClusters/metered/latestJobDiscoveryInfo")[1]
    ports = metrics_ports(discovery)
    assert len(set(ports)) == 2, discovery
    for port in ports:
        first = scrape(f"http://127.0.0.1:{port}")
        labels = next(dict(lb) for (name, lb) in first if name == "mantis_worker_events_out_total")
        assert labels["job_id"] == job_id_of(job) and labels["stage"] == "1"
        assert value(first, "mantis_worker_resident_memory_bytes", **labels) > 1_000_000
        assert value(first, "mantis_worker_cpu_seconds_total", **labels) >= 0  # clock ticks: may still be 0
        assert value(first, "mantis_worker_dropped_events_total", **labels) >= 0
        assert value(first, "mantis_worker_queue_depth", **labels) >= 0
        # The synthetic source keeps producing: the worker's own counter moves between scrapes.
        before = value(first, "mantis_worker_events_in_total", **labels)
        wait_for(lambda p=port, lb=labels, b=before: value(scrape(f"http://127.0.0.1:{p}"),
                                                           "mantis_worker_events_in_total", **lb) > b,
                 timeout=20, what="events_in to grow")
