"""Subscribers narrow a job's output on the server, and connect by cluster name."""
import json
import urllib.error
import urllib.parse
import urllib.request

from tests.sse_client import read_sse
from tests.support import job_id_of, started_workers, wait_for

CLUSTER = {"name": "subs", "url": "mantis.examples.synthetic:job",
           "parameters": [{"name": "rate", "value": 100}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                               "machineDefinition": {"cpuCores": 1, "memoryMB": 256}}}}}


def start_job(cluster, kinds=None):
    submission = {"user": "test"}
    if kinds:
        submission["parameters"] = [{"name": "kinds", "value": kinds}]
    status, body = cluster.call("POST", "/api/v1/jobClusters/subs/jobs", submission)
    assert status == 201, body

    def started():
        return started_workers(cluster.call("GET", f"/api/v1/jobs/{job_id_of(body)}")[1])

    wait_for(started, timeout=60, what=f"{job_id_of(body)} Started")
    return job_id_of(body)


def test_filter_and_sampling_narrow_the_output_per_subscriber(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    job_id = start_job(cluster)
    base = f"{cluster.url}/api/v1/jobs/{job_id}/output"
    query = urllib.parse.urlencode({"filter": "high_value == True and event in ('click', 'purchase')"})
    filtered = read_sse(f"{base}?{query}", 20)
    assert all(e["high_value"] is True and e["event"] in ("click", "purchase") for e in filtered), filtered
    # The same stream unfiltered has events the filter dropped.
    assert any(not e["high_value"] or e["event"] == "add_to_cart" for e in read_sse(base, 60))
    sampled = read_sse(f"{base}?sampleMSec=500", 4)
    gaps = [b["ts"] - a["ts"] for a, b in zip(sampled, sampled[1:])]
    # 100 events/s sampled at one per 500 ms: consecutive sampled events are ~50 apart.
    assert all(b["id"] - a["id"] >= 30 for a, b in zip(sampled, sampled[1:])), (sampled, gaps)


def test_a_bad_filter_or_sampling_period_is_a_json_400(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    job_id = start_job(cluster)
    for query, text in [({"filter": "open('/etc/passwd')"}, "Call is not allowed"),
                        ({"sampleMSec": "often"}, "whole number")]:
        url = f"{cluster.url}/api/v1/jobs/{job_id}/output?{urllib.parse.urlencode(query)}"
        try:
            urllib.request.urlopen(url, timeout=10)
            raise AssertionError(f"{query} accepted")
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
            assert exc.code == 400 and text in body["error"], body


def test_connect_by_cluster_name_follows_the_clusters_latest_job(cluster):
    assert cluster.call("POST", "/api/v1/jobClusters", CLUSTER)[0] == 201
    # Each job emits its own kinds of events, so the stream shows whose output it carries.
    first = start_job(cluster, kinds="click,add_to_cart")
    url = f"{cluster.url}/api/v1/jobconnectbyname/subs"
    with urllib.request.urlopen(url, timeout=60) as resp:
        def next_event():
            for raw in resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("data: "):
                    return json.loads(line[6:])
            raise AssertionError("the stream ended")

        assert {next_event()["event"] for _ in range(20)} <= {"click", "add_to_cart"}
        assert cluster.call("DELETE", f"/api/v1/jobs/{first}?user=test&reason=replace")[0] == 202
        second = start_job(cluster, kinds="purchase")
        assert second != first
        for _ in range(2000):
            if next_event()["event"] == "purchase":
                break
        else:
            raise AssertionError("the stream never moved to the new job")
        # From then on, only the new job's events.
        assert {next_event()["event"] for _ in range(20)} == {"purchase"}
    status, body = cluster.call("GET", "/api/v1/jobconnectbyname/nosuch")
    assert status == 404 and "does not exist" in body["error"]
