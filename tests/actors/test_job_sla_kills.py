"""A job's SLA kept by the real master actors with a real agent and worker processes, over
both Thespian bases: the subscription timeout of a Transient job, and a runtime limit."""
from tests.runtime.readers import FrameCollector
from tests.support import keep_asking, wait_for

CLUSTER = {"name": "jsla", "url": "mantis.examples.synthetic:job",
           "parameters": [{"name": "rate", "value": 5}],
           "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1,
                                               "machineDefinition": {"cpuCores": 0.5, "memoryMB": 128}}}}}
TRANSIENT = {"durationType": "Transient"}


def ended(master, job_id) -> dict | None:
    job = master.job(job_id)
    return job if job["state"] in ("Completed", "Failed") else None


def test_a_transient_job_without_subscribers_is_killed_after_its_subscription_timeout(master):
    master.create_cluster(CLUSTER)
    job_id = master.submit("jsla", jobSla=TRANSIENT, subscriptionTimeoutSecs=2)
    wait_for(lambda: master.started_workers(job_id), timeout=30, what="the job running")
    job = wait_for(lambda: ended(master, job_id), timeout=30, what="the job killed by its SLA")
    assert job["state"] == "Completed" and job["killReason"] == "SLA"
    assert "subscriptionTimeoutSecs 2" in job["killMessage"]


def test_a_subscribed_transient_job_is_not_killed_until_its_subscriber_leaves(master):
    master.create_cluster(CLUSTER)
    job_id = master.submit("jsla", jobSla=TRANSIENT, subscriptionTimeoutSecs=2)
    (worker,) = wait_for(lambda: master.started_workers(job_id), timeout=30, what="the job running")
    subscriber = FrameCollector(worker["ports"][0])
    try:
        subscriber.wait_for_events(1, timeout=10)
        wait_for(lambda: master.job(job_id)["workers"][0]["metrics"].get("subscribers") == 1, timeout=10,
                 what="the worker counting its subscriber")
        # More than twice the timeout, subscribed all along.
        assert set(keep_asking(lambda: master.job(job_id)["state"], 5)) == {"Launched"}
    finally:
        subscriber.close()
    job = wait_for(lambda: ended(master, job_id), timeout=30, what="the job killed once unsubscribed")
    assert job["killReason"] == "SLA"


def test_a_job_is_killed_at_its_runtime_limit(master):
    master.create_cluster(CLUSTER)
    job_id = master.submit("jsla", jobSla={"runtimeLimitSecs": 3})
    wait_for(lambda: master.started_workers(job_id), timeout=30, what="the job running")
    job = wait_for(lambda: ended(master, job_id), timeout=30, what="the job killed at its limit")
    assert job["killReason"] == "RuntimeLimit" and "runtimeLimitSecs is 3" in job["killMessage"]
    assert job["endedAt"] - job["startedAt"] >= 3
