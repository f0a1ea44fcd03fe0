"""The master's actors end to end inside one actor system, over both system bases."""
import os
import signal

import pytest

from actors.messages import (
    CreateCluster,
    DeleteCluster,
    DisableCluster,
    Done,
    EnableCluster,
    GetArchivedWorkers,
    GetJob,
    GetPending,
    InitScheduler,
    KillJob,
    ListAgents,
    ListClusters,
    ListJobs,
    Rejected,
    ResubmitWorker,
    ScaleStage,
    SubmitJob,
)
from mantis.model.definitions import JobClusterDefinition, JobDefinition
from tests.support import wait_for

CLUSTER = {"name": "synth", "url": "mantis.examples.synthetic:job",
           "parameters": [{"name": "rate", "value": 20}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1, "scalable": True,
                                               "scalingPolicy": {"min": 1, "max": 3},
                                               "machineDefinition": {"cpuCores": 1, "memoryMB": 256}}}}}


def create(master, **patch):
    return master.create_cluster({**CLUSTER, **patch})


def submit(master, cluster="synth", **fields):
    return master.submit(cluster, **fields)


def job(master, job_id):
    return master.job(job_id)


def started_workers(master, job_id):
    return master.started_workers(job_id)


def test_submitted_job_runs_its_worker_to_started_and_reports_metrics(master):
    create(master)
    job_id = submit(master)
    assert job_id == "synth-1"
    (w,) = wait_for(lambda: started_workers(master, job_id), what="worker Started")
    assert w["workerNumber"] == 1 and w["agentId"] == "local" and w["ports"]
    wait_for(lambda: job(master, job_id)["workers"][0]["metrics"].get("eventsOut", 0) > 0,
             what="events flowing")
    listed = master.ask(ListJobs()).body
    assert [j["jobId"] for j in listed] == ["synth-1"] and listed[0]["workers"] == {"Started": 1}


def test_job_ids_count_up_per_cluster(master):
    create(master)
    assert [submit(master) for _ in range(3)] == ["synth-1", "synth-2", "synth-3"]


def test_bad_requests_are_rejected_with_status_and_reason(master):
    create(master)
    dup = master.ask(CreateCluster(JobClusterDefinition.from_json(CLUSTER)))
    assert isinstance(dup, Rejected) and dup.status == 409 and "already exists" in dup.reason
    missing = master.ask(SubmitJob("nope", JobDefinition()))
    assert isinstance(missing, Rejected) and missing.status == 404
    bad_param = master.ask(SubmitJob("synth", JobDefinition.from_json(
        {"parameters": [{"name": "rate", "value": "fast"}]})))
    assert isinstance(bad_param, Rejected) and bad_param.status == 400 and "rate" in bad_param.reason
    no_job = master.ask(GetJob("synth-99"))
    assert isinstance(no_job, Rejected) and no_job.status == 404


def test_actor_in_wrong_phase_rejects_a_message_with_its_reason(master):
    reply = master.ask(InitScheduler({}), to="scheduler")
    assert isinstance(reply, Rejected) and "does not accept InitScheduler" in reply.reason


def test_kill_ends_the_job_completed_and_archives_it(master):
    create(master)
    job_id = submit(master)
    wait_for(lambda: started_workers(master, job_id), what="worker Started")
    reply = master.ask(KillJob(job_id, "Killed", "test", "t"))
    assert isinstance(reply, Done)
    wait_for(lambda: job(master, job_id)["state"] == "Completed", what="job Completed")
    archived = job(master, job_id)
    assert archived["killReason"] == "Killed" and archived["workers"] == []
    again = master.ask(KillJob(job_id, "Killed"))
    assert isinstance(again, Rejected) and again.status == 409
    assert master.ask(ListJobs()).body == []


def test_scale_stage_adds_workers_and_rejects_outside_policy(master):
    create(master)
    job_id = submit(master)
    wait_for(lambda: started_workers(master, job_id), what="worker Started")
    assert isinstance(master.ask(ScaleStage(job_id, 1, 3)), Done)
    wait_for(lambda: len(started_workers(master, job_id)) == 3, what="3 workers Started")
    bad = master.ask(ScaleStage(job_id, 1, 9))
    assert isinstance(bad, Rejected) and "1..3" in bad.reason


