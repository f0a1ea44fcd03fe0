"""Starting one worker's stage from its spec: the one code path the WorkerActor (under
an agent of ours) and the plain ``mantis worker`` command (a Mesos task) share."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from mantis.runtime.process_stats import ProcessStats
from mantis.runtime.stage_worker import StageWorker
from mantis.sdk.job_dsl import Context, load_job, resolve_parameters

log = logging.getLogger("mantis.worker")


@dataclass
class LaunchSpec:
    """What starting a worker takes: the fields of the scheduler's WorkerSpec that a
    worker process reads (a Mesos task carries the whole spec as JSON)."""

    worker_key: str
    job_id: str
    stage: int
    index: int
    number: int
    entry_point: str
    parameters: dict
    ports: list = field(default_factory=list)
    host: str = ""
    workers_in_stage: int = 1


def spec_from_json(text: str) -> LaunchSpec:
    """The LaunchSpec in a WorkerSpec's JSON (other fields are ignored)."""
    data = json.loads(text)
    names = {f.name for f in dataclasses.fields(LaunchSpec)}
    spec = LaunchSpec(**{k: v for k, v in data.items() if k in names})
    spec.ports = [int(p) for p in spec.ports]
    return spec


def build_stage_worker(spec: Any) -> StageWorker:
    """Load the job of ``spec``, resolve its parameters and build (not start) the stage
    worker serving on the spec's first port (its ``job`` and ``context`` are the job's and
    the worker's).  Raises whatever the user's code raises.

    A process outside the scheduler's knowledge may hold the offered port: the worker
    then serves on any free one and reports it, rather than fail and be replaced onto
    the same port."""
    job = load_job(spec.entry_point)
    params = resolve_parameters(job, spec.parameters)
    context = Context(job_id=spec.job_id, worker_index=spec.index, worker_number=spec.number,
                      stage_number=spec.stage, parameters=params, workers_in_stage=spec.workers_in_stage,
                      ports=tuple(spec.ports))
    port = spec.ports[0] if spec.ports else 0
    try:
        return StageWorker(job, context, host="0.0.0.0", port=port)
    except OSError as exc:
        log.warning("worker %s: port %d unavailable (%s); using a free port", spec.worker_key, port, exc.strerror)
        return StageWorker(job, context, host="0.0.0.0", port=0)


def worker_metrics(spec: Any, worker: StageWorker | None, stats: ProcessStats | None) -> dict:
    """What a worker reports with each heartbeat: its pid and host, the process's CPU and
    memory, and the stage worker's counters."""
    m: dict = {"pid": os.getpid(), "host": spec.host or "127.0.0.1"}
    if stats is not None:
        m.update(stats.sample())
    if worker is not None:
        m.update(worker.metrics().to_json())
    return m
