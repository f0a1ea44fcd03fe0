"""One worker of one stage of a job, in this process: its input, its stage, its output port.

``StageWorker`` wires together what ``Job.worker_plan`` says a worker of stage n runs:

- input: the job's source (stage 1), or a ``StageInput`` connected to every worker of
  stage n-1 (stage n > 1), whose endpoints the control plane keeps current with
  ``update_upstream``;
- the stage's operators, in a ``StageExecutor``;
- output: a ``StageOutputServer`` serving the next stage's workers (keyed or
  round-robin, block or drop, as the stage declares), or for the last stage an
  ``OutputServer`` serving the job's subscribers (or the job's sink, called in line).

Before a non-last stage starts its pipeline it waits (at most ``downstream_wait_s``)
for every worker of the next stage to connect, so no event is routed while the ring is
still missing workers.  When the input ends normally the worker passes the end on
(END_OF_STREAM to the next stage, or drains its subscribers' queues) before it reports
completed; a stopped or failed worker passes nothing on, so its downstream waits for a
replacement.  Everything runs on daemon threads: the owner (a WorkerActor) only calls
``start``, ``update_upstream``, ``metrics``, reads ``state`` and calls ``stop``.

The worker's state is a machine of the lifecycles' kind (``mantis/lifecycles/tables.py``):
``WorkerRuntimeState`` with its meta-states, ``RUNTIME_TABLE`` from (state, event) to a
``Transition``, and one ``WorkerRuntime.handle(event)`` that stamps a stimulus id and
tells a bounded story (``StageWorker.story()``); ``validate()`` checks its invariants::

    created ──start──► running ──complete──► completed
       │  ▲ stop         │  ▲ stop   └──fail──► failed
       │  └──┘           │  └──┘
       └──────── complete ──────────────────► completed   (stopped before it started)
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from mantis.lifecycles.tables import (
    Meta,
    Story,
    StoryEntry,
    Transition,
    TransitionRejected,
    TransitionTable,
    check,
    new_stimulus_id,
    run_transition,
    states_with,
)
from mantis.runtime.output_server import OutputServer
from mantis.runtime.stage_executor import DEFAULT_BATCH_INTERVAL_S, DEFAULT_BATCH_SIZE, StageExecutor
from mantis.runtime.stage_input import StageInput
from mantis.runtime.stage_output import DEFAULT_BLOCK_TIMEOUT_S, DEFAULT_BUFFER_BATCHES, StageOutputServer
from mantis.sdk.job_dsl import Context, Job

log = logging.getLogger("mantis.runtime.stage_worker")

DEFAULT_DOWNSTREAM_WAIT_S = 30.0
DEFAULT_FINISH_TIMEOUT_S = 10.0
# How often the wait for downstream workers looks whether the worker is being stopped.
STOP_CHECK_S = 0.05



class WorkerRuntimeState(StrEnum):
    """Where a stage worker stands; the values are what leaves the worker (metrics, reports)."""

    CREATED = "created"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


CREATED = WorkerRuntimeState.CREATED
RUNNING = WorkerRuntimeState.RUNNING
COMPLETED = WorkerRuntimeState.COMPLETED
FAILED = WorkerRuntimeState.FAILED

META_STATES: dict[WorkerRuntimeState, frozenset[Meta]] = {
    CREATED: frozenset({Meta.ACTIVE}),
    RUNNING: frozenset({Meta.ACTIVE, Meta.RUNNING}),
    COMPLETED: frozenset({Meta.TERMINAL}),
    FAILED: frozenset({Meta.TERMINAL}),
}
ENDED = states_with(META_STATES, Meta.TERMINAL)


# -- effects (what the StageWorker carries out) ----------------------------------------

@dataclass(frozen=True)
class StartThread:
    """Start the worker's thread (it waits for downstream, then runs the executor)."""


@dataclass(frozen=True)
class MarkFinished:
    """Wake whoever waits for the worker: its state is terminal and the end passed on."""


# -- handlers: handler(runtime, now, stimulus_id, **details) -> effects -----------------

def _started(rt: WorkerRuntime, now: float, sid: str) -> list:
    rt.started_at = now
    return [StartThread()]


def _stop_asked(rt: WorkerRuntime, now: float, sid: str) -> list:
    rt.stopping = True
    return []


def _ended(rt: WorkerRuntime, now: float, sid: str) -> list:
    rt.ended_at = now
    return [MarkFinished()]


