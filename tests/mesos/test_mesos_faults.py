"""Faults with Mesos as the resource manager: a worker killed, an agent lost, an offer
rescinded, offers declined, the master killed and restarted, a task nobody knows."""
from __future__ import annotations

import os
import signal
import time

from mantis.tooling.api_answers import job_workers
from mantis.tooling.local_processes import wait_for
from tests.e2e.test_multi_stage_job import get_job, stage_workers, streaming, submit_keyed_count
from tests.mesos.conftest import mesos_cluster, task_pids


def running_tasks(double) -> dict:
    return {tid: t for tid, t in double.state()["tasks"].items() if t["state"] == "TASK_RUNNING"}


def kill_job(cluster, double, job_id):
    assert cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=e2e&reason=test")[0] == 202
    wait_for(lambda: not running_tasks(double), timeout=30, what="the job's tasks killed")


def test_a_worker_task_killed_with_kill_9_is_replaced_by_a_new_task(mesos_master, double):
    job_id = submit_keyed_count(mesos_master, rate=500, keys=20, limit=0)
    job = wait_for(lambda: streaming(mesos_master, job_id), timeout=60, interval=0.5, what="streaming")
    victim = stage_workers(job, 2)[0]
    pids = task_pids(double)
    victim_task = f"{job_id}/w{victim['workerNumber']}"  # a task's id is its worker's key
    os.kill(pids[victim_task], signal.SIGKILL)

    def replaced():
        j = get_job(mesos_master, job_id)
        s2 = stage_workers(j, 2)
        return (victim["workerNumber"] not in {w["workerNumber"] for w in s2}
                and all(w["state"] == "Started" for w in job_workers(j)) and len(s2) == 2)

    wait_for(replaced, timeout=60, interval=0.5, what="the killed worker replaced")
    failed = [c for c in double.state()["events"] if c["event"]["type"] == "UPDATE"
              and c["event"]["update"]["status"]["task_id"]["value"] == victim_task
              and c["event"]["update"]["status"]["state"] == "TASK_FAILED"]
    assert failed
    assert len(running_tasks(double)) == 3
    kill_job(mesos_master, double, job_id)


def test_an_agent_lost_with_failure_has_its_workers_replaced_on_another_agent(mesos_master, double):
    job_id = submit_keyed_count(mesos_master, rate=500, keys=20, limit=0)
    wait_for(lambda: streaming(mesos_master, job_id), timeout=60, interval=0.5, what="streaming")
    tasks = running_tasks(double)
    lost = max({t["agent_id"] for t in tasks.values()}, key=lambda a: sum(t["agent_id"] == a for t in tasks.values()))
    other = ({"agent-a", "agent-b"} - {lost}).pop()
    assert double.admin(f"/double/agents/{lost}/lose") == 200
    wait_for(lambda: lost not in {a["agentId"] for a in mesos_master.call("GET", "/api/v1/agents")[1]["list"]},
             timeout=20, what="the lost agent gone from the scheduler")

    def all_on_other():
        now = running_tasks(double)
        return len(now) == 3 and all(t["agent_id"] == other for t in now.values()) and \
            all(w["state"] == "Started" for w in job_workers(get_job(mesos_master, job_id)))

    wait_for(all_on_other, timeout=60, interval=0.5, what=f"every worker replaced on {other}")
    kill_job(mesos_master, double, job_id)


def submit_unplaceable(cluster, name="nowhere"):
    """A job whose worker no agent can take (zone c): it keeps the framework reviving offers."""
    definition = {"name": name, "url": "mantis.examples.synthetic:job",
                  "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                                      "machineDefinition": {"cpuCores": 1, "memoryMB": 128},
                                                      "hardConstraints": [["zone", "IS", "c"]]}}}}
    assert cluster.call("POST", "/api/v1/jobClusters", definition)[0] == 201
    return cluster.call("POST", f"/api/v1/jobClusters/{name}/jobs", {})[1]["jobMetadata"]["jobId"]


def test_an_offer_rescinded_before_accept_is_never_used(mesos_master, double):
    waiting = submit_unplaceable(mesos_master)
    def lease_of_a():
        agents = mesos_master.call("GET", "/api/v1/agents")[1]["list"]
        return [a["total"]["cpus"] for a in agents if a["agentId"] == "agent-a"]

    wait_for(lambda: any(o["agent_id"] == "agent-a" for o in double.state()["offers"].values())
             and (lease_of_a() or [0])[0] > 0, timeout=30, what="an offer of agent-a held as its lease")
    assert double.admin("/double/agents/agent-a/unoffer") == 200
    rescinded = {e["event"]["rescind"]["offer_id"]["value"] for e in double.state()["events"]
                 if e["event"]["type"] == "RESCIND"}
    assert rescinded
    # The rescind withdrew the offer from agent-a's lease in the scheduler.
    wait_for(lambda: lease_of_a() == [0], timeout=10, what="agent-a's lease empty")
    job_id = submit_keyed_count(mesos_master, rate=500, keys=20, limit=0)
    wait_for(lambda: streaming(mesos_master, job_id), timeout=60, interval=0.5, what="streaming")
    state = double.state()
    used = {o["value"] for c in state["calls"] if c["type"] == "ACCEPT" for o in c["body"]["accept"]["offer_ids"]}
    assert used and not used & rescinded
    assert {t["agent_id"] for t in running_tasks(double).values()} == {"agent-b"}
    assert mesos_master.call("DELETE", f"/api/v1/jobs/{waiting}?user=e2e&reason=test")[0] == 202
    kill_job(mesos_master, double, job_id)


