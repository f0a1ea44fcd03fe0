"""The worker as a plain command and its report route: bad input is refused plainly."""
from __future__ import annotations

import os
import subprocess
import sys

from mantis.tooling.local_processes import api


def test_mantis_worker_without_a_spec_says_so_in_one_line_and_exits_non_zero():
    env = {k: v for k, v in os.environ.items() if k != "MANTIS_WORKER_SPEC"}
    done = subprocess.run([sys.executable, "-m", "mantis.cli", "worker"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "mantis: error: MANTIS_WORKER_SPEC is not set: `mantis worker` runs a worker that a Mesos task describes"]


def test_a_malformed_worker_report_is_a_400_with_a_json_message(mesos_master):
    for body in ({"metrics": {}}, {"workerKey": 7}, {"workerKey": "j-1/w1", "metrics": [1]}, [1]):
        status, answer = api(mesos_master.url, "POST", "/api/v1/mesos/workerReports", body)
        assert status == 400 and "workerKey" in answer["error"], (body, answer)
    status, answer = api(mesos_master.url, "POST", "/api/v1/mesos/workerReports", {"workerKey": "x/w1"})
    assert status == 200 and answer == {"known": False, "endpoints": [], "upstreamFinished": False}


def test_worker_reports_are_a_404_when_mesos_is_not_the_resource_manager(cluster):
    status, answer = api(cluster.url, "POST", "/api/v1/mesos/workerReports", {"workerKey": "x/w1", "metrics": {}})
    assert status == 404 and "resource_manager" in answer["error"]