RUNTIME_TABLE = TransitionTable(
    kind="stage worker",
    transitions={
        CREATED: {"start": Transition(RUNNING, _started),
                  "stop": Transition(CREATED, _stop_asked),
                  # stopped before it started: the executor ends "completed" at once
                  "complete": Transition(COMPLETED, _ended)},
        RUNNING: {"stop": Transition(RUNNING, _stop_asked),
                  "complete": Transition(COMPLETED, _ended),
                  "fail": Transition(FAILED, _ended)},
        COMPLETED: {},
        FAILED: {},
    },
    reasons={
        (CREATED, "fail"): "a worker that never started cannot fail (its executor never ran)",
        (RUNNING, "start"): "the stage worker was already started",
        **{(state, "start"): "the stage worker has ended; a new one is needed" for state in ENDED},
        **{(state, "stop"): "the stage worker has already ended" for state in ENDED},
        **{(state, event): "the stage worker's outcome is settled once"
           for state in ENDED for event in ("complete", "fail")},
    },
)


@dataclass
class WorkerRuntime:
    """The state machine of one StageWorker (the worker owns it; ``worker`` is read by
    ``validate`` only).  Not thread-safe by itself: the worker calls ``handle`` under its lock."""

    key: str
    worker: Any = None
    state: WorkerRuntimeState = CREATED
    stopping: bool = False
    started_at: float | None = None
    ended_at: float | None = None
    log: Story = field(default_factory=lambda: Story(per_key=20, max_keys=1))

    def handle(self, event: str, now: float | None = None, *, stimulus_id: str | None = None) -> list:
        """Apply ``event`` through RUNTIME_TABLE and return the effects, or raise
        TransitionRejected with the reason (recorded in the story)."""
        return run_transition(RUNTIME_TABLE, self, event, time.time() if now is None else now,
                              key=self.key, story=self.log,
                              stimulus_id=stimulus_id or new_stimulus_id(f"worker-{event}"))

    def story(self) -> list[StoryEntry]:
        """What happened to this worker, oldest first."""
        return self.log.story(self.key)

    def validate(self) -> None:
        """Raise InvariantViolation unless every rule holds:

        * a created worker has no start time and has not started its executor (it may
          have ended it: stopped before it started, about to settle);
        * a running worker has a start time (its executor is created while it waits
          for the next stage, then running, then ended);
        * a completed or failed worker has an ended executor (its output stopped
          publishing) and an end time; a failed worker's executor failed.
        """
        check(self.state in META_STATES, f"stage worker {self.key}: unknown state {self.state!r}")
        executor = getattr(self.worker, "executor", None)
        executor_state = getattr(executor, "state", None)
        if self.state == CREATED:
            check(self.started_at is None, f"stage worker {self.key} is created but has a start time")
            check(executor_state in (None, "created", "completed"),
                  f"stage worker {self.key} is created but its executor is {executor_state}")
        if self.state == RUNNING:
            check(self.started_at is not None, f"stage worker {self.key} is running with no start time")
        if self.state in ENDED:
            check(self.ended_at is not None, f"stage worker {self.key} is {self.state} with no end time")
            check(executor is None or executor_state in ("completed", "failed"),
                  f"stage worker {self.key} is {self.state} but its executor is {executor_state}")
        if self.state == FAILED:
            check(executor is None or executor_state == "failed",
                  f"stage worker {self.key} failed but its executor is {executor_state}")


@dataclass(frozen=True)
class StageWorkerMetrics:
    """A snapshot of one stage worker, for heartbeats (``to_json`` gives the camelCase form).

    ``events_in``: events entering the stage's operators; ``events_out``: events
    published; ``dropped_events``: events its output dropped (slow consumers, nobody
    connected, queued for a connection that went away); ``queue_depth``: encoded
    batches waiting in its output queues; ``output_connections``: next-stage workers or
    subscribers connected; ``upstream_connections``, ``bytes_in``, ``reconnects``: its
    input (0 for stage 1).  For a stage with a next stage, ``delivered_events``: events
    the next stage's workers confirmed; ``lost_events``: events sent to next-stage
    workers that went away before confirming them; ``in_flight_events``: sent and not
    confirmed yet (all 0 for the last stage).  ``output_connections`` is read before
    ``events_out``, so every batch whose publishing started after that snapshot's
    connections were in place holds only events numbered ``events_out`` or later.
    ``busy_seconds``: time spent in the stage's operators (``StageExecutor.busy_seconds``);
    ``user``: the job's own metrics (``ctx.metrics``), by name.
    """

    stage_number: int
    port: int
    state: str
    events_in: int
    events_out: int
    dropped_events: int
    queue_depth: int
    output_connections: int
    upstream_connections: int
    bytes_in: int
    reconnects: int
    delivered_events: int = 0
    lost_events: int = 0
    in_flight_events: int = 0
    busy_seconds: float = 0.0
    user: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The snapshot in the heartbeat's camelCase form."""
        return {"stage": self.stage_number, "port": self.port, "state": self.state,
                "eventsIn": self.events_in, "eventsOut": self.events_out,
                "droppedEvents": self.dropped_events, "queueDepth": self.queue_depth,
                "subscribers": self.output_connections,
                "upstreamConnections": self.upstream_connections,
                "bytesIn": self.bytes_in, "reconnects": self.reconnects,
                "deliveredEvents": self.delivered_events, "lostEvents": self.lost_events,
                "inFlightEvents": self.in_flight_events,
                "busySeconds": round(self.busy_seconds, 4), "user": dict(self.user)}


