"""What the API answers, in Mantis' v1 shapes: clusters, jobs, workers and list envelopes.

The actors describe clusters and jobs in our own terms (``JobCluster.describe()``,
``JobRecord.describe()``, the listing summaries); these pure functions turn them into
what a Mantis client reads, following Mantis' own classes:

- a cluster is ``MantisJobClusterMetadataView`` (``jars``, ``sla``, ``lastJobCount``,
  ``disabled``, ``owner``, ...);
- a job is ``MantisJobMetadataView``: ``{jobMetadata, stageMetadataList,
  workerMetadataList, version}``; with ``compact=true`` a ``CompactJobInfo``;
- a worker is ``MantisWorkerMetadataWritable`` (``slave`` is its host, ``slaveID`` its
  agent);
- every list is ``ListObject``: ``{list, prev, next, total}``, paged by ``pageSize`` and
  ``offset``, sorted by ``sortBy``/``ascending``;
- ``fields`` (and ``fromObj``) project an answer as Mantis' Jackson filters do.

Times are epoch milliseconds (integers); a time not reached yet is 0 (-1 for a job's
``terminatedAt``, as Mantis writes it).  Where we know more than Mantis says (an agent,
metrics, a kill reason), it is an extra field, which a Mantis client ignores.
"""
from __future__ import annotations

import socket
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from mantis.lifecycles.job_state import ACTIVE_JOB_STATES
from mantis.lifecycles.worker_state import TERMINAL_STATES

OWNER_FIELDS = ("name", "teamName", "description", "contactEmail", "repo")
# Mantis' meta-states as its list filters name them (JobState.MetaState, WorkerState.MetaState).
META_STATES = ("Active", "Terminal")


class ViewError(ValueError):
    """A query the views cannot answer (a bad sort field, page size or projection)."""


def ms(seconds: float | None, unset: int = 0) -> int:
    """Epoch seconds as epoch milliseconds; ``unset`` when the time is not known."""
    return int(round(seconds * 1000)) if seconds else unset


# -- clusters -----------------------------------------------------------------------

def cluster_view(cluster: dict) -> dict:
    """A cluster (``JobCluster.describe()``) as Mantis' MantisJobClusterMetadataView."""
    owner = cluster.get("owner") or {}
    jars = [{"url": j["url"], "uploadedAt": ms(j.get("uploadedAt")), "version": j["version"],
             "schedulingInfo": j.get("schedulingInfo")} for j in cluster.get("jars") or []]
    return {
        "name": cluster["name"],
        "jars": jars,
        "sla": {"min": cluster.get("slaMin", 0), "max": cluster.get("slaMax", 0),
                "cronSpec": cluster.get("cronSpec"), "cronPolicy": cluster.get("cronPolicy")},
        "parameters": cluster.get("parameters", []),
        "owner": {**{k: None for k in OWNER_FIELDS}, **owner} if owner else None,
        "lastJobCount": cluster.get("latestJobNumber", 0),
        "disabled": bool(cluster.get("disabled")),
        "isReadyForJobMaster": True,
        "migrationConfig": cluster.get("migrationConfig"),
        "labels": cluster.get("labels", []),
        "cronActive": bool(cluster.get("cronSpec")) and not cluster.get("disabled"),
        "latestVersion": cluster.get("version"),
        "jobPrincipal": cluster.get("jobPrincipal"),
        # Ours, beyond Mantis' view:
        "url": cluster.get("url"),
        "user": cluster.get("user"),
        "jobSla": cluster.get("jobSla"),
        "schedulingInfo": cluster.get("schedulingInfo"),
        "activeJobs": cluster.get("activeJobs", []),
        "createdAt": ms(cluster.get("createdAt")),
        "updatedAt": ms(cluster.get("updatedAt")),
    }


# -- jobs and workers ---------------------------------------------------------------

