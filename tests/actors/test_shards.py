"""Clusters and jobs hosted in shard processes: isolation, restart, checks off the shards,
and a store that fails.  Over both system bases (tests/actors/conftest.py)."""
import os
import resource
import signal
import time

import pytest

from actors.messages import (
    CreateCluster,
    DescribeActors,
    Done,
    GetJob,
    GetShards,
    KillJob,
    ListJobs,
    Rejected,
    ScaleStage,
    SubmitJob,
)
from actors.shard_actor import shard_of
from mantis.model.definitions import JobClusterDefinition, JobDefinition
from tests.support import wait_for

SYNTH = {"name": "synth", "url": "mantis.examples.synthetic:job", "parameters": [{"name": "rate", "value": 20}],
         "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1, "scalable": True,
                                             "scalingPolicy": {"min": 1, "max": 3},
                                             "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}}}
HANGS = "tests.job_fixtures.hangs_on_import:job"


def create(master, **patch):
    master.create_cluster({**SYNTH, **patch})


def submit(master, cluster="synth"):
    return master.submit(cluster)


def get(master, job_id):
    return master.job(job_id)


def started(master, job_id):
    return master.started_workers(job_id)


def shards(master):
    return master.ask(GetShards()).body["shards"]


def test_clusters_live_in_the_shard_their_name_hashes_to(master):
    names = ["alpha", "beta", "gamma", "delta", "epsilon"]
    for name in names:
        create(master, name=name)
    addresses = shards(master)
    assert len(addresses) == master.config["master"]["shards"] > 1
    for index, address in enumerate(addresses):
        hosted = master.system.ask(address, DescribeActors(), 10).body
        assert hosted["index"] == index
        assert sorted(a["name"] for a in hosted["actors"]) == sorted(n for n in names if shard_of(n, 4) == index)


def test_a_hosted_actors_failure_rejects_its_message_and_its_neighbours_keep_working(master):
    create(master)
    first, second = submit(master), submit(master)
    # A malformed request that gets past the API's validation would make the handler raise.
    broken = master.ask(ScaleStage(first, 1, "three"))
    assert isinstance(broken, Rejected) and broken.status == 500 and "TypeError" in broken.reason
    assert get(master, first)["jobId"] == first  # the same actor still answers
    assert isinstance(master.ask(ScaleStage(second, 1, 2)), Done)  # and its neighbour acts
    wait_for(lambda: len(started(master, second)) == 2, what="neighbour scaled to 2")
    assert submit(master) == "synth-3"


def test_a_shard_killed_with_kill_9_is_restarted_and_its_jobs_reattach_their_workers(master):
    if master.base != "multiprocTCPBase":
        pytest.skip("simpleSystemBase has no shard processes to kill")
    create(master)
    job_id = submit(master)
    (worker,) = wait_for(lambda: started(master, job_id), what="worker Started")
    index = shard_of("synth", len(shards(master)))
    old = shards(master)[index]
    pid = master.system.ask(old, DescribeActors(), 10).body["pid"]
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: shards(master)[index] != old, what="shard started again")
    assert master.ask(GetShards()).body["restarts"] == 1
    (after,) = wait_for(lambda: started(master, job_id), timeout=30, what="job recovered with its worker")
    assert after["workerNumber"] == worker["workerNumber"]  # reattached, not replaced
    assert after["metrics"].get("pid") == worker["metrics"].get("pid")
    assert submit(master) == "synth-2"  # the counter survived too


def test_an_entry_point_that_hangs_on_import_is_refused_after_its_timeout_while_other_submits_go_through(master):
    create(master)
    create(master, name="hangs", url=HANGS, parameters=[])
    started_at = time.monotonic()
    master.system.tell(master.actors.manager, SubmitJob("hangs", JobDefinition.from_json({"user": "t"})))
    assert [submit(master) for _ in range(3)] == ["synth-1", "synth-2", "synth-3"]
    assert time.monotonic() - started_at < master.config["master"]["entry_point_check_timeout_s"]
    refused = master.system.listen(30)
    assert isinstance(refused, Rejected) and refused.status == 400 and "did not load within" in refused.reason
    assert [j["jobId"] for j in master.ask(ListJobs(cluster="hangs")).body] == []


