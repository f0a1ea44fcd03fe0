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
from collections.abc import Callable
from typing import Any

import reactivex
from reactivex.disposable import CompositeDisposable, Disposable
from reactivex.subject import Subject

from mantis.runtime.hash_ring import key_text

LANES_MARK = "__mantis_lanes__"
LANE_QUEUE = 64
_END = object()
_POLL_S = 0.1


def in_lanes(operators: Callable, lanes: int, lane_key: Callable[[Any], Any] | None = None,
             per_batch: bool = False) -> Lanes:
    """``operators`` (a Stage, or a BatchStage when ``per_batch``) run in ``lanes`` lanes.

    ``lane_key(event)`` deals events (or, for batches, their events) to lanes by key;
    None deals round-robin.  ValueError for fewer than 1 lane.
    """
    return Lanes(operators, lanes, lane_key, per_batch)


class Lanes:
    """A stage's operators run in N lanes; called like the stage's operators,
    ``(items, context) -> Observable`` (see the module docstring).

    Each subscription gets lanes of its own (a ``_LaneRun``).  Carries ``LANES_MARK``,
    so a job never wraps its stage in lanes twice.
    """

    def __init__(self, operators: Callable, lanes: int, lane_key: Callable[[Any], Any] | None = None,
                 per_batch: bool = False):
        if lanes < 1:
            raise ValueError("a stage needs at least one lane")
        self.operators = operators
        self.lanes = lanes
        self.lane_key = lane_key
        self.per_batch = per_batch
        setattr(self, LANES_MARK, True)

    def __call__(self, items: reactivex.Observable, context) -> reactivex.Observable:
        """The stage's output over ``items``: each subscription runs lanes of its own."""

        def subscribe(observer, scheduler=None):
            return _LaneRun(self, observer, context).start(items, scheduler)

        return reactivex.create(subscribe)


class _LaneRun:
    """One subscription of ``Lanes``: a queue, an input subject and a feeding thread per
    lane, and the one observer all lanes' outputs go to (one ``on_next`` at a time)."""

    def __init__(self, lanes: Lanes, observer, context):
        self.lanes = lanes
        self.count = lanes.lanes
        self.observer = observer
        self.context = context
        self.stopped = threading.Event()  # disposed or failed: lanes and dealing stop
        self.emit_lock = threading.Lock()
        self.queues: list[queue.Queue[Any]] = [queue.Queue(LANE_QUEUE) for _ in range(self.count)]
        self.inputs: list[Subject[Any]] = [Subject() for _ in range(self.count)]
        self.remaining = self.count  # lanes not completed yet
        self.turns = itertools.count()

    def start(self, items: reactivex.Observable, scheduler) -> CompositeDisposable:
        """Subscribe every lane's operators, start the lanes' threads, deal ``items`` to them."""
        subscriptions = CompositeDisposable()
        for lane_input in self.inputs:
            subscriptions.add(self.lanes.operators(lane_input, self.context).subscribe(
                self._emit, self._fail, self._lane_completed))
        for lane in range(self.count):
            threading.Thread(target=self._feed, args=(lane,), daemon=True, name=f"stage-lane-{lane}").start()
        subscriptions.add(items.subscribe(self._deal, self._fail, self._end_all, scheduler=scheduler))
        subscriptions.add(Disposable(self.stopped.set))
        return subscriptions

    # -- the lanes' outputs, merged -------------------------------------------------

    def _emit(self, value) -> None:
        with self.emit_lock:
            if not self.stopped.is_set():
                self.observer.on_next(value)

    def _fail(self, exc: Exception) -> None:
        # The first error, from the input or any lane, ends the output; later ones are moot.
        with self.emit_lock:
            if self.stopped.is_set():
                return
            self.stopped.set()
        self.observer.on_error(exc)

    def _lane_completed(self) -> None:
        with self.emit_lock:
            self.remaining -= 1
            last = self.remaining == 0 and not self.stopped.is_set()
        if last:
            self.observer.on_completed()

    # -- the input, dealt to the lanes ------------------------------------------------

    def _deal(self, item) -> None:
        lane_key, count = self.lanes.lane_key, self.count
        if lane_key is None:
            self._put(next(self.turns) % count, item)
        elif not self.lanes.per_batch:
            self._put(self._lane_of(lane_key, item), item)
        else:
            parts: dict[int, list] = {}
            for event in item:
                parts.setdefault(self._lane_of(lane_key, event), []).append(event)
            for lane, part in parts.items():
                self._put(lane, part)

    def _lane_of(self, lane_key: Callable[[Any], Any], event) -> int:
        # Lanes live in one process: Python's own string hash is consistent here.
        return hash(key_text(lane_key(event))) % self.count

    def _end_all(self) -> None:
        for lane in range(self.count):
            self._put(lane, _END)

    def _put(self, lane: int, item) -> None:
        # Waits while the lane is full (backpressure), but gives up once stopped.
        while not self.stopped.is_set():
            try:
                self.queues[lane].put(item, timeout=_POLL_S)
                return
            except queue.Full:
                continue

    def _feed(self, lane: int) -> None:
        """One lane's thread: hand its queued items to its operators until the end or a stop."""
        subject, items = self.inputs[lane], self.queues[lane]
        while not self.stopped.is_set():
            try:
                item = items.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if item is _END:
                subject.on_completed()
                return
            try:
                subject.on_next(item)
            except Exception as exc:  # user operators raising in a lane's thread
                self._fail(exc)
                return
