"""The mantis CLI against a real master: clusters, jobs, output, and one-line errors."""
import json
import subprocess
import sys

from tests.support import job_id_of, job_state, wait_for

CLUSTER = {"name": "cli", "url": "mantis.examples.synthetic:job",
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1, "scalable": True,
                                               "scalingPolicy": {"min": 1, "max": 2},
                                               "machineDefinition": {"cpuCores": 1, "memoryMB": 128}}}}}


def mantis(cluster, *args, stdin=None):
    return subprocess.run([sys.executable, "-m", "mantis.cli", *args, "--master", cluster.url],
                          input=stdin, capture_output=True, text=True, timeout=60)


def test_cli_drives_clusters_and_jobs_and_prints_output(cluster, tmp_path):
    path = tmp_path / "cluster.json"
    path.write_text(json.dumps(CLUSTER))
    assert mantis(cluster, "cluster", "create", str(path)).returncode == 0
    listed = mantis(cluster, "cluster", "list")
    assert listed.returncode == 0 and listed.stdout.startswith("cli\tEnabled")
    submitted = mantis(cluster, "job", "submit", "cli", "--param", "rate=40")
    assert submitted.returncode == 0, submitted.stderr
    job_id = job_id_of(json.loads(submitted.stdout))  # the job's view, as the API answers a submit
    wait_for(lambda: "Started=1" in mantis(cluster, "job", "list").stdout, timeout=30, what="job running")
    streamed = mantis(cluster, "stream", job_id, "--limit", "3")
    lines = streamed.stdout.strip().splitlines()
    assert streamed.returncode == 0 and len(lines) == 3 and all("id" in json.loads(x) for x in lines)
    scaled = mantis(cluster, "job", "scale", job_id, "1", "2")
    assert scaled.returncode == 0 and f"stage 1 of {job_id} scaled to 2 worker(s)" in scaled.stdout
    (stage,) = json.loads(mantis(cluster, "job", "get", job_id).stdout)["stageMetadataList"]
    assert stage["numWorkers"] == 2
    killed = mantis(cluster, "job", "kill", job_id)
    assert killed.returncode == 0 and f"kill of {job_id} accepted" in killed.stdout
    wait_for(lambda: job_state(json.loads(mantis(cluster, "job", "get", job_id).stdout)) == "Completed",
             timeout=30, what="job Completed")


def test_cli_errors_are_one_line_with_non_zero_exit(cluster, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args in (("cluster", "create", str(bad)), ("cluster", "get", "missing"),
                 ("job", "submit", "missing"), ("job", "scale", "nojob-1", "1", "2"),
                 ("job", "submit", "cli", "--param", "novalue")):
        result = mantis(cluster, *args)
        assert result.returncode == 1, (args, result)
        assert result.stderr.startswith("mantis: error: ") and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr
