"""REST v1 handlers: Mantis' paths for job clusters, jobs, actions and the master.

Each handler parses and validates its input (``mantis.model.definitions`` does the strict
part), asks the actors through the Gateway, and writes JSON.  Every failure is a JSON
``{"error": ...}`` with a 4xx status (503 when the master does not answer); a handler
never lets a traceback reach the client.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import tornado.web

from actors.actor_system import address_to_text
from actors.messages import (
    AgentAction,
    CreateCluster,
    DeleteCluster,
    DescribeActors,
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
    UpdateSla,
)
from mantis.model import codec
from mantis.model.codec import ValidationError
from mantis.model.definitions import JobClusterDefinition, JobDefinition, JobSla, Label, cluster_name
from mantis.model.ids import parse_job_id
from webapi import access
from webapi.gateway import ApiError

log = logging.getLogger("mantis.api")


class ApiHandler(tornado.web.RequestHandler):
    """Base: JSON in, JSON out, errors as ``{"error": message}``."""

    def initialize(self, gateway):
        self.gateway = gateway

    def prepare(self):
        access.check_request(self)  # 401/403 before any handler runs (webapi/access.py)

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=utf-8")

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
        self.finish(codec.dumps({"error": message, "status": status}))

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


# -- job clusters -------------------------------------------------------------------

class JobClustersHandler(ApiHandler):
    async def get(self):
        self.reply(await self.gateway.ask(ListClusters()))

    async def post(self):
        definition = JobClusterDefinition.from_json(self.body_json())
        self.reply(await self.gateway.ask(CreateCluster(definition)), 201)


class JobClusterHandler(ApiHandler):
    async def get(self, name):
        self.reply(await self.gateway.ask(GetCluster(_check_name(name))))

    async def put(self, name):
        definition = JobClusterDefinition.from_json(self.body_json())
        user, _ = self.user_and_reason()
        self.reply(await self.gateway.ask(ReplaceCluster(_check_name(name), definition, user)))

    async def delete(self, name):
        user, _ = self.user_and_reason()
        self.reply(await self.gateway.ask(DeleteCluster(_check_name(name), user)))


def cluster_action(name: str, action: str, data: dict):
    """The typed request for a cluster action from its Mantis-shaped body."""
    user = str(data.get("user", "unknown"))
    if action == "updateArtifact":
        _fields(data, {"name", "url", "version", "user", "skipSubmit"}, {"url", "version"})
        url = JobClusterDefinition.from_json({"name": "check", "url": data["url"]}).url
        return UpdateArtifact(name, url, codec.nonempty_string(data["version"], "version"), user)
    if action == "updateSla":
        _fields(data, {"name", "slaMin", "slaMax", "cronSpec", "cronPolicy", "user", "forceEnable"})
        return UpdateSla(name, codec.integer(0, 1000)(data.get("slaMin", 0), "slaMin"),
                         codec.integer(0, 1000)(data.get("slaMax", 0), "slaMax"),
                         data.get("cronSpec"), data.get("cronPolicy", "KEEP_EXISTING"), user)
    if action == "updateLabel":
        _fields(data, {"name", "labels", "user"}, {"labels"})
        return UpdateLabels(name, codec.list_of(Label.from_json)(data["labels"], "labels"), user)
    if action == "updateJobSla":
        _fields(data, {"name", "jobSla", "user"}, {"jobSla"})
        return UpdateJobSla(name, JobSla.from_json(data["jobSla"]), user)
    if action in ("enableCluster", "disableCluster"):
        _fields(data, {"name", "user"})
        return (EnableCluster if action == "enableCluster" else DisableCluster)(name, user)
    raise ApiError(404, f"unknown cluster action {action!r}")


class JobClusterActionHandler(ApiHandler):
    async def post(self, name, action):
        _check_name(name)
        data = self.body_json() if self.request.body else {}
        if isinstance(data, dict) and data.get("name", name) != name:
            raise ApiError(400, f"body names cluster {data['name']!r}, the path {name!r}")
        self.reply(await self.gateway.ask(cluster_action(name, action, data)))


class JobClusterJobsHandler(ApiHandler):
    async def get(self, name):
        _check_name(name)
        ended = self.get_query_argument("ended", "false") == "true"
        self.reply(await self.gateway.ask(ListJobs(cluster=name, include_ended=ended)))

    async def post(self, name):
        _check_name(name)
        data = self.body_json() if self.request.body else {}
        submission = JobDefinition.from_json(data)
        job = await self.gateway.ask(SubmitJob(name, submission))
        self.reply(job, 201)


# -- jobs ---------------------------------------------------------------------------

class JobsHandler(ApiHandler):
    async def get(self):
        cluster = self.get_query_argument("clusterName", None)
        states = self.get_query_arguments("state") or None
        ended = self.get_query_argument("ended", "false") == "true"
        self.reply(await self.gateway.ask(ListJobs(cluster=cluster, states=states, include_ended=ended)))


class JobHandler(ApiHandler):
    async def get(self, job_id):
        self.reply(await self.gateway.ask(GetJob(_check_job_id(job_id))))

    async def delete(self, job_id):
        user, message = self.user_and_reason()
        reason = self.get_query_argument("killReason", "Killed")
        self.reply(await self.gateway.ask(KillJob(_check_job_id(job_id), reason, message, user)))


class ArchivedWorkersHandler(ApiHandler):
    async def get(self, job_id):
        self.reply(await self.gateway.ask(GetArchivedWorkers(_check_job_id(job_id))))


class ScaleStageHandler(ApiHandler):
    async def post(self, job_id):
        data = _fields(self.body_json(), {"JobId", "StageNumber", "NumWorkers", "User", "Reason"},
                       {"StageNumber", "NumWorkers"})
        if data.get("JobId", job_id) != job_id:
            raise ApiError(400, f"body names job {data['JobId']!r}, the path {job_id!r}")
        stage = codec.integer(1)(data["StageNumber"], "StageNumber")
        count = codec.integer(0, 10_000)(data["NumWorkers"], "NumWorkers")
        user, reason = self.user_and_reason(data)
        self.reply(await self.gateway.ask(ScaleStage(_check_job_id(job_id), stage, count, user, reason)))


class ResubmitWorkerHandler(ApiHandler):
    async def post(self, job_id):
        data = _fields(self.body_json(), {"JobId", "workerNumber", "user", "reason"}, {"workerNumber"})
        number = codec.integer(1)(data["workerNumber"], "workerNumber")
        user, reason = self.user_and_reason(data)
        self.reply(await self.gateway.ask(ResubmitWorker(_check_job_id(job_id), number, user, reason)))


# -- master, scheduler, admin -------------------------------------------------------

class MasterInfoHandler(ApiHandler):
    def get(self):
        m = self.gateway.config["master"]
        info = {
            "hostname": m["host"], "apiPort": m["api_port"], "actorSystemBase": m["actor_system_base"],
            "adminPort": m["admin_port"], "leader": True, "startedAt": self.application.settings["started_at"],
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
    def get(self):
        self.reply(self.gateway.config)


class AgentsHandler(ApiHandler):
    async def get(self):
        self.reply(await self.gateway.ask(ListAgents(), to="scheduler"))


class AgentActionHandler(ApiHandler):
    async def post(self, agent_id, action):
        data = _fields(self.body_json(), {"user", "reason"}) if self.request.body else {}
        user, _ = self.user_and_reason(data)
        self.reply(await self.gateway.ask(AgentAction(agent_id, action, user), to="scheduler"))


class PendingWorkersHandler(ApiHandler):
    async def get(self):
        self.reply(await self.gateway.ask(GetPending(), to="scheduler"))


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
