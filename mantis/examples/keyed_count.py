"""Keyed count: a running count per user, with the counting spread over stage 2's workers by user.

Entry point ``mantis.examples.keyed_count:job``.  Three parts, two processing stages::

    source (synthetic events with a "user")          } a stage 1 worker
      -> stage 1: keep events worth >= min_value,     }
                  project to {"id", "user", "value"}; } output keyed by "user"
      -> stage 2: running count per user
      -> output (subscribers)

Stage 1 is keyed by ``user``, so every event of one user reaches the same stage 2
worker and that worker's count for the user is the user's whole count.  Both stages
work per batch (``batch_operators``), the fast form: events cross processes in
batches anyway.

Stage 2 emits, for each batch it receives, the latest count of every user the batch
touched::

    {"user": "user-3", "count": 41, "lastId": 1207, "worker": 1, "workerNumber": 3}

``lastId`` is the id of the user's latest event counted here, ``worker`` and
``workerNumber`` the index and incarnation of the stage 2 worker that counted, so a
subscriber can tell which worker owns a user and when (a replaced worker starts
counting from 0 under a new number).  When its input ends normally (a finite job),
each stage 2 worker emits one more batch, its summary: every user it counted, with
the final count and ``"final": true``.  A user's count in the job is the sum, over the
worker incarnations that counted it, of each one's last count.

The source is deterministic: event ``n`` is ``{"id": n, "user": "user-<(n * 7919) %
keys>", "value": <0..99>}``, the value from a multiplicative hash of ``n`` (so it does
not follow the user), and ``expected_counts`` can compute the right answer.
Parameters: ``rate`` (events/s, 0 = as fast as possible), ``keys`` (distinct users),
``limit`` (events before the source completes, 0 = never), ``min_value`` (0-100; 0
keeps every event).
"""
from __future__ import annotations

from collections import Counter

import reactivex
from reactivex import operators as ops

from mantis.examples.parameters import paced_parameters
from mantis.runtime.batch_operators import filter_each, map_each
from mantis.runtime.sources import paced_batches
from mantis.sdk.job_dsl import BatchSource, Context, Job, ParameterDefinition, ProcessingStage

# A prime stride spreads consecutive events over the users, and Knuth's multiplicative
# hash gives values independent of the user, without a random generator.
USER_STRIDE = 7919
VALUE_MULTIPLIER = 2654435761


def make_event_factory(keys: int):
    """``make_event(n)`` for a stream over ``keys`` users (shared by the source and ``expected_counts``)."""
    users = [f"user-{k}" for k in range(keys)]

    def make_event(n: int) -> dict:
        return {"id": n, "user": users[(n * USER_STRIDE) % keys],
                "value": ((n * VALUE_MULTIPLIER) >> 12) % 100}

    return make_event


def user_events(context: Context) -> reactivex.Observable:
    """The source: batches of synthetic events, ``id`` counting from 0."""
    params = context.parameters
    return paced_batches(context, make_event_factory(params["keys"]), params["rate"], params["limit"])


def keep_and_project(batches: reactivex.Observable, context: Context) -> reactivex.Observable:
    """Stage 1: keep events worth at least ``min_value``; pass on only what stage 2 needs."""
    min_value = context.parameters["min_value"]
    return batches.pipe(
        filter_each(lambda event: event["value"] >= min_value),
        map_each(lambda event: {"id": event["id"], "user": event["user"], "value": event["value"]}),
    )


def count_per_user(batches: reactivex.Observable, context: Context) -> reactivex.Observable:
    """Stage 2: a running count per user; per batch, the latest count of each user it touched;
    at the end of the input, a summary of every user's final count (see the module docstring)."""
    counts: dict[str, int] = {}
    last_ids: dict[str, object] = {}
    worker, number = context.worker_index, context.worker_number

    def update(user: str, final: bool = False) -> dict:
        out = {"user": user, "count": counts[user], "lastId": last_ids[user], "worker": worker,
               "workerNumber": number}
        if final:
            out["final"] = True
        return out

    def count(batch: list) -> list:
        touched: dict[str, None] = {}
        for event in batch:
            user = event["user"]
            counts[user] = counts.get(user, 0) + 1
            last_ids[user] = event.get("id")  # events without an id (other sources) say None
            touched[user] = None
        return [update(user) for user in touched]

    return _then_at_completion(batches.pipe(ops.map(count)),
                               lambda: [update(user, final=True) for user in counts])


def _then_at_completion(batches: reactivex.Observable, last_batch) -> reactivex.Observable:
    """``batches``, then ``last_batch()`` as one more batch when (and only when) they complete."""

    def subscribe(observer, scheduler=None):
        def on_completed() -> None:
            observer.on_next(last_batch())
            observer.on_completed()

        return batches.subscribe(observer.on_next, observer.on_error, on_completed, scheduler=scheduler)

    return reactivex.create(subscribe)


def expected_counts(limit: int, keys: int, min_value: int = 0) -> Counter:
    """The final count per user of a run with these parameters, computed in one process."""
    make_event = make_event_factory(keys)
    return Counter(e["user"] for e in map(make_event, range(limit)) if e["value"] >= min_value)


job = Job(
    name="keyed_count",
    description="Running count per user, keyed from stage 1 to stage 2, with a final summary.",
    source=BatchSource(user_events),
    stages=[
        ProcessingStage(name="keep", batch_operators=keep_and_project, key="user",
                        parameters=[ParameterDefinition(
                            "min_value", "int", default=0,
                            validator=(lambda v: 0 <= v <= 100, "must be between 0 and 100"),
                            description="keep events whose value (0-99) is at least this")]),
        ProcessingStage(name="count", batch_operators=count_per_user),
    ],
    parameters=paced_parameters(1000, keys=100),
)
