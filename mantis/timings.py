"""Latency histograms kept by a process that does not serve metrics itself.

The master's actors run in processes of their own (the scheduler, each shard), and only
the API process serves ``/metrics``.  So an actor keeps its timings in a
``prometheus_client`` Histogram on a private registry, and answers ``snapshot()`` when
asked (``actors.messages.GetTimings``); the API merges the snapshots of every shard
and exports them (``webapi.metrics``).  Buckets are cumulative, as Prometheus wants them.
"""
from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Histogram

# From half a millisecond (an fsync on a fast disk) to ten seconds (a stuck ZooKeeper).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Timing:
    """One latency histogram in seconds; ``observe`` it, ``snapshot`` it for the API."""

    def __init__(self, name: str, buckets: tuple[float, ...] = BUCKETS):
        self._histogram = Histogram(name, name, buckets=buckets, registry=CollectorRegistry())

    def observe(self, seconds: float) -> None:
        """Count one duration (negative ones, from a clock step, as zero)."""
        self._histogram.observe(max(0.0, seconds))

    def snapshot(self) -> dict:
        """``{"buckets": [[upper bound, cumulative count], ..., ["+Inf", n]], "sum": s}`` (plain
        data, so it travels in an actor message)."""
        buckets, total = [], 0.0
        for metric in self._histogram.collect():
            for sample in metric.samples:
                if sample.name.endswith("_bucket"):
                    buckets.append([sample.labels["le"], sample.value])
                elif sample.name.endswith("_sum"):
                    total = sample.value
        return {"buckets": buckets, "sum": total}


def merge(snapshots: Iterable[dict | None]) -> dict | None:
    """The sum of histogram snapshots with the same buckets (None when there is none)."""
    merged: dict | None = None
    for snap in snapshots:
        if not snap:
            continue
        if merged is None:
            merged = {"buckets": [list(b) for b in snap["buckets"]], "sum": snap["sum"]}
            continue
        for mine, theirs in zip(merged["buckets"], snap["buckets"], strict=True):
            mine[1] += theirs[1]
        merged["sum"] += snap["sum"]
    return merged


def bound(le: str) -> float:
    """A bucket's upper bound as a number (``+Inf`` is infinity)."""
    return math.inf if le == "+Inf" else float(le)
