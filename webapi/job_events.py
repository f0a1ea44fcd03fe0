"""``GET /api/v1/jobs/{jobId}/events``: the job's events in Mantis' list envelope.

The events (state changes, kills, scaling with who asked and why, worker
replacements) come from the job's actor, or from its archive once it has ended, as
``{"list": [...], "prev": null, "next": null, "total": N}``, oldest first.
``?limit=N`` keeps the newest N; ``?type=StageScaled`` (repeatable) keeps those types.
"""
from __future__ import annotations

from actors.messages import GetJobEvents
from mantis.model import codec
from webapi.gateway import ApiError
from webapi.handlers import ApiHandler, _check_job_id


class JobEventsHandler(ApiHandler):
    """The job's events, filtered by ``type`` and cut to the newest ``limit``."""

    async def get(self, job_id):
        limit_text = self.get_query_argument("limit", None)
        limit = None
        if limit_text is not None:
            try:
                limit = codec.integer(1, 100_000)(int(limit_text), "limit")
            except ValueError:
                raise ApiError(400, f"limit must be an integer from 1 to 100000, got {limit_text!r}") from None
        events = await self.gateway.ask(GetJobEvents(_check_job_id(job_id)))
        kinds = set(self.get_query_arguments("type"))
        if kinds:
            events = [e for e in events if e.get("type") in kinds]
        if limit is not None:
            events = events[-limit:]
        self.reply({"list": events, "prev": None, "next": None, "total": len(events)})
