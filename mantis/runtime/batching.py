"""Moving between a stream of events and a stream of batches (lists of events).

A stage's input and its operators need not agree: a stage n > 1 worker receives
batches, a source may emit single events, and a stage may be written per event or per
batch.  ``events_of`` and ``batches_of`` convert between the two forms without any
reactivex machinery per event (``buffer_with_time_or_count`` builds a window Subject
and a flat_map per buffer, which costs more than the stage itself on fast streams).
"""
from __future__ import annotations

import threading

import reactivex
from reactivex.abc import DisposableBase, ObserverBase, SchedulerBase
from reactivex.disposable import CompositeDisposable, Disposable


def events_of(batches: reactivex.Observable) -> reactivex.Observable:
    """The events of every batch of ``batches``, in order, one on_next each."""

    def subscribe(observer, scheduler=None):
        on_next = observer.on_next

        def on_batch(batch: list) -> None:
            for event in batch:
                on_next(event)

        return batches.subscribe(on_batch, observer.on_error, observer.on_completed,
                                 scheduler=scheduler)

    return reactivex.create(subscribe)


def batches_of(events: reactivex.Observable, size: int, interval_s: float) -> reactivex.Observable:
    """``events`` gathered into lists of at most ``size``, in order, never empty.

    A batch is emitted when it is full, and a partial one at the latest ``interval_s``
    after the previous time check (from a daemon timer thread), so a slow stream still
    flows.  Emissions are serialised by a lock, so downstream operators see one thread
    at a time; the per-event path appends to a list and takes no lock.
    """
    if size < 1 or interval_s <= 0:
        raise ValueError("size must be at least 1 and interval_s positive")

    def subscribe(observer: ObserverBase[list], scheduler: SchedulerBase | None = None) -> DisposableBase:
        pending: list = []
        emit_lock = threading.Lock()
        ended = threading.Event()

        def emit_pending() -> None:
            with emit_lock:
                # Take exactly what is there: an event appended meanwhile by the source
                # thread stays for the next batch, so order is kept.
                taken = len(pending)
                if taken and not ended.is_set():
                    batch = pending[:taken]
                    del pending[:taken]
                    observer.on_next(batch)

        def on_next(event) -> None:
            pending.append(event)
            if len(pending) >= size:
                emit_pending()

        def on_error(exc: Exception) -> None:
            emit_pending()
            with emit_lock:
                ended.set()
                observer.on_error(exc)

        def on_completed() -> None:
            emit_pending()
            with emit_lock:
                ended.set()
                observer.on_completed()

        def flush_on_time() -> None:
            while not ended.wait(interval_s):
                emit_pending()

        threading.Thread(target=flush_on_time, daemon=True, name="batches-of").start()
        upstream = events.subscribe(on_next, on_error, on_completed, scheduler=scheduler)
        return CompositeDisposable(upstream, Disposable(ended.set))

    return reactivex.create(subscribe)
