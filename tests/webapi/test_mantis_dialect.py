"""Mantis' own route tests, replayed in our words against a real master (multiprocTCPBase).

Netflix/mantis checks its v1 REST surface in ``JobClustersRouteTest``, ``JobsRouteTest``
and ``AdminMasterRouteTest``: the request bodies its UI sends (``JobClusterPayloads``,
``JobPayloads``), the status codes, and the fields a client reads.  These tests send
requests of the same shapes, in the same order where a step builds on the one before,
and check what a Mantis client would read: status codes, field names and their types.

The artifact is the one difference: Mantis runs a zip of JVM code, we run a Python entry
point, so the cluster names ``mantis.examples.synthetic:job`` where Mantis' payload has a
zip URL.  A zip URL is taken at create, as Mantis takes it, and refused at submit.
"""
from __future__ import annotations

import copy
import json
import urllib.request

import pytest

from mantis.tooling.local_processes import LocalCluster, api
from tests.support import make_config, wait_for

CLUSTER = "sine-function"
ARTIFACT = "mantis.examples.synthetic:job"
STAGE = {
    "numberOfInstances": "1",
    "machineDefinition": {"cpuCores": "1", "memoryMB": "200", "diskMB": "1024", "networkMbps": "128",
                          "numPorts": "1"},
    "scalable": True,
    "scalingPolicy": {"stage": 1, "min": "1", "max": "10", "increment": "2", "decrement": "1",
                      "coolDownSecs": "600", "strategies": {"CPU": {"reason": "CPU", "scaleDownBelowPct": "15",
                                                                    "scaleUpAbovePct": "75",
                                                                    "rollingCount": {"count": "12", "of": "20"}}},
                      "enabled": True},
    "softConstraints": [], "hardConstraints": [],
}
CREATE = {  # JobClusterPayloads.JOB_CLUSTER_CREATE_WITH_PRINCIPAL, with our artifact
    "jobDefinition": {
        "name": CLUSTER, "user": "nmahilani", "jobJarFileLocation": ARTIFACT,
        "version": "0.2.9 2018-05-29 16:12:56",
        "schedulingInfo": {"stages": {"1": STAGE}},
        "parameters": [{"name": "rate", "value": "20"}],
        "labels": [{"name": "_mantis.user", "value": "nmahilani"}, {"name": "_mantis.jobType", "value": "other"}],
        "migrationConfig": {"strategy": "PERCENTAGE", "configString": '{"percentToMove":25,"intervalMs":60000}'},
        "slaMin": "0", "slaMax": "0", "deploymentStrategy": {"resourceClusterId": "mantisagent"},
        "cronSpec": None, "cronPolicy": "KEEP_EXISTING", "isReadyForJobMaster": True},
    "owner": {"contactEmail": "n@example.com", "description": "", "name": "Nick", "repo": "", "teamName": ""},
    "jobPrincipal": {"email": "mantis-group@example.com", "type": "GROUP"},
}
SUBMIT = {  # JobClusterPayloads.JOB_CLUSTER_SUBMIT: a Job Master stage 0 and one scalable stage
    "name": CLUSTER, "user": "nmahilani", "jobJarFileLocation": "", "version": "0.2.9 2018-05-29 16:12:56",
    "jobSla": {"durationType": "Perpetual", "runtimeLimitSecs": "0", "minRuntimeSecs": "0", "userProvidedType": ""},
    "schedulingInfo": {"stages": {
        "0": {"numberOfInstances": 1, "machineDefinition": {"cpuCores": 1, "memoryMB": 200, "diskMB": 1024,
                                                            "networkMbps": 128, "numPorts": "1"}, "scalable": False},
        "1": {**STAGE, "numberOfInstances": 1, "softConstraints": ["M4Cluster"]}}},
    "parameters": [{"name": "rate", "value": "10"}, {"name": "seed", "value": 2}],
    "isReadyForJobMaster": True,
}


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    """One real master and agent for the module: the route tests build on each other."""
    tmp = tmp_path_factory.mktemp("dialect")
    cluster = LocalCluster(make_config(tmp), tmp)
    cluster.start()
    yield cluster
    cluster.stop()