def test_unused_offers_are_declined_with_a_filter_and_not_offered_again_within_it(mesos_master, double):
    # One small worker: the framework revives, both agents are offered, one offer is used
    # and the other is held for offer_hold_s (2 s), then declined for refuse_s (5 s).
    definition = {"name": "one", "url": "mantis.examples.synthetic:job",
                  "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                                      "machineDefinition": {"cpuCores": 1, "memoryMB": 128},
                                                      "hardConstraints": [["zone", "IS", "a"]]}}}}
    assert mesos_master.call("POST", "/api/v1/jobClusters", definition)[0] == 201
    job_id = mesos_master.call("POST", "/api/v1/jobClusters/one/jobs", {})[1]["jobMetadata"]["jobId"]

    def declined_b():
        state = double.state()
        offers_b = {o["id"]["value"] for e in state["events"] if e["event"]["type"] == "OFFERS"
                    for o in e["event"]["offers"]["offers"] if o["agent_id"]["value"] == "agent-b"}
        return [c for c in state["calls"] if c["type"] == "DECLINE"
                and {o["value"] for o in c["body"]["decline"]["offer_ids"]} & offers_b]

    decline = wait_for(declined_b, timeout=30, what="agent-b's unused offer declined")[0]
    assert decline["body"]["decline"]["filters"] == {"refuse_seconds": 5.0}
    (fid,) = double.state()["frameworks"]
    # The double holds the filter the framework asked for...
    assert 0 < double.state()["frameworks"][fid]["filters"]["agent-b"] <= 5.0
    time.sleep(5.5)
    # ...and agent-b was not offered again within it (nothing waits now, so the framework
    # also suppressed; the double's own test shows the filter alone holds offers back).
    again = [e for e in double.state()["events"] if e["event"]["type"] == "OFFERS"
             and decline["at"] < e["at"] < decline["at"] + 5.0
             and any(o["agent_id"]["value"] == "agent-b" for o in e["event"]["offers"]["offers"])]
    assert again == []
    assert {t["agent_id"] for t in running_tasks(double).values()} == {"agent-a"}
    # Nothing waits, so offers are suppressed: a worker for agent-b brings them back by REVIVE.
    assert double.state()["frameworks"][fid]["suppressed"]
    definition["name"], definition["schedulingInfo"]["stages"]["1"]["hardConstraints"] = "two", [["zone", "IS", "b"]]
    assert mesos_master.call("POST", "/api/v1/jobClusters", definition)[0] == 201
    second = mesos_master.call("POST", "/api/v1/jobClusters/two/jobs", {})[1]["jobMetadata"]["jobId"]
    wait_for(lambda: "agent-b" in {t["agent_id"] for t in running_tasks(double).values()}, timeout=30,
             what="the second job's worker on agent-b")
    kinds = [c["type"] for c in double.state()["calls"]]
    last_accept = len(kinds) - 1 - kinds[::-1].index("ACCEPT")
    last_suppress = len(kinds) - 1 - kinds[::-1].index("SUPPRESS", len(kinds) - last_accept)
    assert "REVIVE" in kinds[last_suppress:last_accept]
    assert mesos_master.call("DELETE", f"/api/v1/jobs/{second}?user=e2e&reason=test")[0] == 202
    kill_job(mesos_master, double, job_id)


def test_the_master_killed_and_restarted_resubscribes_as_the_same_framework_and_restarts_no_worker(tmp_path, double):
    cluster = mesos_cluster(tmp_path, double)
    try:
        cluster.start_master()
        job_id = submit_keyed_count(cluster, rate=500, keys=20, limit=0)
        before = wait_for(lambda: streaming(cluster, job_id), timeout=60, interval=0.5, what="streaming")
        (fid,) = double.state()["frameworks"]
        tasks_before = task_pids(double)
        cluster.master.kill9()
        wait_for(lambda: not double.state()["frameworks"][fid]["connected"], timeout=20, what="the stream closed")
        subscribes = len([c for c in double.state()["calls"] if c["type"] == "SUBSCRIBE"])
        cluster.start_master()
        wait_for(lambda: double.state()["frameworks"][fid]["connected"], timeout=30, what="re-subscribed")
        state = double.state()
        assert list(state["frameworks"]) == [fid]
        resub = [c for c in state["calls"] if c["type"] == "SUBSCRIBE"][subscribes:]
        assert resub[0]["body"]["framework_id"] == {"value": fid}
        info = resub[0]["body"]["subscribe"]["framework_info"]
        assert (info["id"], info["role"], info["principal"], info["failover_timeout"]) == (
            {"value": fid}, "mantis", "mantis-test", 120.0)
        wait_for(lambda: any(c["type"] == "RECONCILE" and not c["body"]["reconcile"]["tasks"]
                             for c in double.state()["calls"][len(state["calls"]) - 5:]),
                 timeout=20, what="an implicit reconciliation")
        time.sleep(8)  # past the orphan grace and a few heartbeat timeouts
        after = get_job(cluster, job_id)
        assert {w["workerNumber"] for w in job_workers(after)} == {w["workerNumber"] for w in job_workers(before)}
        assert all(w["state"] == "Started" for w in job_workers(after))
        assert task_pids(double) == tasks_before  # the same processes: nothing restarted
        kill_job(cluster, double, job_id)
    finally:
        cluster.master.stop()


