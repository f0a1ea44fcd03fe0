"""Word count: sentences from a small corpus, split into words, running count per word.

Entry point ``mantis.examples.word_count:job``.  The source cycles through ``CORPUS`` in
order (so a run with a ``limit`` has known counts); the stage emits
``{"word": w, "count": c}`` each time word ``w`` reaches a multiple of ``emit_every``
occurrences.
"""
from __future__ import annotations

import re

import reactivex
from reactivex import operators as ops

from mantis.examples.parameters import paced_parameters
from mantis.runtime.sources import paced_source
from mantis.sdk.job_dsl import Context, Job, ParameterDefinition, at_least

CORPUS = (
    "The quick brown fox jumps over the lazy dog.",
    "A stream is a river of events, and the river never stops.",
    "Count the words, count them all, and count them again.",
    "Every event tells a story; every story has a word.",
    "The dog sleeps while the fox runs through the stream.",
)

_WORD = re.compile(r"[a-z']+")


def sentences(context: Context) -> reactivex.Observable:
    """The source: sentences of ``CORPUS`` in order, round and round, at ``rate`` per second."""
    params = context.parameters
    return paced_source(context, lambda n: CORPUS[n % len(CORPUS)], params["rate"], params["limit"])


def words_of(sentence: str) -> list[str]:
    """The lower-case words of a sentence, punctuation dropped."""
    return _WORD.findall(sentence.lower())


def count_words(lines: reactivex.Observable, context: Context) -> reactivex.Observable:
    """The stage: a running count per word, emitted every ``emit_every`` occurrences of it."""
    every = context.parameters["emit_every"]

    def running_counts(group: reactivex.GroupedObservable[str, str]) -> reactivex.Observable:
        word = group.key
        return group.pipe(
            ops.scan(lambda count, _: count + 1, 0),
            ops.filter(lambda count: count % every == 0),
            ops.map(lambda count: {"word": word, "count": count}),
        )

    words: reactivex.Observable[str] = lines.pipe(ops.flat_map(words_of))
    # Annotated: the checker cannot infer group_by's value type without an element mapper.
    by_word: reactivex.Observable[reactivex.GroupedObservable[str, str]] = words.pipe(
        ops.group_by(lambda word: word))
    return by_word.pipe(ops.flat_map(running_counts))


job = Job(
    name="word_count",
    description="Running word counts over a built-in corpus of sentences.",
    source=sentences,
    stage=count_words,
    parameters=paced_parameters(10, "sentences") + [
        ParameterDefinition("emit_every", "int", default=1, validator=at_least(1),
                            description="emit a word's count every this many occurrences"),
    ],
)
