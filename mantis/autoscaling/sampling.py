"""From workers' metric snapshots to one sample per stage over a sliding window.

A worker's snapshot is what its metrics endpoint serves (``WorkerMetrics.snapshot``):
counters that only grow (``eventsIn``, ``eventsOut``, ``droppedEvents``, ``busySeconds``,
``cpuSeconds``, ``bytesIn``, ``bytesOut``), gauges (``rssMB``, ``queueDepth``) and the
job's own metrics (``user``).  ``MetricWindow`` keeps each worker's snapshots of the
last ``window_s`` seconds; ``sample`` turns the growth of each worker's counters over
the window into rates and shares, and averages the gauges over the stage's workers.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

# The metric a source uses to say how far behind its schedule it is (events); its
# growth is demand the next stage did not see (the source was held back).
BACKLOG_METRIC = "backlog"


@dataclass(frozen=True)
class Machine:
    """What one worker of the stage was given (for CPU, memory and network as percentages)."""

    cpu_cores: float = 1.0
    memory_mb: float = 1024.0
    network_mbps: float = 128.0


@dataclass(frozen=True)
class StageSample:
    """One stage over the window: ``values`` by Mantis reason (CPU, Memory, Network: % of
    the worker's allocation, averaged; DataDrop: % of events dropped; RPS: events in per
    second per worker), ``user`` (the job's metrics averaged over workers), and for
    one-step sizing ``input_rate`` (events/s into the stage), ``events`` and
    ``busy_seconds`` (summed over workers), ``busy`` (the average busy share 0..1) and
    ``backlog_rate`` (how fast work for this stage piles up upstream: see
    ``MetricWindow.backlog_rate``)."""

    stage: int
    at: float
    workers: int
    values: dict[str, float] = field(default_factory=dict)
    user: dict[str, float] = field(default_factory=dict)
    input_rate: float = 0.0
    events: float = 0.0
    busy_seconds: float = 0.0
    busy: float = 0.0
    backlog_rate: float = 0.0

    def to_json(self) -> dict[str, Any]:
        """The sample as a decision records it."""
        return {"stage": self.stage, "at": self.at, "workers": self.workers,
                "values": {k: round(v, 3) for k, v in self.values.items()},
                "user": {k: round(v, 3) for k, v in self.user.items()},
                "inputRate": round(self.input_rate, 2), "events": self.events,
                "busySeconds": round(self.busy_seconds, 3), "busy": round(self.busy, 3),
                "backlogRate": round(self.backlog_rate, 2)}


def _delta(old: dict, new: dict, name: str) -> float:
    return max(float(new.get(name, 0) or 0) - float(old.get(name, 0) or 0), 0.0)


class MetricWindow:
    """Each worker's snapshots over the last ``window_s`` seconds, by worker key and stage."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self._snapshots: dict[str, deque] = {}  # key -> deque[(t, snapshot)]
        self._stage: dict[str, int] = {}

    def add(self, key: str, stage: int, at: float, snapshot: dict) -> None:
        """Record ``snapshot`` of worker ``key`` (of ``stage``) taken at ``at``."""
        snaps = self._snapshots.setdefault(key, deque())
        snaps.append((at, snapshot))
        self._stage[key] = stage
        # Keep one snapshot at or before the window's start, so the window is whole.
        while len(snaps) > 2 and snaps[1][0] <= at - self.window_s:
            snaps.popleft()

    def keep_only(self, keys: set[str]) -> None:
        """Forget workers not in ``keys`` (ended, scaled away)."""
        for key in [k for k in self._snapshots if k not in keys]:
            del self._snapshots[key]
            del self._stage[key]

    def _spans(self, stage: int) -> list[tuple[float, dict, dict]]:
        spans = []
        for key, snaps in self._snapshots.items():
            if self._stage[key] == stage and len(snaps) >= 2:
                (t0, old), (t1, new) = snaps[0], snaps[-1]
                if t1 > t0:
                    spans.append((t1 - t0, old, new))
        return spans

    def sample(self, stage: int, at: float, machine: Machine = Machine()) -> StageSample | None:
        """The stage's sample, or None while no worker of it has two snapshots."""
        spans = self._spans(stage)
        if not spans:
            return None
        n = len(spans)
        events = sum(_delta(o, w, "eventsIn") for _, o, w in spans)
        busy_s = sum(_delta(o, w, "busySeconds") for _, o, w in spans)
        input_rate = sum(_delta(o, w, "eventsIn") / dt for dt, o, w in spans)
        out = sum(_delta(o, w, "eventsOut") for _, o, w in spans)
        dropped = sum(_delta(o, w, "droppedEvents") for _, o, w in spans)
        cpu = sum(_delta(o, w, "cpuSeconds") / dt for dt, o, w in spans) / n * 100.0 / machine.cpu_cores
        memory = sum(float(w.get("rssMB", 0) or 0) for _, _, w in spans) / n / machine.memory_mb * 100.0
        net_bytes = sum((_delta(o, w, "bytesIn") + _delta(o, w, "bytesOut")) / dt for dt, o, w in spans) / n
        network = net_bytes / (machine.network_mbps * 125_000.0) * 100.0
        user: dict[str, float] = {}
        for _, _, w in spans:
            for name, value in (w.get("user") or {}).items():
                if isinstance(value, (int, float)):
                    user[name] = user.get(name, 0.0) + float(value) / n
        values = {"CPU": cpu, "Memory": memory, "Network": network,
                  "DataDrop": 100.0 * dropped / (dropped + out) if dropped + out > 0 else 0.0,
                  "RPS": input_rate / n}
        return StageSample(stage=stage, at=at, workers=n, values=values, user=user,
                           input_rate=input_rate, events=events, busy_seconds=busy_s,
                           busy=sum(_delta(o, w, "busySeconds") / dt for dt, o, w in spans) / n,
                           backlog_rate=self.backlog_rate(stage - 1))

    def backlog_rate(self, stage: int) -> float:
        """How fast work for the next stage piles up at ``stage``'s workers (events/s, summed):
        the growth of their ``backlog`` metric (a source behind its schedule) and of what
        they published that the next stage has not received (queued or in flight: events
        out less delivered, dropped and lost).  Negative while a pile shrinks."""
        rate = 0.0
        for dt, old, new in self._spans(stage):
            before = (old.get("user") or {}).get(BACKLOG_METRIC)
            after = (new.get("user") or {}).get(BACKLOG_METRIC)
            if isinstance(before, (int, float)) and isinstance(after, (int, float)):
                rate += (after - before) / dt
            rate += (_buffered(new) - _buffered(old)) / dt
        return rate


def _buffered(snapshot: dict) -> float:
    """Events a worker published that its next stage has not received yet."""
    out = float(snapshot.get("eventsOut", 0) or 0)
    gone = sum(float(snapshot.get(name, 0) or 0) for name in ("deliveredEvents", "droppedEvents", "lostEvents"))
    return max(out - gone, 0.0) if "deliveredEvents" in snapshot else 0.0