def test_a_task_the_master_does_not_know_is_killed_after_reconciliation(tmp_path, double):
    cluster = mesos_cluster(tmp_path, double)
    try:
        cluster.start_master()
        # Subscribed, and the framework id stored: the master has reconciled.
        wait_for(lambda: any(c["type"] == "RECONCILE" for c in double.state()["calls"]), timeout=20,
                 what="subscribed and reconciled")
        (fid,) = double.state()["frameworks"]
        cluster.master.kill9()
        # A task of ours that no job knows (an earlier incarnation's, say).
        port = double.state()["agents"]["agent-a"]["free"][-1]["ranges"]["range"][0]["begin"]
        ghost = {"name": "ghost", "task_id": {"value": "ghost-1/w7"}, "agent_id": {"value": "agent-a"},
                 "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                               {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}},
                               {"name": "ports", "type": "RANGES",
                                "ranges": {"range": [{"begin": port, "end": port}]}}],
                 "command": {"value": "sleep 120"}}
        assert double.admin(f"/double/frameworks/{fid}/tasks", ghost) == 201
        assert double.state()["tasks"]["ghost-1/w7"]["state"] == "TASK_RUNNING"
        cluster.start_master()
        wait_for(lambda: double.state()["tasks"].get("ghost-1/w7", {}).get("state") in (None, "TASK_KILLED"),
                 timeout=40, interval=0.5, what="the unknown task killed")
        kills = [c for c in double.state()["calls"] if c["type"] == "KILL"]
        assert [k["body"]["kill"]["task_id"]["value"] for k in kills] == ["ghost-1/w7"]
    finally:
        cluster.master.stop()


def test_a_dropped_stream_is_subscribed_again_and_the_known_tasks_reconciled_explicitly(mesos_master, double):
    job_id = submit_keyed_count(mesos_master, rate=500, keys=20, limit=0)
    before = wait_for(lambda: streaming(mesos_master, job_id), timeout=60, interval=0.5, what="streaming")
    (fid,) = double.state()["frameworks"]
    pids = task_pids(double)
    calls = len(double.state()["calls"])
    assert double.admin(f"/double/frameworks/{fid}/disconnect") == 200

    def reconciled():
        new = double.state()["calls"][calls:]
        kinds = [c["type"] for c in new]
        return new if "SUBSCRIBE" in kinds and kinds.count("RECONCILE") >= 2 else None

    new = wait_for(reconciled, timeout=30, what="subscribed again and reconciled")
    reconciles = [c["body"]["reconcile"]["tasks"] for c in new if c["type"] == "RECONCILE"]
    # Explicit first (every task this master launched), then implicit (every task Mesos has).
    assert {t["task_id"]["value"] for t in reconciles[0]} == set(pids) and reconciles[1] == []
    time.sleep(3)
    after = get_job(mesos_master, job_id)
    assert {w["workerNumber"] for w in job_workers(after)} == {w["workerNumber"] for w in job_workers(before)}
    assert all(w["state"] == "Started" for w in job_workers(after)) and task_pids(double) == pids
    kill_job(mesos_master, double, job_id)


def test_a_task_of_a_live_job_that_the_job_does_not_know_is_killed(mesos_master, double):
    job_id = submit_keyed_count(mesos_master, rate=500, keys=20, limit=0)
    wait_for(lambda: streaming(mesos_master, job_id), timeout=60, interval=0.5, what="streaming")
    (fid,) = double.state()["frameworks"]
    stray = f"{job_id}/w99"  # an incarnation the job never had (or replaced long ago)
    task = {"name": "stray", "task_id": {"value": stray}, "agent_id": {"value": "agent-b"},
            "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
                          {"name": "mem", "type": "SCALAR", "scalar": {"value": 32}}],
            "command": {"value": "sleep 120"}}
    pids = task_pids(double)
    assert double.admin(f"/double/frameworks/{fid}/tasks", task) == 201
    wait_for(lambda: double.state()["tasks"].get(stray, {}).get("state") in (None, "TASK_KILLED"),
             timeout=30, interval=0.5, what="the stray task killed")
    assert stray in [c["body"]["kill"]["task_id"]["value"] for c in double.state()["calls"] if c["type"] == "KILL"]
    assert task_pids(double) == pids  # the job's own workers untouched
    kill_job(mesos_master, double, job_id)