def call(master, method: str, path: str, body=None, raw: bytes | None = None) -> tuple[int, object]:
    """(status, decoded JSON or None for an empty body) of one request."""
    if raw is None:
        return api(master.url, method, path, body)
    request = urllib.request.Request(master.url + path, data=raw, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def is_error(body, fragment: str = "") -> bool:
    """Mantis' failure payload: ``error`` (the message), ``time``, ``host``, ``requestId``."""
    return (isinstance(body, dict) and isinstance(body.get("error"), str) and isinstance(body.get("time"), int)
            and "host" in body and "requestId" in body and fragment in body["error"])


def active_job(master) -> str:
    status, jobs = call(master, "GET", f"/api/v1/jobClusters/{CLUSTER}/jobs?compact=true")
    assert status == 200 and jobs["total"] >= 1, jobs
    return jobs["list"][-1]["jobId"]


# -- JobClustersRouteTest ----------------------------------------------------------

def test_cluster_create_answers_201_with_jars_and_the_principal(master):
    status, body = call(master, "POST", "/api/v1/jobClusters", CREATE)
    assert status == 201, body
    assert body["name"] == CLUSTER
    assert body["jars"][0]["url"] == ARTIFACT and body["jars"][0]["version"] == "0.2.9 2018-05-29 16:12:56"
    assert isinstance(body["jars"][0]["uploadedAt"], int) and body["jars"][0]["schedulingInfo"]["stages"]["1"]
    assert body["jobPrincipal"] == CREATE["jobPrincipal"]
    assert body["sla"] == {"min": 0, "max": 0, "cronSpec": None, "cronPolicy": "KEEP_EXISTING"}
    assert body["owner"]["contactEmail"] == "n@example.com" and body["disabled"] is False
    assert body["lastJobCount"] == 0 and isinstance(body["isReadyForJobMaster"], bool)
    assert body["migrationConfig"]["strategy"] == "PERCENTAGE"
    assert body["labels"] == CREATE["jobDefinition"]["labels"] and body["parameters"] == [{"name": "rate",
                                                                                            "value": "20"}]


def test_duplicate_cluster_create_is_409(master):
    status, body = call(master, "POST", "/api/v1/jobClusters", CREATE)
    assert status == 409 and is_error(body, "already exists")


def test_a_cluster_named_by_an_artifact_url_is_taken_at_create_and_refused_at_submit(master):
    other = copy.deepcopy(CREATE)
    other["jobDefinition"].update(name="sine-function-zip", jobJarFileLocation="https://example.com/sine-0.2.9.zip")
    assert call(master, "POST", "/api/v1/jobClusters", other)[0] == 201
    status, body = call(master, "POST", "/api/v1/jobClusters/sine-function-zip/jobs", {"user": "u"})
    assert status == 400 and is_error(body, "cannot run here")
    assert call(master, "DELETE", "/api/v1/jobClusters/sine-function-zip?user=test")[0] == 204


def test_latest_job_discovery_info_is_404_for_no_cluster_and_for_no_running_job(master):
    assert call(master, "GET", "/api/v1/jobClusters/NonExistentCluster/latestJobDiscoveryInfo")[0] == 404
    assert call(master, "GET", f"/api/v1/jobClusters/{CLUSTER}/latestJobDiscoveryInfo")[0] == 404


def test_cluster_list_is_the_list_envelope(master):
    status, body = call(master, "GET", "/api/v1/jobClusters")
    assert status == 200 and set(body) == {"list", "prev", "next", "total"}
    assert [c["name"] for c in body["list"]] == [CLUSTER] and body["total"] == 1
    assert body["list"][0]["jars"][0]["url"] == ARTIFACT


def test_cluster_list_filters_by_matching_and_pages(master):
    assert call(master, "GET", "/api/v1/jobClusters?matching=^sine")[1]["total"] == 1
    assert call(master, "GET", "/api/v1/jobClusters?matching=nomatch")[1]["list"] == []
    status, body = call(master, "GET", "/api/v1/jobClusters?pageSize=1&offset=1")
    assert status == 200 and body["list"] == [] and body["prev"] == "/api/v1/jobClusters?pageSize=1&offset=0"


@pytest.mark.parametrize("method", ["DELETE", "PUT"])
def test_methods_a_collection_does_not_have_are_405(master, method):
    status, body = call(master, method, "/api/v1/jobClusters", raw=b"{}")
    assert status == 405 and is_error(body)


def test_cluster_get_projects_fields_and_404s_an_unknown_one(master):
    status, body = call(master, "GET", f"/api/v1/jobClusters/{CLUSTER}?fields=name,jars")
    assert status == 200 and set(body) == {"name", "jars"}
    status, body = call(master, "GET", "/api/v1/jobClusters/doesNotExist")
    assert status == 404 and is_error(body)
    assert call(master, "POST", f"/api/v1/jobClusters/{CLUSTER}", raw=b"{}")[0] == 405


def test_cluster_healthcheck_says_healthy_with_no_job_and_404s_an_unknown_cluster(master):
    status, body = call(master, "GET", f"/api/v1/jobClusters/{CLUSTER}/healthcheck")
    assert status == 200 and body["isHealthy"] is True
    assert call(master, "GET", "/api/v1/jobClusters/nonExistentCluster/healthcheck")[0] == 404


def test_cluster_update_in_mantis_body_adds_a_jar_and_refuses_another_name(master):
    update = copy.deepcopy(CREATE)
    update["jobDefinition"]["version"] = "0.2.9 2018-05-29 new version"
    status, body = call(master, "PUT", f"/api/v1/jobClusters/{CLUSTER}", update)
    assert status == 200, body
    assert [j["version"] for j in body["jars"]] == ["0.2.9 2018-05-29 16:12:56", "0.2.9 2018-05-29 new version"]
    assert body["latestVersion"] == "0.2.9 2018-05-29 new version"
    invalid = copy.deepcopy(CREATE)
    invalid["jobDefinition"]["name"] = "NonExistent"
    status, body = call(master, "PUT", f"/api/v1/jobClusters/{CLUSTER}", invalid)
    assert status == 400 and is_error(body, "does not match")
    assert call(master, "PUT", "/api/v1/jobClusters/NonExistent", invalid)[0] == 404
    assert call(master, "DELETE", "/api/v1/jobClusters/NonExistent?user=test&reason=unittest")[0] == 404


@pytest.mark.parametrize("action,body", [
    ("updateArtifact", {"name": CLUSTER, "version": "0.1.39", "url": ARTIFACT, "skipsubmit": True,
                        "user": "nmahilani"}),
    ("updateSla", {"user": "nmahilani", "name": CLUSTER, "min": "0", "max": "1", "cronspec": "",
                   "cronpolicy": "KEEP_EXISTING", "forceenable": False}),
    ("updateMigrationStrategy", {"name": CLUSTER, "user": "nmahilani", "migrationConfig": {
        "strategy": "PERCENTAGE", "configString": '{"percentToMove":99,"intervalMs":10000}'}}),
    ("updateLabel", {"name": CLUSTER, "user": "nmahilani", "labels": [
        {"name": "_mantis.criticality", "value": "low"}, {"name": "_mantis.dataOrigin", "value": "none"}]}),
    ("disableCluster", {"name": CLUSTER, "user": "test"}),
    ("enableCluster", {"name": CLUSTER, "user": "test"}),
])
def test_cluster_actions_answer_204_404_400_and_405_as_mantis(master, action, body):
    path = f"/api/v1/jobClusters/{CLUSTER}/actions/{action}"
    status, reply = call(master, "POST", path, body)
    assert (status, reply) == (204, None)
    # The same body at another cluster's path: the names disagree.
    status, reply = call(master, "POST", f"/api/v1/jobClusters/NonExistent/actions/{action}", body)
    assert status == 400 and is_error(reply, "does not match with what specified in resource path NonExistent")
    # A body naming a cluster that does not exist, at its own path.
    status, reply = call(master, "POST", f"/api/v1/jobClusters/NonExistent/actions/{action}",
                         {**body, "name": "NonExistent"})
    assert status == 404 and is_error(reply)
    for method in ("GET", "PUT", "DELETE"):
        assert call(master, method, path, raw=json.dumps(body).encode() if method == "PUT" else None)[0] == 405


def test_cluster_actions_show_in_the_cluster(master):
    cluster = call(master, "GET", f"/api/v1/jobClusters/{CLUSTER}")[1]
    assert cluster["sla"] == {"min": 0, "max": 1, "cronSpec": None, "cronPolicy": "KEEP_EXISTING"}
    assert cluster["migrationConfig"]["configString"] == '{"percentToMove":99,"intervalMs":10000}'
    assert [label["name"] for label in cluster["labels"]] == ["_mantis.criticality", "_mantis.dataOrigin"]
    assert cluster["jars"][-1]["version"] == "0.1.39" and cluster["disabled"] is False
    # Back to no bound on active jobs, for the submits below.
    assert call(master, "POST", f"/api/v1/jobClusters/{CLUSTER}/actions/updateSla",
                {"user": "test", "min": 0, "max": 0})[0] == 204


def test_update_scheduling_info_answers_204_and_changes_the_latest_jar(master):
    body = {"schedulingInfo": {"stages": {"1": {**STAGE, "numberOfInstances": "1"}}}, "version": "0.1.40"}
    assert call(master, "POST", f"/api/v1/jobClusters/{CLUSTER}/actions/updateSchedulingInfo",
                {**body, "user": "nmahilani"}) == (204, None)
    cluster = call(master, "GET", f"/api/v1/jobClusters/{CLUSTER}")[1]
    assert cluster["latestVersion"] == "0.1.40" and cluster["jars"][-1]["schedulingInfo"]["stages"]["1"]


# -- JobsRouteTest -----------------------------------------------------------------

def test_job_submit_in_mantis_body_answers_201_with_the_job(master):
    status, body = call(master, "POST", f"/api/v1/jobClusters/{CLUSTER}/jobs", SUBMIT)
    assert status == 201, body
    meta = body["jobMetadata"]
    assert meta["name"] == CLUSTER and meta["jobId"].startswith(f"{CLUSTER}-")
    assert meta["sla"]["durationType"] == "Perpetual" and isinstance(meta["labels"], list)
    # Stage 1 is autoscaled (its policy has strategies): a Job Master runs as stage 0, as in Mantis.
    assert isinstance(meta["submittedAt"], int) and meta["numStages"] == 2
    assert [s["stageNum"] for s in body["stageMetadataList"]] == [0, 1]
    assert isinstance(body["workerMetadataList"], list)
    # The job runs: its worker reaches Started.
    job_id = meta["jobId"]
    wait_for(lambda: [w for w in call(master, "GET", f"/api/v1/jobs/{job_id}")[1]["workerMetadataList"]
                      if w["state"] == "Started" and w["stageNum"] == 1], timeout=30, what="the worker Started")


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v1/jobs/{job}"), ("POST", "/api/v1/jobClusters/sine-function/jobs/{job}"),
    ("PUT", "/api/v1/jobs/{job}"), ("PUT", "/api/v1/jobClusters/sine-function/jobs/{job}"),
    ("PUT", "/api/v1/jobs"), ("DELETE", "/api/v1/jobs"),
    ("PUT", "/api/v1/jobs/{job}/actions/resubmitWorker"), ("PUT", "/api/v1/jobs/{job}/actions/scaleStage"),
])
def test_methods_a_job_resource_does_not_have_are_405(master, method, path):
    status, body = call(master, method, path.format(job=active_job(master)), raw=b"{}")
    assert status == 405 and is_error(body)


