"""Building blocks for job sources that generate events (or batches of them) in a loop.

A generating loop must not run inside ``subscribe`` on the subscriber's thread:
reactivex runs ``subscribe`` inside that thread's trampoline, and every operator that
schedules on the current thread (``flat_map`` over a list, ``from_iterable``, ``concat``
...) would wait in the trampoline's queue until the loop ends, which for an endless
source is never, while the queue grows.  ``paced_source`` therefore emits from a
thread of its own, paces itself to a target rate without sleeping once per event, and
stops promptly on ``context.stopped`` or on dispose.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import reactivex
from reactivex.disposable import Disposable

from mantis.job_dsl import Context

# Events emitted between two looks at the stop signals (and at the clock when paced):
# small enough to stop within a millisecond or so, large enough to cost nothing per event.
CHUNK = 256
# Longest sleep between looks at context.stopped (dispose wakes the loop at once).
STOP_POLL_S = 0.05


def paced_source(context: Context, make_event: Callable[[int], Any],
                 rate: float = 0, limit: int = 0) -> reactivex.Observable:
    """An Observable of ``make_event(0)``, ``make_event(1)``, ... emitted from a daemon thread.

    ``rate`` is events per second (0 or less: as fast as possible); ``limit`` is how many
    events to emit before completing (0: never complete).  The loop ends without
    completing when ``context.stopped`` is set or the subscription is disposed.  An
    exception from ``make_event`` is sent as on_error.  Each subscription runs its own loop.
    """

    def subscribe(observer, scheduler=None) -> Disposable:
        halted = threading.Event()

        def should_stop() -> bool:
            return halted.is_set() or context.stopped.is_set()

        def emit() -> None:
            on_next = observer.on_next
            n = 0
            start = time.monotonic()
            try:
                while not should_stop() and (not limit or n < limit):
                    if rate <= 0:
                        end = n + CHUNK if not limit else min(n + CHUNK, limit)
                    else:
                        # Emit every event that is due by now, at most a chunk at a time
                        # so that stopping stays prompt while catching up.
                        due = int((time.monotonic() - start) * rate) + 1
                        end = min(due, n + CHUNK, limit or due)
                    for i in range(n, end):
                        on_next(make_event(i))
                    n = end
                    if rate > 0 and n >= due:
                        pause = start + n / rate - time.monotonic()
                        if pause > 0:
                            halted.wait(min(pause, STOP_POLL_S))
            except Exception as exc:  # make_event is user code
                observer.on_error(exc)
                return
            if not should_stop():
                observer.on_completed()

        threading.Thread(target=emit, daemon=True, name="paced-source").start()
        return Disposable(halted.set)

    return reactivex.create(subscribe)


def paced_batches(context: Context, make_event: Callable[[int], Any], rate: float = 0,
                  limit: int = 0, batch_size: int = 1000) -> reactivex.Observable:
    """Like ``paced_source`` but emits lists: ``[make_event(0), ..., make_event(k-1)]``, ...

    Wrap the factory that returns it in ``mantis.job_dsl.BatchSource`` so the runtime
    knows its items are batches.  Batches hold at most ``batch_size`` events; when paced
    (``rate`` > 0) a batch holds what is due, so a slow stream is not held back waiting
    for a full batch.  ``rate``, ``limit``, stopping and errors are as in ``paced_source``.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")

    def subscribe(observer, scheduler=None) -> Disposable:
        halted = threading.Event()

        def should_stop() -> bool:
            return halted.is_set() or context.stopped.is_set()

        def emit() -> None:
            on_next = observer.on_next
            n = 0
            start = time.monotonic()
            try:
                while not should_stop() and (not limit or n < limit):
                    end = n + batch_size if not limit else min(n + batch_size, limit)
                    if rate > 0:
                        due = int((time.monotonic() - start) * rate) + 1
                        end = min(end, due)
                    if end > n:
                        on_next([make_event(i) for i in range(n, end)])
                        n = end
                    if rate > 0:
                        # Sleep until a full batch is due (at most STOP_POLL_S, which also
                        # bounds the latency of a slow stream): waking per due event would
                        # make tiny batches and cost a wake-up each.
                        pause = start + (n + batch_size) / rate - time.monotonic()
                        if pause > 0:
                            halted.wait(min(pause, STOP_POLL_S))
            except Exception as exc:  # make_event is user code
                observer.on_error(exc)
                return
            if not should_stop():
                observer.on_completed()

        threading.Thread(target=emit, daemon=True, name="paced-batches").start()
        return Disposable(halted.set)

    return reactivex.create(subscribe)
