"""Fuzzed request bodies, in Mantis' shapes and ours, against a real master: never a 5xx.

Hypothesis starts from valid bodies of each kind (a Mantis NamedJobDefinition, our flat
cluster, a MantisJobDefinition submission, the action bodies) and breaks them: fields
dropped, values swapped for any JSON, numbers sent as strings, unknown fields added,
whole bodies replaced by junk.  Every answer must be a 2xx, or a 4xx with Mantis' JSON
failure payload; no body may crash a handler or an actor.  The master runs without an
agent, so the jobs a lucky body submits stay pending and cost nothing.
"""
from __future__ import annotations

import json
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mantis.tooling.local_processes import LocalCluster
from tests.support import make_config

ARTIFACT = "mantis.examples.synthetic:job"
NAMES = st.sampled_from(["fz", "fz-a", "fz.b", "Fz_1", "1bad", "", "a" * 120, "x y"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False),
                    st.text(max_size=12), st.sampled_from(["1", "0", "-1", "1.5", "true", "nan", "1e9"]))
ANY_JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                        max_leaves=8)
STAGE = {"numberOfInstances": "1",
         "machineDefinition": {"cpuCores": "1", "memoryMB": "200", "diskMB": "1024", "networkMbps": "128",
                               "numPorts": "1"},
         "scalable": True, "scalingPolicy": {"stage": 1, "min": "1", "max": "3"},
         "softConstraints": ["M4Cluster"], "hardConstraints": [], "containerAttributes": {}}
FLAT_CLUSTER = {"name": "fz", "url": ARTIFACT, "version": "1", "parameters": [{"name": "rate", "value": "5"}],
                "schedulingInfo": {"stages": {"1": STAGE}}, "labels": [{"name": "l", "value": "v"}],
                "slaMin": "0", "slaMax": "0", "migrationConfig": {"strategy": "ONE_WORKER", "configString": ""}}
MANTIS_CLUSTER = {"jobDefinition": {**{k: v for k, v in FLAT_CLUSTER.items() if k != "url"},
                                    "jobJarFileLocation": ARTIFACT, "isReadyForJobMaster": True,
                                    "deploymentStrategy": {}, "cronSpec": None, "cronPolicy": "KEEP_EXISTING"},
                  "owner": {"name": "n", "teamName": "", "description": "", "contactEmail": "", "repo": ""},
                  "jobPrincipal": {"email": "e@x", "type": "GROUP"}}
SUBMISSION = {"name": "fz", "user": "u", "jobJarFileLocation": "", "version": "1",
              "jobSla": {"durationType": "Perpetual", "runtimeLimitSecs": "0", "minRuntimeSecs": "0"},
              "schedulingInfo": {"stages": {"0": dict(STAGE), "1": dict(STAGE)}},
              "parameters": [{"name": "rate", "value": 2}], "isReadyForJobMaster": True}
ACTIONS = {
    "updateArtifact": {"name": "fz", "url": ARTIFACT, "version": "2", "skipsubmit": True, "user": "u"},
    "updateSla": {"name": "fz", "user": "u", "min": "0", "max": "2", "cronspec": "", "cronpolicy": "KEEP_NEW",
                  "forceenable": False},
    "updateLabel": {"name": "fz", "user": "u", "labels": [{"name": "a", "value": "b"}]},
    "updateMigrationStrategy": {"name": "fz", "user": "u", "migrationConfig": {"strategy": "PERCENTAGE",
                                                                               "configString": "{}"}},
    "updateSchedulingInfo": {"user": "u", "schedulingInfo": {"stages": {"1": STAGE}}, "version": "3"},
    "enableCluster": {"name": "fz", "user": "u"},
    "disableCluster": {"name": "fz", "user": "u"},
}
JOB_ACTIONS = {
    "scaleStage": {"JobId": "fz-1", "StageNumber": "1", "NumWorkers": "2", "User": "u", "Reason": "r"},
    "resubmitWorker": {"workerNumber": "1", "user": "u", "reason": "r"},
}


def mutated(base: dict) -> st.SearchStrategy:
    """``base`` broken in one or more places, nested objects included; or junk instead of it."""

    def paths(obj, prefix=()):
        if isinstance(obj, dict):
            for k, v in obj.items():
                yield (*prefix, k)
                yield from paths(v, (*prefix, k))

    all_paths = list(paths(base))

    @st.composite
    def broken(draw):
        body = json.loads(json.dumps(base))
        for _ in range(draw(st.integers(1, 4))):
            path = draw(st.sampled_from(all_paths))
            parent = body
            for key in path[:-1]:
                if not isinstance(parent, dict) or key not in parent:
                    break
                parent = parent[key]
            else:
                if isinstance(parent, dict):
                    how = draw(st.sampled_from(["drop", "swap", "swap", "add"]))
                    if how == "drop":
                        parent.pop(path[-1], None)
                    elif how == "swap":
                        parent[path[-1]] = draw(ANY_JSON)
                    else:
                        parent[draw(st.text(min_size=1, max_size=8))] = draw(ANY_JSON)
        if "name" in body and draw(st.booleans()):
            body["name"] = draw(NAMES)
        return body

    return st.one_of(broken(), ANY_JSON)


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    """A real master (no agent) for the whole module, with cluster ``fz`` registered."""
    tmp = tmp_path_factory.mktemp("fuzz")
    cluster = LocalCluster(make_config(tmp), tmp)
    try:
        cluster.start_master()
        assert cluster.call("POST", "/api/v1/jobClusters", FLAT_CLUSTER)[0] == 201
        assert cluster.call("POST", "/api/v1/jobClusters/fz/jobs", {"user": "u"})[0] == 201
        yield cluster
    finally:
        cluster.stop()


def send(master, method: str, path: str, body) -> None:
    """Send ``body`` as JSON; the answer must not be a 5xx, and a 4xx must be Mantis' JSON error."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(master.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read()
    assert status < 500, (status, path, body, text)
    if status >= 400:
        error = json.loads(text)
        assert isinstance(error["error"], str) and error["status"] == status and "Traceback" not in error["error"]


FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


@FUZZ
@given(body=st.one_of(mutated(FLAT_CLUSTER), mutated(MANTIS_CLUSTER)))
def test_fuzzed_cluster_creates_and_updates_never_5xx(master, body):
    send(master, "POST", "/api/v1/jobClusters", body)
    send(master, "PUT", "/api/v1/jobClusters/fz", body)


@FUZZ
@given(body=mutated(SUBMISSION))
def test_fuzzed_submissions_never_5xx(master, body):
    send(master, "POST", "/api/v1/jobClusters/fz/jobs", body)
    send(master, "POST", "/api/v1/jobs", body)
    send(master, "POST", "/api/v1/jobs/actions/quickSubmit", body)


@FUZZ
@given(action=st.sampled_from(sorted(ACTIONS)), data=st.data())
def test_fuzzed_cluster_actions_never_5xx(master, action, data):
    send(master, "POST", f"/api/v1/jobClusters/fz/actions/{action}", data.draw(mutated(ACTIONS[action])))


@FUZZ
@given(action=st.sampled_from(sorted(JOB_ACTIONS)), data=st.data())
def test_fuzzed_job_actions_never_5xx(master, action, data):
    send(master, "POST", f"/api/v1/jobs/fz-1/actions/{action}", data.draw(mutated(JOB_ACTIONS[action])))
