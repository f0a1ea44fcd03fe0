"""Runs one worker's pipeline: input -> stage operators -> batches -> publish.

The input is the job's source (a stage 1 worker) or the batches a stage n > 1 worker
receives from stage n-1 (``upstream``).  The stage's operators are per event or per
batch (``ProcessingStage``); ``mantis.runtime.batching`` converts between the forms
where input and operators differ.  What leaves the pipeline is batches, because
everything downstream (encoding, sockets) is far cheaper per event in batches
(ARCHITECTURE.md, "The data plane: measured").  A batch is published when it holds
``batch_size`` events, or at the latest ``batch_interval_s`` after the previous time
flush, so a slow stream still flows.

The pipeline runs on a daemon thread of its own and the time flush on another; the
caller needs no event loop and no signal handler, so an actor can own an executor and
poll ``state`` from its own message handlers.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import reactivex
from reactivex.abc import DisposableBase

from mantis.runtime.batching import batches_of, events_of
from mantis.sdk.job_dsl import BatchSource, Context, Job, error_line

log = logging.getLogger("mantis.runtime.executor")

DEFAULT_BATCH_SIZE = 1000
DEFAULT_BATCH_INTERVAL_S = 0.1

CREATED, RUNNING, COMPLETED, FAILED = "created", "running", "completed", "failed"


class StageExecutor:
    """One worker of stage ``context.stage_number`` of a job, publishing its output in ordered batches.

    A stage 1 executor runs the job's source; a stage n > 1 executor needs ``upstream``,
    an Observable of batches from stage n-1 (``StageInput.batches``).  Batches go to
    ``job.sink(batch, context)`` when this is the last stage and the job has a sink,
    otherwise to ``publish(batch)``.  ``state`` moves created -> running -> completed
    (the input completed, or ``stop`` was called) or failed (user code or publish
    raised; ``error`` says what in one line).  Exceptions never escape to the caller's
    threads.  ``events_in`` counts events entering the stage's operators,
    ``events_out`` events published.  ValueError for a stage number the job does not
    have, or a missing publish function or upstream.
    """

    def __init__(self, job: Job, context: Context, publish: Callable[[list], None] | None = None,
                 batch_size: int = DEFAULT_BATCH_SIZE,
                 batch_interval_s: float = DEFAULT_BATCH_INTERVAL_S,
                 upstream: reactivex.Observable | None = None):
        if batch_size < 1 or batch_interval_s <= 0:
            raise ValueError("batch_size must be at least 1 and batch_interval_s positive")
        self.plan = job.worker_plan(context.stage_number)
        if self.plan.is_last and job.sink is not None:
            sink = job.sink
            self._deliver = lambda batch: sink(batch, context)
        elif publish is not None:
            self._deliver = publish
        else:
            raise ValueError(f"job '{job.name}' stage {self.plan.stage_number} does not end in a sink, "
                             "so the executor needs a publish function")
        if not self.plan.reads_source and upstream is None:
            raise ValueError(f"job '{job.name}' stage {self.plan.stage_number} reads stage "
                             f"{self.plan.stage_number - 1}, so the executor needs its upstream")
        self.upstream = upstream
        self.job = job
        self.context = context
        self.batch_size = batch_size
        self.batch_interval_s = batch_interval_s
        self.events_in = 0
        self.events_out = 0
        # Busy time: seconds the pipeline thread spent in the stage's operators (and in a
        # sink), not waiting for input nor blocked publishing to a slow next stage; its
        # share of the time is what Flink calls busy time, and events / busy seconds is
        # the stage's true processing rate.
        self.busy_seconds = 0.0
        self._publish_blocks = not (self.plan.is_last and job.sink is not None)
        self._publishing_s = 0.0  # time the pipeline thread spent in publish (subtracted)
        self._pipeline_thread: int | None = None
        self.error: str | None = None
        self._state = CREATED
        # The pipeline appends to _pending without a lock (list.append is atomic); only
        # taking a batch out needs _flush_lock, so the per-event path stays lock-free.
        # Takers slice off the front and delete exactly what they took, so an event
        # appended meanwhile by another thread is kept for the next batch, and
        # publishing under the lock keeps batches in order.
        self._pending: list = []
        self._flush_lock = threading.Lock()
        self._delivering = True
        self._outcome_lock = threading.Lock()
        self._outcome: tuple[str, str | None] | None = None
        self._ended = threading.Event()    # the pipeline should end: completed, failed or stopped
        self._finished = threading.Event()  # final batch published and state terminal
        self._subscription: DisposableBase | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"stage-{job.name}")
        self._flusher = threading.Thread(target=self._flush_on_time, daemon=True,
                                         name=f"stage-flush-{job.name}")

    @property
    def state(self) -> str:
        """One of "created", "running", "completed", "failed"."""
        return self._state

    def start(self) -> None:
        """Start the pipeline thread; RuntimeError if already started."""
        if self._state != CREATED:
            raise RuntimeError(f"executor for job '{self.job.name}' was already started")
        self._state = RUNNING
        self._thread.start()
        self._flusher.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the pipeline to end and wait up to ``timeout`` s; True once it has finished.

        Sets ``context.stopped`` (for the source) and disposes the subscription; what the
        stage already produced is published.  A stopped executor ends "completed" unless
        it had failed.  If the source ignores ``stopped`` and the wait times out, the
        executor is finished anyway and anything it emits later is discarded.
        """
        self._end(COMPLETED, None)
        if self._state == CREATED:
            self._finish()
            return True
        if self._finished.wait(timeout):
            return True
        log.warning("job '%s': source did not stop within %.1fs; abandoning its thread",
                    self.job.name, timeout)
        # The pipeline thread may be stuck inside publish itself, so do not wait for it.
        self._finish(final_flush=False)
        return False

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the executor is completed or failed (True) or ``timeout`` passes (False)."""
        return self._finished.wait(timeout)

    # -- the pipeline thread ---------------------------------------------------------

    def _run(self) -> None:
        try:
            output = self._build_pipeline()
        except _PipelineError as exc:
            self._end(FAILED, str(exc))
        else:
            self._subscribe(output)
        self._ended.wait()
        subscription = self._subscription
        if subscription is not None:
            subscription.dispose()
        self._finish()

    def _build_pipeline(self) -> reactivex.Observable:
        """The stage's output Observable (events, or batches for a batch stage), input counted."""
        stage = self.plan.stage
        if self.plan.reads_source:
            try:
                source = self.job.source(self.context)
            except Exception as exc:
                raise _PipelineError(f"source failed to start: {error_line(exc)}") from exc
            if not isinstance(source, reactivex.Observable):
                raise _PipelineError(f"source returned {type(source).__name__}, not an Observable")
            input_is_batches = isinstance(self.job.source, BatchSource)
        else:
            if self.upstream is None:  # refused by __init__; checked for the type
                raise _PipelineError("no upstream to read")
            source, input_is_batches = self.upstream, True
        if input_is_batches:
            source = self._counted_batches(source)
            stage_input = source if stage.per_batch else events_of(source)
        else:
            source = self._counted_events(source)
            stage_input = (batches_of(source, self.batch_size, self.batch_interval_s)
                           if stage.per_batch else source)
        operators = stage.given_operators
        try:
            output = operators(stage_input, self.context)
        except Exception as exc:
            raise _PipelineError(f"stage failed to build: {error_line(exc)}") from exc
        if not isinstance(output, reactivex.Observable):
            raise _PipelineError(f"stage returned {type(output).__name__}, not an Observable")
        return output

    def _counted_events(self, source: reactivex.Observable) -> reactivex.Observable:
        """``source`` with every event counted into ``events_in``."""

        def subscribe(observer, scheduler=None):
            forward = observer.on_next

            def on_next(event) -> None:
                self.events_in += 1
                self._busy(forward, event)

            return source.subscribe(on_next, observer.on_error, observer.on_completed,
                                    scheduler=scheduler)

        return reactivex.create(subscribe)

    def _counted_batches(self, source: reactivex.Observable) -> reactivex.Observable:
        """``source`` (of batches) with every batch's events counted into ``events_in``."""

        def subscribe(observer, scheduler=None):
            forward = observer.on_next

            def on_next(batch: list) -> None:
                self.events_in += len(batch)
                self._busy(forward, batch)

            return source.subscribe(on_next, observer.on_error, observer.on_completed,
                                    scheduler=scheduler)

        return reactivex.create(subscribe)

    def _busy(self, forward: Callable[[Any], None], item: Any) -> None:
        """``forward(item)`` through the operators, its time counted into ``busy_seconds``
        less the time spent blocked in publish on this thread."""
        self._pipeline_thread = threading.get_ident()
        publishing = self._publishing_s
        start = time.perf_counter()
        try:
            forward(item)
        finally:
            spent = time.perf_counter() - start - (self._publishing_s - publishing)
            self.busy_seconds += max(spent, 0.0)

    def _subscribe(self, output: reactivex.Observable) -> None:
        pending, size, flush = self._pending, self.batch_size, self._flush
        append, extend = pending.append, pending.extend

        def on_event(event) -> None:
            append(event)
            if len(pending) >= size:
                flush()

        def on_error(exc: Exception) -> None:
            log.warning("job '%s' failed", self.job.name, exc_info=exc)
            self._end(FAILED, error_line(exc))

        def on_batch(batch: list) -> None:
            if type(batch) is not list:
                # Fail with a clear reason rather than publish something that is not a batch.
                on_error(TypeError(f"a batch stage must emit lists of events, "
                                   f"not {type(batch).__name__}"))
                return
            extend(batch)
            if len(pending) >= size:
                flush()

        def on_completed() -> None:
            self._end(COMPLETED, None)

        try:
            # A source that emits synchronously runs inside this call until it ends.
            self._subscription = output.subscribe(
                on_batch if self.plan.stage.per_batch else on_event, on_error, on_completed)
        except Exception as exc:
            on_error(exc)

    def _flush_on_time(self) -> None:
        while not self._ended.wait(self.batch_interval_s):
            self._flush()

    def _flush(self) -> None:
        with self._flush_lock:
            pending = self._pending
            if not self._delivering:
                pending.clear()
                return
            taken = len(pending)
            if not taken:
                return
            batch = pending[:taken]
            del pending[:taken]
            start = time.perf_counter()
            try:
                self._deliver(batch)
            except Exception as exc:
                log.warning("job '%s': publishing failed", self.job.name, exc_info=exc)
                self._delivering = False
                self._end(FAILED, f"publish failed: {error_line(exc)}")
                return
            finally:
                if self._publish_blocks and threading.get_ident() == self._pipeline_thread:
                    self._publishing_s += time.perf_counter() - start
            self.events_out += taken

    def _end(self, state: str, error: str | None) -> None:
        """Record how the pipeline ends (the first outcome wins) and tell the source to stop."""
        with self._outcome_lock:
            if self._outcome is None:
                self._outcome = (state, error)
        self.context.stopped.set()
        self._ended.set()

    def _finish(self, final_flush: bool = True) -> None:
        """Publish what is left (if asked), stop delivering and make the outcome the state, once."""
        if final_flush:
            self._flush()
            with self._flush_lock:
                self._delivering = False
        else:
            self._delivering = False
        with self._outcome_lock:
            if self._finished.is_set():
                return
            state, error = self._outcome or (COMPLETED, None)
            self.error = error
            self._state = state
            self._finished.set()
        log.info("job '%s' stage %d worker %d %s%s", self.job.name, self.context.stage_number,
                 self.context.worker_index, state, f": {error}" if error else "")


class _PipelineError(Exception):
    """The job's source or stage could not be built; the message is the one-line reason."""
