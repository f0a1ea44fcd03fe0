"""What a job's watchers see: where its workers are and what state they are in.

Pure views of a job as ``GET /api/v1/jobs/{id}`` describes it (``JobRecord.describe()``),
shared by the actors that push changes and the API that streams them.  Each view
leaves out what changes with every heartbeat (metrics), so two equal views mean
nothing a watcher acts on has changed.
"""
from __future__ import annotations

from mantis.model.ids import parse_job_id


def _worker_port(worker: dict) -> int | None:
    # The port the worker reports serving on wins over the one it was offered: a worker
    # whose offered port was taken serves on another and says so in its metrics.
    port = worker["metrics"].get("port") or (worker["ports"] or [None])[0]
    return int(port) if port else None


def discovery_snapshot(job: dict) -> dict:
    """Where ``job``'s workers are (``job`` as ``GET /api/v1/jobs/{id}`` shows it).

    ``{"jobId", "state", "stages": {"<n>": [{"workerIndex", "workerNumber", "host",
    "port", "state"}, ...]}}``: every stage of the job is present (an empty list while
    it has no worker), its workers ordered by index.  ``host``/``port`` are null until
    the worker is placed.  Metrics that change with every heartbeat are left out, so
    equal snapshots mean nothing a consumer connects to has changed.
    """
    stages: dict[str, list] = {str(n): [] for n in sorted(int(k) for k in job.get("stageSizes") or {})}
    for w in job["workers"]:
        stages.setdefault(str(w["stageNum"]), []).append({
            "workerIndex": w["workerIndex"], "workerNumber": w["workerNumber"],
            "host": w["host"] or w["metrics"].get("host"), "port": _worker_port(w), "state": w["state"],
        })
    for workers in stages.values():
        workers.sort(key=lambda w: (w["workerIndex"], w["workerNumber"]))
    return {"jobId": job["jobId"], "state": job["state"], "stages": stages}


def status_snapshot(job: dict) -> dict:
    """The job's state and each worker's (``job`` as ``GET /api/v1/jobs/{id}`` shows it).

    ``{"jobId", "state", "killReason", "killMessage", "workers": [{"stageNum",
    "workerIndex", "workerNumber", "state", "reason"}, ...]}``, workers ordered by stage
    and index.  A terminal job lists no workers (they are archived by then).
    ``recentEvents``: the job's latest events (scaling, replacements, kills, states).
    """
    workers = [{"stageNum": w["stageNum"], "workerIndex": w["workerIndex"], "workerNumber": w["workerNumber"],
                "state": w["state"], "reason": w["reason"]} for w in job["workers"]]
    workers.sort(key=lambda w: (w["stageNum"], w["workerIndex"], w["workerNumber"]))
    return {"jobId": job["jobId"], "state": job["state"], "killReason": job.get("killReason"),
            "killMessage": job.get("killMessage"), "workers": workers,
            "recentEvents": job.get("recentEvents", [])}


def latest_job_id(jobs: list[dict]) -> str | None:
    """The id with the highest job number among ``jobs`` (summaries with ``jobId``), None if empty."""
    ids = [j["jobId"] for j in jobs]
    return max(ids, key=lambda job_id: parse_job_id(job_id)[1]) if ids else None


def watched_view(job: dict) -> tuple:
    """Both views of ``job``: a change in either is worth telling its watchers."""
    return status_snapshot(job), discovery_snapshot(job)
