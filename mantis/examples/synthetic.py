"""A synthetic clickstream: user events at a chosen rate, filtered by kind and tagged.

Entry point ``mantis.examples.synthetic:job``.  Events look like::

    {"id": 7, "user": "user-3", "event": "click", "value": 42.5, "ts": 1700000000.1,
     "high_value": False}

Parameters: ``rate`` (events/s, 0 = as fast as possible), ``keys`` (distinct users),
``limit`` (events before the source completes, 0 = never), ``kinds`` (comma-separated
kinds to keep), ``seed`` (for a repeatable stream).
"""
from __future__ import annotations

import random
import time

import reactivex
from reactivex import operators as ops

from mantis.examples.parameters import paced_parameters
from mantis.runtime.sources import paced_source
from mantis.sdk.job_dsl import Context, Job, ParameterDefinition

KINDS = ("view", "click", "add_to_cart", "purchase")
HIGH_VALUE = 90.0


def user_events(context: Context) -> reactivex.Observable:
    """The source: one dict per event, ``id`` counting from 0, users and kinds uniform at random."""
    params = context.parameters
    rng = random.Random(params["seed"])
    users = [f"user-{k}" for k in range(params["keys"])]
    user_count, kind_count = len(users), len(KINDS)
    draw, now = rng.random, time.time

    def make_event(n: int) -> dict:
        return {"id": n, "user": users[int(draw() * user_count)],
                "event": KINDS[int(draw() * kind_count)], "value": draw() * 100.0, "ts": now()}

    return paced_source(context, make_event, params["rate"], params["limit"])


def keep_kinds_and_tag(events: reactivex.Observable, context: Context) -> reactivex.Observable:
    """The stage: keep the kinds named by ``kinds``, mark events worth ``HIGH_VALUE`` or more."""
    keep = frozenset(_kinds(context.parameters["kinds"]))

    def wanted(event: dict) -> bool:
        return event["event"] in keep

    def tag(event: dict) -> dict:
        # The source builds a fresh dict per event, so tagging in place is safe and
        # saves a copy per event.
        event["high_value"] = event["value"] >= HIGH_VALUE
        return event

    return events.pipe(
        ops.filter(wanted),
        ops.map(tag),
    )


def _kinds(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


job = Job(
    name="synthetic",
    description="Synthetic user events, filtered by kind and tagged with high_value.",
    source=user_events,
    stage=keep_kinds_and_tag,
    parameters=paced_parameters(50, keys=10) + [
        ParameterDefinition("kinds", "string", default="click,add_to_cart,purchase",
                            validator=(lambda text: bool(_kinds(text)) and set(_kinds(text)) <= set(KINDS),
                                       f"must be a comma-separated list of {', '.join(KINDS)}"),
                            description="event kinds to keep"),
        ParameterDefinition("seed", "int", description="random seed for a repeatable stream"),
    ],
)
