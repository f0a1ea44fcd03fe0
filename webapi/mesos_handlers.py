"""The API route of workers that Mesos runs (``mantis worker``): their heartbeat."""
from __future__ import annotations

from actors.messages import MesosWorkerReport
from webapi.gateway import ApiError
from webapi.handlers import ApiHandler


class MesosWorkerReportHandler(ApiHandler):
    """``POST /api/v1/mesos/workerReports`` ``{"workerKey", "metrics"}``: a Mesos task's
    worker reports its metrics; the answer says where its upstream workers are
    (``endpoints``, ``upstreamFinished``).  404 when Mesos is not the resource manager."""

    async def post(self):
        data = self.body_json()
        if not isinstance(data, dict) or not isinstance(data.get("workerKey"), str) \
                or not isinstance(data.get("metrics", {}), dict):
            raise ApiError(400, "expected {\"workerKey\": text, \"metrics\": {...}}")
        if getattr(self.gateway.master, "mesos", None) is None:
            raise ApiError(404, "Mesos is not this master's resource manager (scheduler.resource_manager)")
        self.reply(await self.gateway.ask(MesosWorkerReport(data["workerKey"], data.get("metrics", {})),
                                          to="mesos"))
