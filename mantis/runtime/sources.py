"""Observables fed by a thread of their own: the one way the runtime's sources are built.

A feeding loop must not run inside ``subscribe`` on the subscriber's thread: reactivex
runs ``subscribe`` inside that thread's trampoline, and every operator that schedules
on the current thread (``flat_map`` over a list, ``from_iterable``, ``concat`` ...)
would wait in the trampoline's queue until the loop ends, which for an endless source
is never, while the queue grows.  So every source here (and ``line_sources``,
``job_source``) is a ``thread_fed`` Observable: each subscription runs its feed on a
daemon thread and stops it promptly on ``context.stopped`` or on dispose (``Halt``).

``paced_source`` and ``paced_batches`` generate events in a loop, paced to a target
rate without sleeping once per event.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import reactivex
from reactivex.disposable import Disposable

from mantis.sdk.job_dsl import Context

# Events emitted between two looks at the stop signals (and at the clock when paced):
# small enough to stop within a millisecond or so, large enough to cost nothing per event.
CHUNK = 256
# Longest wait between looks at context.stopped (dispose wakes everything at once).
STOP_POLL_S = 0.05


class Halt:
    """The stop signal of one subscription's feed: set on dispose, when ``context.stopped``
    is set, or when the feed itself has ended.

    ``is_set`` sees ``context.stopped`` at once; ``wait`` is woken at once by dispose
    and within ``STOP_POLL_S`` by ``context.stopped``.  ``on_halt(callback)`` runs
    ``callback`` once when the halt comes (at once if it already came): the way a feed
    unblocks a read it may be stuck in (shut a socket down).
    """

    def __init__(self, context: Context):
        self._context = context
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[], None]] | None = []  # None once they have run

    def is_set(self) -> bool:
        """True once the feed must stop."""
        return self._event.is_set() or self._context.stopped.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Sleep until the halt or ``timeout`` s; whether the feed must stop."""
        self._event.wait(timeout)
        return self.is_set()

    def set(self) -> None:
        """Halt the feed: wake its waits and run its callbacks (once)."""
        self._event.set()
        with self._lock:
            callbacks, self._callbacks = self._callbacks, None
        for callback in callbacks or ():
            callback()

    def on_halt(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` when the halt comes, or now if it has come."""
        with self._lock:
            if self._callbacks is not None:
                self._callbacks.append(callback)
                return
        callback()

    def watch_context(self) -> None:
        """Until the halt: turn ``context.stopped`` into a halt (run on a thread of its own)."""
        while not self._event.wait(STOP_POLL_S):
            if self._context.stopped.is_set():
                self.set()


def thread_fed(context: Context, name: str,
               feed: Callable[[Callable[[Any], None], Halt], None]) -> reactivex.Observable:
    """An Observable whose items come from ``feed(emit, halt)``, run on a daemon thread named
    ``name``, one run per subscription.

    ``feed`` calls ``emit(item)`` per item, returns to complete and raises to fail, and
    must return soon after ``halt`` is set (see ``Halt``).  A feed that ends because
    the subscription was disposed or ``context.stopped`` was set neither completes nor
    fails: nobody is listening for that.  When the feed ends, ``halt`` is set, so the
    threads it started (and the stop watcher, ``{name}-stop``) end with it.
    """

    def subscribe(observer, scheduler=None) -> Disposable:
        halt = Halt(context)

        def run() -> None:
            failure = None
            try:
                feed(observer.on_next, halt)
            except Exception as exc:  # the feed, or the operators after it, are user code
                failure = exc
            stopped = halt.is_set()  # before our own set below: stopped from outside
            halt.set()
            if stopped:
                return
            if failure is not None:
                observer.on_error(failure)
            else:
                observer.on_completed()

        threading.Thread(target=halt.watch_context, daemon=True, name=f"{name}-stop").start()
        threading.Thread(target=run, daemon=True, name=name).start()
        return Disposable(halt.set)

    return reactivex.create(subscribe)


def paced_source(context: Context, make_event: Callable[[int], Any],
                 rate: float = 0, limit: int = 0) -> reactivex.Observable:
    """An Observable of ``make_event(0)``, ``make_event(1)``, ... emitted from a daemon thread.

    ``rate`` is events per second (0 or less: as fast as possible); ``limit`` is how many
    events to emit before completing (0: never complete).  The loop ends without
    completing when ``context.stopped`` is set or the subscription is disposed.  An
    exception from ``make_event`` is sent as on_error.  Each subscription runs its own loop.
    """

    def feed(emit: Callable[[Any], None], halt: Halt) -> None:
        # Wait for just the next event: a paced stream of single events goes out as due.
        for n, end in _paced_ranges(rate, limit, CHUNK, halt, wait_for=0):
            for i in range(n, end):
                emit(make_event(i))

    return thread_fed(context, "paced-source", feed)


def paced_batches(context: Context, make_event: Callable[[int], Any], rate: float = 0,
                  limit: int = 0, batch_size: int = 1000) -> reactivex.Observable:
    """Like ``paced_source`` but emits lists: ``[make_event(0), ..., make_event(k-1)]``, ...

    Wrap the factory that returns it in ``mantis.sdk.job_dsl.BatchSource`` so the runtime
    knows its items are batches.  Batches hold at most ``batch_size`` events; when paced
    (``rate`` > 0) a batch holds what is due, so a slow stream is not held back waiting
    for a full batch.  ``rate``, ``limit``, stopping and errors are as in ``paced_source``.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")

    def feed(emit: Callable[[Any], None], halt: Halt) -> None:
        # Sleep until a full batch is due (at most STOP_POLL_S, which also bounds the
        # latency of a slow stream): waking per due event would make tiny batches and
        # cost a wake-up each.
        for n, end in _paced_ranges(rate, limit, batch_size, halt, wait_for=batch_size):
            emit([make_event(i) for i in range(n, end)])

    return thread_fed(context, "paced-batches", feed)


def _paced_ranges(rate: float, limit: int, step: int, halt: Halt, wait_for: int) -> Iterator[tuple[int, int]]:
    """Ranges ``(n, end)`` of event numbers to emit now, at most ``step`` long, until ``limit``
    (0: forever) or the halt.

    Paced (``rate`` > 0), a range holds what is due by now; then the loop sleeps until
    ``wait_for`` more events are due (never longer than ``STOP_POLL_S`` at a time).
    """
    n = 0
    start = time.monotonic()
    while not halt.is_set() and (not limit or n < limit):
        end = n + step if not limit else min(n + step, limit)
        if rate > 0:
            end = min(end, int((time.monotonic() - start) * rate) + 1)
        if end > n:
            yield n, end
            n = end
        if rate > 0:
            pause = start + (n + wait_for) / rate - time.monotonic()
            if pause > 0:
                halt.wait(min(pause, STOP_POLL_S))
