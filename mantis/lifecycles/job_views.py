"""What a job's watchers see, in Mantis' shapes: where its workers are and what happened to them.

Pure views of a job as the job actor describes it (``JobRecord.describe()``), shared by
the actors that push changes and the API that streams them:

- ``scheduling_info``: Mantis' JobSchedulingInfo (``jobDiscoveryStream``,
  ``latestJobDiscoveryInfo``);
- ``status_view`` and ``status_events``: Mantis' Status objects (``jobStatusStream``), one
  per job or worker state change, found by comparing two views;
- ``cluster_info``: Mantis' JobClusterInfo (``lastSubmittedJobIdStream``);
- the heartbeats Mantis sends on these streams when asked (``sendHB=true``).

Each view leaves out what changes with every heartbeat (metrics), so two equal views
mean nothing a watcher acts on has changed.  Times are epoch milliseconds (integers).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mantis.model.ids import parse_job_id

# Mantis' JobSchedulingInfo.HB_JobId: the job id (and cluster name) of a heartbeat event.
HB_JOB_ID = "HB_JobId"

# Mantis' JobCompletedReason names: a Mantis client reads Status.reason as this enum, so
# our free-text reasons are mapped onto it (the text itself goes into the message).
COMPLETED_REASONS = ("Normal", "Error", "Lost", "Killed", "Relaunched")
_TERMINAL_JOB_STATES = frozenset({"Completed", "Failed"})


def epoch_ms(t: float | int | None) -> int | None:
    """``t`` (epoch seconds, as the lifecycle keeps times) in integer epoch milliseconds.

    A value already past the year 5000 in seconds is taken to be milliseconds already,
    so a record that keeps milliseconds is not multiplied twice.
    """
    if t is None:
        return None
    return int(t) if t > 1e11 else int(round(t * 1000))


def _worker_ports(worker: dict) -> list[int]:
    # The port the worker reports serving on comes first (a Mantis client connects to
    # port[0]): a worker whose offered port was taken serves on another and says so in
    # its metrics.  The other offered ports follow.
    served = worker["metrics"].get("port")
    offered = [int(p) for p in worker.get("ports") or []]
    if not served:
        return offered
    return [int(served)] + [p for p in offered if p != int(served)]


def _stage_numbers(job: dict) -> list[int]:
    numbers = {int(k) for k in job.get("stageSizes") or {}}
    numbers.update(int(w["stageNum"]) for w in job["workers"])
    return sorted(numbers)


def scheduling_info(job: dict) -> dict:
    """Mantis' JobSchedulingInfo of ``job``: where its workers are.

    ``{"jobId", "workerAssignments": {"<stage>": {"stage", "numWorkers", "hosts":
    {"<workerNumber>": {"host", "port": [...], "state", "workerIndex", "workerNumber",
    "metricsPort", "customPort"}}}}}``.  Every stage of the job is present, with its
    target size as ``numWorkers`` and no hosts while it has no worker.

    Unlike Mantis, which lists only running workers, every current worker is listed
    with its state (Accepted, Launched, StartInitiated, Started): a consumer connects to
    those whose state is Started.  ``host`` is null and ``port`` empty until the worker
    is placed; ``metricsPort`` is the worker's own /metrics port once it runs (else -1), ``customPort`` -1 (no such
    ports).  Ended workers are not listed (they are archived).
    """
    sizes = {int(k): int(v) for k, v in (job.get("stageSizes") or {}).items()}
    assignments: dict[str, dict] = {
        str(n): {"stage": n, "numWorkers": sizes.get(n, 0), "hosts": {}} for n in _stage_numbers(job)}
    for w in sorted(job["workers"], key=lambda w: (w["stageNum"], w["workerIndex"], w["workerNumber"])):
        assignments[str(w["stageNum"])]["hosts"][str(w["workerNumber"])] = {
            "host": w["host"] or w["metrics"].get("host"), "port": _worker_ports(w), "state": w["state"],
            "workerIndex": w["workerIndex"], "workerNumber": w["workerNumber"],
            "metricsPort": int(w["metrics"].get("metricsPort") or -1), "customPort": -1,
        }
    return {"jobId": job["jobId"], "workerAssignments": assignments}


def scheduling_heartbeat() -> dict:
    """The JobSchedulingInfo Mantis sends as a heartbeat on a discovery stream."""
    return {"jobId": HB_JOB_ID, "workerAssignments": {}}


def cluster_info(name: str, job_id: str | None) -> dict:
    """Mantis' JobClusterInfo: the cluster ``name`` and its latest active job (null if none)."""
    return {"name": name, "jobId": job_id}


