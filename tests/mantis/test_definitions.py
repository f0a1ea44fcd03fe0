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
    ({"name": "1st-name"}, "name must start with a letter"),
    ({"name": "bad name"}, "name must start with a letter"),
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
    assert parse_job_id("sine-function-7") == ("sine-function", 7)  # split on the last '-'
    assert parse_job_id("a-1-2") == ("a-1", 2)
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


# -- Mantis' request bodies ----------------------------------------------------------

MANTIS_CREATE = {  # the shape of Mantis' own route tests' cluster create (JobClusterPayloads)
    "jobDefinition": {
        "name": "sine-function", "user": "nmahilani",
        "jobJarFileLocation": "mantis.examples.synthetic:job", "version": "0.2.9 2018-05-29 16:12:56",
        "schedulingInfo": {"stages": {"1": {
            "numberOfInstances": "1",
            "machineDefinition": {"cpuCores": "1", "memoryMB": "1024", "diskMB": "1024",
                                  "networkMbps": "128", "numPorts": "1"},
            "scalable": True,
            "scalingPolicy": {"stage": 1, "min": "1", "max": "10", "increment": "2", "decrement": "1",
                              "coolDownSecs": "600", "enabled": True},
            "softConstraints": [], "hardConstraints": []}}},
        "parameters": [], "labels": [{"name": "_mantis.user", "value": "nmahilani"}],
        "migrationConfig": {"strategy": "PERCENTAGE", "configString": '{"percentToMove":25,"intervalMs":60000}'},
        "slaMin": "0", "slaMax": "0", "deploymentStrategy": {"resourceClusterId": "mantisagent"},
        "cronSpec": None, "cronPolicy": "KEEP_EXISTING", "isReadyForJobMaster": True},
    "owner": {"contactEmail": "n@example.com", "description": "", "name": "Nick", "repo": "", "teamName": ""},
    "jobPrincipal": {"email": "group@example.com", "type": "GROUP"},
}


def test_mantis_named_job_definition_decodes_with_string_numbers_and_unused_fields():
    d = JobClusterDefinition.from_json(MANTIS_CREATE)
    assert d.name == "sine-function" and d.url == "mantis.examples.synthetic:job"
    stage = d.scheduling_info.stages[1]
    assert stage.number_of_instances == 1 and stage.machine.memory_mb == 1024.0 and stage.machine.num_ports == 1
    assert d.owner["contactEmail"] == "n@example.com" and d.migration_config["strategy"] == "PERCENTAGE"
    assert (d.sla_min, d.sla_max, d.cron_spec) == (0, 0, None)


def test_mantis_body_still_refuses_a_field_neither_format_defines():
    body = {**MANTIS_CREATE, "jobDefinition": {**MANTIS_CREATE["jobDefinition"], "colour": "red"}}
    with pytest.raises(ValidationError, match="unknown field.*colour"):
        JobClusterDefinition.from_json(body)
    with pytest.raises(ValidationError, match="unknown field.*extra"):
        JobClusterDefinition.from_json({**MANTIS_CREATE, "extra": 1})


def test_artifact_may_be_named_url_or_jobJarFileLocation_but_not_two_different_ones():
    flat = {"name": "a", "jobJarFileLocation": "mantis.examples.synthetic:job"}
    assert JobClusterDefinition.from_json(flat).url == "mantis.examples.synthetic:job"
    with pytest.raises(ValidationError, match="two artifacts"):
        JobClusterDefinition.from_json({**flat, "url": "mantis.examples.lines:job"})


def test_an_artifact_url_is_taken_at_create_and_is_not_an_entry_point():
    from mantis.model.definitions import is_entry_point
    d = JobClusterDefinition.from_json({"name": "z", "url": "https://example.com/job-1.0.zip"})
    assert not is_entry_point(d.url) and is_entry_point("mantis.examples.synthetic:job")


def test_mantis_submission_drops_the_job_master_stage_and_takes_numbers_as_strings():
    job = JobDefinition.from_json({
        "name": "sine-function", "user": "u", "jobJarFileLocation": "", "version": "v",
        "jobSla": {"durationType": "Perpetual", "runtimeLimitSecs": "0", "minRuntimeSecs": "0", "userProvidedType": ""},
        "schedulingInfo": {"stages": {
            "0": {"numberOfInstances": 1, "machineDefinition": {"cpuCores": 1, "memoryMB": 200}, "scalable": False},
            "1": {"numberOfInstances": "3", "machineDefinition": {"cpuCores": 1, "memoryMB": 200, "numPorts": "1"},
                  "softConstraints": ["M4Cluster"], "hardConstraints": []}}},
        "parameters": [{"name": "useRandom", "value": "True"}, {"name": "periodInSeconds", "value": 2}],
        "isReadyForJobMaster": True})
    assert job.url is None  # "" means the cluster's artifact
    assert list(job.scheduling_info.stages) == [1] and job.scheduling_info.stages[1].number_of_instances == 3
    assert job.parameter_values() == {"useRandom": "True", "periodInSeconds": 2}


@pytest.mark.parametrize("value,ok", [("1", True), (" 2 ", True), ("1.5", False), ("x", False), ("nan", False)])
def test_whole_numbers_sent_as_strings_are_taken_as_numbers(value, ok):
    from mantis.model import codec
    if ok:
        assert codec.integer(0)(value, "n") == int(value)
    else:
        with pytest.raises(ValidationError):
            codec.integer(0)(value, "n")
