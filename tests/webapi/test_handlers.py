"""The REST handlers alone, against a fake gateway (tests/webapi/fake_gateway.py).

The end-to-end tests prove a request reaches the actors and back; these prove, route by
route, that a request becomes the right typed message, that every refusal is a JSON
``{"error", "status"}`` with the right status, and that no input gets a 500 or a traceback.
"""
from __future__ import annotations

import json

import tornado.testing

from actors.messages import (
    AgentAction,
    CreateCluster,
    DeleteCluster,
    DescribeActors,
    DescribeJobs,
    DisableCluster,
    Done,
    EnableCluster,
    GetArchivedWorkers,
    GetCluster,
    GetJob,
    GetPending,
    KillJob,
    ListAgents,
    ListClusters,
    ListJobs,
    Rejected,
    ReplaceCluster,
    ResubmitWorker,
    ScaleStage,
    SubmitJob,
    UpdateArtifact,
    UpdateJobSla,
    UpdateLabels,
    UpdateMigrationStrategy,
    UpdateSchedulingInfo,
    UpdateSla,
)
from tests.webapi.fake_gateway import DESCRIBED_CLUSTER, DESCRIBED_JOB, FakeGateway
from webapi.app import make_app

CLUSTER = {"name": "synth", "url": "mantis.examples.synthetic:job",
           "parameters": [{"name": "rate", "value": 50}]}


class HandlerTest(tornado.testing.AsyncHTTPTestCase):
    """A fresh app over a fresh fake gateway per test; ``call`` returns (status, JSON body)."""

    def get_app(self):
        self.gateway = FakeGateway()
        return make_app(self.gateway)

    def call(self, method: str, path: str, body=None, raw: bytes | None = None) -> tuple[int, object]:
        """One request; ``body`` is sent as JSON, ``raw`` as it is.  Asserts the answer is
        JSON and, for an error, carries no traceback."""
        if raw is None and body is not None:
            raw = json.dumps(body).encode()
        if raw is None and method in ("POST", "PUT"):
            raw = b""  # tornado refuses a POST or PUT without a body, the API may not
        response = self.fetch(path, method=method, body=raw, allow_nonstandard_methods=True)
        assert response.headers["Content-Type"].startswith("application/json"), response.headers
        text = response.body.decode()
        assert "Traceback" not in text, text
        return response.code, json.loads(text)

    def sent(self):
        """The one message the request became, and where it went."""
        assert len(self.gateway.asked) == 1, self.gateway.asked
        return self.gateway.asked[0].message, self.gateway.asked[0].to

    def call_204(self, method: str, path: str, body=None) -> bool:
        """Whether the request was answered 204 with no body (Mantis' answer to an action)."""
        response = self.fetch(path, method=method, body=json.dumps(body) if body is not None else None,
                              allow_nonstandard_methods=True)
        assert response.code == 204, (response.code, response.body)
        return response.body == b""

    def assert_error(self, status: int, body, fragment: str = "") -> None:
        """A JSON error as every handler writes it (Mantis' failure payload and our status)."""
        assert set(body) == {"error", "status", "time", "host", "requestId"} and body["status"] == status, body
        assert isinstance(body["time"], int) and fragment in body["error"], body


# -- each route becomes its typed message ----------------------------------------------

