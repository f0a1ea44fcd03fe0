"""Reading the REST API's Mantis-shaped answers, for the tools, benchmarks and tests that call it.

A job is Mantis' ``MantisJobMetadataView`` (``{jobMetadata, stageMetadataList,
workerMetadataList, version}``), every list Mantis' ``ListObject`` (``{list, prev, next,
total}``); these accessors name what a caller reads so that the shape lives in one place
(``webapi/views.py`` writes it).
"""
from __future__ import annotations

from typing import Any


def listed(body: Any) -> list:
    """The items of one of the API's list envelopes; ValueError if ``body`` is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("list"), list):
        raise ValueError(f"not a list envelope: {body!r:.200}")
    return body["list"]


def job_id_of(view: dict) -> str:
    """The id of a job view (``GET /api/v1/jobs/{id}``, or the 201 answer of a submit)."""
    return view["jobMetadata"]["jobId"]


def job_state(view: dict) -> str:
    """The state of a job view: Accepted, Launched, Completed, Failed."""
    return view["jobMetadata"]["state"]


def job_workers(view: dict) -> list[dict]:
    """The workers of a job view (Mantis' ``workerMetadataList``)."""
    return view.get("workerMetadataList") or []


def started_workers(view: dict) -> list[dict]:
    """The workers of a job view that are Started."""
    return [w for w in job_workers(view) if w["state"] == "Started"]


__all__ = ["job_id_of", "job_state", "job_workers", "listed", "started_workers"]