def test_submit_to_a_cluster_that_does_not_exist_is_404_and_naming_another_is_400(master):
    status, body = call(master, "POST", "/api/v1/jobClusters/NonExistent/jobs", {**SUBMIT, "name": "NonExistent"})
    assert status == 404 and is_error(body)
    status, body = call(master, "POST", "/api/v1/jobClusters/NonExistent/jobs", SUBMIT)
    assert status == 400 and is_error(
        body, "Cluster name specified in request payload [sine-function] does not match with what specified "
              "in resource endpoint [NonExistent]")


def test_job_lists_answer_views_and_compact_info(master):
    for path in (f"/api/v1/jobClusters/{CLUSTER}/jobs", "/api/v1/jobs"):
        status, body = call(master, "GET", path)
        assert status == 200 and body["total"] == 1, body
        job = body["list"][0]
        assert job["jobMetadata"]["name"] == CLUSTER and job["jobMetadata"]["jarUrl"] == ARTIFACT
        assert job["jobMetadata"]["numStages"] == 2 and len(job["jobMetadata"]["parameters"]) == 2
        assert len(job["stageMetadataList"]) == 2 and len(job["workerMetadataList"]) == 2
        status, body = call(master, "GET", path + "?compact=true")
        compact = body["list"][0]
        assert not {"jobMetadata", "stageMetadataList", "workerMetadataList"} & set(compact)
        assert compact["jobId"].startswith(f"{CLUSTER}-") and compact["type"] == "Perpetual"
        # Stage 1's worker (1 cpu, 200 MB) and the Job Master's (0.25 cpu, 128 MB).
        assert (compact["numStages"], compact["numWorkers"], compact["totCPUs"], compact["totMemory"]) == (
            2, 2, 1.25, 328.0)
        assert isinstance(compact["submittedAt"], int) and compact["terminatedAt"] == -1
        assert sum(compact["statesSummary"].values()) == 2


