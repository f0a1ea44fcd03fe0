"""Stage concurrency: a stage's operators run in N lanes, each on a thread of its own.

``ProcessingStage(concurrency=N)`` makes a worker run N copies of the stage's operators
side by side.  Python runs one thread at a time, so lanes do not add CPU; they let a
stage whose operators wait (a lookup in another service, a disk read) keep N waits in
flight instead of one.

Input is dealt to the lanes by key when the previous stage is keyed (every event of a
key goes to the same lane, in order, so per-key state in the operators is touched by
one thread), else round-robin.  Batch operators get batches: keyed input is split into
one sub-batch per lane, scalar input goes round-robin by whole batch.

Each lane has a bounded queue (``LANE_QUEUE`` items) and a thread that feeds the lane's
operators from it: when a lane falls behind, dealing it input waits, which slows the
input (backpressure, as between workers).  Each lane keeps its input's order; the
lanes' outputs interleave, one ``on_next`` at a time.  The output completes when every
lane has completed; an error in any lane is the output's error.  Disposing stops the
lanes; their threads end.
"""
from __future__ import annotations

import itertools
import queue
import threading
from typing import Any, Callable

import reactivex
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.subject import Subject

from mantis.runtime.hash_ring import key_text

LANES_MARK = "__mantis_lanes__"
LANE_QUEUE = 64
_END = object()
_POLL_S = 0.1


def in_lanes(operators: Callable, lanes: int, lane_key: Callable[[Any], Any] | None = None,
             per_batch: bool = False) -> Callable:
    """``operators`` (a Stage, or a BatchStage when ``per_batch``) run in ``lanes`` lanes.

    ``lane_key(event)`` deals events (or, for batches, their events) to lanes by key;
    None deals round-robin.  ValueError for fewer than 1 lane.
    """
    if lanes < 1:
        raise ValueError("a stage needs at least one lane")

    def run(items: reactivex.Observable, context) -> reactivex.Observable:
        def subscribe(observer, scheduler=None):
            stopped = threading.Event()
            emit_lock = threading.Lock()
            queues = [queue.Queue(LANE_QUEUE) for _ in range(lanes)]
            inputs = [Subject() for _ in range(lanes)]
            remaining = [lanes]
            failed = []
            turns = itertools.count()
            subscriptions = CompositeDisposable()

            def emit(value) -> None:
                with emit_lock:
                    if not stopped.is_set():
                        observer.on_next(value)

            def fail(exc: Exception) -> None:
                with emit_lock:
                    if stopped.is_set():
                        return
                    stopped.set()
                    failed.append(exc)
                observer.on_error(exc)

            def lane_completed() -> None:
                with emit_lock:
                    remaining[0] -= 1
                    last = remaining[0] == 0 and not stopped.is_set()
                if last:
                    observer.on_completed()

            for lane in inputs:
                subscriptions.add(operators(lane, context).subscribe(emit, fail, lane_completed))

            def put(lane: int, item) -> None:
                while not stopped.is_set():
                    try:
                        queues[lane].put(item, timeout=_POLL_S)
                        return
                    except queue.Full:
                        continue

            def lane_of_key(event) -> int:
                # Lanes live in one process: Python's own string hash is consistent here.
                return hash(key_text(lane_key(event))) % lanes

            def deal(item) -> None:
                if lane_key is None:
                    put(next(turns) % lanes, item)
                elif not per_batch:
                    put(lane_of_key(item), item)
                else:
                    parts: dict[int, list] = {}
                    for event in item:
                        parts.setdefault(lane_of_key(event), []).append(event)
                    for lane, part in parts.items():
                        put(lane, part)

            def end_all() -> None:
                for lane in range(lanes):
                    put(lane, _END)

            def feed(lane: int) -> None:
                subject = inputs[lane]
                while not stopped.is_set():
                    try:
                        item = queues[lane].get(timeout=_POLL_S)
                    except queue.Empty:
                        continue
                    if item is _END:
                        subject.on_completed()
                        return
                    try:
                        subject.on_next(item)
                    except Exception as exc:  # user operators raising in a lane's thread
                        fail(exc)
                        return

            for lane in range(lanes):
                threading.Thread(target=feed, args=(lane,), daemon=True, name=f"stage-lane-{lane}").start()
            subscriptions.add(items.subscribe(deal, fail, end_all, scheduler=scheduler))
            subscriptions.add(Disposable(stopped.set))
            return subscriptions

        return reactivex.create(subscribe)

    setattr(run, LANES_MARK, True)
    return run
