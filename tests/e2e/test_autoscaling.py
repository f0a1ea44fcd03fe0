"""The Job Master autoscales a real job: a load step grows the stage, a drop shrinks it.

A real master and agent run ``mantis.examples.load_profile`` (a source following a rate
profile into a stage costing a known 5 ms per event, so one worker does 200 events/s)
with stage 2 autoscaled by the default strategy (OneStep).  The job's events must say
who scaled and why, and with ``block`` every event the source emitted reaches the sink.
"""
import os
import signal
import subprocess
import sys

from mantis.autoscaling.job_master import job_from_view
from mantis.examples.load_profile import needed_workers, profile_events, sink_ids
from tests.support import wait_for

MACHINE = {"cpuCores": 0.5, "memoryMB": 128, "networkMbps": 16}
PROFILE = "100:8s,400:30s,60:30s"


def submit(cluster, sink_dir, cooldown_s=8, profile=PROFILE):
    definition = {"name": "load", "url": "mantis.examples.load_profile:job",
                  "parameters": [{"name": "profile", "value": profile}, {"name": "cost_ms", "value": 5.0},
                                 {"name": "sink_dir", "value": str(sink_dir)}],
                  "schedulingInfo": {"stages": {
                      "1": {"numberOfInstances": 1, "machineDefinition": MACHINE},
                      "2": {"numberOfInstances": 1, "machineDefinition": MACHINE, "scalable": True,
                            "scalingPolicy": {"stage": 2, "min": 1, "max": 4, "increment": 1, "decrement": 1,
                                              "coolDownSecs": cooldown_s, "strategies": {}}}}}}
    assert cluster.call("POST", "/api/v1/jobClusters", definition)[0] == 201
    status, body = cluster.call("POST", "/api/v1/jobClusters/load/jobs", {"user": "e2e"})
    assert status == 201, body
    return body["jobMetadata"]["jobId"]


def job_of(cluster, job_id):
    """The job as the Job Master reads it: state, workers (the Job Master's too), stageSizes."""
    status, view = cluster.call("GET", f"/api/v1/jobs/{job_id}")
    assert status == 200, view
    return job_from_view(view)


def test_a_load_step_grows_the_stage_a_drop_shrinks_it_the_events_say_why_and_nothing_is_lost(
        cluster, tmp_path):
    sink_dir = tmp_path / "sink"
    sink_dir.mkdir()
    job_id = submit(cluster, sink_dir)
    def launched():
        j = job_of(cluster, job_id)
        return j if j["state"] == "Launched" else None

    job = wait_for(launched, timeout=60, interval=0.5, what="the job to launch")
    assert job["stageSizes"] == {"1": 1, "2": 1}  # the Job Master is no stage of the owner's
    assert [w["stageNum"] for w in job["workers"]].count(0) == 1

    sizes = []

    def stage_2_size():
        j = job_of(cluster, job_id)
        sizes.append(int(j["stageSizes"].get("2", 0)))
        return j["state"] in ("Completed", "Failed")

    wait_for(stage_2_size, timeout=180, interval=1.0, what="the job to complete")
    assert job_of(cluster, job_id)["state"] == "Completed"
    peak = max(sizes)
    assert peak >= needed_workers(400, 5.0, 0.7) - 1, sizes  # grew with the step (3 needed)
    assert sizes[-1] < peak or sizes[-2] < peak, sizes       # and shrank after the drop

    status, events = cluster.call("GET", f"/api/v1/jobs/{job_id}/events")
    assert status == 200 and events["total"] == len(events["list"])
    scaled = [e for e in events["list"] if e["type"] == "StageScaled"]
    assert scaled and all(e["user"] == "JobMaster" and e["stage"] == 2 for e in scaled), scaled
    ups = [e for e in scaled if e["toWorkers"] > e["fromWorkers"]]
    downs = [e for e in scaled if e["toWorkers"] < e["fromWorkers"]]
    assert ups and downs, scaled
    assert "OneStep: demand" in ups[0]["reason"] and "needs" in ups[0]["reason"]
    assert "needs only" in downs[-1]["reason"]
    assert events["list"][-1]["type"] == "JobStateChanged" and events["list"][-1]["to"] == "Completed"

    cli = subprocess.run([sys.executable, "-m", "mantis.cli", "job", "events", job_id, "--master", cluster.url],
                         capture_output=True, text=True, timeout=30)
    assert cli.returncode == 0, cli.stderr
    lines = cli.stdout.splitlines()
    assert len(lines) == events["total"] and any("StageScaled\tstage 2 scaled up" in line for line in lines)

    ids = sink_ids(sink_dir)
    assert set(ids) == set(range(profile_events(PROFILE)))  # with block, every event reached the sink


def job_master(job):
    masters = [w for w in job["workers"] if w["stageNum"] == 0]
    return masters[0] if masters and masters[0]["state"] == "Started" and masters[0]["metrics"].get("pid") else None


def test_a_killed_job_master_is_replaced_like_any_worker_and_the_events_say_so(cluster, tmp_path):
    job_id = submit(cluster, tmp_path, profile="50:60s")
    first = wait_for(lambda: job_master(job_of(cluster, job_id)), timeout=60, interval=0.5,
                     what="the Job Master to start")
    os.kill(int(first["metrics"]["pid"]), signal.SIGKILL)

    def replaced():
        m = job_master(job_of(cluster, job_id))
        return m if m and m["workerNumber"] != first["workerNumber"] else None

    second = wait_for(replaced, timeout=60, interval=0.5, what="a new Job Master")
    assert second["workerIndex"] == 0
    events = cluster.call("GET", f"/api/v1/jobs/{job_id}/events?type=WorkerReplaced")[1]["list"]
    assert any(e["stage"] == 0 and e["oldWorkerNumber"] == first["workerNumber"] for e in events), events
    assert cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=e2e&reason=done")[0] == 202