def worker_view(worker: dict) -> dict:
    """A worker (``Worker.describe()``) as Mantis' MantisWorkerMetadataWritable."""
    ports = [int(p) for p in worker.get("ports") or []]
    metrics = worker.get("metrics") or {}
    served = metrics.get("port")
    if served and int(served) not in ports:
        ports = [int(served), *ports[1:]]
    return {
        "workerIndex": worker["workerIndex"],
        "workerNumber": worker["workerNumber"],
        "jobId": worker["jobId"],
        "stageNum": worker["stageNum"],
        "numberOfPorts": len(ports),
        "metricsPort": int(metrics.get("metricsPort") or 0),
        "consolePort": 0,
        "debugPort": 0,
        "customPort": 0,
        "ports": ports,
        "state": worker["state"],
        "slave": worker.get("host") or metrics.get("host"),
        "slaveID": worker.get("agentId"),
        "cluster": None,
        "resourceCluster": None,
        "acceptedAt": ms(worker.get("acceptedAt")),
        "launchedAt": ms(worker.get("launchedAt")),
        "startingAt": ms(worker.get("launchedAt")),
        "startedAt": ms(worker.get("startedAt")),
        "completedAt": ms(worker.get("completedAt")),
        "reason": worker.get("reason") or "Normal",
        "resubmitOf": worker.get("resubmitOf") or 0,
        "totalResubmitCount": worker.get("totalResubmitCount") or 0,
        # Ours, beyond Mantis' view:
        "workerId": worker.get("workerId"),
        "host": worker.get("host"),
        "agentId": worker.get("agentId"),
        "lastHeartbeatAt": ms(worker.get("lastHeartbeatAt")),
        "metrics": metrics,
        "url": worker.get("url"),  # its own artifact while a migration moves it, else the job's
        "replaces": worker.get("replaces"),  # the worker it takes over from in a migration
    }


def _stages(job: dict) -> list[dict]:
    stages = ((job.get("schedulingInfo") or {}).get("stages")) or {}
    sizes = job.get("stageSizes") or {}
    out = []
    if job.get("jobMaster"):  # as Mantis lists it: stage 0, the Job Master's one worker
        out.append({"jobId": job["jobId"], "stageNum": 0, "numStages": len(stages) + 1,
                    "machineDefinition": job["jobMaster"], "numWorkers": 1, "hardConstraints": [],
                    "softConstraints": [], "scalingPolicy": None, "scalable": False})
    for key in sorted(stages, key=int):
        stage = stages[key]
        out.append({
            "jobId": job["jobId"], "stageNum": int(key), "numStages": len(stages) + (1 if job.get("jobMaster") else 0),
            "machineDefinition": stage.get("machineDefinition"),
            "numWorkers": sizes.get(key, stage.get("numberOfInstances", 0)),
            "hardConstraints": stage.get("hardConstraints", []),
            "softConstraints": stage.get("softConstraints", []),
            "scalingPolicy": stage.get("scalingPolicy"),
            "scalable": bool(stage.get("scalable")),
        })
    return out


def _job_started_at(job: dict) -> int:
    started = [w["startedAt"] for w in job.get("workers", []) if w.get("startedAt")]
    return ms(min(started)) if started and job["state"] != "Accepted" else 0


def job_view(job: dict, stage_numbers: Iterable[int] = (), worker_indexes: Iterable[int] = (),
             worker_numbers: Iterable[int] = (), worker_states: Iterable[str] = ()) -> dict:
    """A job (``JobRecord.describe()``) as Mantis' MantisJobMetadataView.

    The filters are Mantis': stages by number; workers by index, number or meta-state
    (``Active``, ``Terminal``); a worker passes if it matches any filter given.
    """
    stage_numbers, worker_indexes = set(stage_numbers), set(worker_indexes)
    worker_numbers, worker_states = set(worker_numbers), set(worker_states)
    all_stages = _stages(job)
    stages = [s for s in all_stages if not stage_numbers or s["stageNum"] in stage_numbers]
    workers = [w for w in job.get("workers", [])
               if _worker_matches(w, worker_indexes, worker_numbers, worker_states)]
    sla = job.get("jobSla") or {}
    return {
        "jobMetadata": {
            "jobId": job["jobId"],
            "name": job["clusterName"],
            "user": job.get("user"),
            "submittedAt": ms(job.get("submittedAt")),
            "startedAt": _job_started_at(job),
            "jarUrl": job.get("url"),
            "numStages": len(all_stages),
            "sla": sla,
            "state": job["state"],
            "workerTimeoutSecs": 0,
            "heartbeatIntervalSecs": 0,
            "subscriptionTimeoutSecs": job.get("subscriptionTimeoutSecs", 0),
            "parameters": job.get("parameters", []),
            "nextWorkerNumberToUse": job.get("nextWorkerNumber", 0),
            "migrationConfig": job.get("migrationConfig"),
            "labels": job.get("labels", []),
            # Ours, beyond Mantis' view:
            "terminatedAt": ms(job.get("endedAt"), -1),
            "killReason": job.get("killReason"),
            "killMessage": job.get("killMessage"),
            "migration": job.get("migration"),
            "events": [{**e, "at": ms(e.get("at"))} for e in job.get("events", [])],
        },
        "stageMetadataList": stages,
        "workerMetadataList": [worker_view(w) for w in workers],
        "version": job.get("version") or "",
    }


def _worker_matches(worker: dict, indexes: set, numbers: set, states: set) -> bool:
    if not (indexes or numbers or states):
        return True
    meta = "Terminal" if worker["state"] in TERMINAL_STATES else "Active"
    return worker["workerIndex"] in indexes or worker["workerNumber"] in numbers or meta in states


