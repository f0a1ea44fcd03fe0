"""The API's OpenAPI 3 description, served at ``GET /api/v1/openapi.json``.

One document, written as data: the schemas of what the handlers take and answer (Mantis'
v1 shapes, ``webapi.views``) and every route of ``webapi.app`` with its methods, query
parameters, bodies and answers.  A test checks it with ``openapi-spec-validator``, that
it names every route the application serves, and (with schemathesis) that the live
server answers as it says.

Request schemas describe what a client should send; the server also takes the rest of
Mantis' fields and numbers sent as strings (see ``mantis.model.definitions``).  Every
operation's ``default`` answer is the JSON error, so any 4xx or 503 is described.
"""
from __future__ import annotations

import copy
from typing import Any

from webapi import web_ui

VERSION = "1.0.0"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: tuple[str, ...] = (), additional: bool = True, **props: Any) -> dict:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    if not additional:
        schema["additionalProperties"] = False
    return schema


def _array(items: dict) -> dict:
    return {"type": "array", "items": items}


def _nullable(schema: dict) -> dict:
    return {**schema, "nullable": True}


STRING, INT, NUMBER, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "number"}, {"type": "boolean"}
MILLIS = {"type": "integer", "description": "epoch milliseconds; 0 when not reached"}
SCALAR = {"oneOf": [STRING, NUMBER, BOOL]}
ANY_OBJECT = {"type": "object", "additionalProperties": True}
NAME = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_.-]{0,99}$", "maxLength": 100}
ENTRY_POINT = {"type": "string", "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
               "description": "a Python entry point 'package.module:attribute'"}


def _envelope(item: str) -> dict:
    return _obj(("list", "prev", "next", "total"), list=_array(_ref(item)), prev=_nullable(STRING),
                next=_nullable(STRING), total=INT)


