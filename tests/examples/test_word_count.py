"""The word count example: running counts per word over the built-in corpus."""
from collections import Counter

from mantis.examples import word_count
from mantis.runtime.stage_executor import StageExecutor
from mantis.sdk.job_dsl import Context, load_job, resolve_parameters
from tests.support import wait_for


def start(supplied):
    job = load_job("mantis.examples.word_count:job")
    context = Context("word_count-1", parameters=resolve_parameters(job, supplied))
    batches = []
    executor = StageExecutor(job, context, batches.append, batch_interval_s=0.02)
    executor.start()
    return executor, batches


def events_of(batches):
    return [e for b in list(batches) for e in b]


def expected_counts(sentence_count):
    corpus = word_count.CORPUS
    return Counter(w for n in range(sentence_count) for w in word_count.words_of(corpus[n % len(corpus)]))


def test_words_are_lower_case_without_punctuation():
    assert word_count.words_of("The dog's bowl, the DOG.") == ["the", "dog's", "bowl", "the", "dog"]


def test_every_occurrence_emits_the_running_count_and_the_last_is_the_total():
    sentences = 2 * len(word_count.CORPUS) + 1
    executor, batches = start({"rate": 0, "limit": sentences})
    assert executor.wait(20)
    assert executor.state == "completed"
    events = events_of(batches)
    expected = expected_counts(sentences)
    assert len(events) == sum(expected.values())
    final = {}
    for event in events:
        assert event["count"] == final.get(event["word"], 0) + 1  # running, one step at a time
        final[event["word"]] = event["count"]
    assert final == dict(expected)


def test_emit_every_emits_only_at_multiples():
    sentences = 4 * len(word_count.CORPUS)
    executor, batches = start({"rate": 0, "limit": sentences, "emit_every": 3})
    assert executor.wait(20)
    events = events_of(batches)
    expected = expected_counts(sentences)
    assert events and all(e["count"] % 3 == 0 for e in events)
    assert sorted((e["word"], e["count"]) for e in events) == sorted(
        (w, c) for w, total in expected.items() for c in range(3, total + 1, 3))


def test_counts_flow_while_an_endless_source_is_still_running():
    # Regression: flat_map over a word list used to wait for the source to finish.
    executor, batches = start({"rate": 50})
    try:
        wait_for(lambda: events_of(batches), timeout=5, interval=0.01, what="first counts")
        assert executor.state == "running"
    finally:
        assert executor.stop(5)
    assert executor.state == "completed"