def assert_failed_writes_are_not_acknowledged(master, job_id):
    """While the store fails: a submit and a kill are answered 503 and change nothing."""
    refused = master.ask(SubmitJob("synth", JobDefinition.from_json({"user": "t"})))
    assert isinstance(refused, Rejected) and refused.status == 503, refused
    kill = master.ask(KillJob(job_id, "Killed", "test", "t"))
    assert isinstance(kill, Rejected) and kill.status == 503, kill
    assert get(master, job_id)["state"] == "Launched"  # the kill was not applied
    assert isinstance(master.ask(GetJob("synth-2")), Rejected)  # nor the submit


def assert_the_store_works_again(master, job_id):
    assert wait_for(lambda: submit_or_none(master), timeout=30, what="a submit stored") == "synth-2"
    assert isinstance(master.ask(KillJob(job_id, "Killed", "test", "t")), Done)
    wait_for(lambda: get(master, job_id)["state"] == "Completed", what="job killed")


def submit_or_none(master):
    reply = master.ask(SubmitJob("synth", JobDefinition.from_json({"user": "t"})))
    return reply.body["jobId"] if isinstance(reply, Done) else None


def test_a_file_store_that_cannot_commit_answers_503_and_nothing_is_acknowledged(master, tmp_path):
    if master.base != "multiprocTCPBase":
        pytest.skip("the failure is injected into the shard's own process (see the ZooKeeper test)")
    create(master)
    job_id = submit(master)
    wait_for(lambda: started(master, job_id), what="worker Started")
    shard = shards(master)[shard_of("synth", len(shards(master)))]
    pid = master.system.ask(shard, DescribeActors(), 10).body["pid"]
    # A real failure of the commit: the shard's log may not grow (EFBIG, as on a full disk).
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))
    try:
        assert_failed_writes_are_not_acknowledged(master, job_id)
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (hard, hard))
    assert_the_store_works_again(master, job_id)


@pytest.fixture
def zk_master(request, tmp_path):
    """The master's actors on a ZooKeeper store of this test's own, over both system bases."""
    from actors.actor_system import start_master_actors
    from mantis.tooling.zookeeper_server import ZooKeeperServer, zookeeper_installed
    from tests.actors.conftest import Master
    from tests.support import make_config, reap_forked_leftovers

    if not zookeeper_installed():
        pytest.skip("ZooKeeper is not installed: run scripts/install_zookeeper.sh")
    with ZooKeeperServer(tick_time_ms=500) as server:
        config = make_config(tmp_path, base=request.param, **{
            "store.type": '"zookeeper"', "store.hosts": f'"{server.hosts}"', "store.root": '"/shards-test"',
            "store.timeout_s": 2})
        actors = start_master_actors(config)
        m = Master(actors, config)
        m.base, m.zookeeper = request.param, server
        try:
            yield m
        finally:
            actors.system.shutdown()
            if request.param == "multiprocTCPBase":
                reap_forked_leftovers()


@pytest.mark.parametrize("zk_master", ["simpleSystemBase", "multiprocTCPBase"], indirect=True)
def test_a_zookeeper_store_that_is_down_answers_503_and_nothing_is_acknowledged(zk_master):
    master = zk_master
    create(master)
    job_id = submit(master)
    wait_for(lambda: started(master, job_id), what="worker Started")
    master.zookeeper.kill9()
    assert_failed_writes_are_not_acknowledged(master, job_id)
    master.zookeeper.start()
    assert_the_store_works_again(master, job_id)


@pytest.mark.parametrize("base", ["simpleSystemBase", "multiprocTCPBase"])
def test_a_shard_that_cannot_read_its_clusters_answers_503_and_loads_them_once_it_can(base, tmp_path):
    from actors.actor_system import start_master_actors
    from tests.support import make_config, reap_forked_leftovers

    config = make_config(tmp_path, base=base)
    clusters = tmp_path / "store" / "clusters"
    clusters.mkdir(parents=True)
    (clusters / "torn.json").write_text('{"definition": ')  # a record no store can read
    actors = start_master_actors(config)
    try:
        def create():
            return actors.system.ask(actors.manager, CreateCluster(JobClusterDefinition.from_json(SYNTH)), 10)

        refused = create()
        assert isinstance(refused, Rejected) and refused.status == 503, refused
        assert "has not read its clusters" in refused.reason
        (clusters / "torn.json").unlink()
        wait_for(lambda: isinstance(create(), Done), timeout=20, what="the shard to load and take the cluster")
    finally:
        actors.system.shutdown()
        if base == "multiprocTCPBase":
            reap_forked_leftovers()
