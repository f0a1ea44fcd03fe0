"""Jobs for the health, readiness and migration tests, steered by flag files.

Each worker looks in the directory named by the ``flags`` parameter for files named
after its own worker number, so a test decides which incarnation misbehaves:

- ``sick-<n>``: the job's ``health`` hook says no (the default /health answers 503);
- ``ready-<n>``: the job's ``ready`` hook says yes (absent: /ready answers 503), only
  when the ``gate_ready`` parameter is true;
- ``close-<n>``: the job's own listener on its second port (``portIndex`` 1) closes.

Events are ``{"n", "worker", "artifact"}``; ``artifact`` tells ``job`` (v1) from
``job_v2`` (v2), so a migration shows in the output.
"""
from __future__ import annotations

import os
import socket
import threading

from reactivex import operators as ops

from mantis.runtime.sources import paced_source
from mantis.sdk.job_dsl import Context, HealthCheck, Job, ParameterDefinition, ProcessingStage

PARAMETERS = [ParameterDefinition("flags", "string", default="/nonexistent"),
              ParameterDefinition("rate", "int", default=50),
              ParameterDefinition("gate_ready", "bool", default=False)]


def _flag(context: Context, name: str) -> bool:
    return os.path.exists(os.path.join(context.parameters["flags"], f"{name}-{context.worker_number}"))


def _listen_until_closed(context: Context) -> None:
    """Accept on the worker's second port until its ``close-<n>`` flag appears."""
    if len(context.ports) < 2:
        return
    server = socket.create_server(("127.0.0.1", context.ports[1]))
    server.settimeout(0.1)

    def serve() -> None:
        with server:
            while not context.stopped.is_set() and not _flag(context, "close"):
                try:
                    conn, _ = server.accept()
                    conn.close()
                except TimeoutError:
                    continue

    threading.Thread(target=serve, daemon=True, name="fixture-listener").start()


def _source(artifact: str):
    def source(context: Context):
        _listen_until_closed(context)
        return paced_source(context, lambda n: {"n": n, "worker": context.worker_number, "artifact": artifact},
                            context.parameters["rate"], 0)
    return source


def _healthy(context: Context) -> bool:
    return not _flag(context, "sick")


def _ready(context: Context) -> bool:
    return not context.parameters["gate_ready"] or _flag(context, "ready")


def _make(artifact: str, **checks) -> Job:
    return Job(f"health-{artifact}", _source(artifact), lambda events, context: events.pipe(ops.map(dict)),
               parameters=list(PARAMETERS), health=_healthy, ready=_ready, **checks)


job = _make("v1")
job_v2 = _make("v2")

# The job's own code declares an HTTP health check on the runtime's default endpoint.
declared_http = _make("v1", health_checks=[HealthCheck(protocol="HTTP", path="/health", grace_period_s=0,
                                                       interval_s=0.5, timeout_s=0.5,
                                                       max_consecutive_failures=2)])


def _two_stage(artifact: str) -> Job:
    """Two stages: stage 2 learns where stage 1's Started workers are (job discovery)."""
    return Job(f"health-two-stage-{artifact}", _source(artifact),
               stages=[ProcessingStage(operators=lambda events, context: events),
                       ProcessingStage(operators=lambda events, context: events)],
               parameters=list(PARAMETERS), health=_healthy, ready=_ready)


two_stage = _two_stage("v1")
two_stage_v2 = _two_stage("v2")
