"""Keyed multi-stage jobs run by a real master and agent: workers stream to workers across processes.

The job is ``mantis.examples.keyed_count``: stage 1 (the source and a filter) keyed by
user to stage 2 (a running count per user), whose output subscribers read over SSE.
Every claim is checked from what a subscriber receives and from the workers' metrics
as the API shows them.
"""
import os
import signal
import time
from collections import defaultdict

from mantis.examples.keyed_count import expected_counts
from tests.sse_client import SseReader
from tests.support import job_id_of, job_state, job_workers, listed, started_workers, wait_for

MACHINE = {"cpuCores": 1, "memoryMB": 128}


def submit_keyed_count(cluster, rate, keys, limit, counters=2, max_counters=None):
    """Create the cluster and submit one keyed_count job; its job id."""
    stage2 = {"numberOfInstances": counters, "machineDefinition": MACHINE}
    if max_counters:
        stage2.update(scalable=True, scalingPolicy={"min": 1, "max": max_counters})
    definition = {"name": "keyed", "url": "mantis.examples.keyed_count:job",
                  "parameters": [{"name": "rate", "value": rate}, {"name": "keys", "value": keys},
                                 {"name": "limit", "value": limit}],
                  "schedulingInfo": {"stages": {"1": {"numberOfInstances": 1, "machineDefinition": MACHINE},
                                                "2": stage2}}}
    assert cluster.call("POST", "/api/v1/jobClusters", definition)[0] == 201
    status, body = cluster.call("POST", "/api/v1/jobClusters/keyed/jobs", {"user": "e2e"})
    assert status == 201, body
    return job_id_of(body)


def get_job(cluster, job_id):
    status, job = cluster.call("GET", f"/api/v1/jobs/{job_id}")
    assert status == 200, job
    return job


def stage_workers(job, stage):
    return sorted((w for w in job_workers(job) if w["stageNum"] == stage), key=lambda w: w["workerIndex"])


def streaming(cluster, job_id, counters=2):
    """The job's workers once every one is Started and every counter has counted something."""
    job = get_job(cluster, job_id)
    workers = started_workers(job)
    counting = [w for w in stage_workers(job, 2) if w["metrics"].get("eventsIn", 0) > 0]
    return job if len(workers) == 1 + counters and len(counting) == counters else None


def wait_completed(cluster, job_id, timeout=180):
    wait_for(lambda: job_state(get_job(cluster, job_id)) == "Completed", timeout=timeout, interval=0.5,
             what=f"job {job_id} to complete")


def archived_by_stage(cluster, job_id):
    status, archived = cluster.call("GET", f"/api/v1/jobs/{job_id}/archivedWorkers")
    assert status == 200, archived
    by_stage = defaultdict(list)
    for w in listed(archived):
        by_stage[w["stageNum"]].append(w)
    return by_stage


def last_counts(updates):
    """(workerNumber, user) -> the last count that incarnation emitted for the user (counts only grow)."""
    last = {}
    for u in updates:
        key = (u["workerNumber"], u["user"])
        last[key] = max(last.get(key, 0), u["count"])
    return last


def test_a_keyed_count_streams_exactly_the_single_process_counts_to_its_subscriber(cluster):
    limit, keys = 20_000, 50
    job_id = submit_keyed_count(cluster, rate=2000, keys=keys, limit=limit)
    with SseReader(f"{cluster.url}/api/v1/jobs/{job_id}/output") as output:
        wait_completed(cluster, job_id)
        assert output.ended.wait(30), "the output stream did not end with the job"
    assert output.error is None and output.end_reason == f"job {job_id} is Completed"
    summaries = [u for u in output.events if u.get("final")]
    running = [u for u in output.events if not u.get("final")]
    final = {}
    for u in summaries:
        assert u["user"] not in final, f"{u['user']} summarised twice"
        final[u["user"]] = u["count"]
    assert final == dict(expected_counts(limit, keys))
    # Every user was counted by one worker, whose running counts led to its final count.
    owners = defaultdict(set)
    for u in output.events:
        owners[u["user"]].add(u["workerNumber"])
    assert all(len(numbers) == 1 for numbers in owners.values()), owners
    assert {u: c for (_, u), c in last_counts(running).items()} == final
    assert {u["worker"] for u in summaries} == {0, 1}  # both counters got a share
    by_stage = archived_by_stage(cluster, job_id)
    assert all(w["state"] == "Completed" for ws in by_stage.values() for w in ws)
    (source,) = by_stage[1]
    assert sum(w["metrics"]["eventsIn"] for w in by_stage[2]) == limit
    m = source["metrics"]
    assert (m["eventsOut"], m["deliveredEvents"], m["lostEvents"], m["droppedEvents"]) == (limit, limit, 0, 0)