def test_job_list_filters_as_mantis(master):
    assert call(master, "GET", "/api/v1/jobs?jobState=Terminal")[1]["total"] == 0
    assert call(master, "GET", "/api/v1/jobs?jobState=Active")[1]["total"] == 1
    assert call(master, "GET", "/api/v1/jobs?matching=^sine")[1]["total"] == 1
    assert call(master, "GET", "/api/v1/jobs?matching=^other")[1]["total"] == 0
    job = call(master, "GET", "/api/v1/jobs?workerState=Terminal")[1]["list"][0]
    assert job["workerMetadataList"] == [] and len(job["stageMetadataList"]) == 2
    job = call(master, "GET", "/api/v1/jobs?stageNumber=1&workerNumber=999")[1]["list"][0]
    assert [s["stageNum"] for s in job["stageMetadataList"]] == [1] and job["workerMetadataList"] == []
    job = call(master, "GET", "/api/v1/jobs?stageNumber=2&workerIndex=0")[1]["list"][0]
    assert job["stageMetadataList"] == [] and {w["workerIndex"] for w in job["workerMetadataList"]} == {0}
    body = call(master, "GET", "/api/v1/jobs?fields=jobId,state&fromObj=jobMetadata")[1]
    assert set(body["list"][0]) == {"jobMetadata"} and set(body["list"][0]["jobMetadata"]) == {"jobId", "state"}