def compact_job(summary: dict) -> dict:
    """A job's listing summary as Mantis' CompactJobInfo."""
    return {
        "jobId": summary["jobId"],
        "jarUrl": summary.get("jarUrl") or "",
        "submittedAt": ms(summary.get("submittedAt")),
        "terminatedAt": ms(summary.get("endedAt"), -1),
        "user": summary.get("user"),
        "state": summary["state"],
        "type": summary.get("type") or "Perpetual",
        "numStages": summary.get("numStages", len(summary.get("stageSizes") or {})),
        "numWorkers": summary.get("numWorkers", sum((summary.get("stageSizes") or {}).values())),
        "totCPUs": summary.get("totCPUs", 0.0),
        "totMemory": summary.get("totMemory", 0.0),
        "statesSummary": dict(summary.get("workers") or {}),
        "labels": summary.get("labels", []),
    }


def job_meta_state(state: str) -> str:
    """Mantis' meta-state of a job state: Active (Accepted, Launched) or Terminal."""
    return "Active" if state in ACTIVE_JOB_STATES else "Terminal"


# -- the master ---------------------------------------------------------------------

def master_description(host: str, api_port: int, started_at: float) -> dict:
    """Mantis' MasterDescription of a master serving its API on ``host:api_port``."""
    try:
        host_ip = socket.gethostbyname(host)
    except OSError:
        host_ip = host
    return {"hostname": host, "hostIP": host_ip, "apiPort": api_port, "schedInfoPort": api_port,
            "apiPortV2": -1, "apiStatusUri": "api/v1/jobs/actions/postJobStatus", "consolePort": -1,
            "createTime": ms(started_at)}


# -- lists, paging, projection ------------------------------------------------------

def list_envelope(items: list, path: str, query: dict[str, list[str]], page_size: int | None = None,
                  offset: int | None = None, sort_by: str | None = None, ascending: bool = True) -> dict:
    """Mantis' ListObject ``{list, prev, next, total}`` over ``items``.

    ``prev``/``next`` are the request's own path and query with ``offset`` moved a page
    (None at either end, and when no ``pageSize`` is given).
    """
    if page_size is not None and page_size <= 0:
        raise ViewError("pageSize must be greater than 0")
    if offset is not None and offset < 0:
        raise ViewError("offset must be 0 or more")
    items = list(items)
    if sort_by:
        items = _sorted(items, sort_by, ascending)
    total, offset = len(items), offset or 0
    limit = page_size if page_size is not None else total
    page = items[offset:offset + limit] if offset <= total else []
    prev = nxt = None
    if page_size is not None:
        if offset > 0:
            prev = _page_uri(path, query, max(0, offset - page_size))
        if offset + page_size < total:
            nxt = _page_uri(path, query, offset + page_size)
    return {"list": page, "prev": prev, "next": nxt, "total": total}


def _sorted(items: list, field: str, ascending: bool) -> list:
    def key(item: Any):
        value = item.get(field) if isinstance(item, dict) else None
        if value is None or isinstance(value, (dict, list)):
            raise ViewError(f"Specified sort field is invalid. [{field}]")
        return value

    try:
        return sorted(items, key=key, reverse=not ascending)
    except TypeError:
        raise ViewError(f"Specified sort field is invalid. [{field}]") from None


def _page_uri(path: str, query: dict[str, list[str]], offset: int) -> str:
    pairs = [(k, v) for k, values in query.items() if k != "offset" for v in values]
    pairs.append(("offset", str(offset)))
    return f"{path}?{urllib.parse.urlencode(pairs)}"


def projector(fields: str | None, target: str | None) -> Callable[[Any], Any]:
    """Mantis' ``fields``/``fromObj`` projection as a function of one answer object.

    Without ``fromObj`` only the named top-level fields are kept.  With ``fromObj`` the
    object keeps only that field, and it (or each of its items, for a list) keeps only
    the named fields.
    """
    if not fields:
        return lambda obj: obj
    wanted = {f.strip() for f in fields.split(",") if f.strip()}
    if not target or target == "topLevelFilter":
        return lambda obj: {k: v for k, v in obj.items() if k in wanted} if isinstance(obj, dict) else obj

    def keep(value: Any) -> Any:
        if isinstance(value, list):
            return [keep(v) for v in value]
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if k in wanted}
        return value

    return lambda obj: ({target: keep(obj[target])} if target in obj else {}) if isinstance(obj, dict) else obj


__all__ = ["META_STATES", "ViewError", "cluster_view", "compact_job", "job_meta_state", "job_view",
           "list_envelope", "master_description", "ms", "projector", "worker_view"]
