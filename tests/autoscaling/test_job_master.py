"""The Job Master's round over a job, as the master describes it (no worker serves metrics
here, so no request leaves the process; the e2e test runs the real thing)."""
from mantis.autoscaling.job_master import JobMaster


def job(started: int, size: int = 3) -> dict:
    workers = [{"stageNum": 2, "workerIndex": i, "workerNumber": 10 + i, "host": "127.0.0.1",
                "state": "Started" if i < started else "Accepted", "metrics": {}} for i in range(size)]
    return {"jobId": "c-1", "state": "Launched", "stageSizes": {"1": 1, "2": size, "3": 1},
            "schedulingInfo": {"stages": {
                "1": {"scalable": False},
                "2": {"scalable": True, "machineDefinition": {"cpuCores": 1, "memoryMB": 256},
                      "scalingPolicy": {"min": 1, "max": 4, "coolDownSecs": 10, "strategies": {}}},
                "3": {"scalable": True, "scalingPolicy": {"min": 1, "max": 4}}}},
            "workers": workers}


def test_only_autoscaled_stages_get_a_scaler():
    master = JobMaster("c-1", master=lambda: "http://127.0.0.1:9")
    master.step(job(3), 100.0)
    assert list(master.scalers) == [2]  # stage 3 is scalable by hand only: no strategies


def test_a_stage_is_held_while_its_workers_start_but_not_for_ever():
    master = JobMaster("c-1", master=lambda: "http://127.0.0.1:9")
    first = master.step(job(1), 100.0)[0]
    assert (first.action, first.held_back, first.reason) == ("hold", "resizing", "1 of 3 workers started")
    # two cooldowns after the last resize (here: the start), workers that cannot be placed
    # no longer hold the stage: it is judged on what it has
    later = master.step(job(1), 121.0)[0]
    assert later.held_back == "noData"
    assert [d["heldBack"] for d in master.decisions()] == ["resizing", "noData"]