class StageWorker:
    """Runs worker ``context.worker_index`` of stage ``context.stage_number`` of ``job`` here.

    ``context.workers_in_stage`` is sent to the upstream in the handshake.
    ``upstream_endpoints`` (``(worker_id, host, port)`` of every stage n-1 worker) is
    for stage n > 1 only; it may start empty and be set later with
    ``update_upstream``.  The output listens on ``host:port`` at once (port 0: a free
    one; see ``port``).  ``state`` moves created -> running -> completed | failed
    (``error`` says why).  Raises ValueError for a stage the job does not have or
    endpoints given to stage 1; nothing is left listening when it does.
    """

    def __init__(self, job: Job, context: Context, upstream_endpoints: Iterable[tuple] = (),
                 host: str = "127.0.0.1", port: int = 0,
                 batch_size: int = DEFAULT_BATCH_SIZE,
                 batch_interval_s: float = DEFAULT_BATCH_INTERVAL_S,
                 buffer_batches: int = DEFAULT_BUFFER_BATCHES,
                 block_timeout_s: float = DEFAULT_BLOCK_TIMEOUT_S,
                 downstream_wait_s: float = DEFAULT_DOWNSTREAM_WAIT_S,
                 finish_timeout_s: float = DEFAULT_FINISH_TIMEOUT_S):
        self.job = job
        self.context = context
        self.plan = job.worker_plan(context.stage_number)
        endpoints = list(upstream_endpoints)
        if self.plan.reads_source and endpoints:
            raise ValueError(f"job '{job.name}' stage 1 reads the source; it has no upstream")
        self.downstream_wait_s = downstream_wait_s
        self.finish_timeout_s = finish_timeout_s
        stage = self.plan.stage
        if self.plan.is_last:
            self.output: OutputServer | StageOutputServer = OutputServer(host, port, buffer_batches)
        else:
            self.output = StageOutputServer(stage.key_function, stage.on_slow_consumer, host, port,
                                            buffer_batches, block_timeout_s)
        try:
            self.input = None if self.plan.reads_source else StageInput(
                context.worker_index, context.workers_in_stage, endpoints)
            self.executor = StageExecutor(job, context, self.output.publish, batch_size,
                                          batch_interval_s,
                                          upstream=self.input.batches if self.input else None)
        except Exception:
            self.output.close()
            raise
        self._lock = threading.Lock()
        self.runtime = WorkerRuntime(
            f"{job.name}-{context.stage_number}-{context.worker_index}", worker=self)
        self._finished = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True,
            name=f"stage-worker-{job.name}-{context.stage_number}-{context.worker_index}")

    @property
    def port(self) -> int:
        """The port this worker's output listens on (what the next stage or subscribers connect to)."""
        return self.output.port

    @property
    def state(self) -> str:
        """One of "created", "running", "completed", "failed"; terminal only once the end was passed on."""
        return self.runtime.state.value

    @property
    def _stopping(self) -> bool:
        return self.runtime.stopping

    def story(self) -> list[StoryEntry]:
        """The worker's last transitions (and rejected events), oldest first, with stimulus ids."""
        return self.runtime.story()

    def _handle(self, event: str) -> None:
        """Apply ``event`` to the worker's machine (the caller holds ``_lock``) and carry
        out the effects (``run_transition`` validates when the tests ask)."""
        for effect in self.runtime.handle(event):
            if isinstance(effect, StartThread):
                self._thread.start()
            elif isinstance(effect, MarkFinished):
                self._finished.set()

    @property
    def error(self) -> str | None:
        """Why the worker failed, in one line; None otherwise."""
        return self.executor.error

    def start(self) -> None:
        """Start the worker's threads and return at once; RuntimeError if already started."""
        with self._lock:
            try:
                self._handle("start")
            except TransitionRejected as exc:  # recorded in the story with its reason
                raise RuntimeError("the stage worker was already started") from exc

    def update_upstream(self, endpoints: Iterable[tuple], upstream_finished: bool = False) -> None:
        """Make ``endpoints`` (``(worker_id, host, port)`` of stage n-1's workers) this worker's input.

        ``upstream_finished``: stage n-1 has completed, so its input ends once what it
        lists has ended (see ``StageInput.update``).  Safe to call at any time, from any
        thread, as often as the job's discovery information changes.  ValueError for
        stage 1 or a malformed endpoint.
        """
        if self.input is None:
            raise ValueError(f"job '{self.job.name}' stage 1 reads the source; it has no upstream")
        self.input.update(endpoints, upstream_finished)

    def metrics(self) -> StageWorkerMetrics:
        """A snapshot of the worker's counters."""
        output, stage_input = self.output, self.input
        connections = output.connections  # before events_out: see StageWorkerMetrics
        events_out = self.executor.events_out
        to_stage = output if isinstance(output, StageOutputServer) else None
        return StageWorkerMetrics(
            stage_number=self.plan.stage_number, port=output.port, state=self.state,
            events_in=self.executor.events_in, events_out=events_out,
            dropped_events=output.dropped_events, queue_depth=output.queued_batches,
            output_connections=connections,
            upstream_connections=stage_input.connected if stage_input else 0,
            bytes_in=stage_input.bytes_in if stage_input else 0,
            reconnects=stage_input.reconnects if stage_input else 0,
            delivered_events=to_stage.delivered_events if to_stage is not None else 0,
            lost_events=to_stage.lost_events if to_stage is not None else 0,
            in_flight_events=to_stage.in_flight_events if to_stage is not None else 0,
            busy_seconds=self.executor.busy_seconds, user=self.context.metrics.snapshot())

    def drain(self, timeout: float = 10.0) -> bool:
        """Leave the job without losing an event (the stage is scaled down): ask every
        upstream worker to send nothing more and end this worker's stream, work through
        what was sent, pass it on, and complete.  True once completed within ``timeout``
        s; False for stage 1 (its source cannot be handed over) or on timeout, when the
        caller stops it."""
        if self.input is None or self.runtime.state != RUNNING:
            return False
        self.input.leave()
        return self.wait(timeout) and self.runtime.state == COMPLETED

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop the pipeline, disconnect input and output, wait up to ``timeout`` s; True if all ended.

        Nothing is passed on downstream: the next stage keeps waiting for a replacement.
        A worker stopped before it failed ends "completed".
        """
        with self._lock:
            if self.runtime.state not in ENDED:
                self._handle("stop")
            started = self.runtime.started_at is not None
        if self.input is not None:
            self.input.close()
        if isinstance(self.output, StageOutputServer):
            # First, so that a publish blocked on a stalled next-stage worker returns now;
            # nothing is passed on anyway.  Subscribers still get the last stage's tail.
            self.output.close()
        stopped = self.executor.stop(timeout)
        self.output.close()
        if not started:
            self._settle()
            return stopped
        return self._finished.wait(timeout) and stopped

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker is completed or failed (True) or ``timeout`` passes (False)."""
        return self._finished.wait(timeout)

    def __enter__(self) -> StageWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self) -> None:
        if not self.plan.is_last:
            self._wait_for_downstream()
        with self._lock:
            if not self._stopping:
                self.executor.start()
        self.executor.wait()
        with self._lock:
            pass_end_on = not self._stopping and self.executor.state == COMPLETED
        if pass_end_on:
            if isinstance(self.output, StageOutputServer):
                passed = self.output.finish(self.finish_timeout_s)
            else:
                passed = self.output.drain(self.finish_timeout_s)
            if not passed:
                log.warning("job '%s' stage %d worker %d: output not fully passed on within %.1fs",
                            self.job.name, self.plan.stage_number, self.context.worker_index,
                            self.finish_timeout_s)
        self._settle()

    def _wait_for_downstream(self) -> None:
        output = self.output
        if not isinstance(output, StageOutputServer):
            return  # the last stage: its subscribers come and go, nobody to wait for
        if self.downstream_wait_s <= 0:
            return  # asked not to wait: start at once, whoever is connected
        waited = 0.0
        while waited < self.downstream_wait_s and not self._stopping:
            if output.wait_for_downstream(min(STOP_CHECK_S, self.downstream_wait_s - waited)):
                return
            waited += STOP_CHECK_S
        if not self._stopping:
            log.warning("job '%s' stage %d worker %d: next stage not fully connected after %.1fs "
                        "(connected: %s); starting anyway", self.job.name, self.plan.stage_number,
                        self.context.worker_index, self.downstream_wait_s,
                        list(output.connected_indexes))

    def _settle(self) -> None:
        """Make the executor's outcome the worker's state, once."""
        with self._lock:
            if self.runtime.state in ENDED:
                return
            self._handle("fail" if self.executor.state == FAILED else "complete")
