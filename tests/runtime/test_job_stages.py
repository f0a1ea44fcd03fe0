"""Multi-stage jobs in the DSL: stage declarations, what each stage's workers run, stage parameters."""
import pytest
import reactivex

from mantis.sdk.job_dsl import (
    BatchSource,
    Job,
    ParameterDefinition,
    ParameterError,
    ProcessingStage,
    resolve_parameters,
)


def source(context):
    return reactivex.empty()


def per_event(events, context):
    return events


def per_batch(batches, context):
    return batches


def test_the_short_form_is_a_one_stage_job_whose_only_stage_is_first_and_last():
    job = Job("one", source, per_event)
    assert job.stage_count == 1
    plan = job.worker_plan(1)
    assert plan.reads_source and plan.is_last
    assert plan.stage.operators is per_event and not plan.stage.keyed and not plan.stage.per_batch
    assert job.stage is per_event  # the short form's attribute is kept


def test_stages_run_in_order_stage_one_reads_the_source_the_last_serves_the_output():
    first = ProcessingStage(operators=per_event, key="user")
    middle = ProcessingStage(batch_operators=per_batch)
    last = ProcessingStage(operators=per_event, on_slow_consumer="drop")
    job = Job("three", source, stages=[first, middle, last])
    assert job.stage_count == 3
    plans = [job.worker_plan(n) for n in (1, 2, 3)]
    assert [p.stage for p in plans] == [first, middle, last]
    assert [(p.reads_source, p.is_last) for p in plans] == [(True, False), (False, False), (False, True)]


def test_a_plain_function_in_stages_is_a_scalar_per_event_stage():
    job = Job("mixed", source, stages=[per_event, ProcessingStage(batch_operators=per_batch)])
    assert job.stages[0].operators is per_event and not job.stages[0].keyed


@pytest.mark.parametrize("number", [0, 3, -1, "1", True])
def test_asking_for_a_stage_the_job_does_not_have_is_an_error(number):
    job = Job("two", source, stages=[per_event, per_event])
    with pytest.raises(ValueError, match="has stages 1..2"):
        job.worker_plan(number)


def test_a_keyed_stage_takes_a_key_function_or_a_field_name():
    by_function = ProcessingStage(operators=per_event, key=lambda e: e["user"].lower())
    by_field = ProcessingStage(operators=per_event, key="user")
    assert by_function.keyed and by_field.keyed
    assert by_function.key_function({"user": "Ann"}) == "ann"
    assert by_field.key_function({"user": "Ann"}) == "Ann"


@pytest.mark.parametrize("options, reason", [
    ({}, "exactly one of operators or batch_operators"),
    ({"operators": per_event, "batch_operators": per_batch}, "exactly one of operators or batch_operators"),
    ({"operators": "not callable"}, "must be callable"),
    ({"operators": per_event, "key": 42}, "key must be a callable, a field name or None"),
    ({"operators": per_event, "key": ""}, "must not be empty"),
    ({"operators": per_event, "on_slow_consumer": "wait"}, "on_slow_consumer must be one of block, drop"),
])
def test_stage_declaration_mistakes_are_reported_at_definition(options, reason):
    with pytest.raises(ValueError, match=reason):
        ProcessingStage(**options)


def test_a_job_needs_stage_or_stages_but_not_both():
    with pytest.raises(ValueError, match="stage must be callable"):
        Job("none", source)
    with pytest.raises(ValueError, match="not both"):
        Job("both", source, per_event, stages=[per_event])
    with pytest.raises(ValueError, match="stage 2 must be callable or a ProcessingStage"):
        Job("bad", source, stages=[per_event, 7])


def test_stage_parameters_are_resolved_with_the_jobs_in_one_namespace():
    job = Job("params", source, parameters=[ParameterDefinition("rate", "int", default=5)],
              stages=[ProcessingStage(operators=per_event, key="user",
                                      parameters=[ParameterDefinition("threshold", "float", default=0.5)]),
                      ProcessingStage(operators=per_event,
                                      parameters=[ParameterDefinition("window", "int", required=True)])])
    assert [p.name for p in job.all_parameters] == ["rate", "threshold", "window"]
    assert resolve_parameters(job, {"window": "10"}) == {"rate": 5, "threshold": 0.5, "window": 10}
    with pytest.raises(ParameterError, match="parameter 'window' is required"):
        resolve_parameters(job, {})
    with pytest.raises(ParameterError, match=r"it declares: rate, threshold, window"):
        resolve_parameters(job, {"windows": "1"})


def test_a_stage_parameter_may_not_reuse_a_name_declared_elsewhere():
    with pytest.raises(ValueError, match="declares parameter 'rate' twice"):
        Job("clash", source, parameters=[ParameterDefinition("rate", "int")],
            stages=[ProcessingStage(operators=per_event, parameters=[ParameterDefinition("rate", "int")])])


def test_a_batch_source_is_a_source_that_marks_its_items_as_batches():
    batch_source = BatchSource(lambda context: reactivex.of([1, 2]))
    job = Job("batches", batch_source, per_event)
    assert isinstance(job.source, BatchSource)
    seen = []
    job.source(None).subscribe(seen.append)
    assert seen == [[1, 2]]