def cluster_heartbeat() -> dict:
    """The JobClusterInfo Mantis sends as a heartbeat on a last-submitted-job stream."""
    return {"name": HB_JOB_ID, "jobId": HB_JOB_ID}


# -- job status: Mantis' Status objects ----------------------------------------------------

def status_view(job: dict) -> dict:
    """What status events are made of: the job's state and each current worker's.

    ``{"jobId", "state", "killReason", "killMessage", "workers": {workerNumber: (stageNum,
    workerIndex, state, reason, host)}, "events": ((at, type, message), ...)}`` (the job's
    recent events: scaling, replacements, migrations).  Equal views mean no status event is due.
    """
    return {"jobId": job["jobId"], "state": job["state"], "killReason": job.get("killReason"),
            "killMessage": job.get("killMessage"),
            "workers": {w["workerNumber"]: (w["stageNum"], w["workerIndex"], w["state"], w["reason"] or "",
                                            w["host"]) for w in job["workers"]},
            "events": tuple((e.get("at"), e.get("type"), e.get("message")) for e in job.get("recentEvents") or ())}


def completed_reason(state: str, reason: str | None) -> str:
    """Our free-text ``reason`` for a worker or job now in ``state``, as a JobCompletedReason name."""
    text = (reason or "").strip()
    if text in COMPLETED_REASONS:
        return text
    lowered = text.lower()
    if lowered.startswith("resubmitted"):
        return "Relaunched"
    if "lost" in lowered or "heartbeat" in lowered:
        return "Lost"
    if text in ("SLA", "RuntimeLimit") or "kill" in lowered:
        return "Killed"
    if state == "Failed":
        return "Error"
    return "Normal"


def _status(job_id: str, stage: int, index: int, number: int, kind: str, message: str, state: str,
            reason: str, hostname: str | None, timestamp: int) -> dict:
    return {"jobId": job_id, "stageNum": stage, "workerIndex": index, "workerNumber": number, "type": kind,
            "message": message, "state": state, "reason": reason, "hostname": hostname,
            "timestamp": timestamp, "payloads": []}


_WORKER_TIMES = {"Accepted": "acceptedAt", "Launched": "launchedAt", "StartInitiated": "launchedAt",
                 "Started": "startedAt", "Completed": "completedAt", "Failed": "completedAt"}


def _worker_status(job_id: str, w: dict, now_ms: int) -> dict:
    state, text = w["state"], w.get("reason") or ""
    at = epoch_ms(w.get(_WORKER_TIMES.get(state, ""))) or now_ms
    where = f" on {w['host']}" if w.get("host") else ""
    message = f"worker {w['workerNumber']} (stage {w['stageNum']}, index {w['workerIndex']}) {state}{where}"
    if text and text != state:
        message += f": {text}"
    kind = "ERROR" if state == "Failed" else "INFO"
    return _status(job_id, w["stageNum"], w["workerIndex"], w["workerNumber"], kind, message, state,
                   completed_reason(state, text), w.get("host"), at)


def _job_status(job: dict, now_ms: int) -> dict:
    state = job["state"]
    at = None
    if state == "Accepted":
        at = epoch_ms(job.get("submittedAt"))
    elif state in _TERMINAL_JOB_STATES:
        at = epoch_ms(job.get("endedAt"))
    message = f"job {job['jobId']} {state}"
    if job.get("killReason"):
        message += f" ({job['killReason']}{': ' + job['killMessage'] if job.get('killMessage') else ''})"
    kind = {"Failed": "ERROR", "Terminating_abnormal": "WARN"}.get(state, "INFO")
    return _status(job["jobId"], 0, -1, -1, kind, message, state,
                   completed_reason(state, job.get("killReason")), None, at or now_ms)