# The answers a ``fields`` projection can cut down list their fields without requiring any.
SCHEMAS: dict[str, Any] = {
    "Error": _obj(("error", "status"), error=STRING, status=INT, time=INT, host=STRING, requestId=INT),
    "Label": _obj(("name", "value"), False, name={"type": "string", "minLength": 1}, value=STRING),
    "Parameter": _obj(("name", "value"), False, name={"type": "string", "minLength": 1}, value=SCALAR),
    "MachineDefinition": _obj((), False, cpuCores={"type": "number", "exclusiveMinimum": True, "minimum": 0},
                              memoryMB={"type": "number", "exclusiveMinimum": True, "minimum": 0},
                              diskMB={"type": "number", "minimum": 0}, networkMbps={"type": "number", "minimum": 0},
                              numPorts={"type": "integer", "minimum": 0, "maximum": 100}),
    "StageSchedulingInfo": _obj(
        (), False, numberOfInstances={"type": "integer", "minimum": 0, "maximum": 10000},
        machineDefinition=_ref("MachineDefinition"),
        hardConstraints=_array({"oneOf": [STRING, ANY_OBJECT, _array(STRING)]}),
        softConstraints=_array({"oneOf": [STRING, ANY_OBJECT, _array(STRING)]}),
        scalable=BOOL, scalingPolicy=_nullable(ANY_OBJECT)),
    "SchedulingInfo": _obj(("stages",), False, stages={
        "type": "object", "minProperties": 1, "additionalProperties": _ref("StageSchedulingInfo"),
        "description": "stages by number as text keys, 1..N without gaps (Mantis' Job Master stage 0 is "
                       "accepted and left to the master)"}),
    "JobSla": _obj((), False, runtimeLimitSecs={"type": "integer", "minimum": 0},
                   minRuntimeSecs={"type": "integer", "minimum": 0}, slaType={"enum": ["Lossy"]},
                   durationType={"enum": ["Perpetual", "Transient"]}, userProvidedType=STRING),
    "MigrationConfig": _obj((), False, strategy={"enum": ["ONE_WORKER", "PERCENTAGE"]}, configString=STRING),
    "Owner": _obj((), False, name=STRING, teamName=STRING, description=STRING, contactEmail=STRING, repo=STRING),
    "JobPrincipal": _obj((), False, email=STRING, type=STRING),
    "ClusterDefinition": _obj(
        ("name", "url"), False, name=NAME, url=ENTRY_POINT, version={"type": "string", "minLength": 1,
                                                                    "pattern": r"\S"},
        owner=_ref("Owner"), user={"type": "string", "pattern": r"\S"},
        parameters=_array(_ref("Parameter")), schedulingInfo=_ref("SchedulingInfo"), jobSla=_ref("JobSla"),
        labels=_array(_ref("Label")), slaMin={"type": "integer", "minimum": 0, "maximum": 1000},
        slaMax={"type": "integer", "minimum": 0, "maximum": 1000}, cronSpec=_nullable(STRING),
        cronPolicy={"enum": ["KEEP_EXISTING", "KEEP_NEW"]},
        migrationConfig=_ref("MigrationConfig"), jobPrincipal=_ref("JobPrincipal")),
    "NamedJobDefinition": _obj(("jobDefinition",), False, jobDefinition=_ref("ClusterDefinition"),
                               owner=_ref("Owner"), jobPrincipal=_ref("JobPrincipal")),
    "JobDefinition": _obj(
        (), False, name=NAME, user={"type": "string", "pattern": r"\S"}, version={"type": "string", "pattern": r"\S"},
        parameters=_array(_ref("Parameter")), jobSla=_ref("JobSla"),
        subscriptionTimeoutSecs={"type": "integer", "minimum": 0}, labels=_array(_ref("Label"))),
    "JarView": _obj(("url", "version", "uploadedAt"), url=STRING, version=STRING, uploadedAt=MILLIS,
                    schedulingInfo=_nullable(ANY_OBJECT)),
    "Cluster": _obj(
        (), name=STRING, jars=_array(_ref("JarView")),
        sla=_obj(("min", "max"), min=INT, max=INT, cronSpec=_nullable(STRING), cronPolicy=_nullable(STRING)),
        parameters=_array(ANY_OBJECT), owner=_nullable(ANY_OBJECT), lastJobCount=INT, disabled=BOOL,
        isReadyForJobMaster=BOOL, migrationConfig=_nullable(ANY_OBJECT), labels=_array(ANY_OBJECT),
        cronActive=BOOL, latestVersion=_nullable(STRING), jobPrincipal=_nullable(ANY_OBJECT),
        url=_nullable(STRING), user=_nullable(STRING), activeJobs=_array(STRING), createdAt=MILLIS,
        updatedAt=MILLIS),
    "Worker": _obj(
        (), workerIndex=INT, workerNumber=INT, jobId=STRING, stageNum=INT, numberOfPorts=INT, metricsPort=INT,
        consolePort=INT, debugPort=INT, customPort=INT, ports=_array(INT),
        state={"enum": ["Accepted", "Launched", "StartInitiated", "Started", "Completed", "Failed"]},
        slave=_nullable(STRING), slaveID=_nullable(STRING), acceptedAt=MILLIS, launchedAt=MILLIS, startingAt=MILLIS,
        startedAt=MILLIS, completedAt=MILLIS, reason=_nullable(STRING), resubmitOf=INT, totalResubmitCount=INT,
        host=_nullable(STRING), agentId=_nullable(STRING), lastHeartbeatAt=MILLIS, metrics=ANY_OBJECT,
        url=_nullable(STRING), replaces=_nullable(INT)),
    "Stage": _obj((), jobId=STRING, stageNum=INT, numStages=INT,
                  machineDefinition=_nullable(ANY_OBJECT), numWorkers=INT, hardConstraints=_array({}),
                  softConstraints=_array({}), scalingPolicy=_nullable(ANY_OBJECT), scalable=BOOL),
    "JobMetadata": _obj(
        (), jobId=STRING, name=STRING, user=_nullable(STRING), submittedAt=MILLIS, startedAt=MILLIS,
        jarUrl=_nullable(STRING), numStages=INT, sla=_nullable(ANY_OBJECT),
        state={"enum": ["Accepted", "Launched", "Terminating_normal", "Terminating_abnormal", "Completed", "Failed"]},
        subscriptionTimeoutSecs=INT, parameters=_array(ANY_OBJECT), nextWorkerNumberToUse=INT,
        labels=_array(ANY_OBJECT), terminatedAt=INT, killReason=_nullable(STRING), killMessage=_nullable(STRING),
        migration=_nullable(ANY_OBJECT), events=_array(ANY_OBJECT)),
    "Job": _obj((), jobMetadata=_ref("JobMetadata"),
                stageMetadataList=_array(_ref("Stage")), workerMetadataList=_array(_ref("Worker")), version=STRING),
    "CompactJob": _obj((), jobId=STRING, jarUrl=STRING, submittedAt=MILLIS, terminatedAt=INT, user=_nullable(STRING),
                       state=STRING, type=STRING, numStages=INT, numWorkers=INT, totCPUs=NUMBER, totMemory=NUMBER,
                       statesSummary={"type": "object", "additionalProperties": INT}, labels=_array(ANY_OBJECT)),
    "ClusterList": _envelope("Cluster"),
    "JobList": {"anyOf": [_envelope("Job"), _envelope("CompactJob")]},
    "WorkerList": _envelope("Worker"),
    "AgentList": _envelope("Agent"),
    "PendingWorkerList": _envelope("PendingWorker"),
    "MasterInfo": _obj(("hostname", "hostIP", "apiPort", "createTime"), hostname=STRING, hostIP=STRING,
                       apiPort=INT, schedInfoPort=INT, apiPortV2=INT, apiStatusUri=STRING, consolePort=INT,
                       createTime=INT),
    "Configlet": _obj(("name", "value"), name=STRING, value=STRING),
    "Agent": _obj((), agentId=STRING, hostname=STRING, disabled=BOOL,
                  attributes=ANY_OBJECT, total=ANY_OBJECT, used=ANY_OBJECT, workers=_array(STRING)),
    "PendingWorker": _obj((), workerId=STRING, jobId=STRING, stage=INT,
                          reasons=_array(STRING)),
    "HealthCheck": _obj(("isHealthy",), isHealthy=BOOL, message=STRING, failureReason=_nullable(ANY_OBJECT)),
    "UserBody": _obj(("user",), False, name=NAME, user={"type": "string", "minLength": 1}),
    "UpdateArtifact": _obj(("url", "version", "user"), False, name=NAME, url=ENTRY_POINT,
                           version={"type": "string", "pattern": r"\S"}, skipsubmit=BOOL,
                           user={"type": "string", "minLength": 1}),
    "UpdateSchedulingInfo": _obj(("schedulingInfo", "user"), False, name=NAME, schedulingInfo=_ref("SchedulingInfo"),
                                 version={"type": "string", "pattern": r"\S"}, user={"type": "string", "minLength": 1}),
    "UpdateSla": _obj(("min", "max", "user"), False, name=NAME, user={"type": "string", "minLength": 1},
                      min={"type": "integer", "minimum": 0, "maximum": 1000},
                      max={"type": "integer", "minimum": 0, "maximum": 1000}, cronspec=_nullable(STRING),
                      cronpolicy={"enum": ["KEEP_EXISTING", "KEEP_NEW"]}, forceenable=BOOL),
    "UpdateMigrationStrategy": _obj(("migrationConfig", "user"), False, name=NAME,
                                    migrationConfig=_ref("MigrationConfig"), user={"type": "string", "minLength": 1}),
    "UpdateLabels": _obj(("labels", "user"), False, name=NAME, labels=_array(_ref("Label")),
                         user={"type": "string", "minLength": 1}),
    "UpdateJobSla": _obj(("jobSla", "user"), False, name=NAME, jobSla=_ref("JobSla"),
                         user={"type": "string", "minLength": 1}),
    "ScaleStage": _obj(("StageNumber", "NumWorkers"), False, JobId=STRING,
                       StageNumber={"type": "integer", "minimum": 1},
                       NumWorkers={"type": "integer", "minimum": 0, "maximum": 10000}, User=STRING, Reason=STRING),
    "ResubmitWorker": _obj(("workerNumber",), False, JobId=STRING, workerNumber={"type": "integer", "minimum": 1},
                           user=STRING, reason=STRING),
    "QuickSubmit": _obj(("name",), False, name=NAME, user=STRING, jobSla=_ref("JobSla")),
    "AgentActionBody": _obj((), False, user=STRING, reason=STRING),
    "JobEvent": _obj((), at=MILLIS, type=STRING, message=STRING),
    "MesosWorkerReport": _obj(("workerKey",), False, workerKey=STRING, metrics=ANY_OBJECT),
}