def test_job_get_with_and_without_the_cluster(master):
    job_id = active_job(master)
    for path in (f"/api/v1/jobs/{job_id}", f"/api/v1/jobClusters/{CLUSTER}/jobs/{job_id}"):
        status, body = call(master, "GET", path)
        assert status == 200 and body["jobMetadata"]["jobId"] == job_id and body["version"]
        worker = body["workerMetadataList"][0]
        for field, kind in (("workerIndex", int), ("workerNumber", int), ("stageNum", int), ("ports", list),
                            ("state", str), ("acceptedAt", int), ("startedAt", int), ("slave", str),
                            ("numberOfPorts", int), ("totalResubmitCount", int)):
            assert isinstance(worker[field], kind), (field, worker)
    assert call(master, "GET", "/api/v1/jobs/NonExistent-1")[0] == 404
    status, body = call(master, "GET", f"/api/v1/jobClusters/NonExistent/jobs/{job_id}")
    assert status == 404 and is_error(body, f"JobId [{job_id}] exists but does not belong to specified cluster")
    assert call(master, "GET", f"/api/v1/jobClusters/{CLUSTER}/jobs/NonExistent-1")[0] == 404


def test_quick_submit_answers_201_and_404_for_no_cluster(master):
    body = {"name": CLUSTER, "user": "nmahilani",
            "jobSla": {"durationType": "Perpetual", "runtimeLimitSecs": "0", "minRuntimeSecs": "0",
                       "userProvidedType": ""}}
    status, job = call(master, "POST", "/api/v1/jobs/actions/quickSubmit", body)
    assert status == 201 and job["jobMetadata"]["name"] == CLUSTER, job
    assert call(master, "POST", "/api/v1/jobs/actions/quickSubmit", {**body, "name": "NonExistent"})[0] == 404
    job_id = job["jobMetadata"]["jobId"]
    assert call(master, "DELETE", f"/api/v1/jobs/{job_id}?user=test&reason=unittest") == (202, None)


