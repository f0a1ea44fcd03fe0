"""Job chaining: a job whose source is another job's output, read through the real master.

The upstream runs ``mantis.examples.synthetic:job`` with a seed, so every upstream event
can be checked against the same source run here; the chained job
(``mantis.examples.chained:job``) tags each event with the upstream job id it read it from.
"""
import threading

import pytest
import reactivex

from mantis.examples import chained, synthetic
from mantis.runtime.job_source import UpstreamEvent
from mantis.sdk.job_dsl import Context, ParameterError, resolve_parameters
from tests.sse_client import SseReader
from tests.support import job_id_of, job_state, started_workers, wait_for

SEED = 11
UPSTREAM = {"name": "up", "url": "mantis.examples.synthetic:job",
            "parameters": [{"name": "rate", "value": 40}, {"name": "seed", "value": SEED}],
            "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                                "machineDefinition": {"cpuCores": 1, "memoryMB": 256}}}}}
CHAINED = {"name": "chain", "url": "mantis.examples.chained:job",
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                               "machineDefinition": {"cpuCores": 1, "memoryMB": 256}}}}}


def synthetic_oracle(count: int) -> dict[int, dict]:
    """The seeded upstream's first ``count`` source events after its stage, by id, run in this process."""
    params = resolve_parameters(synthetic.job, {"seed": SEED, "rate": 0, "limit": count})
    context = Context(job_id="oracle-1", parameters=params)
    out, done = {}, threading.Event()
    synthetic.job.stages[0].operators(synthetic.job.source(context), context).subscribe(
        lambda e: out.__setitem__(e["id"], e), lambda exc: done.set(), done.set)
    assert done.wait(60), "the oracle's source did not complete"
    return out


def assert_came_from_upstream(events: list[dict], job_id: str) -> None:
    """Every event is the seeded upstream's event with that id, tagged with ``job_id``."""
    expected = synthetic_oracle(max(e["id"] for e in events) + 1)
    for e in events:
        want = expected[e["id"]]
        assert e["upstreamJobId"] == job_id
        assert (e["user"], e["event"], e["high_value"]) == (want["user"], want["event"], want["high_value"])
        assert e["value"] == pytest.approx(want["value"], rel=1e-9)


def started(cluster, job_id):
    status, job = cluster.call("GET", f"/api/v1/jobs/{job_id}")
    return status == 200 and started_workers(job)


def submit(cluster, name, parameters=None) -> str:
    body = {"user": "e2e", "parameters": [{"name": k, "value": v} for k, v in (parameters or {}).items()]}
    status, reply = cluster.call("POST", f"/api/v1/jobClusters/{name}/jobs", body)
    assert status == 201, reply
    wait_for(lambda: started(cluster, job_id_of(reply)), timeout=90, what=f"{job_id_of(reply)} Started")
    return job_id_of(reply)


def create_clusters(cluster) -> None:
    for definition in (UPSTREAM, CHAINED):
        status, body = cluster.call("POST", "/api/v1/jobClusters", definition)
        assert status == 201, body


def output_events(cluster, job_id, count, match=lambda e: True, timeout=90) -> list[dict]:
    """The next ``count`` events of ``job_id``'s output (SSE through the master) for which ``match`` holds."""
    with SseReader(f"{cluster.url}/api/v1/jobs/{job_id}/output") as stream:
        return [stream.next(lambda name, e: name == "message" and match(e), timeout=timeout,
                            what=f"an event of {job_id}")[1] for _ in range(count)]


