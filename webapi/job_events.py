"""``GET /api/v1/jobs/{jobId}/events``: the job's events in Mantis' list envelope.

The events (state changes, kills, scaling with who asked and why, worker replacements,
migration steps) come from the job's actor, or from its archive once it has ended, as
``{"list": [...], "prev", "next", "total"}``, oldest first, each ``{"at" (epoch ms),
"type", "message", ...}``.  ``?limit=N`` keeps the newest N; ``?type=StageScaled``
(repeatable) keeps those types; paging and ``fields`` as every list.
"""
from __future__ import annotations

from actors.messages import GetJobEvents
from webapi import views
from webapi.handlers import ListingHandler, QueryArgs, _check_job_id


class JobEventsHandler(ListingHandler):
    """The job's events, filtered by ``type`` and cut to the newest ``limit``."""

    async def get(self, job_id):
        limit = QueryArgs(self).integer("limit", 1)
        events = await self.gateway.ask(GetJobEvents(_check_job_id(job_id)))
        kinds = set(self.get_query_arguments("type"))
        if kinds:
            events = [e for e in events if e.get("type") in kinds]
        if limit is not None:
            events = events[-limit:]
        self.reply_list([{**e, "at": views.ms(e.get("at"))} for e in events])
