"""Strict JSON decoding of cluster and job definitions."""
import pytest

from mantis.model.codec import ValidationError
from mantis.model.definitions import JobClusterDefinition, JobDefinition
from mantis.model.ids import parse_job_id, parse_worker_key

CLUSTER = {
    "name": "clicks", "url": "mantis.examples.synthetic:job", "version": "2",
    "parameters": [{"name": "rate", "value": 10}],
    "schedulingInfo": {"stages": {"1": {"numberOfInstances": 2,
                                        "machineDefinition": {"cpuCores": 1, "memoryMB": 512}}}},
    "labels": [{"name": "team", "value": "data"}], "slaMin": 0, "slaMax": 2,
}


def test_cluster_definition_round_trips():
    d = JobClusterDefinition.from_json(CLUSTER)
    assert d.scheduling_info.stages[1].number_of_instances == 2
    assert JobClusterDefinition.from_json(d.to_json()) == d


@pytest.mark.parametrize("patch,message", [
    ({"name": "bad-name"}, "name must start with a letter"),
    ({"url": "no_colon"}, "url must name a job"),
    ({"bogus": 1}, "unknown field(s): bogus"),
    ({"slaMin": 3, "slaMax": 2}, "slaMax must be at least slaMin"),
    ({"schedulingInfo": {"stages": {"1": {"numberOfInstances": -1}}}},
     "schedulingInfo.stages.1.numberOfInstances must be at least 0"),
    ({"schedulingInfo": {"stages": {"2": {}}}}, "without gaps"),
    ({"schedulingInfo": {"stages": {"1": {"machineDefinition": {"cpuCores": 0}}}}},
     "cpuCores must be greater than 0"),
    ({"schedulingInfo": {"stages": {"1": {"machineDefinition": {"gpus": 1}}}}}, "unknown field(s): gpus"),
    ({"parameters": [{"name": "a", "value": 1}, {"name": "a", "value": 2}]}, "given twice"),
    ({"parameters": [{"name": "a", "value": {"x": 1}}]}, "parameters.0.value must be"),
    ({"jobSla": {"durationType": "Forever"}}, "jobSla.durationType must be one of"),
])
def test_bad_cluster_definitions_are_rejected_naming_the_field(patch, message):
    with pytest.raises(ValidationError) as info:
        JobClusterDefinition.from_json({**CLUSTER, **patch})
    assert message in str(info.value)


def test_missing_required_field_is_named():
    with pytest.raises(ValidationError, match="url is required"):
        JobClusterDefinition.from_json({"name": "x"})


def test_submission_merges_over_cluster_defaults():
    cluster = JobClusterDefinition.from_json(CLUSTER)
    job = JobDefinition.from_json({"user": "ann", "parameters": [{"name": "keys", "value": 3}]})
    merged = job.merged_with(cluster)
    assert merged.parameter_values() == {"rate": 10, "keys": 3}
    assert merged.url == cluster.url and merged.scheduling_info.stages[1].number_of_instances == 2
    assert merged.user == "ann"


def test_job_and_worker_ids_parse_and_reject_garbage():
    assert parse_job_id("clicks-12") == ("clicks", 12)
    assert parse_worker_key("clicks-12/w3") == ("clicks-12", 3)
    for bad in ("clicks", "clicks-0", "-3", "cl icks-1"):
        with pytest.raises(ValidationError):
            parse_job_id(bad)


def test_example_cluster_definitions_in_conf_are_valid_and_their_jobs_load():
    import json
    from pathlib import Path

    from mantis.sdk.job_dsl import load_job, resolve_parameters

    paths = sorted(Path("conf/clusters").glob("*.json"))
    assert paths
    for path in paths:
        definition = JobClusterDefinition.from_json(json.loads(path.read_text()))
        job = load_job(definition.url)
        resolve_parameters(job, {p.name: p.value for p in definition.parameters})
        assert job.stage_count == len(definition.scheduling_info.stages), path