def test_chained_by_job_id_receives_the_upstream_jobs_events(cluster):
    create_clusters(cluster)
    upstream = submit(cluster, "up")
    status, body = cluster.call("POST", "/api/v1/jobClusters/chain/jobs",
                                {"parameters": [{"name": "upstreamJobId", "value": "not a job"}]})
    assert status == 400 and "upstreamJobId" in body["error"]
    chain = submit(cluster, "chain", {"upstreamJobId": upstream})
    events = output_events(cluster, chain, 20)
    assert_came_from_upstream(events, upstream)
    ids = [e["id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_chained_by_cluster_follows_to_the_next_job_after_a_kill(cluster):
    create_clusters(cluster)
    first = submit(cluster, "up")
    chain = submit(cluster, "chain", {"upstreamCluster": "up"})
    with SseReader(f"{cluster.url}/api/v1/jobs/{chain}/output") as stream:
        before = [stream.next(lambda name, e: name == "message", timeout=90,
                              what="an event from the first upstream job")[1] for _ in range(5)]
        assert_came_from_upstream(before, first)

        assert cluster.call("DELETE", f"/api/v1/jobs/{first}?user=e2e&reason=replace")[0] == 202
        wait_for(lambda: job_state(cluster.call("GET", f"/api/v1/jobs/{first}")[1]) == "Completed",
                 timeout=60, what=f"{first} Completed")
        second = submit(cluster, "up")
        assert second != first
        switched = stream.next(lambda name, e: name == "message" and e["upstreamJobId"] == second,
                               timeout=90, what=f"an event from {second}")[1]
        after = [switched] + [stream.next(lambda name, e: name == "message", timeout=60,
                                          what=f"more events from {second}")[1] for _ in range(9)]
    # Once on the new job, nothing from the old one comes through any more.
    assert_came_from_upstream(after, second)


def test_chained_job_reconnects_after_the_master_restarts(cluster):
    create_clusters(cluster)
    upstream = submit(cluster, "up")
    chain = submit(cluster, "chain", {"upstreamJobId": upstream})
    assert_came_from_upstream(output_events(cluster, chain, 3), upstream)

    cluster.master.kill9()
    cluster.start_master()
    wait_for(lambda: cluster.call("GET", "/api/v1/agents")[1]["list"], timeout=60, what="agent re-registered")
    # An event the upstream emitted after the restart: the chained job can only pass on
    # ids from here on if its source reconnected to the new master.
    (fresh,) = output_events(cluster, upstream, 1)
    (late,) = output_events(cluster, chain, 1, match=lambda e: e["id"] >= fresh["id"], timeout=120)
    assert_came_from_upstream([late], upstream)


# -- the chained job's parameters and stage (no processes) --------------------------------

def resolved(**supplied):
    return resolve_parameters(chained.job, supplied)


def test_exactly_one_upstream_is_required_when_the_job_is_submitted():
    # resolve_parameters is the check the cluster actor makes on submit (a 400 there).
    with pytest.raises(ParameterError, match="exactly one of parameters 'upstreamJobId' and "
                                             "'upstreamCluster' \\(neither given\\)"):
        resolved()
    with pytest.raises(ParameterError, match="\\(both given\\)"):
        resolved(upstreamJobId="up-1", upstreamCluster="up")
    assert chained.resolve_upstream(resolved(upstreamJobId="up-1")) == {"job_id": "up-1"}
    assert chained.resolve_upstream(resolved(upstreamCluster="up")) == {"cluster": "up"}


def test_the_source_refuses_bad_parameters_before_connecting_anywhere():
    context = Context(job_id="chain-1", parameters={"upstreamJobId": None, "upstreamCluster": None, "tag": True})
    with pytest.raises(ParameterError, match="exactly one"):
        chained.job.source(context)
    context = Context(job_id="chain-1", parameters=resolved(upstreamCluster="chain"))
    with pytest.raises(ParameterError, match="cannot read its own output"):
        chained.job.source(context)
    context = Context(job_id="chain-1", parameters=resolved(upstreamJobId="chain-1"))
    with pytest.raises(ParameterError, match="cannot read its own output"):
        chained.job.source(context)


def test_malformed_upstream_names_are_parameter_errors():
    with pytest.raises(ParameterError, match="'upstreamJobId' = 'up' is invalid: must be a job id"):
        resolved(upstreamJobId="up")
    with pytest.raises(ParameterError, match="'upstreamCluster' = '1up' is invalid: must be a job cluster"):
        resolved(upstreamCluster="1up")
    # Cluster names may hold '-', as Mantis' do.
    assert chained.resolve_upstream(resolved(upstreamCluster="up-east")) == {"cluster": "up-east"}
    with pytest.raises(ParameterError, match="unknown parameter 'upstream'"):
        resolved(upstream="up")


def test_the_stage_tags_events_with_their_upstream_job_or_passes_them_unchanged():
    upstream = [UpstreamEvent("up-1", {"id": 1}), UpstreamEvent("up-2", 7)]

    def run(tag):
        context = Context(job_id="chain-1", parameters=resolved(upstreamCluster="up", tag=tag))
        out = []
        chained.job.stages[0].operators(reactivex.from_iterable(upstream), context).subscribe(out.append)
        return out

    assert run(True) == [{"id": 1, "upstreamJobId": "up-1"}, {"value": 7, "upstreamJobId": "up-2"}]
    upstream = [UpstreamEvent("up-1", {"id": 1}), UpstreamEvent("up-2", 7)]
    assert run(False) == [{"id": 1}, 7]
