"""The Tornado application: every route of the master's API in one table."""
from __future__ import annotations

import time

import tornado.routing
import tornado.web

from webapi import handlers as h
from webapi import job_events as je
from webapi import job_streams as js
from webapi import metrics as m
from webapi import streams as s
from webapi.mesos_handlers import MesosWorkerReportHandler
from webapi.web_ui import ui_routes

JOB_ID = r"([^/]+)"
NAME = r"([^/]+)"


def make_app(gateway, **settings) -> tornado.web.Application:
    """The API application; ``gateway`` asks the master's actors.

    ``settings`` go to the Application; ``role`` (a ``MasterRole``) and ``api_url`` are
    shown by masterInfo when given.
    """
    kw = {"gateway": gateway}
    routes: list[tuple[str | tornado.routing.Matcher, type[tornado.web.RequestHandler]]] = [
        (r"/api/v1/jobClusters/?", h.JobClustersHandler),
        (rf"/api/v1/jobClusters/{NAME}/?", h.JobClusterHandler),
        (rf"/api/v1/jobClusters/{NAME}/actions/([A-Za-z]+)/?", h.JobClusterActionHandler),
        (rf"/api/v1/jobClusters/{NAME}/jobs/?", h.JobClusterJobsHandler),
        (rf"/api/v1/jobClusters/{NAME}/jobs/{JOB_ID}/?", h.JobClusterJobHandler),
        (rf"/api/v1/jobClusters/{NAME}/healthcheck/?", h.JobClusterHealthHandler),
        (rf"/api/v1/jobClusters/{NAME}/latestJobDiscoveryInfo/?", js.LatestJobDiscoveryInfoHandler),
        (r"/api/v1/jobs/?", h.JobsHandler),
        (r"/api/v1/jobs/actions/quickSubmit/?", h.QuickSubmitHandler),
        (rf"/api/v1/jobs/{JOB_ID}/?", h.JobHandler),
        (rf"/api/v1/jobs/{JOB_ID}/archivedWorkers/?", h.ArchivedWorkersHandler),
        (rf"/api/v1/jobs/{JOB_ID}/events/?", je.JobEventsHandler),
        (rf"/api/v1/jobs/{JOB_ID}/actions/scaleStage/?", h.ScaleStageHandler),
        (rf"/api/v1/jobs/{JOB_ID}/actions/resubmitWorker/?", h.ResubmitWorkerHandler),
        (rf"/api/v1/jobs/{JOB_ID}/output/?", s.SseOutputHandler),
        (rf"/api/v1/jobs/{JOB_ID}/output/ws/?", s.WebSocketOutputHandler),
        (rf"/api/v1/jobconnectbyid/{JOB_ID}/?", s.SseOutputHandler),
        (rf"/api/v1/ws/jobconnectbyid/{JOB_ID}/?", s.WebSocketOutputHandler),
        (rf"/api/v1/jobconnectbyname/{NAME}/?", s.SseClusterOutputHandler),
        (rf"/api/v1/ws/jobconnectbyname/{NAME}/?", s.WebSocketClusterOutputHandler),
        (rf"/api/v1/jobDiscoveryStream/{JOB_ID}/?", js.JobDiscoveryStreamHandler),
        (js.WebSocketUpgrade(rf"/api/v1/jobStatusStream/{JOB_ID}/?"), js.JobStatusWebSocketHandler),
        (rf"/api/v1/jobStatusStream/{JOB_ID}/?", js.JobStatusStreamHandler),
        (rf"/api/v1/lastSubmittedJobIdStream/{NAME}/?", js.LastSubmittedJobIdStreamHandler),
        (r"/api/v1/masterInfo/?", h.MasterInfoHandler),
        (r"/api/v1/masterConfigs/?", h.MasterConfigsHandler),
        (r"/api/v1/admin/config/?", h.AdminConfigHandler),
        (r"/api/v1/openapi.json", h.OpenApiHandler),
        (r"/api/v1/health/?", h.HealthHandler),
        (r"/healthcheck/?", h.HealthHandler),
        (r"/api/v1/agents/?", h.AgentsHandler),
        (r"/api/v1/agents/([^/]+)/actions/([A-Za-z]+)/?", h.AgentActionHandler),
        (r"/api/v1/pendingWorkers/?", h.PendingWorkersHandler),
        (r"/api/v1/admin/actors/?", h.AdminActorsHandler),
        (r"/metrics", m.MetricsHandler),
        (r"/api/v1/mesos/workerReports/?", MesosWorkerReportHandler),
    ]
    # Request latency by route pattern, observed as each request is logged (webapi/metrics.py).
    metrics = settings.pop("metrics", None) or m.MasterMetrics([pattern for pattern, _ in routes])
    return tornado.web.Application(
        [(pattern, handler, kw) for pattern, handler in routes] + ui_routes(),
        default_handler_class=h.NotFoundHandler, default_handler_args=kw,
        started_at=time.time(), metrics=metrics, log_function=metrics.requests.log_request, **settings,
    )