class RoutesBecomeTypedMessages(HandlerTest):

    def test_post_job_clusters_sends_create_cluster_and_answers_201_with_the_cluster(self):
        self.gateway.answers[CreateCluster] = Done(DESCRIBED_CLUSTER)
        status, body = self.call("POST", "/api/v1/jobClusters", CLUSTER)
        assert status == 201 and body["name"] == "synth" and body["jars"][0]["uploadedAt"] == 1700000000500
        message, to = self.sent()
        assert isinstance(message, CreateCluster) and to == "manager"
        assert message.definition.name == "synth" and message.definition.url == "mantis.examples.synthetic:job"

    def test_post_job_clusters_takes_mantis_named_job_definition(self):
        self.gateway.answers[CreateCluster] = Done(DESCRIBED_CLUSTER)
        body = {"jobDefinition": {**CLUSTER, "isReadyForJobMaster": True, "numberOfInstances": None},
                "owner": {"name": "ann", "teamName": "t"}}
        body["jobDefinition"].pop("numberOfInstances")
        assert self.call("POST", "/api/v1/jobClusters", body)[0] == 201
        message, _ = self.sent()
        assert message.definition.owner == {"name": "ann", "teamName": "t"}

    def test_get_job_clusters_answers_the_list_envelope(self):
        self.gateway.answers[ListClusters] = Done([DESCRIBED_CLUSTER])
        status, body = self.call("GET", "/api/v1/jobClusters")
        assert status == 200 and set(body) == {"list", "prev", "next", "total"}
        assert [c["name"] for c in body["list"]] == ["synth"] and body["total"] == 1
        assert self.sent() == (ListClusters(), "manager")

    def test_get_job_cluster_sends_get_cluster_and_projects_fields(self):
        self.gateway.answers[GetCluster] = Done(DESCRIBED_CLUSTER)
        assert self.call("GET", "/api/v1/jobClusters/synth?fields=name,disabled") == (
            200, {"name": "synth", "disabled": False})
        assert self.sent() == (GetCluster("synth"), "manager")

    def test_put_job_cluster_sends_replace_cluster_with_the_user(self):
        self.gateway.answers[ReplaceCluster] = Done(DESCRIBED_CLUSTER)
        assert self.call("PUT", "/api/v1/jobClusters/synth?user=ann", CLUSTER)[0] == 200
        message, _ = self.sent()
        assert isinstance(message, ReplaceCluster)
        assert (message.name, message.definition.name, message.user) == ("synth", "synth", "ann")

    def test_delete_job_cluster_sends_delete_cluster_with_the_user_and_answers_204(self):
        response = self.fetch("/api/v1/jobClusters/synth?user=ann", method="DELETE")
        assert response.code == 204 and response.body == b""
        assert self.sent() == (DeleteCluster("synth", "ann"), "manager")

    def test_update_artifact_action_sends_update_artifact_and_answers_204(self):
        body = {"name": "synth", "url": "mantis.examples.synthetic:job", "version": "2", "skipsubmit": True,
                "user": "ann"}
        assert self.fetch("/api/v1/jobClusters/synth/actions/updateArtifact", method="POST",
                          body=json.dumps(body)).code == 204
        assert self.sent() == (UpdateArtifact("synth", "mantis.examples.synthetic:job", "2", "ann",
                                              skip_submit=True), "manager")

    def test_update_sla_action_takes_mantis_field_names(self):
        body = {"user": "ann", "name": "synth", "min": "1", "max": "2", "cronspec": "", "cronpolicy": "KEEP_NEW",
                "forceenable": False}
        assert self.call_204("POST", "/api/v1/jobClusters/synth/actions/updateSla", body)
        assert self.sent() == (UpdateSla("synth", 1, 2, None, "KEEP_NEW", "ann"), "manager")

    def test_update_label_action_sends_update_labels(self):
        body = {"name": "synth", "labels": [{"name": "team", "value": "ads"}], "user": "ann"}
        assert self.call_204("POST", "/api/v1/jobClusters/synth/actions/updateLabel", body)
        message, _ = self.sent()
        assert isinstance(message, UpdateLabels) and message.name == "synth"
        assert [(label.name, label.value) for label in message.labels] == [("team", "ads")]

    def test_update_job_sla_action_sends_update_job_sla(self):
        assert self.call_204("POST", "/api/v1/jobClusters/synth/actions/updateJobSla", {"jobSla": {}, "user": "a"})
        message, _ = self.sent()
        assert isinstance(message, UpdateJobSla) and message.name == "synth" and message.job_sla is not None

    def test_update_scheduling_info_and_migration_strategy_actions(self):
        assert self.call_204("POST", "/api/v1/jobClusters/synth/actions/updateSchedulingInfo",
                             {"schedulingInfo": {"stages": {"1": {"numberOfInstances": "3"}}}, "version": "9",
                              "user": "ann"})
        assert self.call_204("POST", "/api/v1/jobClusters/synth/actions/updateMigrationStrategy",
                             {"name": "synth", "user": "ann", "migrationConfig": {
                                 "strategy": "PERCENTAGE", "configString": '{"percentToMove":99,"intervalMs":10000}'}})
        first, second = (a.message for a in self.gateway.asked)
        assert isinstance(first, UpdateSchedulingInfo) and first.scheduling_info.stages[1].number_of_instances == 3
        assert first.version == "9"
        assert isinstance(second, UpdateMigrationStrategy) and second.migration_config["strategy"] == "PERCENTAGE"

    def test_enable_and_disable_actions_send_enable_and_disable_cluster(self):
        assert self.call_204("POST", "/api/v1/jobClusters/synth/actions/enableCluster", {"user": "ann"})
        assert self.call_204("POST", "/api/v1/jobClusters/synth/actions/disableCluster",
                             {"name": "synth", "user": "bob"})
        assert [a.message for a in self.gateway.asked] == [EnableCluster("synth", "ann"),
                                                           DisableCluster("synth", "bob")]

    def test_get_cluster_jobs_sends_list_jobs_of_the_cluster(self):
        assert self.call("GET", "/api/v1/jobClusters/synth/jobs?activeOnly=false&compact=true")[0] == 200
        assert self.sent() == (ListJobs(cluster="synth", include_ended=True), "manager")

    def test_post_cluster_jobs_sends_submit_job_and_answers_201_with_the_job(self):
        self.gateway.answers[SubmitJob] = Done({"jobId": "synth-1"})
        self.gateway.answers[GetJob] = Done(DESCRIBED_JOB)
        status, body = self.call("POST", "/api/v1/jobClusters/synth/jobs",
                                 {"parameters": [{"name": "rate", "value": 5}]})
        assert status == 201 and body["jobMetadata"]["jobId"] == "synth-1"
        message, to = self.gateway.asked[0].message, self.gateway.asked[0].to
        assert isinstance(message, SubmitJob) and message.cluster == "synth" and to == "manager"
        assert [(p.name, p.value) for p in message.definition.parameters] == [("rate", 5)]

    def test_post_cluster_jobs_with_an_empty_body_submits_the_clusters_defaults(self):
        self.gateway.answers[SubmitJob] = Done({"jobId": "synth-1"})
        self.gateway.answers[GetJob] = Done(DESCRIBED_JOB)
        assert self.call("POST", "/api/v1/jobClusters/synth/jobs")[0] == 201
        message = self.gateway.asked[0].message
        assert isinstance(message, SubmitJob) and message.cluster == "synth"

    def test_post_jobs_submits_to_the_cluster_the_body_names(self):
        self.gateway.answers[SubmitJob] = Done({"jobId": "synth-1"})
        self.gateway.answers[GetJob] = Done(DESCRIBED_JOB)
        assert self.call("POST", "/api/v1/jobs", {"name": "synth", "user": "ann"})[0] == 201
        assert self.gateway.asked[0].message.cluster == "synth"

    def test_quick_submit_submits_with_the_job_sla(self):
        self.gateway.answers[SubmitJob] = Done({"jobId": "synth-1"})
        self.gateway.answers[GetJob] = Done(DESCRIBED_JOB)
        body = {"name": "synth", "user": "ann", "jobSla": {"durationType": "Transient", "runtimeLimitSecs": "0"}}
        assert self.call("POST", "/api/v1/jobs/actions/quickSubmit", body)[0] == 201
        message = self.gateway.asked[0].message
        assert message.cluster == "synth" and message.definition.job_sla.duration_type == "Transient"

    def test_submit_refused_as_a_conflict_is_a_400_as_mantis_answers(self):
        self.gateway.answers[SubmitJob] = Rejected(409, "a disabled cluster takes no new jobs")
        status, body = self.call("POST", "/api/v1/jobClusters/synth/jobs", {"user": "ann"})
        assert status == 400 and "disabled" in body["error"]

    def test_get_jobs_sends_list_jobs_and_answers_job_views_in_the_envelope(self):
        self.gateway.answers[ListJobs] = Done([{"jobId": "synth-1", "clusterName": "synth", "state": "Launched"}])
        self.gateway.answers[DescribeJobs] = Done({"synth-1": DESCRIBED_JOB})
        status, body = self.call("GET", "/api/v1/jobs?workerState=Active&workerIndex=0")
        assert status == 200 and body["total"] == 1
        job = body["list"][0]
        assert set(job) == {"jobMetadata", "stageMetadataList", "workerMetadataList", "version"}
        assert [w["workerNumber"] for w in job["workerMetadataList"]] == [1, 2]
        assert job["stageMetadataList"][0]["numWorkers"] == 2 and job["jobMetadata"]["submittedAt"] == 1700000000250
        assert [a.message for a in self.gateway.asked] == [ListJobs(cluster=None, include_ended=False),
                                                           DescribeJobs("synth", ["synth-1"])]

    def test_get_jobs_compact_answers_compact_job_info(self):
        summary = {"jobId": "synth-1", "clusterName": "synth", "state": "Launched", "user": "ann",
                   "submittedAt": 1700000000.0, "endedAt": None, "workers": {"Started": 2},
                   "stageSizes": {"1": 2}, "jarUrl": "m:j", "type": "Perpetual", "labels": [], "numStages": 1,
                   "numWorkers": 2, "totCPUs": 2.0, "totMemory": 512.0}
        self.gateway.answers[ListJobs] = Done([summary])
        status, body = self.call("GET", "/api/v1/jobs?compact=true")
        assert status == 200
        assert body["list"] == [{"jobId": "synth-1", "jarUrl": "m:j", "submittedAt": 1700000000000,
                                 "terminatedAt": -1, "user": "ann", "state": "Launched", "type": "Perpetual",
                                 "numStages": 1, "numWorkers": 2, "totCPUs": 2.0, "totMemory": 512.0,
                                 "statesSummary": {"Started": 2}, "labels": []}]

    def test_get_job_sends_get_job_and_answers_the_mantis_view(self):
        self.gateway.answers[GetJob] = Done(DESCRIBED_JOB)
        status, body = self.call("GET", "/api/v1/jobs/synth-1?fields=jobId,state&fromObj=jobMetadata")
        assert (status, body) == (200, {"jobMetadata": {"jobId": "synth-1", "state": "Launched"}})
        assert self.sent() == (GetJob("synth-1"), "manager")

    def test_delete_job_sends_kill_job_with_reason_and_user_and_answers_202(self):
        response = self.fetch("/api/v1/jobs/synth-1?user=ann&reason=done&killReason=Normal", method="DELETE")
        assert response.code == 202
        assert self.sent() == (KillJob("synth-1", "Normal", "done", "ann"), "manager")

    def test_get_archived_workers_answers_the_list_envelope(self):
        self.gateway.answers[GetArchivedWorkers] = Done(DESCRIBED_JOB["workers"])
        status, body = self.call("GET", "/api/v1/jobs/synth-1/archivedWorkers?pageSize=1")
        assert status == 200 and body["total"] == 2 and len(body["list"]) == 1
        assert body["prev"] is None and body["next"] == "/api/v1/jobs/synth-1/archivedWorkers?pageSize=1&offset=1"
        assert self.sent() == (GetArchivedWorkers("synth-1"), "manager")

    def test_scale_stage_action_sends_scale_stage_and_answers_204(self):
        body = {"JobId": "synth-1", "StageNumber": "1", "NumWorkers": 3, "User": "ann", "Reason": "load"}
        assert self.call_204("POST", "/api/v1/jobs/synth-1/actions/scaleStage", body)
        assert self.sent() == (ScaleStage("synth-1", 1, 3, "ann", "load"), "manager")

    def test_resubmit_worker_action_sends_resubmit_worker_and_answers_204(self):
        body = {"workerNumber": 2, "user": "ann", "reason": "stuck"}
        assert self.call_204("POST", "/api/v1/jobs/synth-1/actions/resubmitWorker", body)
        assert self.sent() == (ResubmitWorker("synth-1", 2, "ann", "stuck"), "manager")

    def test_get_agents_asks_the_scheduler_for_list_agents_and_answers_the_envelope(self):
        self.gateway.answers[ListAgents] = Done([{"agentId": "a1"}, {"agentId": "a2"}])
        status, body = self.call("GET", "/api/v1/agents?pageSize=1")
        assert status == 200 and body["total"] == 2 and body["list"] == [{"agentId": "a1"}]
        assert self.sent() == (ListAgents(), "scheduler")

    def test_agent_action_asks_the_scheduler(self):
        assert self.call("POST", "/api/v1/agents/a1/actions/disable", {"user": "ann"})[0] == 200
        assert self.sent() == (AgentAction("a1", "disable", "ann"), "scheduler")

    def test_get_pending_workers_asks_the_scheduler_for_get_pending(self):
        self.gateway.answers[GetPending] = Done([{"workerId": "x-1/w1", "reasons": ["no agent"]}])
        assert self.call("GET", "/api/v1/pendingWorkers")[1]["list"][0]["reasons"] == ["no agent"]
        assert self.sent() == (GetPending(), "scheduler")

    def test_admin_actors_asks_the_manager_and_the_scheduler(self):
        self.gateway.answers[DescribeActors] = Done([{"actor": "X"}])
        status, body = self.call("GET", "/api/v1/admin/actors")
        assert status == 200 and body["actors"] == [{"actor": "X"}, {"actor": "X"}]
        assert [(a.message, a.to) for a in self.gateway.asked] == [(DescribeActors(), "manager"),
                                                                   (DescribeActors(), "scheduler")]

    def test_master_info_and_configs_answer_in_mantis_shapes_without_asking(self):
        status, info = self.call("GET", "/api/v1/masterInfo")
        assert status == 200 and info["hostname"] == "127.0.0.1" and info["apiPort"] == 8100
        assert {"hostIP", "apiPortV2", "createTime", "schedInfoPort", "apiStatusUri", "consolePort"} <= set(info)
        assert isinstance(info["createTime"], int) and info["leader"] is True
        status, configs = self.call("GET", "/api/v1/masterConfigs")
        assert status == 200
        assert [c["name"] for c in configs] == ["JobConstraints", "ScalingReason", "MigrationStrategyEnum",
                                                "WorkerResourceLimits"]
        assert json.loads(configs[2]["value"]) == ["ONE_WORKER", "PERCENTAGE"]
        assert self.call("GET", "/api/v1/admin/config") == (200, self.gateway.config)
        assert self.gateway.asked == []