def test_every_worker_reports_its_counters_cpu_and_memory_through_the_job_api(cluster):
    job_id = submit_keyed_count(cluster, rate=2000, keys=50, limit=0)
    first = wait_for(lambda: streaming(cluster, job_id), timeout=60, interval=0.5, what="the job streaming")

    def progressed():
        job = get_job(cluster, job_id)
        before = {w["workerId"]: w["metrics"] for w in job_workers(first)}
        later = {w["workerId"]: w["metrics"] for w in job_workers(job)}
        moved = all(later[k]["eventsIn"] > before[k]["eventsIn"]
                    and later[k]["cpuSeconds"] > before[k]["cpuSeconds"] for k in before if k in later)
        return job if later.keys() == before.keys() and moved else None

    job = wait_for(progressed, timeout=60, interval=0.5, what="every worker's counters to move")
    pids = set()
    for w in job_workers(job):
        m = w["metrics"]
        assert {"pid", "eventsIn", "eventsOut", "droppedEvents", "queueDepth", "cpuSeconds", "cpuPercent",
                "rssMB", "subscribers", "deliveredEvents", "lostEvents", "inFlightEvents"} <= set(m), m
        assert m["eventsIn"] > 0 and m["eventsOut"] > 0 and m["droppedEvents"] == 0 and m["queueDepth"] >= 0
        assert m["cpuPercent"] >= 0
        # The figures are the worker process's own: compare with what the kernel says of it.
        with open(f"/proc/{m['pid']}/status") as f:
            vm_rss_mb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
        assert 0.5 * vm_rss_mb < m["rssMB"] < 2 * vm_rss_mb
        with open(f"/proc/{m['pid']}/stat") as f:
            ticks = f.read().rpartition(")")[2].split()
        cpu_now = (int(ticks[11]) + int(ticks[12])) / os.sysconf("SC_CLK_TCK")
        assert 0 < m["cpuSeconds"] <= cpu_now + 0.05
        pids.add(m["pid"])
    assert len(pids) == 3  # a process per worker
    (source,) = stage_workers(job, 1)
    assert source["metrics"]["subscribers"] == 2 and source["metrics"]["deliveredEvents"] > 0
    assert cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=e2e&reason=done")[0] == 202


def test_a_counter_killed_mid_stream_is_replaced_and_what_it_lost_is_counted(cluster):
    limit, keys = 30_000, 50
    job_id = submit_keyed_count(cluster, rate=1000, keys=keys, limit=limit)
    with SseReader(f"{cluster.url}/api/v1/jobs/{job_id}/output") as output:
        job = wait_for(lambda: streaming(cluster, job_id), timeout=60, interval=0.5, what="the job streaming")
        victim = stage_workers(job, 2)[1]
        pid = victim["metrics"]["pid"]
        wait_for(lambda: any(u["workerNumber"] == victim["workerNumber"] for u in list(output.events)),
                 timeout=30, interval=0.2, what="the subscriber reading the victim's output")
        # Freeze it first, so batches are certainly in flight to it (sent, never confirmed)
        # when it dies; then kill -9, as a machine would.
        os.kill(pid, signal.SIGSTOP)
        stopped_at = time.time()

        def in_flight_to_the_frozen_worker():
            # More than a batch or two (a moment's worth in flight to a live worker), in
            # a report certainly taken after the freeze; or already counted lost, if the
            # master gave up on the silent worker first and its replacement took over.
            (source,) = stage_workers(get_job(cluster, job_id), 1)
            fresh = source["lastHeartbeatAt"] > (stopped_at + 1.0) * 1000  # epoch ms
            m = source["metrics"]
            return fresh and (m["inFlightEvents"] >= 150 or m["lostEvents"] > 0)

        wait_for(in_flight_to_the_frozen_worker, timeout=30, interval=0.2, what="events in flight")
        os.kill(pid, signal.SIGKILL)

        def replaced():
            job = get_job(cluster, job_id)
            new = [w for w in stage_workers(job, 2) if w["workerIndex"] == victim["workerIndex"]
                   and w["workerNumber"] != victim["workerNumber"] and w["state"] == "Started"]
            return new[0] if new else None

        replacement = wait_for(replaced, timeout=60, interval=0.5, what="a replacement on the same index")
        assert replacement["resubmitOf"] == victim["workerNumber"]
        # The loss is visible through the API while the job runs.
        wait_for(lambda: stage_workers(get_job(cluster, job_id), 1)[0]["metrics"]["lostEvents"] > 0,
                 timeout=30, interval=0.5, what="the source worker to count the lost events")
        wait_completed(cluster, job_id)
        assert output.ended.wait(30), "the output stream did not end with the job"

    by_stage = archived_by_stage(cluster, job_id)
    (source,) = by_stage[1]
    s1 = source["metrics"]
    killed = [w for w in by_stage[2] if w["workerNumber"] == victim["workerNumber"]]
    survivors = [w for w in by_stage[2] if w["workerNumber"] != victim["workerNumber"]]
    assert [w["state"] for w in killed] == ["Failed"]
    assert sorted(w["workerIndex"] for w in survivors) == [0, 1]
    assert all(w["state"] == "Completed" for w in survivors + [source])
    # Every event the source made is accounted for: confirmed by a counter, lost in
    # flight to the killed one, or dropped; and the kill did cost events.
    assert s1["eventsOut"] == limit
    assert s1["deliveredEvents"] + s1["lostEvents"] + s1["droppedEvents"] == limit
    assert s1["lostEvents"] > 0
    received_by_survivors = sum(w["metrics"]["eventsIn"] for w in survivors)
    confirmed_by_killed = s1["deliveredEvents"] - received_by_survivors
    assert confirmed_by_killed > 0

    last = last_counts(output.events)
    out_by_number = defaultdict(int)
    for (number, _), count in last.items():
        out_by_number[number] += count
    # The workers that ran to the end put exactly what they received into the output.
    for w in survivors:
        summary = sum(u["count"] for u in output.events if u.get("final") and u["workerNumber"] == w["workerNumber"])
        assert summary == out_by_number[w["workerNumber"]] == w["metrics"]["eventsIn"]
    # The killed worker's output holds no more than it confirmed receiving.
    assert 0 < out_by_number[victim["workerNumber"]] <= confirmed_by_killed
    # Output resumed from the replacement while the job streamed.
    assert any(u["workerNumber"] == replacement["workerNumber"] and not u.get("final") for u in output.events)
    # Nothing was counted twice, and the output is short by at least what was counted lost.
    expected = expected_counts(limit, keys)
    per_user = defaultdict(int)
    for (_, user), count in last.items():
        per_user[user] += count
    assert all(per_user[user] <= expected[user] for user in per_user)
    assert limit - sum(per_user.values()) >= s1["lostEvents"] + s1["droppedEvents"]