def test_post_jobs_submits_to_the_cluster_named_in_the_body(master):
    status, job = call(master, "POST", "/api/v1/jobs", {**SUBMIT, "schedulingInfo": None})
    assert status == 201 and job["jobMetadata"]["name"] == CLUSTER
    assert call(master, "DELETE", f"/api/v1/jobs/{job['jobMetadata']['jobId']}?user=t&reason=r")[0] == 202


def test_scale_and_resubmit_of_an_unknown_job_are_404_and_a_mismatched_body_400(master):
    job_id = active_job(master)
    scale = {"JobId": job_id, "StageNumber": 1, "NumWorkers": 2, "User": "test", "Reason": "testing"}
    assert call(master, "POST", "/api/v1/jobs/NonExistent-1/actions/scaleStage",
                {**scale, "JobId": "NonExistent-1"})[0] == 404
    assert call(master, "POST", "/api/v1/jobs/NonExistent-1/actions/resubmitWorker",
                {"workerNumber": 1, "user": "test", "reason": "testing"})[0] == 404
    status, body = call(master, "POST", "/api/v1/jobs/NonExistent-1/actions/scaleStage", scale)
    assert status == 400 and is_error(
        body, f"JobId specified in request payload [{job_id}] does not match with resource uri [NonExistent-1]")


def test_scale_stage_and_resubmit_worker_answer_204_and_act(master):
    job_id = active_job(master)
    scale = {"JobId": job_id, "StageNumber": 1, "NumWorkers": 2, "User": "test", "Reason": "testing"}
    assert call(master, "POST", f"/api/v1/jobs/{job_id}/actions/scaleStage", scale) == (204, None)
    def stage_1(view):
        return [w for w in view["workerMetadataList"] if w["stageNum"] == 1]

    wait_for(lambda: len(stage_1(call(master, "GET", f"/api/v1/jobs/{job_id}")[1])) == 2,
             timeout=15, what="a second worker")
    (first,) = [w for w in stage_1(call(master, "GET", f"/api/v1/jobs/{job_id}")[1]) if w["workerIndex"] == 0]
    assert call(master, "POST", f"/api/v1/jobs/{job_id}/actions/resubmitWorker",
                {"workerNumber": first["workerNumber"], "user": "test", "reason": "testing"}) == (204, None)

    def archived():
        body = call(master, "GET", f"/api/v1/jobs/{job_id}/archivedWorkers")[1]
        return body if body["total"] >= 1 else None

    body = wait_for(archived, timeout=15, what="the resubmitted worker archived")
    assert set(body) == {"list", "prev", "next", "total"}
    assert body["list"][0]["workerNumber"] == first["workerNumber"] and body["list"][0]["state"] in (
        "Failed", "Completed")