# -- refusals: the actors' Rejected, the master away ----------------------------------

class RefusalsAreJsonWithTheirStatus(HandlerTest):

    def test_rejected_404_is_a_404_json_error(self):
        self.gateway.answers[GetJob] = Rejected(404, "job synth-7 does not exist")
        status, body = self.call("GET", "/api/v1/jobs/synth-7")
        assert status == 404
        self.assert_error(404, body, "does not exist")

    def test_rejected_409_is_a_409_json_error(self):
        self.gateway.answers[CreateCluster] = Rejected(409, "cluster synth already exists")
        status, body = self.call("POST", "/api/v1/jobClusters", CLUSTER)
        assert status == 409
        self.assert_error(409, body, "already exists")

    def test_rejected_400_from_an_actor_is_a_400_json_error(self):
        self.gateway.answers[ScaleStage] = Rejected(400, "stage 1 is not scalable")
        status, body = self.call("POST", "/api/v1/jobs/synth-1/actions/scaleStage",
                                 {"StageNumber": 1, "NumWorkers": 3})
        assert status == 400
        self.assert_error(400, body, "not scalable")

    def test_master_not_answering_is_a_503_json_error(self):
        self.gateway.unavailable = True
        status, body = self.call("GET", "/api/v1/jobs/synth-1")
        assert status == 503
        self.assert_error(503, body, "did not answer")

    def test_master_not_answering_a_submit_is_a_503_json_error(self):
        self.gateway.unavailable = True
        status, body = self.call("POST", "/api/v1/jobClusters/synth/jobs", {})
        assert status == 503
        self.assert_error(503, body, "did not answer")

    def test_unknown_path_is_a_404_json_error(self):
        status, body = self.call("GET", "/api/v1/nowhere")
        assert status == 404
        self.assert_error(404, body, "no such resource")

    def test_unknown_cluster_action_is_a_404_json_error_and_sends_nothing(self):
        status, body = self.call("POST", "/api/v1/jobClusters/synth/actions/explode", {})
        assert status == 404
        self.assert_error(404, body, "unknown cluster action")
        assert self.gateway.asked == []

    def test_unexpected_exception_is_a_500_json_error_without_a_traceback(self):
        # The one 500 there is: a bug behind the gateway; even then the client gets JSON only.
        self.gateway.answers[GetJob] = RuntimeError("boom")
        status, body = self.call("GET", "/api/v1/jobs/synth-1")
        assert status == 500
        self.assert_error(500, body, "internal error")
        assert "boom" not in body["error"]