def test_scaling_the_counters_from_two_to_four_keeps_every_user_on_one_worker(cluster):
    keys = 200
    job_id = submit_keyed_count(cluster, rate=2000, keys=keys, limit=0, max_counters=4)
    with SseReader(f"{cluster.url}/api/v1/jobs/{job_id}/output") as output:
        wait_for(lambda: streaming(cluster, job_id), timeout=60, interval=0.5, what="the job streaming")
        wait_for(lambda: len({u["user"] for u in list(output.events)}) == keys, timeout=30, interval=0.2,
                 what="every user in the output")
        before_scale = list(output.events)  # counted before the new workers existed
        status, body = cluster.call("POST", f"/api/v1/jobs/{job_id}/actions/scaleStage",
                                    {"JobId": job_id, "StageNumber": 2, "NumWorkers": 4, "User": "e2e"})
        assert status == 204, body

        def four_connected():
            (source,) = stage_workers(get_job(cluster, job_id), 1)
            return source["metrics"] if source["metrics"]["subscribers"] == 4 else None

        # The source worker learns of the new counters when they connect to it.
        metrics = wait_for(four_connected, timeout=90, interval=0.5, what="four counters connected upstream")
        # Batches hold fewer than 2,000 events, so every event from here on was routed
        # over all four counters (see StageWorkerMetrics on the order of the snapshot).
        settled = metrics["eventsOut"] + 2000

        def owners_after():
            owners = defaultdict(set)
            for u in list(output.events):
                if u["lastId"] >= settled:
                    owners[u["user"]].add(u["worker"])
            if len(owners) == keys and max(u["lastId"] for u in list(output.events)) >= settled + 4000:
                return owners
            return None

        owners = wait_for(owners_after, timeout=90, interval=0.5, what="every user counted after the scale")
    assert cluster.call("DELETE", f"/api/v1/jobs/{job_id}?user=e2e&reason=done")[0] == 202
    assert all(len(workers) == 1 for workers in owners.values()), {u: w for u, w in owners.items() if len(w) > 1}
    after = {user: workers.pop() for user, workers in owners.items()}
    assert set(after.values()) == {0, 1, 2, 3}  # the new counters got users
    before = defaultdict(set)
    for u in before_scale:
        before[u["user"]].add(u["worker"])
    assert all(len(workers) == 1 for workers in before.values())
    before = {user: workers.pop() for user, workers in before.items()}
    assert set(before.values()) == {0, 1}
    # Consistent hashing: a user either stays where it was or moves to a new counter.
    moved = [user for user in after if after[user] != before.get(user)]
    assert all(after[user] in (2, 3) for user in moved)
    assert 0.25 < len(moved) / keys < 0.75
