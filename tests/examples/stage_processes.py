"""A stage worker in a process of its own, driven over a multiprocessing pipe (for tests)."""
from __future__ import annotations

from mantis.runtime.stage_worker import StageWorker
from mantis.sdk.job_dsl import Context, load_job, resolve_parameters


def run_stage_worker_process(entry_point: str, stage_number: int, worker_index: int,
                             workers_in_stage: int, parameters: dict, control) -> None:
    """Build the worker, send ("port", port); on ("go", endpoints) run it; send ("done", state, error)."""
    job = load_job(entry_point)
    context = Context("test-1", worker_index=worker_index, stage_number=stage_number,
                      workers_in_stage=workers_in_stage,
                      parameters=resolve_parameters(job, parameters))
    worker = StageWorker(job, context)
    control.send(("port", worker.port))
    _, endpoints = control.recv()
    if endpoints:
        worker.update_upstream(endpoints)
    worker.start()
    worker.wait(60)
    control.send(("done", worker.state, worker.error))
    worker.stop(5)
