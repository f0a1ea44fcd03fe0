"""Mesos as the resource manager across a master failover (two masters, ZooKeeper store
and election): the new leader subscribes as the same framework, reconciles, and the
running workers (Mesos tasks) go on without a restart, reporting to the new leader."""
from __future__ import annotations

import time
import uuid

from mantis.tooling.api_answers import job_workers
from mantis.tooling.local_processes import HaCluster
from tests.e2e.test_multi_stage_job import streaming, submit_keyed_count
from tests.ha.conftest import zookeeper  # noqa: F401  (the shared ZooKeeper fixture)
from tests.mesos.conftest import task_pids
from tests.support import make_config, wait_for


def test_after_a_failover_the_new_leader_resubscribes_as_the_same_framework_and_restarts_no_worker(
        tmp_path, zookeeper, double):  # noqa: F811
    tag = uuid.uuid4().hex[:10]
    config = make_config(tmp_path, **{
        "leader_election.session_timeout_s": 4, "leader_election.path": f'"/{tag}/leader"',
        "store.root": f'"/{tag}/store"', "workers.heartbeat_timeout_s": 8,
        "scheduler.resource_manager": '"mesos"', "mesos.master": f'"{double.url}"',
        "mesos.failover_timeout_s": 120.0, "mesos.offer_hold_s": 2.0})
    ha = HaCluster(config, tmp_path, zookeeper.hosts, masters=2)
    try:
        ha.masters[0].start()
        assert ha.wait_leader(60) == 0
        ha.masters[1].start()
        wait_for(lambda: ha.info(1), timeout=60, what="the standby answering")
        wait_for(lambda: any(c["type"] == "RECONCILE" for c in double.state()["calls"]), timeout=30,
                 what="the leader subscribed")
        job_id = submit_keyed_count(ha, rate=500, keys=20, limit=0)
        before = wait_for(lambda: streaming(ha, job_id), timeout=90, interval=0.5, what="streaming")
        (fid,) = double.state()["frameworks"]
        pids = task_pids(double)
        calls = len(double.state()["calls"])
        ha.masters[0].kill9()
        assert ha.wait_leader(60) == 1

        def resubscribed():
            new = double.state()["calls"][calls:]
            return [c for c in new if c["type"] == "SUBSCRIBE"] and \
                any(c["type"] == "RECONCILE" and not c["body"]["reconcile"]["tasks"] for c in new)

        wait_for(resubscribed, timeout=60, what="the new leader subscribed and reconciled")
        state = double.state()
        assert list(state["frameworks"]) == [fid] and state["frameworks"][fid]["connected"]
        (subscribe,) = [c for c in state["calls"][calls:] if c["type"] == "SUBSCRIBE"]
        assert subscribe["body"]["framework_id"] == {"value": fid}

        def metrics_moving():
            job = ha.call("GET", f"/api/v1/jobs/{job_id}")[1]
            return job if all(w["state"] == "Started" for w in job_workers(job)) and \
                sum(w["metrics"].get("eventsIn", 0) for w in job_workers(job)) > \
                sum(w["metrics"].get("eventsIn", 0) for w in job_workers(before)) else None

        after = wait_for(metrics_moving, timeout=60, interval=0.5, what="workers reporting to the new leader")
        time.sleep(6)  # past the orphan grace and a heartbeat timeout of the new leader
        after = ha.call("GET", f"/api/v1/jobs/{job_id}")[1]
        assert {w["workerNumber"] for w in job_workers(after)} == {w["workerNumber"] for w in job_workers(before)}
        assert task_pids(double) == pids  # the same processes: nothing restarted
        assert ha.call("DELETE", f"/api/v1/jobs/{job_id}?user=e2e&reason=test")[0] == 202
        wait_for(lambda: not task_pids(double), timeout=30, what="the job's tasks killed")
    finally:
        ha.stop()


def test_the_leading_mesos_master_is_found_through_zookeeper(tmp_path, zookeeper, double):  # noqa: F811
    import json

    from kazoo.client import KazooClient

    from tests.mesos.conftest import mesos_cluster

    # Where a Mesos master publishes itself: a json.info_ sequential znode under /mesos.
    zk = KazooClient(zookeeper.hosts)
    zk.start(timeout=10)
    node = zk.create("/mesos/json.info_", json.dumps({"pid": f"master@127.0.0.1:{double.port}",
                                                      "hostname": "127.0.0.1", "port": double.port}).encode(),
                     ephemeral=True, sequence=True, makepath=True)
    cluster = mesos_cluster(tmp_path, double, **{"mesos.master": f'"zk://{zookeeper.hosts}/mesos"'})
    try:
        cluster.start_master()
        wait_for(lambda: any(c["type"] == "RECONCILE" for c in double.state()["calls"]), timeout=30,
                 what="subscribed to the master ZooKeeper named")
        job_id = submit_keyed_count(cluster, rate=500, keys=20, limit=0)
        wait_for(lambda: streaming(cluster, job_id), timeout=60, interval=0.5, what="streaming")
        assert cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=e2e&reason=test")[0] == 202
        wait_for(lambda: not task_pids(double), timeout=30, what="the job's tasks killed")
    finally:
        cluster.master.stop()
        zk.delete(node)
        zk.stop()
        zk.close()