# -- bad bodies and paths are 400 JSON, and nothing is sent ----------------------------

class BadInputIs400Json(HandlerTest):

    def refused(self, method: str, path: str, body=None, raw: bytes | None = None, fragment: str = ""):
        status, reply = self.call(method, path, body, raw)
        assert status == 400, reply
        self.assert_error(400, reply, fragment)
        assert self.gateway.asked == [], "a refused request must not reach the actors"

    def test_malformed_json_is_400(self):
        self.refused("POST", "/api/v1/jobClusters", raw=b"{not json", fragment="not valid JSON")

    def test_empty_body_is_400(self):
        self.refused("POST", "/api/v1/jobClusters", raw=b"", fragment="empty")

    def test_body_that_is_not_an_object_is_400(self):
        self.refused("POST", "/api/v1/jobs/synth-1/actions/scaleStage", [1, 2], fragment="JSON object")

    def test_unknown_field_in_a_cluster_is_400(self):
        self.refused("POST", "/api/v1/jobClusters", {**CLUSTER, "extra": 1}, fragment="unknown field")

    def test_missing_required_field_in_a_cluster_is_400(self):
        self.refused("POST", "/api/v1/jobClusters", {"name": "x"}, fragment="url is required")

    def test_wrong_type_in_a_submission_is_400(self):
        self.refused("POST", "/api/v1/jobClusters/synth/jobs", {"parameters": "rate=5"})

    def test_unknown_field_in_scale_stage_is_400(self):
        self.refused("POST", "/api/v1/jobs/synth-1/actions/scaleStage",
                     {"StageNumber": 1, "NumWorkers": 1, "Workers": 2}, fragment="unknown field")

    def test_wrong_type_in_scale_stage_is_400(self):
        self.refused("POST", "/api/v1/jobs/synth-1/actions/scaleStage",
                     {"StageNumber": "one", "NumWorkers": 1}, fragment="StageNumber")

    def test_missing_field_in_scale_stage_is_400(self):
        self.refused("POST", "/api/v1/jobs/synth-1/actions/scaleStage", {"StageNumber": 1},
                     fragment="missing field")

    def test_scale_stage_body_naming_another_job_is_400(self):
        self.refused("POST", "/api/v1/jobs/synth-1/actions/scaleStage",
                     {"JobId": "synth-2", "StageNumber": 1, "NumWorkers": 1}, fragment="synth-2")

    def test_wrong_type_in_resubmit_worker_is_400(self):
        self.refused("POST", "/api/v1/jobs/synth-1/actions/resubmitWorker", {"workerNumber": "two"},
                     fragment="workerNumber")

    def test_unknown_field_in_update_artifact_is_400(self):
        self.refused("POST", "/api/v1/jobClusters/synth/actions/updateArtifact",
                     {"url": "mantis.examples.synthetic:job", "version": "2", "color": "red", "user": "a"},
                     fragment="unknown field")

    def test_action_body_naming_another_cluster_is_400(self):
        self.refused("POST", "/api/v1/jobClusters/synth/actions/enableCluster", {"name": "other", "user": "a"},
                     fragment="other")

    def test_action_without_a_user_is_400(self):
        self.refused("POST", "/api/v1/jobClusters/synth/actions/disableCluster", {"name": "synth"},
                     fragment="user")

    def test_update_sla_with_our_old_field_names_is_400(self):
        self.refused("POST", "/api/v1/jobClusters/synth/actions/updateSla", {"slaMin": 1, "user": "a"},
                     fragment="unknown field")

    def test_kill_without_user_or_reason_is_400(self):
        self.refused("DELETE", "/api/v1/jobs/synth-1?reason=r", fragment="'user'")
        self.refused("DELETE", "/api/v1/jobs/synth-1?user=u", fragment="'reason'")

    def test_cluster_delete_without_user_is_400(self):
        self.refused("DELETE", "/api/v1/jobClusters/synth", fragment="'user'")

    def test_submit_naming_another_cluster_is_400(self):
        self.refused("POST", "/api/v1/jobClusters/synth/jobs", {"name": "other"}, fragment="does not match")

    def test_post_jobs_without_a_name_is_400(self):
        self.refused("POST", "/api/v1/jobs", {"user": "a"}, fragment="must include name")

    def test_bad_paging_sorting_and_filters_are_400(self):
        self.refused("GET", "/api/v1/jobs?pageSize=0", fragment="pageSize")
        self.refused("GET", "/api/v1/jobs?jobState=Running", fragment="jobState")
        self.refused("GET", "/api/v1/jobClusters?matching=(", fragment="matching")
        self.refused("GET", "/api/v1/jobs?offset=x", fragment="offset")

    def test_scale_beyond_the_most_workers_a_stage_may_have_is_400(self):
        self.refused("POST", "/api/v1/jobs/synth-1/actions/scaleStage",
                     {"StageNumber": 1, "NumWorkers": 10_001}, fragment="num workers")

    def test_put_of_a_definition_naming_another_cluster_is_400(self):
        # Caught by ReplaceCluster.validate(), which the gateway runs before sending.
        self.refused("PUT", "/api/v1/jobClusters/other", CLUSTER, fragment="does not match")

    def test_job_id_that_does_not_parse_is_400(self):
        self.refused("GET", "/api/v1/jobs/not-a-job", fragment="not a job id")

    def test_unknown_kill_reason_is_400(self):
        self.refused("DELETE", "/api/v1/jobs/synth-1?user=a&reason=r&killReason=Whim", fragment="killReason")

    def test_unknown_field_in_an_agent_action_is_400(self):
        self.refused("POST", "/api/v1/agents/a1/actions/disable", {"who": "ann"}, fragment="unknown field")