def test_kill_needs_user_and_reason_answers_202_and_404s_an_unknown_job(master):
    job_id = active_job(master)
    status, body = call(master, "DELETE", f"/api/v1/jobs/{job_id}?reason=unittest")
    assert status == 400 and is_error(body, "'user'")
    status, body = call(master, "DELETE", f"/api/v1/jobs/{job_id}?user=test")
    assert status == 400 and is_error(body, "'reason'")
    assert call(master, "DELETE", "/api/v1/jobs/NonExistent-1?user=test&reason=unittest")[0] == 404
    assert call(master, "DELETE", f"/api/v1/jobs/{job_id}?user=test&reason=unittest") == (202, None)
    wait_for(lambda: call(master, "GET", f"/api/v1/jobs/{job_id}")[1]["jobMetadata"]["state"] in (
        "Completed", "Failed"), timeout=30, what="the killed job ended")
    ended = call(master, "GET", f"/api/v1/jobs/{job_id}")[1]["jobMetadata"]
    assert ended["terminatedAt"] > 0
    # Both killed jobs are listed as Terminal, the running one is not.
    wait_for(lambda: call(master, "GET", "/api/v1/jobs?jobState=Terminal")[1]["total"] >= 2, timeout=30,
             what="the killed jobs listed as Terminal")
    assert job_id in [j["jobId"] for j in call(master, "GET", "/api/v1/jobs?jobState=Terminal&compact=true")[1]["list"]]


def test_submitting_to_a_disabled_cluster_is_400(master):
    assert call(master, "POST", f"/api/v1/jobClusters/{CLUSTER}/actions/disableCluster",
                {"name": CLUSTER, "user": "test"})[0] == 204
    status, body = call(master, "POST", f"/api/v1/jobClusters/{CLUSTER}/jobs", SUBMIT)
    assert status == 400 and is_error(body, "disabled")
    assert call(master, "POST", f"/api/v1/jobClusters/{CLUSTER}/actions/enableCluster",
                {"name": CLUSTER, "user": "test"})[0] == 204


def test_cluster_delete_needs_user_and_answers_204(master):
    status, body = call(master, "DELETE", f"/api/v1/jobClusters/{CLUSTER}")
    assert status == 400 and is_error(body, "'user'")
    wait_for(lambda: call(master, "GET", f"/api/v1/jobClusters/{CLUSTER}")[1]["activeJobs"] == [], timeout=30,
             what="no active job left")
    assert call(master, "DELETE", f"/api/v1/jobClusters/{CLUSTER}?user=test") == (204, None)
    assert call(master, "GET", f"/api/v1/jobClusters/{CLUSTER}")[0] == 404


# -- AdminMasterRouteTest, and our own health check --------------------------------

def test_master_info_has_mantis_fields(master):
    status, info = call(master, "GET", "/api/v1/masterInfo")
    assert status == 200
    for field, kind in (("hostname", str), ("hostIP", str), ("apiPort", int), ("schedInfoPort", int),
                        ("apiPortV2", int), ("apiStatusUri", str), ("consolePort", int), ("createTime", int)):
        assert isinstance(info[field], kind), (field, info)


def test_master_configs_are_mantis_configlets(master):
    status, configs = call(master, "GET", "/api/v1/masterConfigs")
    assert status == 200
    by_name = {c["name"]: json.loads(c["value"]) for c in configs}
    assert "UniqueHost" in by_name["JobConstraints"] and "CPU" in by_name["ScalingReason"]
    assert by_name["MigrationStrategyEnum"] == ["ONE_WORKER", "PERCENTAGE"]
    assert set(by_name["WorkerResourceLimits"]) == {"maxCpuCores", "maxMemoryMB", "maxNetworkMbps"}
    status, ours = call(master, "GET", "/api/v1/admin/config")
    assert status == 200 and ours["master"]["api_port"] == master.config["master"]["api_port"]


def test_health_check_answers_200_while_the_master_works(master):
    assert call(master, "GET", "/healthcheck")[0] == 200
    assert call(master, "GET", "/api/v1/health")[1]["status"] == "ok"