def status_events(before: dict | None, job: dict, archived: Mapping[int, dict], now_ms: int) -> list[dict]:
    """The Status objects that tell a watcher what changed from ``before`` to ``job``.

    ``before`` is the ``status_view`` last told (None for a new watcher: then the job's
    status and every current worker's).  Otherwise one job-level Status (stageNum 0,
    workerIndex and workerNumber -1) if the job's state or kill reason changed, one
    Status per worker that is new or whose state or reason changed, and one per new job
    event (``_event_statuses``).  A worker gone from
    the job has ended: its final record is looked up in ``archived`` (by workerNumber);
    when it is not there, it is told Completed with the reason unknown.  Events are in
    worker order, the job's last when it ends (its workers end before it), first otherwise.
    ``now_ms`` dates what the record itself does not date.
    """
    job_id, after = job["jobId"], status_view(job)
    job_changed = before is None or (before["state"], before["killReason"]) != (after["state"], after["killReason"])
    workers: list[dict] = []
    old = {} if before is None else before["workers"]
    for w in job["workers"]:
        was = old.get(w["workerNumber"])
        if was is None or was[2:4] != after["workers"][w["workerNumber"]][2:4]:
            workers.append(_worker_status(job_id, w, now_ms))
    for number in sorted(set(old) - set(after["workers"])):
        stage, index, state, _, host = old[number]
        gone = archived.get(number) or {"stageNum": stage, "workerIndex": index, "workerNumber": number,
                                        "state": "Completed", "reason": "no longer part of the job",
                                        "host": host, "completedAt": None}
        workers.append(_worker_status(job_id, gone, now_ms))
    workers.sort(key=lambda s: (s["stageNum"], s["workerIndex"], s["workerNumber"]))
    # The job's events come last: the state changes they tell are told first as they are.
    events = _event_statuses(before, after, job, now_ms)
    if not job_changed:
        return workers + events
    head = _job_status(job, now_ms)
    return (workers + [head] if job["state"] in _TERMINAL_JOB_STATES else [head] + workers) + events


def _event_statuses(before: dict | None, after: dict, job: dict, now_ms: int) -> list[dict]:
    """A Status per job event (a scaling decision, a replacement, a migration step) that
    ``before`` had not told; a new watcher is told none (they are the job's history,
    served by ``/api/v1/jobs/{id}/events``)."""
    if before is None:
        return []
    told = set(before.get("events", ()))
    # Job-level, as the job's own Status is: same state and reason, so the two never disagree.
    reason = completed_reason(job["state"], job.get("killReason"))
    return [_status(job["jobId"], 0, -1, -1, "INFO", f"{kind}: {message}", job["state"], reason, None,
                    epoch_ms(at) or now_ms)
            for at, kind, message in after["events"] if (at, kind, message) not in told]


def status_heartbeat(job_id: str, state: str, now_ms: int) -> dict:
    """A HEARTBEAT Status of ``job_id`` (now in ``state``), as a quiet status stream sends."""
    return _status(job_id, 0, -1, -1, "HEARTBEAT", "heartbeat", state, "Normal", None, now_ms)


def vanished_workers(before: dict | None, job: dict) -> list[int]:
    """Numbers of the workers in ``before`` (a ``status_view``) that ``job`` no longer has."""
    if before is None:
        return []
    current = {w["workerNumber"] for w in job["workers"]}
    return sorted(n for n in before["workers"] if n not in current)


def latest_job_id(jobs: list[dict]) -> str | None:
    """The id with the highest job number among ``jobs`` (summaries with ``jobId``), None if empty."""
    ids = [j["jobId"] for j in jobs]
    return max(ids, key=lambda job_id: parse_job_id(job_id)[1]) if ids else None


def watched_view(job: dict) -> tuple[Any, ...]:
    """Both views of ``job``: a change in either is worth telling its watchers."""
    return status_view(job), scheduling_info(job)
