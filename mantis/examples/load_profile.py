"""A load that follows a profile, into a stage with a known cost per event: the autoscaling example.

Entry point ``mantis.examples.load_profile:job``.  Two stages::

    source (events at the rates of ``profile``)   } stage 1, one worker: passes events on,
      -> stage 1: pass on                         } round-robin, with backpressure (block)
      -> stage 2: ``cost_ms`` of work per event   } declare it scalable: the Job Master sizes it
      -> sink: each worker appends the ids it got to ``<sink_dir>/sink-<workerNumber>.ids``

``profile`` is ``RATE:DURATION,...`` (``100:30s,400:60s,100:60s``: 100 events/s for 30 s,
then 400/s for 60 s, then 100/s for 60 s; durations in ``ms``, ``s`` or ``m``).  Event
``n`` is ``{"id": n, "key": "k<n % 64>"}``.  When stage 2 cannot keep up, stage 1 blocks
and the source falls behind its schedule; it says how far with the ``backlog`` gauge
(events due by now but not yet emitted), which the Job Master counts as demand.  At the
end of the profile the source emits what is still due and completes, so a run emits
exactly ``profile_events(profile)`` events and, with ``block``, each reaches the sink
(``sink_ids`` reads them back; ``sink_dir`` empty: no files).

Stage 2 works ``cost_ms`` per event by sleeping (the work of a call to another service),
so one worker handles ``1000 / cost_ms`` events per second whatever else the machine
runs: the size the stage needs is known, ``ceil(rate / (1000 / cost_ms) / utilisation)``.
"""
from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import reactivex
from reactivex import operators as ops

from mantis.examples.parameters import parsed_by
from mantis.runtime.sources import STOP_POLL_S, Halt, thread_fed
from mantis.sdk.job_dsl import BatchSource, Context, Job, ParameterDefinition, ProcessingStage, at_least

_STEP = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}
BATCH_MAX = 200


def parse_profile(text: str) -> list[tuple[float, float]]:
    """``"100:30s,400:60s"`` -> ``[(100.0, 30.0), (400.0, 60.0)]`` (events/s, seconds).
    ValueError naming the step at fault."""
    steps = []
    for part in str(text).split(","):
        m = _STEP.match(part)
        if not m:
            raise ValueError(f"profile step {part!r} is not RATE:DURATION (e.g. 100:30s)")
        steps.append((float(m.group(1)), float(m.group(2)) * _UNITS[m.group(3)]))
    if not steps or sum(d for _, d in steps) <= 0:
        raise ValueError("a profile needs at least one step with a duration")
    return steps


def due_by(steps: list[tuple[float, float]], elapsed: float) -> int:
    """How many events the profile has scheduled in its first ``elapsed`` seconds."""
    total, start = 0.0, 0.0
    for rate, duration in steps:
        total += rate * min(max(elapsed - start, 0.0), duration)
        start += duration
    return int(total)


def profile_events(text: str) -> int:
    """How many events a whole run of ``profile`` emits."""
    steps = parse_profile(text)
    return due_by(steps, sum(d for _, d in steps))


def profile_source(context: Context) -> reactivex.Observable:
    """Batches of events on the profile's schedule; sets the ``backlog`` gauge as it goes."""
    steps = parse_profile(context.parameters["profile"])
    length = sum(d for _, d in steps)
    backlog = context.metrics.gauge("backlog")
    emitted_counter = context.metrics.counter("emitted")

    def feed(emit: Callable[[Any], None], halt: Halt) -> None:
        start, n = time.monotonic(), 0
        total = due_by(steps, length)
        while not halt.is_set() and n < total:
            due = due_by(steps, time.monotonic() - start)
            backlog.set(max(due - n, 0))
            if due > n:
                end = min(due, n + BATCH_MAX)
                emit([{"id": i, "key": f"k{i % 64}"} for i in range(n, end)])  # blocks under backpressure
                emitted_counter.increment(end - n)
                n = end
            else:
                halt.wait(min(0.02, STOP_POLL_S))
        backlog.set(0)

    return thread_fed(context, "profile-source", feed)


def pass_on(batches: reactivex.Observable, context: Context) -> reactivex.Observable:
    """Stage 1: the events as they are."""
    return batches


def work(batches: reactivex.Observable, context: Context) -> reactivex.Observable:
    """Stage 2: ``cost_ms`` per event, spent waiting (see the module docstring)."""
    cost_s = float(context.parameters["cost_ms"]) / 1000.0

    def spend(batch: list) -> list:
        time.sleep(cost_s * len(batch))
        return batch

    return batches.pipe(ops.map(spend))


def id_sink(batch: list, context: Context) -> None:
    """Append the batch's ids to this worker's file in ``sink_dir`` (nothing if it is empty)."""
    directory = context.parameters["sink_dir"]
    if not directory:
        return
    path = os.path.join(directory, f"sink-{context.worker_number}.ids")
    with open(path, "a") as f:
        f.write("".join(f"{e['id']}\n" for e in batch))


def sink_ids(directory: str | Path) -> list[int]:
    """Every id the sink files in ``directory`` hold (duplicates kept)."""
    ids: list[int] = []
    for path in sorted(Path(directory).glob("sink-*.ids")):
        ids += [int(line) for line in path.read_text().split()]
    return ids


def needed_workers(rate: float, cost_ms: float, utilization: float) -> int:
    """The size stage 2 needs for ``rate`` events/s at ``utilization`` of each worker."""
    return max(1, math.ceil(rate / (1000.0 / cost_ms) / utilization - 1e-9))


job = Job(
    name="load_profile",
    description="A source following a rate profile into a stage with a known cost per event.",
    source=BatchSource(profile_source),
    stages=[ProcessingStage(name="pass", batch_operators=pass_on, on_slow_consumer="block"),
            ProcessingStage(name="work", batch_operators=work)],
    sink=id_sink,
    parameters=[
        ParameterDefinition("profile", "string", default="100:30s,400:60s,100:60s",
                            validator=(parsed_by(parse_profile, ValueError), "must be RATE:DURATION,..."),
                            description="events/s and how long, step by step"),
        ParameterDefinition("cost_ms", "float", default=5.0, validator=at_least(0.01),
                            description="milliseconds of work per event in stage 2"),
        ParameterDefinition("sink_dir", "string", default="",
                            description="a folder for the sink's id files; empty: none"),
    ],
)
