"""REST v1 handlers: Mantis' paths for job clusters, jobs, actions and the master.

Each handler parses and validates its input (``mantis.model.definitions`` does the strict
part), asks the actors through the Gateway, and writes JSON.  Every failure is a JSON
``{"error": ...}`` with a 4xx status (503 when the master does not answer); a handler
never lets a traceback reach the client.
"""
from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from typing import Any

import tornado.web

from actors.actor_system import address_to_text
from actors.messages import (
    AgentAction,
    CreateCluster,
    DeleteCluster,
    DescribeActors,
    DescribeJobs,
    DisableCluster,
    EnableCluster,
    GetArchivedWorkers,
    GetCluster,
    GetJob,
    GetPending,
    KillJob,
    ListAgents,
    ListClusters,
    ListJobs,
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
from mantis.model import codec
from mantis.model.codec import ValidationError
from mantis.model.definitions import (
    JobClusterDefinition,
    JobDefinition,
    JobSla,
    Label,
    SchedulingInfo,
    cluster_name,
)
from mantis.model.ids import parse_job_id
from webapi import access, openapi, views
from webapi.gateway import ApiError

log = logging.getLogger("mantis.api")

MAX_WORKERS_PER_STAGE = 10_000
# Mantis' defaults for one worker's resources (MasterConfiguration), shown by masterConfigs.
MAX_CPU_CORES, MAX_MEMORY_MB, MAX_NETWORK_MBPS = 8, 28_000, 1_024
# The names Mantis' masterConfigs lists (JobConstraints, StageScalingPolicy.ScalingReason).
JOB_CONSTRAINTS = ("UniqueHost", "ExclusiveHost", "ZoneBalance", "M4Cluster", "M3Cluster", "M5Cluster")
SCALING_REASONS = ("CPU", "Memory", "Network", "DataDrop", "KafkaLag", "UserDefined", "KafkaProcessed", "Clutch",
                   "ClutchExperimental", "ClutchRps", "RPS", "JVMMemory", "SourceJobDrop", "AutoscalerManagerEvent")


class ApiHandler(tornado.web.RequestHandler):
    """Base: JSON in, JSON out, errors as Mantis' ``{"error": message, "time", "host", "requestId"}``."""

    def initialize(self, gateway):
        self.gateway = gateway

    def prepare(self):
        access.check_request(self)  # 401/403 before any handler runs (webapi/access.py)

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Access-Control-Allow-Origin", "*")  # as Mantis' API answers

    def body_json(self) -> Any:
        if not self.request.body:
            raise ApiError(400, "request body is empty; a JSON object is required")
        try:
            return codec.loads(self.request.body)
        except ValidationError as exc:
            raise ApiError(400, str(exc)) from None

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(codec.dumps(body))

    def log_exception(self, typ, value, tb):
        if isinstance(value, (ApiError, ValidationError, tornado.web.HTTPError)):
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            status, message = exc.status, exc.message
        elif isinstance(exc, ValidationError):
            status, message = 400, str(exc)
        elif isinstance(exc, tornado.web.HTTPError):
            status, message = exc.status_code, exc.log_message or self._reason
        else:
            status, message = 500, "internal error (logged on the master)"
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        # Mantis' failure payload (time, host, error, requestId), and the status beside it.
        self.finish(codec.dumps({"error": message, "status": status, "time": int(time.time() * 1000),
                                 "host": socket.gethostname(), "requestId": -1}))

    def _handle_request_exception(self, e):
        if isinstance(e, (ApiError, ValidationError)):
            self.send_error(getattr(e, "status", 400), exc_info=(type(e), e, None))
            return
        super()._handle_request_exception(e)

    def user_and_reason(self, data: dict | None = None) -> tuple[str, str]:
        data = data or {}
        user = data.get("user") or data.get("User") or self.get_query_argument("user", "unknown")
        reason = data.get("reason") or data.get("Reason") or self.get_query_argument("reason", "")
        return str(user), str(reason)


def _check_name(name: str) -> str:
    try:
        return cluster_name(name, "clusterName")
    except ValidationError as exc:
        raise ApiError(400, str(exc)) from None


def _check_job_id(job_id: str) -> str:
    try:
        parse_job_id(job_id)
    except ValidationError as exc:
        raise ApiError(400, str(exc)) from None
    return job_id


def _fields(data: Any, allowed: set[str], required: frozenset[str] | set[str] = frozenset()) -> dict:
    if not isinstance(data, dict):
        raise ApiError(400, "body must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(400, f"body has unknown field(s): {', '.join(unknown)}")
    missing = sorted(required - set(data))
    if missing:
        raise ApiError(400, f"body is missing field(s): {', '.join(missing)}")
    return data


# -- query arguments ------------------------------------------------------------------

class QueryArgs:
    """Typed reads of a request's query arguments; a malformed one is a 400 naming it."""

    def __init__(self, handler: tornado.web.RequestHandler):
        self.handler = handler

    def text(self, name: str) -> str | None:
        value = self.handler.get_query_argument(name, None)
        return value if value not in (None, "") else None

    def integer(self, name: str, minimum: int | None = None) -> int | None:
        value = self.text(name)
        return None if value is None else codec.integer(minimum)(value, f"query parameter {name}")

    def values(self, name: str) -> list[str]:
        """Every value of a repeatable parameter, given repeated (``a=1&a=2``) or comma-separated."""
        return [item.strip() for given in self.handler.get_query_arguments(name)
                for item in given.split(",") if item.strip()]

    def integers(self, name: str) -> list[int]:
        return [codec.integer()(item, f"query parameter {name}") for item in self.values(name)]

    def boolean(self, name: str, default: bool | None = None) -> bool | None:
        value = self.text(name)
        return default if value is None else codec.boolean(value, f"query parameter {name}")

    def meta_states(self, name: str) -> list[str]:
        states = self.values(name)
        for state in states:
            if state not in views.META_STATES:
                raise ApiError(400, f"query parameter {name} must be one of {', '.join(views.META_STATES)}")
        return states

    def regex(self, name: str) -> re.Pattern | None:
        value = self.text(name)
        try:
            return None if value is None else re.compile(value)
        except re.error as exc:
            raise ApiError(400, f"query parameter {name} is not a regular expression: {exc}") from None


class ListingHandler(ApiHandler):
    """A handler answering lists in Mantis' envelope, with its paging, sorting and projection."""

    def prepare(self):
        super().prepare()
        # Paging arguments are checked before anything is asked of the actors.
        if self.request.method == "GET":
            q = QueryArgs(self)
            self.paging = (q.integer("pageSize", 1), q.integer("offset", 0), q.text("sortBy"),
                           bool(q.boolean("ascending", True)))

    def reply_list(self, items: list, status: int = 200) -> None:
        q = QueryArgs(self)
        project = views.projector(q.text("fields"), q.text("fromObj"))
        try:
            envelope = views.list_envelope(items, self.request.path, _query_text(self.request), *self.paging)
        except views.ViewError as exc:
            raise ApiError(400, str(exc)) from None
        envelope["list"] = [project(item) for item in envelope["list"]]
        self.reply(envelope, status)

    def reply_projected(self, obj: dict, status: int = 200) -> None:
        q = QueryArgs(self)
        self.reply(views.projector(q.text("fields"), q.text("fromObj"))(obj), status)

    async def job_list(self, cluster: str | None = None) -> None:
        """Mantis' job listing: ``matching``, ``jobState``, ``activeOnly``, ``limit``,
        ``compact`` and the stage and worker filters of each job's view."""
        q = QueryArgs(self)
        matching = q.regex("matching")
        job_states = q.meta_states("jobState")
        active_only = q.boolean("activeOnly", True)
        limit, compact = q.integer("limit", 0), q.boolean("compact", False)
        stages, indexes = q.integers("stageNumber"), q.integers("workerIndex")
        numbers, states = q.integers("workerNumber"), q.meta_states("workerState")
        include_ended = bool(job_states and "Terminal" in job_states) or not active_only
        summaries = await self.gateway.ask(ListJobs(cluster=cluster, include_ended=include_ended))
        wanted_states = set(job_states) or ({"Active"} if active_only else set(views.META_STATES))
        summaries = [s for s in summaries
                     if views.job_meta_state(s["state"]) in wanted_states
                     and (matching is None or matching.search(s["clusterName"]))]
        if limit:
            summaries = summaries[-limit:]  # the newest
        if compact:
            self.reply_list([views.compact_job(s) for s in summaries])
            return
        jobs = await self.describe_jobs([s["jobId"] for s in summaries])
        self.reply_list([views.job_view(job, stages, indexes, numbers, states) for job in jobs])

    async def describe_jobs(self, job_ids: list[str]) -> list[dict]:
        """The jobs named, as GetJob describes them, in that order: one ask per cluster
        (its shard reads them all in one turn); a job gone meanwhile is left out."""
        by_cluster: dict[str, list[str]] = {}
        for job_id in job_ids:
            by_cluster.setdefault(parse_job_id(job_id)[0], []).append(job_id)
        answers = await asyncio.gather(*(self.gateway.ask(DescribeJobs(cluster, ids))
                                         for cluster, ids in by_cluster.items()), return_exceptions=True)
        described: dict[str, dict] = {}
        for answer in answers:
            if isinstance(answer, ApiError) and answer.status == 404:
                continue  # the cluster was deleted meanwhile
            if isinstance(answer, BaseException):
                raise answer
            described.update(answer)
        return [described[j] for j in job_ids if j in described]


def _query_text(request) -> dict[str, list[str]]:
    return {k: [v.decode("utf-8", "replace") for v in values] for k, values in request.query_arguments.items()}


def _body_names(data: dict, name: str, field: str = "name") -> None:
    """Mantis' rule: a body that names the cluster must name the one in the path."""
    given = data.get(field)
    if given is not None and given != name:
        raise ApiError(400, f"Cluster name specified in request payload {given} does not match "
                            f"with what specified in resource path {name}")


def _required_user(data: dict, handler: ApiHandler) -> str:
    user = data.get("user") or handler.get_query_argument("user", None)
    if not user:
        raise ApiError(400, "Must provide user in request")
    return str(user)


# -- job clusters -------------------------------------------------------------------

class JobClustersHandler(ListingHandler):
    """``/api/v1/jobClusters``: list (``matching``) and create (201 with the cluster)."""

    async def get(self):
        matching = QueryArgs(self).regex("matching")
        clusters = await self.gateway.ask(ListClusters())
        self.reply_list([views.cluster_view(c) for c in clusters
                         if matching is None or matching.search(c["name"])])

    async def post(self):
        definition = JobClusterDefinition.from_json(self.body_json())
        self.reply(views.cluster_view(await self.gateway.ask(CreateCluster(definition))), 201)


class JobClusterHandler(ListingHandler):
    """``/api/v1/jobClusters/{name}``: read, replace (Mantis' or our body) and delete (needs ``user``)."""

    async def get(self, name):
        self.reply_projected(views.cluster_view(await self.gateway.ask(GetCluster(_check_name(name)))))

    async def put(self, name):
        name = _check_name(name)
        data = self.body_json()
        if not isinstance(data, dict):
            raise ApiError(400, "body must be a JSON object")
        _body_names(data.get("jobDefinition") if isinstance(data.get("jobDefinition"), dict) else data, name)
        definition = JobClusterDefinition.from_json(data)
        user = str(data.get("user") or self.get_query_argument("user", None) or definition.user)
        self.reply(views.cluster_view(await self.gateway.ask(ReplaceCluster(name, definition, user))))

    async def delete(self, name):
        name = _check_name(name)
        user = self.get_query_argument("user", None)
        if not user:
            raise ApiError(400, "Missing required query parameter 'user'")
        await self.gateway.ask(DeleteCluster(name, user))
        self.set_status(204)
        self.finish()


CLUSTER_ACTIONS = ("updateArtifact", "updateSchedulingInfo", "updateSla", "updateMigrationStrategy", "updateLabel",
                   "updateJobSla", "enableCluster", "disableCluster")


def _artifact_url(value: Any, path: str) -> str:
    return JobClusterDefinition.from_json({"name": "check", "url": value}, path).url


def cluster_action(name: str, action: str, data: dict, user: str):
    """The typed request for a cluster action, from Mantis' body for it."""
    if action == "updateArtifact":
        _fields(data, {"name", "url", "jobJarUrl", "version", "skipsubmit", "user"}, {"version"})
        url = data.get("url") or data.get("jobJarUrl")
        if not url:
            raise ApiError(400, "body is missing field(s): url")
        return UpdateArtifact(name, _artifact_url(url, "url"), codec.nonempty_string(data["version"], "version"),
                              user, skip_submit=bool(codec.boolean(data.get("skipsubmit", False), "skipsubmit")))
    if action == "updateSchedulingInfo":
        _fields(data, {"name", "schedulingInfo", "version", "user"}, {"schedulingInfo"})
        version = data.get("version")
        return UpdateSchedulingInfo(name, SchedulingInfo.from_json(data["schedulingInfo"]),
                                    codec.nonempty_string(version, "version") if version else None, user)
    if action == "updateSla":
        _fields(data, {"name", "user", "min", "max", "cronspec", "cronpolicy", "forceenable"}, {"min", "max"})
        cron_spec = data.get("cronspec") or None
        policy = data.get("cronpolicy") or "KEEP_EXISTING"
        codec.one_of("KEEP_EXISTING", "KEEP_NEW")(policy, "cronpolicy")
        codec.boolean(data.get("forceenable", False), "forceenable")
        return UpdateSla(name, codec.integer(0, 1000)(data["min"], "min"), codec.integer(0, 1000)(data["max"], "max"),
                         codec.string(cron_spec, "cronspec") if cron_spec else None, policy, user)
    if action == "updateMigrationStrategy":
        _fields(data, {"name", "migrationConfig", "user"}, {"migrationConfig"})
        config = JobClusterDefinition.from_json({"name": "check", "url": "check:check",
                                                 "migrationConfig": data["migrationConfig"]}).migration_config
        return UpdateMigrationStrategy(name, config, user)
    if action == "updateLabel":
        _fields(data, {"name", "labels", "user"}, {"labels"})
        return UpdateLabels(name, codec.list_of(Label.from_json)(data["labels"], "labels"), user)
    if action == "updateJobSla":  # ours: the job SLA jobs of the cluster get by default
        _fields(data, {"name", "jobSla", "user"}, {"jobSla"})
        return UpdateJobSla(name, JobSla.from_json(data["jobSla"]), user)
    if action in ("enableCluster", "disableCluster"):
        _fields(data, {"name", "user"})
        return (EnableCluster if action == "enableCluster" else DisableCluster)(name, user)
    raise ApiError(404, f"unknown cluster action {action!r}")


class JobClusterActionHandler(ApiHandler):
    """``/api/v1/jobClusters/{name}/actions/{action}``: Mantis' cluster actions, 204 when done."""

    async def post(self, name, action):
        name = _check_name(name)
        data = self.body_json() if self.request.body else {}
        if not isinstance(data, dict):
            raise ApiError(400, "body must be a JSON object")
        if action not in CLUSTER_ACTIONS:
            raise ApiError(404, f"unknown cluster action {action!r}")
        _body_names(data, name)
        user = _required_user(data, self)
        await self.gateway.ask(cluster_action(name, action, data, user))
        self.set_status(204)
        self.finish()


class JobClusterJobsHandler(ListingHandler):
    """``/api/v1/jobClusters/{name}/jobs``: the cluster's jobs, and submit (201 with the job)."""

    async def get(self, name):
        await self.job_list(cluster=_check_name(name))

    async def post(self, name):
        name = _check_name(name)
        data = self.body_json() if self.request.body else {}
        await submit_job(self, name, data)


class JobClusterJobHandler(ListingHandler):
    """``/api/v1/jobClusters/{name}/jobs/{jobId}``: one job, if it belongs to the cluster."""

    async def get(self, name, job_id):
        name, job_id = _check_name(name), _check_job_id(job_id)
        if parse_job_id(job_id)[0] != name:
            raise ApiError(404, f"JobId [{job_id}] exists but does not belong to specified cluster [{name}]")
        self.reply_projected(views.job_view(await self.gateway.ask(GetJob(job_id))))

    def post(self, name, job_id):
        raise ApiError(405, "POST is not allowed on a job")


class JobClusterHealthHandler(ListingHandler):
    """``/api/v1/jobClusters/{name}/healthcheck[?job-ids=a,b]``: whether every worker of the
    cluster's active jobs (or of the ones named) is Started, as Mantis answers it."""

    async def get(self, name):
        name = _check_name(name)
        await self.gateway.ask(GetCluster(name))
        named = [_check_job_id(j.strip()) for j in (self.get_query_argument("job-ids", "") or "").split(",")
                 if j.strip()]
        job_ids = named or [s["jobId"] for s in await self.gateway.ask(ListJobs(cluster=name))]
        jobs = await self.describe_jobs(job_ids)
        missing = sorted(set(job_ids) - {job["jobId"] for job in jobs})
        if missing:
            raise ApiError(404, f"job {missing[0]} does not exist")
        unready = [{"jobId": job["jobId"], "workerIndex": w["workerIndex"], "workerNumber": w["workerNumber"],
                    "state": w["state"]} for job in jobs for w in job["workers"] if w["state"] != "Started"]
        self.reply({"isHealthy": not unready, "message": "unready workers" if unready else "OK",
                    "failureReason": {"type": "workerStatus", "unreadyWorkers": unready} if unready else None})


async def submit_job(handler: ApiHandler, cluster: str, data: Any) -> None:
    """Submit ``data`` (our or Mantis' job definition) to ``cluster``; 201 with the job."""
    definition = JobDefinition.from_json(data)
    if definition.name is not None and definition.name != cluster:
        raise ApiError(400, f"Cluster name specified in request payload [{definition.name}] does not match "
                            f"with what specified in resource endpoint [{cluster}]")
    try:
        submitted = await handler.gateway.ask(SubmitJob(cluster, definition))
    except ApiError as exc:
        if exc.status == 409:  # a disabled cluster: Mantis answers a client error
            raise ApiError(400, exc.message) from None
        raise
    job = await handler.gateway.ask(GetJob(submitted["jobId"]))
    handler.reply(views.job_view(job), 201)


# -- jobs ---------------------------------------------------------------------------

class JobsHandler(ListingHandler):
    """``/api/v1/jobs``: every job (Mantis' filters), and submit with the cluster named in the body."""

    async def get(self):
        await self.job_list()

    async def post(self):
        data = self.body_json()
        if not isinstance(data, dict) or not data.get("name"):
            raise ApiError(400, "Job definition must include name")
        await submit_job(self, _check_name(data["name"]), data)


class QuickSubmitHandler(ApiHandler):
    """``/api/v1/jobs/actions/quickSubmit``: a job of the cluster's own definition (Mantis'
    SubmitJobRequest: ``name``, ``user``, optionally ``jobSla``)."""

    async def post(self):
        data = _fields(self.body_json(), {"name", "user", "jobSla", "jobDefinition", "submitLatestJobCluster"},
                       {"name"})
        body: dict = {"user": data.get("user") or "unknown"}
        if data.get("jobSla") is not None:
            body["jobSla"] = data["jobSla"]
        await submit_job(self, _check_name(data["name"]), body)


class JobHandler(ListingHandler):
    """``/api/v1/jobs/{jobId}``: read (Mantis' job view) and kill (``user`` and ``reason`` required, 202)."""

    async def get(self, job_id):
        self.reply_projected(views.job_view(await self.gateway.ask(GetJob(_check_job_id(job_id)))))

    async def delete(self, job_id):
        job_id = _check_job_id(job_id)
        user = self.get_query_argument("user", None)
        reason = self.get_query_argument("reason", None)
        if not user:
            raise ApiError(400, "Missing required parameter 'user'")
        if not reason:
            raise ApiError(400, "Missing required parameter 'reason'")
        kill_reason = self.get_query_argument("killReason", "Killed")
        await self.gateway.ask(KillJob(job_id, kill_reason, reason, user))
        self.set_status(202)
        self.finish()

    def post(self, job_id):
        raise ApiError(405, "POST is not allowed on a job")


class ArchivedWorkersHandler(ListingHandler):
    """``/api/v1/jobs/{jobId}/archivedWorkers``: the job's replaced and ended workers, listed."""

    async def get(self, job_id):
        workers = await self.gateway.ask(GetArchivedWorkers(_check_job_id(job_id)))
        limit = QueryArgs(self).integer("limit", 0)
        workers = workers[-limit:] if limit else workers
        self.reply_list([views.worker_view(w) for w in workers])


class ScaleStageHandler(ApiHandler):
    """``/api/v1/jobs/{jobId}/actions/scaleStage``: Mantis' ScaleStageRequest, 204 when applied."""

    async def post(self, job_id):
        job_id = _check_job_id(job_id)
        data = _fields(self.body_json(), {"JobId", "StageNumber", "NumWorkers", "User", "Reason"},
                       {"StageNumber", "NumWorkers"})
        if data.get("JobId", job_id) != job_id:
            raise ApiError(400, f"JobId specified in request payload [{data['JobId']}] does not match "
                                f"with resource uri [{job_id}]")
        stage = codec.integer(1)(data["StageNumber"], "StageNumber")
        count = codec.integer(0)(data["NumWorkers"], "NumWorkers")
        if count > MAX_WORKERS_PER_STAGE:
            raise ApiError(400, f"num workers must be less than {MAX_WORKERS_PER_STAGE}")
        user, reason = str(data.get("User") or "unknown"), str(data.get("Reason") or "")
        await self.gateway.ask(ScaleStage(job_id, stage, count, user, reason))
        self.set_status(204)
        self.finish()


class ResubmitWorkerHandler(ApiHandler):
    """``/api/v1/jobs/{jobId}/actions/resubmitWorker``: Mantis' V1ResubmitWorkerRequest, 204."""

    async def post(self, job_id):
        job_id = _check_job_id(job_id)
        data = _fields(self.body_json(), {"JobId", "workerNumber", "user", "reason"}, {"workerNumber"})
        number = codec.integer(1)(data["workerNumber"], "workerNumber")
        user, reason = str(data.get("user") or "unknown"), str(data.get("reason") or "")
        await self.gateway.ask(ResubmitWorker(job_id, number, user, reason))
        self.set_status(204)
        self.finish()


# -- master, scheduler, admin -------------------------------------------------------

class MasterInfoHandler(ApiHandler):
    """``/api/v1/masterInfo``: Mantis' MasterDescription, with our own facts beside it."""

    def get(self):
        m = self.gateway.config["master"]
        info = {
            **views.master_description(m["host"], m["api_port"], self.application.settings["started_at"]),
            # Ours, beyond Mantis' view:
            "actorSystemBase": m["actor_system_base"], "adminPort": m["admin_port"], "leader": True,
            "schedulerAddress": address_to_text(self.gateway.master.scheduler),
            "managerAddress": address_to_text(self.gateway.master.manager),
        }
        role = self.application.settings.get("role")
        if role is not None:
            info.update(role.describe())
        api_url = self.application.settings.get("api_url")
        if api_url:
            info.update(apiUrl=api_url, leaderUrl=api_url)
        self.reply(info)


class MasterConfigsHandler(ApiHandler):
    """``/api/v1/masterConfigs``: Mantis' configlets, each ``{name, value}`` with a JSON text value."""

    def get(self):
        workers = self.gateway.config["workers"] if "workers" in self.gateway.config else {}
        limits = {"maxCpuCores": int(workers.get("max_cpu_cores", MAX_CPU_CORES)),
                  "maxMemoryMB": int(workers.get("max_memory_mb", MAX_MEMORY_MB)),
                  "maxNetworkMbps": int(workers.get("max_network_mbps", MAX_NETWORK_MBPS))}
        self.reply([
            {"name": "JobConstraints", "value": codec.dumps(list(JOB_CONSTRAINTS))},
            {"name": "ScalingReason", "value": codec.dumps(list(SCALING_REASONS))},
            {"name": "MigrationStrategyEnum", "value": codec.dumps(["ONE_WORKER", "PERCENTAGE"])},
            {"name": "WorkerResourceLimits", "value": codec.dumps(limits)},
        ])


class OpenApiHandler(ApiHandler):
    """``/api/v1/openapi.json``: the API's OpenAPI 3 description (``webapi.openapi``)."""

    def get(self):
        self.reply(openapi.document(f"{self.request.protocol}://{self.request.host}"))


class AdminConfigHandler(ApiHandler):
    """``/api/v1/admin/config``: this master's own configuration, section by section."""

    def get(self):
        config = self.gateway.config
        self.reply(config.to_dict() if hasattr(config, "to_dict") else config)


class HealthHandler(ApiHandler):
    """``/healthcheck`` and ``/api/v1/health``: 200 when the master's actors answer, 503 when not."""

    async def get(self):
        clusters = await self.gateway.ask(ListClusters(), timeout=5.0)
        self.reply({"status": "ok", "leader": True, "clusters": len(clusters)})


class AgentsHandler(ListingHandler):
    """``/api/v1/agents``: the agents with their resources, attributes and workers, listed."""

    async def get(self):
        self.reply_list(await self.gateway.ask(ListAgents(), to="scheduler"))


class AgentActionHandler(ApiHandler):
    async def post(self, agent_id, action):
        data = _fields(self.body_json(), {"user", "reason"}) if self.request.body else {}
        user, _ = self.user_and_reason(data)
        self.reply(await self.gateway.ask(AgentAction(agent_id, action, user), to="scheduler"))


class PendingWorkersHandler(ListingHandler):
    """``/api/v1/pendingWorkers``: the workers waiting for placement, each with the reasons, listed."""

    async def get(self):
        self.reply_list(await self.gateway.ask(GetPending(), to="scheduler"))


class AdminActorsHandler(ApiHandler):
    async def get(self):
        manager = await self.gateway.ask(DescribeActors())
        scheduler = await self.gateway.ask(DescribeActors(), to="scheduler")
        self.reply({"actors": manager + scheduler, "at": time.time()})


class NotFoundHandler(ApiHandler):
    def initialize(self, gateway=None):
        self.gateway = gateway

    def prepare(self):
        raise ApiError(404, f"no such resource: {self.request.method} {self.request.path}")