# -- operations ------------------------------------------------------------------------

def _json(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


ERROR = {"description": "a refusal: 4xx with the reason, 503 when the master does not answer",
         **_json(_ref("Error"))}
NO_CONTENT = {"description": "done; no body"}
SSE = {"description": "a stream of server-sent events, one JSON object per data line",
       "content": {"text/event-stream": {"schema": STRING}}}


def _param(name: str, where: str = "query", schema: dict | None = None, description: str = "") -> dict:
    p = {"name": name, "in": where, "required": where == "path", "schema": schema or STRING}
    if description:
        p["description"] = description
    return p


LIST_PARAMS = [_param("pageSize", schema={"type": "integer", "minimum": 1}),
               _param("offset", schema={"type": "integer", "minimum": 0}),
               _param("sortBy"), _param("ascending", schema=BOOL),
               _param("fields", description="comma-separated fields to keep"),
               _param("fromObj", schema={"enum": ["jobMetadata", "stageMetadataList", "workerMetadataList"]})]
JOB_LIST_PARAMS = [*LIST_PARAMS, _param("compact", schema=BOOL), _param("matching", description="regex on cluster"),
                   _param("jobState", schema={"enum": ["Active", "Terminal"]}), _param("activeOnly", schema=BOOL),
                   _param("limit", schema={"type": "integer", "minimum": 0}),
                   _param("stageNumber", schema=INT), _param("workerIndex", schema=INT),
                   _param("workerNumber", schema=INT), _param("workerState", schema={"enum": ["Active", "Terminal"]})]
PROJECTION = [_param("fields"), LIST_PARAMS[-1]]
CLUSTER = _param("clusterName", "path", NAME)
JOB = _param("jobId", "path", {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_.-]{0,99}-[1-9][0-9]*$"})
AGENT = _param("agentId", "path")


def _op(summary: str, ok: dict, *, params: list | None = None, body: dict | None = None,
        status: str = "200", tag: str = "") -> dict:
    op: dict[str, Any] = {"summary": summary, "responses": {status: ok, "default": ERROR}}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, **_json(body)}
    if tag:
        op["tags"] = [tag]
    return op


def _ok(schema: dict, description: str = "ok") -> dict:
    return {"description": description, **_json(schema)}


def _cluster_action(name: str, body: str) -> tuple[str, dict]:
    return (f"/api/v1/jobClusters/{{clusterName}}/actions/{name}",
            {"post": _op(f"Cluster action {name}", NO_CONTENT, params=[CLUSTER], body=_ref(body), status="204",
                         tag="clusters")})


PATHS: dict[str, dict] = {
    "/api/v1/jobClusters": {
        "get": _op("List job clusters", _ok(_ref("ClusterList")), params=[*LIST_PARAMS, _param("matching")],
                   tag="clusters"),
        "post": _op("Create a job cluster (ours or Mantis' NamedJobDefinition)", _ok(_ref("Cluster"), "created"),
                    body={"oneOf": [_ref("ClusterDefinition"), _ref("NamedJobDefinition")]}, status="201",
                    tag="clusters"),
    },
    "/api/v1/jobClusters/{clusterName}": {
        "get": _op("A job cluster", _ok(_ref("Cluster")), params=[CLUSTER, *PROJECTION], tag="clusters"),
        "put": _op("Replace a job cluster's definition", _ok(_ref("Cluster")), params=[CLUSTER, _param("user")],
                   body={"oneOf": [_ref("ClusterDefinition"), _ref("NamedJobDefinition")]}, tag="clusters"),
        "delete": _op("Delete a job cluster", NO_CONTENT, params=[CLUSTER, {**_param("user"), "required": True}],
                      status="204", tag="clusters"),
    },
    **dict([_cluster_action("updateArtifact", "UpdateArtifact"),
            _cluster_action("updateSchedulingInfo", "UpdateSchedulingInfo"),
            _cluster_action("updateSla", "UpdateSla"),
            _cluster_action("updateMigrationStrategy", "UpdateMigrationStrategy"),
            _cluster_action("updateLabel", "UpdateLabels"),
            _cluster_action("updateJobSla", "UpdateJobSla"),
            _cluster_action("enableCluster", "UserBody"),
            _cluster_action("disableCluster", "UserBody")]),
    "/api/v1/jobClusters/{clusterName}/healthcheck": {
        "get": _op("Whether the cluster's active jobs have all their workers Started", _ok(_ref("HealthCheck")),
                   params=[CLUSTER, _param("job-ids")], tag="clusters")},
    "/api/v1/jobClusters/{clusterName}/jobs": {
        "get": _op("The cluster's jobs", _ok(_ref("JobList")), params=[CLUSTER, *JOB_LIST_PARAMS], tag="jobs"),
        "post": _op("Submit a job to the cluster", _ok(_ref("Job"), "submitted"), params=[CLUSTER],
                    body=_ref("JobDefinition"), status="201", tag="jobs"),
    },
    "/api/v1/jobClusters/{clusterName}/jobs/{jobId}": {
        "get": _op("One job of the cluster", _ok(_ref("Job")), params=[CLUSTER, JOB, *PROJECTION], tag="jobs")},
    "/api/v1/jobClusters/{clusterName}/latestJobDiscoveryInfo": {
        "get": _op("Where the workers of the cluster's latest active job are (JobSchedulingInfo)",
                   _ok(ANY_OBJECT), params=[CLUSTER], tag="streams")},
    "/api/v1/jobs": {
        "get": _op("Every job", _ok(_ref("JobList")), params=JOB_LIST_PARAMS, tag="jobs"),
        "post": _op("Submit a job to the cluster the body names", _ok(_ref("Job"), "submitted"),
                    body={**_ref("JobDefinition")}, status="201", tag="jobs"),
    },
    "/api/v1/jobs/actions/quickSubmit": {
        "post": _op("Submit a job of the cluster's own definition", _ok(_ref("Job"), "submitted"),
                    body=_ref("QuickSubmit"), status="201", tag="jobs")},
    "/api/v1/jobs/{jobId}": {
        "get": _op("A job", _ok(_ref("Job")), params=[JOB, *PROJECTION], tag="jobs"),
        "delete": _op("Kill a job", {"description": "accepted; no body"},
                      params=[JOB, {**_param("user"), "required": True}, {**_param("reason"), "required": True},
                              _param("killReason", schema={"enum": ["Killed", "Normal", "Error", "Lost", "SLA",
                                                                    "RuntimeLimit"]})],
                      status="202", tag="jobs"),
    },
    "/api/v1/jobs/{jobId}/archivedWorkers": {
        "get": _op("The job's replaced and ended workers", _ok(_ref("WorkerList")),
                   params=[JOB, *LIST_PARAMS, _param("limit", schema={"type": "integer", "minimum": 0})],
                   tag="jobs")},
    "/api/v1/jobs/{jobId}/events": {
        "get": _op("The job's events: state changes, kills, scaling, replacements, migration steps",
                   _ok(_envelope("JobEvent")), params=[JOB, *LIST_PARAMS, _param("type"),
                                                       _param("limit", schema={"type": "integer", "minimum": 1})],
                   tag="jobs")},
    "/api/v1/jobs/{jobId}/actions/scaleStage": {
        "post": _op("Scale a stage", NO_CONTENT, params=[JOB], body=_ref("ScaleStage"), status="204", tag="jobs")},
    "/api/v1/jobs/{jobId}/actions/resubmitWorker": {
        "post": _op("Replace a worker", NO_CONTENT, params=[JOB], body=_ref("ResubmitWorker"), status="204",
                    tag="jobs")},
    "/api/v1/jobs/{jobId}/output": {
        "get": _op("The job's output (SSE)", SSE, params=[JOB, _param("filter"), _param("sampleMSec", schema=INT)],
                   tag="streams")},
    "/api/v1/jobs/{jobId}/output/ws": {
        "get": _op("The job's output (WebSocket)", {"description": "a WebSocket upgrade"}, params=[JOB],
                   status="101", tag="streams")},
    "/api/v1/jobconnectbyid/{jobId}": {
        "get": _op("The job's output (SSE; Mantis' path)", SSE, params=[JOB, _param("filter")], tag="streams")},
    "/api/v1/ws/jobconnectbyid/{jobId}": {
        "get": _op("The job's output (WebSocket; Mantis' path)", {"description": "a WebSocket upgrade"},
                   params=[JOB], status="101", tag="streams")},
    "/api/v1/jobconnectbyname/{clusterName}": {
        "get": _op("The output of the cluster's latest job (SSE)", SSE, params=[CLUSTER, _param("filter")],
                   tag="streams")},
    "/api/v1/ws/jobconnectbyname/{clusterName}": {
        "get": _op("The output of the cluster's latest job (WebSocket)", {"description": "a WebSocket upgrade"},
                   params=[CLUSTER], status="101", tag="streams")},
    "/api/v1/jobDiscoveryStream/{jobId}": {
        "get": _op("JobSchedulingInfo on every change (SSE)", SSE, params=[JOB, _param("sendHB", schema=BOOL)],
                   tag="streams")},
    "/api/v1/jobStatusStream/{jobId}": {
        "get": _op("A Status per job or worker change (SSE, or WebSocket on an upgrade)", SSE,
                   params=[JOB, _param("sendHB", schema=BOOL)], tag="streams")},
    "/api/v1/lastSubmittedJobIdStream/{clusterName}": {
        "get": _op("The cluster's latest active job id on every change (SSE)", SSE,
                   params=[CLUSTER, _param("sendHB", schema=BOOL)], tag="streams")},
    "/api/v1/masterInfo": {"get": _op("This master (Mantis' MasterDescription)", _ok(_ref("MasterInfo")),
                                      tag="master")},
    "/api/v1/masterConfigs": {"get": _op("Mantis' configlets", _ok(_array(_ref("Configlet"))), tag="master")},
    "/api/v1/admin/config": {"get": _op("This master's own configuration", _ok(ANY_OBJECT), tag="master")},
    "/api/v1/health": {"get": _op("200 while the master's actors answer", _ok(ANY_OBJECT), tag="master")},
    "/healthcheck": {"get": _op("200 while the master's actors answer", _ok(ANY_OBJECT), tag="master")},
    "/api/v1/agents": {"get": _op("Agents with their resources and workers", _ok(_ref("AgentList")),
                                  params=LIST_PARAMS, tag="agents")},
    "/api/v1/agents/{agentId}/actions/{action}": {
        "post": _op("Disable, enable or drain an agent", _ok(ANY_OBJECT),
                    params=[AGENT, _param("action", "path", {"enum": ["disable", "enable", "drain"]})],
                    body=_ref("AgentActionBody"), tag="agents")},
    "/api/v1/pendingWorkers": {"get": _op("Workers waiting for placement, with the reasons",
                                          _ok(_ref("PendingWorkerList")), params=LIST_PARAMS, tag="agents")},
    "/api/v1/admin/actors": {"get": _op("Every actor and its state", _ok(ANY_OBJECT), tag="master")},
    "/api/v1/openapi.json": {"get": _op("This document", _ok(ANY_OBJECT), tag="master")},
    "/metrics": {"get": _op("Prometheus metrics, in the text format", {
        "description": "ok", "content": {"text/plain": {"schema": STRING}}}, tag="master")},
    "/api/v1/mesos/workerReports": {
        "post": _op("A Mesos task's worker reports its metrics; the answer names its upstream workers",
                    _ok(_obj((), endpoints=_array({}), upstreamFinished=BOOL)), body=_ref("MesosWorkerReport"),
                    tag="mesos")},
    **web_ui.openapi_paths(),
}


def document(server_url: str | None = None) -> dict:
    """The OpenAPI 3 document (a fresh copy), naming ``server_url`` as its server if given."""
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "mantis-py master API", "version": VERSION,
                 "description": "Netflix Mantis' v1 REST dialect, and our own paths for agents, "
                                "placement and administration."},
        "paths": copy.deepcopy(PATHS),
        "components": {"schemas": copy.deepcopy(SCHEMAS)},
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


__all__ = ["PATHS", "SCHEMAS", "document"]
