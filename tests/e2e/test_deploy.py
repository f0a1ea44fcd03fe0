"""``mantis deploy`` against a real master and agent: apply is idempotent, diff shows an
edited field, --dry-run changes nothing, --prune removes (killing a running job first)."""
from __future__ import annotations

import shutil

from mantis import cli
from mantis.tooling.api_answers import job_state, listed
from tests.support import wait_for


def deploy(capsys, url, *args) -> tuple[int, str]:
    capsys.readouterr()
    status = cli.main(["deploy", *args, "--master", url, "--user", "deployer"])
    return status, capsys.readouterr().out


def names(cluster) -> set[str]:
    return {c["name"] for c in listed(cluster.call("GET", "/api/v1/jobClusters")[1])}


def test_apply_is_idempotent_diff_shows_edits_dry_run_changes_nothing_and_prune_removes(cluster, tmp_path, capsys):
    defs = tmp_path / "clusters"
    defs.mkdir()
    shutil.copy("conf/clusters/clicks.yaml", defs)
    shutil.copy("conf/clusters/keyed_count.json", defs)
    url = cluster.url

    status, out = deploy(capsys, url, "apply", str(defs), "--dry-run")
    assert status == 0 and "+ cluster clicks" in out and "+ cluster keyed_count" in out
    assert "+ job of clicks" in out and "dry run: nothing was changed" in out
    assert names(cluster) == set()

    status, out = deploy(capsys, url, "apply", str(defs))
    assert status == 0 and "created cluster clicks" in out and "submitted clicks-1 to clicks" in out, out
    assert names(cluster) == {"clicks", "keyed_count"}
    clicks = cluster.call("GET", "/api/v1/jobClusters/clicks")[1]
    owner = {k: v for k, v in clicks["owner"].items() if v is not None}
    assert clicks["activeJobs"] == ["clicks-1"] and owner == {"name": "data-platform", "teamName": "streams"}

    for command in ("apply", "diff"):
        status, out = deploy(capsys, url, command, str(defs))
        assert status == 0 and out.strip() == "no changes: the master matches the files", (command, out)

    text = (defs / "clicks.yaml").read_text()
    (defs / "clicks.yaml").write_text(text.replace("value: 20", "value: 30").replace("numberOfInstances: 1",
                                                                                    "numberOfInstances: 2"))
    status, out = deploy(capsys, url, "diff", str(defs))
    assert out.splitlines() == ["~ cluster clicks", "    parameters.rate: 20 -> 30",
                                "    schedulingInfo.stages.1.numberOfInstances: 1 -> 2"], out
    deploy(capsys, url, "apply", str(defs), "--dry-run")
    assert cluster.call("GET", "/api/v1/jobClusters/clicks")[1]["parameters"] == [{"name": "rate", "value": 20}]
    status, out = deploy(capsys, url, "apply", str(defs))
    assert "updated cluster clicks (2 field(s))" in out
    assert cluster.call("GET", "/api/v1/jobClusters/clicks")[1]["parameters"] == [{"name": "rate", "value": 30}]
    assert deploy(capsys, url, "diff", str(defs))[1].startswith("no changes")

    # clicks leaves the files while its job runs: only --prune removes it, killing the job first.
    (defs / "clicks.yaml").unlink()
    assert deploy(capsys, url, "apply", str(defs))[1].startswith("no changes")
    status, out = deploy(capsys, url, "diff", str(defs), "--prune")
    assert out.strip() == "- cluster clicks (no file names it, killing clicks-1)"
    deploy(capsys, url, "apply", str(defs), "--prune", "--dry-run")
    assert names(cluster) == {"clicks", "keyed_count"}
    status, out = deploy(capsys, url, "apply", str(defs), "--prune")
    assert status == 0 and "deleted cluster clicks" in out, out
    # The listing follows the cluster's own answer within a turn of the manager.
    wait_for(lambda: names(cluster) == {"keyed_count"}, timeout=10, what="clicks gone from the listing")

    def ended() -> bool:
        status, body = cluster.call("GET", "/api/v1/jobs/clicks-1")
        return status == 404 or job_state(body) == "Completed"

    wait_for(ended, timeout=30, what="clicks-1 ended")


def test_a_bad_file_is_one_error_line_and_changes_nothing(cluster, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: {name: x, url: mantis.examples.synthetic:job, slaMin: -1}\n")
    status = cli.main(["deploy", "apply", str(bad), "--master", cluster.url])
    err = capsys.readouterr().err
    assert status == 1 and err.startswith("mantis: error: ") and "slaMin" in err and len(err.splitlines()) == 1
    assert names(cluster) == set()
