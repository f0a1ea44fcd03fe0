"""Started workers announced in a real ZooKeeper as serverset members, read with a plain
kazoo client (no Mantis code), and withdrawn when the workers stop."""
import json
import os
import signal
import uuid

import pytest
from kazoo.client import KazooClient

from actors.messages import KillJob
from mantis.tooling.zookeeper_server import ZooKeeperServer, zookeeper_installed
from tests.actors.conftest import BASES, running_master
from tests.runtime.readers import FrameCollector
from tests.support import make_config, wait_for

CLUSTER = {"name": "ann", "url": "mantis.examples.synthetic:job",
           "parameters": [{"name": "rate", "value": 20}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 2,
                                               "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}}}


@pytest.fixture(scope="module")
def zookeeper():
    if not zookeeper_installed():
        pytest.skip("ZooKeeper is not installed: run scripts/install_zookeeper.sh")
    with ZooKeeperServer(tick_time_ms=500) as server:
        yield server


@pytest.fixture
def root():
    return f"/ann-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=BASES)
def master(request, tmp_path, zookeeper, root):
    config = make_config(tmp_path, base=request.param, **{
        "announce.hosts": f'"{zookeeper.hosts}"', "announce.root": f'"{root}"', "announce.session_timeout_s": 2})
    with running_master(config, request.param) as m:
        yield m


@pytest.fixture
def zk(zookeeper):
    client = KazooClient(hosts=zookeeper.hosts)
    client.start(timeout=10)
    yield client
    client.stop()
    client.close()


def members(zk, path) -> dict[str, dict]:
    """Member znode name -> its JSON data (a member may vanish between the two reads)."""
    out = {}
    for name in zk.get_children(path) if zk.exists(path) else []:
        found = zk.exists(f"{path}/{name}")
        if found is not None:
            data, stat = zk.get(f"{path}/{name}")
            out[name] = {**json.loads(data), "ephemeral": stat.ephemeralOwner != 0}
    return out


def test_started_workers_are_announced_as_serverset_members_and_withdrawn_on_kill(master, zk, root):
    master.create_cluster(CLUSTER)
    job_id = master.submit("ann")
    workers = wait_for(lambda: len(master.started_workers(job_id)) == 2 and master.started_workers(job_id),
                       timeout=30, what="two workers Started")
    path = f"{root}/announce/ann/{job_id}/1"
    announced = wait_for(lambda: len(members(zk, path)) == 2 and members(zk, path), timeout=20,
                         what="two members announced")
    assert all(name.startswith("member_") for name in announced)
    by_shard = {m["shard"]: m for m in announced.values()}
    for w in workers:
        m = by_shard[w["workerIndex"]]
        assert m["status"] == "ALIVE" and m["ephemeral"]
        assert m["serviceEndpoint"] == {"host": "127.0.0.1", "port": w["ports"][0]}
        assert m["additionalEndpoints"] == {"output": m["serviceEndpoint"]}
    # What the serverset names is the worker's live output.
    reader = FrameCollector(next(iter(announced.values()))["serviceEndpoint"]["port"])
    try:
        assert reader.wait_for_events(1, timeout=10)
    finally:
        reader.close()

    master.done(KillJob(job_id, user="t"))
    # (Asking the master too keeps a simpleSystemBase system running meanwhile.)
    wait_for(lambda: master.job(job_id) and not members(zk, path), timeout=20,
             what="members withdrawn after the kill")


def test_a_worker_killed_with_sigkill_leaves_the_serverset_with_its_session(master, zk, root):
    if master.base != "multiprocTCPBase":
        pytest.skip("needs each worker in a process of its own")
    master.create_cluster({**CLUSTER, "schedulingInfo": {"stages": {"1": {
        "numberOfInstances": 1, "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}}})
    job_id = master.submit("ann")
    path = f"{root}/announce/ann/{job_id}/1"
    (first,) = wait_for(lambda: members(zk, path), timeout=30, what="the worker announced")
    pid = wait_for(lambda: master.job(job_id)["workers"][0]["metrics"].get("pid"), what="the worker's pid")
    os.kill(pid, signal.SIGKILL)
    # Its session expires (no one withdraws it); the replacement joins under a new member.
    wait_for(lambda: master.job(job_id) and first not in members(zk, path) and len(members(zk, path)) == 1,
             timeout=40,
             what="the dead worker's member gone and its replacement announced")
    master.done(KillJob(job_id, user="t"))
    # (Asking the master too keeps a simpleSystemBase system running meanwhile.)
    wait_for(lambda: master.job(job_id) and not members(zk, path), timeout=20,
             what="members withdrawn after the kill")
