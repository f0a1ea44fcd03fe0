"""The Tornado application: every route of the master's API in one table."""
from __future__ import annotations

import time

import tornado.web

from webapi import handlers as h
from webapi import job_events as je
from webapi import job_streams as js
from webapi import streams as s

JOB_ID = r"([^/]+)"
NAME = r"([^/]+)"


def make_app(gateway, **settings) -> tornado.web.Application:
    """The API application; ``gateway`` asks the master's actors.

    ``settings`` go to the Application; ``role`` (a ``MasterRole``) and ``api_url`` are
    shown by masterInfo when given.
    """
    kw = {"gateway": gateway}
    routes = [
        (r"/api/v1/jobClusters/?", h.JobClustersHandler),
        (rf"/api/v1/jobClusters/{NAME}/?", h.JobClusterHandler),
        (rf"/api/v1/jobClusters/{NAME}/actions/([A-Za-z]+)/?", h.JobClusterActionHandler),
        (rf"/api/v1/jobClusters/{NAME}/jobs/?", h.JobClusterJobsHandler),
        (rf"/api/v1/jobClusters/{NAME}/latestJobDiscoveryInfo/?", js.LatestJobDiscoveryInfoHandler),
        (r"/api/v1/jobs/?", h.JobsHandler),
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
        (rf"/api/v1/jobStatusStream/{JOB_ID}/?", js.JobStatusStreamHandler),
        (rf"/api/v1/lastSubmittedJobIdStream/{NAME}/?", js.LastSubmittedJobIdStreamHandler),
        (r"/api/v1/masterInfo/?", h.MasterInfoHandler),
        (r"/api/v1/masterConfigs/?", h.MasterConfigsHandler),
        (r"/api/v1/agents/?", h.AgentsHandler),
        (r"/api/v1/agents/([^/]+)/actions/([A-Za-z]+)/?", h.AgentActionHandler),
        (r"/api/v1/pendingWorkers/?", h.PendingWorkersHandler),
        (r"/api/v1/admin/actors/?", h.AdminActorsHandler),
    ]
    return tornado.web.Application(
        [(pattern, handler, kw) for pattern, handler in routes],
        default_handler_class=h.NotFoundHandler, default_handler_args=kw,
        started_at=time.time(), **settings,
    )