def test_resubmit_worker_replaces_it_with_a_new_number_on_the_same_index(master):
    create(master)
    job_id = submit(master)
    wait_for(lambda: started_workers(master, job_id), what="worker Started")
    assert isinstance(master.ask(ResubmitWorker(job_id, 1, reason="t")), Done)
    (w,) = wait_for(lambda: started_workers(master, job_id), what="replacement Started")
    assert (w["workerIndex"], w["workerNumber"], w["resubmitOf"]) == (0, 2, 1)
    archived = master.ask(GetArchivedWorkers(job_id)).body
    assert [a["workerNumber"] for a in archived] == [1]


def test_disabled_cluster_rejects_submits_and_kills_its_jobs(master):
    create(master)
    job_id = submit(master)
    assert isinstance(master.ask(DisableCluster("synth", "t")), Done)
    refused = master.ask(SubmitJob("synth", JobDefinition()))
    assert isinstance(refused, Rejected) and refused.status == 409
    wait_for(lambda: job(master, job_id)["state"] == "Completed", what="job killed")
    assert isinstance(master.ask(EnableCluster("synth", "t")), Done)
    assert submit(master) == "synth-2"


def test_cluster_with_active_job_cannot_be_deleted(master):
    create(master)
    job_id = submit(master)
    refused = master.ask(DeleteCluster("synth"))
    assert isinstance(refused, Rejected) and refused.status == 409 and job_id in refused.reason
    master.ask(KillJob(job_id, "Killed"))
    wait_for(lambda: job(master, job_id)["state"] == "Completed", what="job Completed")
    assert isinstance(master.ask(DeleteCluster("synth")), Done)
    wait_for(lambda: master.ask(ListClusters()).body == [], what="cluster gone")


def test_worker_too_big_for_any_agent_stays_pending_with_a_reason(master):
    create(master, schedulingInfo={"stages": {"1": {"machineDefinition": {"cpuCores": 64}}}})
    job_id = submit(master)
    pending = wait_for(lambda: master.ask(GetPending(), to="scheduler").body, what="pending worker")
    assert pending[0]["workerId"] == f"{job_id}/w1" and pending[0]["reasons"]
    assert any("cpu" in r.lower() for r in pending[0]["reasons"])
    agents = master.ask(ListAgents(), to="scheduler").body
    assert agents[0]["agentId"] == "local"
    # How late the scheduler handles the agent's heartbeats (its own clock on each).
    (lag,) = wait_for(lambda: [a["heartbeatLagS"] for a in master.ask(ListAgents(), to="scheduler").body
                               if a["heartbeatLagS"] is not None], what="a heartbeat's lag")
    assert 0 <= lag < 10


def test_worker_killed_with_kill_9_is_replaced(master):
    if master.base != "multiprocTCPBase":
        pytest.skip("only multiprocTCPBase runs workers in their own processes")
    create(master)
    job_id = submit(master)
    (w,) = wait_for(lambda: started_workers(master, job_id), what="worker Started")
    pid = wait_for(lambda: job(master, job_id)["workers"][0]["metrics"].get("pid"), what="worker pid")
    os.kill(pid, signal.SIGKILL)
    (new,) = wait_for(lambda: [x for x in started_workers(master, job_id) if x["workerNumber"] != 1],
                      what="replacement Started")
    assert new["workerIndex"] == 0 and new["resubmitOf"] == 1
    assert new["metrics"].get("pid") != pid or new["metrics"].get("pid") is None


def test_worker_that_stops_heartbeating_is_failed_and_replaced(master):
    if master.base != "multiprocTCPBase":
        pytest.skip("only multiprocTCPBase runs workers in their own processes")
    create(master)
    job_id = submit(master)
    wait_for(lambda: started_workers(master, job_id), what="worker Started")
    pid = wait_for(lambda: job(master, job_id)["workers"][0]["metrics"].get("pid"), what="worker pid")
    os.kill(pid, signal.SIGSTOP)  # alive but silent: only the heartbeat timeout can notice
    try:
        (new,) = wait_for(lambda: [x for x in started_workers(master, job_id) if x["workerNumber"] != 1],
                          timeout=30, what="replacement after heartbeat timeout")
        archived = master.ask(GetArchivedWorkers(job_id)).body
        assert archived[0]["workerNumber"] == 1 and archived[0]["reason"] == "heartbeat timeout"
        assert new["workerIndex"] == 0
    finally:
        os.kill(pid, signal.SIGKILL)
