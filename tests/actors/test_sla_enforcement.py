"""A cluster's SLA kept by the real master actors with a real agent and workers, over
both Thespian bases: min and max with each policy, cron triggering and its pause."""
import pytest

from actors.actor_system import start_master_actors
from actors.messages import DisableCluster, EnableCluster, GetCluster, KillJob, ListJobs, Rejected, SubmitJob
from mantis.model.definitions import JobDefinition
from tests.actors.conftest import Master
from tests.support import keep_asking, make_config, reap_forked_leftovers, wait_for

CLUSTER = {"name": "sla", "url": "mantis.examples.synthetic:job",
           "parameters": [{"name": "rate", "value": 5}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                               "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}}}
EVERY_2_S = "*/2 * * * * ?"  # Quartz, as Mantis writes it: seconds first


@pytest.fixture(params=["simpleSystemBase", "multiprocTCPBase"])
def master(request, tmp_path):
    config = make_config(tmp_path, base=request.param, **{"master.sla_tick_s": 0.5})
    actors = start_master_actors(config)
    yield Master(actors, config)
    actors.system.shutdown()
    if request.param == "multiprocTCPBase":
        reap_forked_leftovers()


def jobs(master, state=None) -> dict[str, dict]:
    """Job id -> summary, of every job of the cluster (ended ones too)."""
    listed = master.ask(ListJobs(cluster="sla", include_ended=True)).body
    return {j["jobId"]: j for j in listed if state is None or j["state"] == state}


def cluster(master) -> dict:
    return master.done(GetCluster("sla"))


def test_a_cluster_below_its_sla_min_is_given_jobs_and_a_killed_one_is_replaced(master):
    master.create_cluster({**CLUSTER, "slaMin": 2, "slaMax": 3})
    wait_for(lambda: len(jobs(master, "Launched")) == 2, timeout=30, what="two jobs submitted and running")
    assert {j["user"] for j in jobs(master).values()} == {"mantis-sla"}
    master.done(KillJob("sla-1", user="t"))
    wait_for(lambda: "sla-3" in jobs(master, "Launched"), timeout=30, what="a third job after the kill")
    # The killed job stays active until its workers have stopped.
    wait_for(lambda: sorted(cluster(master)["activeJobs"]) == ["sla-2", "sla-3"], timeout=30,
             what="the killed job gone from the active ones")


def test_keep_new_kills_the_oldest_job_once_a_newer_one_runs(master):
    master.create_cluster({**CLUSTER, "slaMax": 1, "cronPolicy": "KEEP_NEW"})
    first = master.submit("sla")
    wait_for(lambda: first in jobs(master, "Launched"), timeout=30, what="the first job running")
    second = master.submit("sla")  # admitted at max: KEEP_NEW
    wait_for(lambda: jobs(master).get(first, {}).get("state") == "Completed", timeout=30,
             what="the older job killed")
    assert master.job(first)["killReason"] == "SLA"
    wait_for(lambda: second in jobs(master, "Launched"), timeout=30, what="the newer job running")


def test_keep_existing_refuses_the_newest_submission_at_sla_max(master):
    master.create_cluster({**CLUSTER, "slaMax": 1, "cronPolicy": "KEEP_EXISTING"})
    first = master.submit("sla")
    reply = master.ask(SubmitJob("sla", JobDefinition(user="t")))
    assert isinstance(reply, Rejected) and reply.status == 409 and "slaMax" in reply.reason
    wait_for(lambda: first in jobs(master, "Launched"), timeout=30, what="the first job running on")


def test_a_cron_spec_submits_a_job_on_its_schedule_and_keep_new_replaces_the_running_one(master):
    master.create_cluster({**CLUSTER, "cronSpec": EVERY_2_S, "cronPolicy": "KEEP_NEW"})
    assert (cluster(master)["slaMin"], cluster(master)["slaMax"]) == (0, 1)
    wait_for(lambda: "sla-1" in jobs(master, "Launched"), timeout=30, what="a job submitted by cron")
    assert jobs(master)["sla-1"]["user"] == "mantis-cron"
    wait_for(lambda: jobs(master).get("sla-1", {}).get("state") == "Completed", timeout=30,
             what="the cron's next job replacing the first")
    assert master.job("sla-1")["killReason"] == "SLA"


def test_cron_keep_existing_submits_nothing_while_its_job_runs(master):
    master.create_cluster({**CLUSTER, "cronSpec": EVERY_2_S, "cronPolicy": "KEEP_EXISTING"})
    wait_for(lambda: "sla-1" in jobs(master, "Launched"), timeout=30, what="a job submitted by cron")
    # Two or three more firings, each skipped.
    assert {tuple(j) for j in keep_asking(lambda: jobs(master), 5)} == {("sla-1",)}
    master.done(KillJob("sla-1", user="t"))
    wait_for(lambda: "sla-2" in jobs(master), timeout=30, what="the cron's next job once the first ended")


def test_cron_is_paused_while_the_cluster_is_disabled(master):
    master.create_cluster({**CLUSTER, "cronSpec": EVERY_2_S, "cronPolicy": "KEEP_NEW"})
    wait_for(lambda: jobs(master), timeout=30, what="a job submitted by cron")
    master.done(DisableCluster("sla", user="t"))
    wait_for(lambda: not cluster(master)["activeJobs"], timeout=30, what="the disabled cluster's jobs killed")
    submitted = cluster(master)["latestJobNumber"]
    # Two or three moments of the spec pass.
    assert set(keep_asking(lambda: cluster(master)["latestJobNumber"], 5)) == {submitted}
    master.done(EnableCluster("sla", user="t"))
    wait_for(lambda: cluster(master)["latestJobNumber"] > submitted, timeout=30,
             what="cron submitting again once enabled")
