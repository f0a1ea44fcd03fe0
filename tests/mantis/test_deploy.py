"""mantis.deploy's pure parts: reading definition files, reading the master's answers back
into the model (both API shapes), and planning field-level changes."""
from __future__ import annotations

import pytest

from mantis import deploy
from mantis.model.definitions import JobClusterDefinition
from mantis.tooling.api_answers import job_id_of, job_state, listed

BASE = {"name": "clicks", "url": "mantis.examples.synthetic:job", "parameters": [{"name": "rate", "value": 20}]}


def definition(**changes) -> JobClusterDefinition:
    return JobClusterDefinition.from_json({**BASE, **changes})


def test_a_folder_holds_json_yaml_multi_document_and_wrapped_definitions(tmp_path):
    (tmp_path / "a.json").write_text('{"name": "a", "url": "mantis.examples.synthetic:job"}')
    (tmp_path / "b.yaml").write_text("name: b\nurl: mantis.examples.synthetic:job\n---\n"
                                     "cluster: {name: c, url: mantis.examples.synthetic:job}\njob: {}\n")
    (tmp_path / "notes.txt").write_text("not a definition")
    loaded = deploy.load(tmp_path)
    assert [(d.definition.name, d.job is not None) for d in loaded] == [("a", False), ("b", False), ("c", True)]


@pytest.mark.parametrize("text, message", [
    ("name: [unclosed", "is not valid YAML"),
    ("- 1\n", "must be a cluster definition"),
    ("cluster: {name: a, url: m:a}\nreplicas: 2\n", "unknown key(s) replicas"),
    ("name: a\nurl: m:a\nslaMax: 1\nslaMin: 2\n", "slaMax must be at least slaMin"),
])
def test_bad_files_are_one_line_errors_naming_the_file(tmp_path, text, message):
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(deploy.DeployError) as refused:
        deploy.load(tmp_path / "x.yaml")
    assert message in str(refused.value) and "x.yaml" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_cluster_declared_twice_is_refused(tmp_path):
    (tmp_path / "a.yaml").write_text("name: a\nurl: m:a\n")
    (tmp_path / "b.yaml").write_text("name: a\nurl: m:b\n")
    with pytest.raises(deploy.DeployError, match="already declared"):
        deploy.load(tmp_path)


def test_the_masters_answer_reads_back_from_either_shape():
    flat = {**definition().to_json(), "state": "Enabled", "activeJobs": ["clicks-1"], "createdAt": 1}
    assert deploy.definition_from_api(flat) == definition()
    mantis = {"name": "clicks", "jars": [{"url": "old:job", "version": "0"},
                                         {"url": "mantis.examples.synthetic:job", "version": "1",
                                          "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1}}}}],
              "sla": {"min": 0, "max": 0, "cronSpec": None, "cronPolicy": None},
              "parameters": [{"name": "rate", "value": 20}], "lastJobCount": 3, "disabled": False}
    assert deploy.definition_from_api(mantis) == definition()
    owned = dict(mantis, owner={"name": "ops", "teamName": None, "description": None, "contactEmail": None},
                 cronActive=False, isReadyForJobMaster=True, latestVersion="1", createdAt=1795927303000)
    assert deploy.definition_from_api(owned) == definition(owner={"name": "ops"})
    assert listed({"list": [1], "prev": None, "next": None, "total": 1}) == [1]
    view = {"jobMetadata": {"jobId": "a-1", "state": "Launched"}}
    assert (job_id_of(view), job_state(view)) == ("a-1", "Launched")


def test_plan_lists_field_changes_ignores_who_and_is_empty_when_equal():
    current = {"clicks": deploy.Current(definition(user="alice"), ["clicks-1"])}
    same = [deploy.Desired(definition(user="bob"), None, "f")]
    assert deploy.plan(same, current) == []
    assert deploy.render([]) == ["no changes: the master matches the files"]
    edited = [deploy.Desired(definition(parameters=[{"name": "rate", "value": 30}],
                                        labels=[{"name": "t", "value": "x"}]), None, "f")]
    [change] = deploy.plan(edited, current)
    assert change.action == "update"
    assert change.fields == [("labels.t", None, "x"), ("parameters.rate", 20, 30)]
    assert deploy.render([change]) == ["~ cluster clicks", '    labels.t: (none) -> "x"',
                                       "    parameters.rate: 20 -> 30"]


def test_plan_submits_only_where_no_job_runs_and_prunes_only_when_asked():
    wanted = deploy.Desired(definition(), deploy.JobDefinition(), "f")
    running = {"clicks": deploy.Current(definition(), ["clicks-1"])}
    idle = {"clicks": deploy.Current(definition(), [])}
    assert deploy.plan([wanted], running) == []
    assert [c.action for c in deploy.plan([wanted], idle)] == ["submit"]
    assert [c.action for c in deploy.plan([wanted], {})] == ["create", "submit"]
    extra = {**running, "old": deploy.Current(definition(name="old"), ["old-4"])}
    assert deploy.plan([wanted], extra) == []
    [prune] = deploy.plan([wanted], extra, prune=True)
    assert (prune.action, prune.name, prune.active_jobs) == ("delete", "old", ["old-4"])
